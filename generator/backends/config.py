"""The `backend:` section: one model per backend type (backends/registry.py lists them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..strict import Strict


class OpenAIBackendConfig(Strict):
    type: Literal["openai"]
    base_url: str | None = None
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    concurrency: int = Field(16, ge=1, le=4096)
    timeout: float = Field(120.0, gt=0)
    max_retries: int = Field(8, ge=0)
    max_retry_wait: float = Field(60.0, gt=0)
    structured_output: Literal["auto", "json_schema", "json_object", "off"] = "auto"
    extra_body: dict[str, Any] = Field(default_factory=dict)
    extra_headers: dict[str, str] = Field(
        default_factory=dict, description="headers sent with every request (gateways); never put a key here"
    )
    default_query: dict[str, str] = Field(
        default_factory=dict, description="query parameters sent with every request, e.g. {api-version: ...}"
    )
    auth_header: Literal["bearer", "api-key"] = Field(
        "bearer", description="how the key is sent: `Authorization: Bearer KEY`, or Azure's `api-key: KEY`"
    )
    max_prompt_tokens: int | None = Field(
        None, gt=0, description="prompt budget in tokens; default: the server's context length minus max_tokens"
    )


class VLLMBackendConfig(Strict):
    type: Literal["vllm"]
    model: str
    tensor_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int | None = Field(None, gt=0)
    dtype: str = "auto"
    batch_size: int = Field(256, ge=1)
    structured_output: bool = True
    max_prompt_tokens: int | None = Field(None, gt=0, description="default: max_model_len minus max_tokens")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)


class LlamaCppBackendConfig(Strict):
    """A local GGUF model in process (llama-cpp-python), for scoring only: `radit lsr`, necessity."""

    type: Literal["llama_cpp"]
    model_path: str = Field(description="path of the GGUF model file")
    model: str | None = Field(None, description="the name records and cards show (default: the file's stem)")
    n_ctx: int = Field(2048, ge=64, description="context in tokens; a longer scoring request fails alone")
    n_threads: int | None = Field(None, ge=1, description="CPU threads (default: all cores)")
