"""LLM and scoring backends (owns the `backend:` section's models).

What it owns: the Backend protocol (base.py), one module per backend type, retries and transport
errors, LSR's target-token alignment (scoring.py), and the registry (registry.py): the one list of
backend types that config validation, the plan hash's transport exclusions, preflight and Ray read.
It may import: the core's leaf modules (strict), ragloom.errors, and third-party clients (imported
lazily, where a backend is made). Nothing else in generator/ imports a module of this package
directly: use what this `__init__` exports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Backend, ChatRequest, ChatResult, ScoreRequest, ScoreResult
from .config import LlamaCppBackendConfig, OpenAIBackendConfig, VLLMBackendConfig
from .registry import BACKENDS, BackendSpec, config_union, identity_of_backend, make_backend, register, spec_of
from .scoring import AlignmentError, lsr_scores, target_tokens

# the `backend:` section (backends that chat) and what may score (every registered backend)
if TYPE_CHECKING:  # built from the registry at run time; a static checker sees any section
    BackendConfig = Any
    ScoringBackendConfig = Any
else:
    BackendConfig = config_union(generating=True)
    ScoringBackendConfig = config_union(generating=False)

__all__ = [
    "BACKENDS",
    "AlignmentError",
    "Backend",
    "BackendConfig",
    "BackendSpec",
    "ChatRequest",
    "ChatResult",
    "LlamaCppBackendConfig",
    "OpenAIBackendConfig",
    "ScoreRequest",
    "ScoreResult",
    "ScoringBackendConfig",
    "VLLMBackendConfig",
    "config_union",
    "identity_of_backend",
    "lsr_scores",
    "make_backend",
    "register",
    "spec_of",
    "target_tokens",
]
