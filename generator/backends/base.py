"""The backend interface: a batch of chat requests in, results out in the same order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: list[dict[str, str]]
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 512
    seed: int | None = None
    json_schema: dict[str, Any] | None = None


@dataclass(slots=True)
class ChatResult:
    """Three outcomes. Success: `text` (possibly empty: the pipeline rejects and asks again).
    `error`: the transport failed (rate_limited, timeout, http_500, ...); the job stays unfinished and a
    rerun resumes it. `failure`: the server refused this one request (prompt_too_long,
    request_rejected_400, ...); the job fails with that reason and the run goes on. `detail` is the
    server's message, for the summary."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    error: str | None = None
    failure: str | None = None
    detail: str = ""
    retries: int = 0
    retry_reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """Score log p(target | prefix): the text is `prefix + target`, only target's tokens count."""

    prefix: str
    target: str


@dataclass(slots=True)
class ScoreResult:
    """`tokens` and `token_logprobs` are the target's tokens as the model split them."""

    logprob: float = 0.0
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    straddles: bool = False  # the first target token also covers the end of the prefix
    error: str | None = None  # transport failure: the query stays unfinished (rerun resumes it)
    failure: str | None = None  # this request cannot be scored (no_logprobs, token_alignment, ...)
    detail: str = ""
    retries: int = 0
    retry_reasons: list[str] = field(default_factory=list)


class Backend(Protocol):
    name: str
    model: str
    batch_size: int  # requests per `chat` call the pipeline should send
    parallelism: int  # concurrent `chat` calls the pipeline should keep in flight
    context_length: int | None  # the model's context in tokens, when known (config or server metadata)

    async def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]: ...

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]: ...

    async def preflight(self) -> None:
        """Check, before any work, that the backend can serve (reachable, key accepted, model known)."""
        ...

    async def aclose(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...
