"""LLM backends, chosen by `backend.type` in the config."""

from __future__ import annotations

from ..config import LlamaCppBackendConfig, OpenAIBackendConfig, VLLMBackendConfig
from .base import Backend, ChatRequest, ChatResult, ScoreRequest, ScoreResult

# How each backend is reached or run, not what it makes: left out of the run's identity, so a
# restarted server on a new port, a longer timeout or more concurrency resumes the same run.
TRANSPORT: dict[str, frozenset[str]] = {
    "openai": frozenset(
        {
            "concurrency",
            "timeout",
            "max_retries",
            "max_retry_wait",
            "base_url",
            "api_key_env",
            "extra_headers",
            "default_query",
            "auth_header",
        }
    ),
    "vllm": frozenset({"batch_size", "gpu_memory_utilization", "tensor_parallel_size"}),
    "llama_cpp": frozenset({"n_threads"}),
}


def identity_of_backend(section: dict | None) -> dict | None:
    """A backend section (as JSON) without its transport keys."""
    if section is None:
        return None
    drop = TRANSPORT.get(str(section.get("type")), frozenset())
    return {k: v for k, v in section.items() if k not in drop}


def make_backend(cfg: OpenAIBackendConfig | VLLMBackendConfig | LlamaCppBackendConfig) -> Backend:
    if cfg.type == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(cfg)
    if cfg.type == "vllm":
        from .vllm_backend import VLLMBackend

        return VLLMBackend(cfg)
    if cfg.type == "llama_cpp":
        from .llama_cpp_backend import LlamaCppBackend

        return LlamaCppBackend(cfg)
    raise ValueError(f"unknown backend type {cfg.type!r}")


__all__ = [
    "TRANSPORT",
    "Backend",
    "ChatRequest",
    "ChatResult",
    "ScoreRequest",
    "ScoreResult",
    "identity_of_backend",
    "make_backend",
]
