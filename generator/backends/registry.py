"""The backend registry: one entry per backend type, the one list every part of ragloom reads.

Config validation (the `backend:` and `quality.necessity_backend` unions and their "did you mean"),
the plan hash (an entry's `transport` keys say how the backend is reached, not what it computes, so
they stay out of the run's identity), making a backend, preflight on a Ray driver and Ray's worker
resources all read the entry. Adding a backend is its module plus one `register` line below; see
README "Add a backend".
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Union

from pydantic import Field

from ..strict import Strict
from .config import LlamaCppBackendConfig, OpenAIBackendConfig, VLLMBackendConfig


@dataclass(frozen=True)
class BackendSpec:
    type: str  # the config's `backend.type`
    config: builtins.type[Strict]  # its config section (a pydantic model with `type: Literal[...]`)
    cls: str  # "module:Class" of the Backend, imported only when one is made
    generates: bool = True  # chat: may be a run's `backend:`; False: scoring only (radit lsr, necessity)
    transport: frozenset[str] = frozenset()  # keys left out of the run's identity
    in_process: bool = False  # the engine lives in this process (one per process; a Ray driver cannot preflight it)
    gpus: Callable[[Any], float] = field(default=lambda cfg: 0.0)  # Ray: GPUs per worker for this config


BACKENDS: dict[str, BackendSpec] = {}


def register(spec: BackendSpec) -> BackendSpec:
    BACKENDS[spec.type] = spec
    return spec


def spec_of(cfg_or_type: Any) -> BackendSpec:
    kind = cfg_or_type if isinstance(cfg_or_type, str) else getattr(cfg_or_type, "type", None)
    if kind is None and isinstance(cfg_or_type, dict):
        kind = cfg_or_type.get("type")
    try:
        return BACKENDS[str(kind)]
    except KeyError:
        raise ValueError(f"unknown backend type {kind!r}; use one of {', '.join(BACKENDS)}") from None


def make_backend(cfg: Any) -> Any:
    """The Backend for a validated backend section."""
    module, _, name = spec_of(cfg).cls.partition(":")
    return getattr(importlib.import_module(module, __package__), name)(cfg)


def identity_of_backend(section: dict | None) -> dict | None:
    """A backend section (as JSON) without its transport keys."""
    if section is None:
        return None
    drop = BACKENDS[str(section["type"])].transport if section.get("type") in BACKENDS else frozenset()
    return {k: v for k, v in section.items() if k not in drop}


def config_union(*, generating: bool) -> Any:
    """The discriminated union of the registered backends' sections (generating ones only, or all)."""
    models: Any = tuple(s.config for s in BACKENDS.values() if s.generates or not generating)
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 (a Union of a tuple)


register(
    BackendSpec(
        "openai",
        OpenAIBackendConfig,
        ".openai_backend:OpenAIBackend",
        transport=frozenset(
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
    )
)
register(
    BackendSpec(
        "vllm",
        VLLMBackendConfig,
        ".vllm_backend:VLLMBackend",
        transport=frozenset({"batch_size", "gpu_memory_utilization", "tensor_parallel_size"}),
        in_process=True,
        gpus=lambda cfg: float(cfg.tensor_parallel_size),
    )
)
register(
    BackendSpec(
        "llama_cpp",
        LlamaCppBackendConfig,
        ".llama_cpp_backend:LlamaCppBackend",
        generates=False,
        transport=frozenset({"n_threads"}),
        in_process=True,
    )
)
