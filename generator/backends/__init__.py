"""LLM backends, chosen by `backend.type` in the config."""

from __future__ import annotations

from ..config import LlamaCppBackendConfig, OpenAIBackendConfig, VLLMBackendConfig
from .base import Backend, ChatRequest, ChatResult, ScoreRequest, ScoreResult


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


__all__ = ["Backend", "ChatRequest", "ChatResult", "ScoreRequest", "ScoreResult", "make_backend"]
