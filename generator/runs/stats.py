"""Run counters and the breaker, shared by `generate` and both `radit` commands.

Three kinds of outcome, classified where they arise:
- accepted: a record was written;
- failed (by reason): the job is finished without a record, for a reason of its own (validation
  on every attempt, a request the server rejected, a prompt too long, a token misalignment);
- backend_errors (by reason): the job is unfinished because the transport failed; a rerun resumes it.
Only what holds for every request stops a run: the breaker trips after a long streak of transport
failures (the server is down) or of rejections with no success (the settings are wrong for every request).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from ragloom.errors import BackendError

from ..types import Usage


@dataclass
class Stats:
    """Live counters; `rejected`, `failed`, `retried` and `backend_errors` are keyed by reason code."""

    planned: int = 0
    skipped_done: int = 0
    accepted: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    backend_errors: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)  # other tallies: distractor rules, truncated sources
    usage: Usage = field(default_factory=Usage)
    pipeline_seconds: float = 0.0  # from the first job queued to the last record written

    @property
    def finished(self) -> int:
        return self.accepted + sum(self.failed.values())

    @property
    def unfinished(self) -> int:
        return self.planned - self.skipped_done - self.finished

    def outcome(self) -> str:
        """complete (every job accepted), finished_with_failures, or unfinished (rerun to resume)."""
        if self.unfinished > 0:
            return "unfinished"
        return "finished_with_failures" if self.failed else "complete"

    def as_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "skipped_done": self.skipped_done,
            "accepted": self.accepted,
            "failed": dict(self.failed.most_common()),
            "rejected": dict(self.rejected.most_common()),
            "retried": dict(self.retried.most_common()),
            "backend_errors": dict(self.backend_errors.most_common()),
            "counts": dict(sorted(self.counts.items())),
            "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens},
            "outcome": self.outcome(),
        }


class _Describes(Protocol):
    name: str
    parallelism: int

    def describe(self) -> dict[str, Any]: ...


class Breaker:
    """Stops a run after `max(20, parallelism)` requests in a row fail at the transport (the server is
    down, not flaky), or are rejected by the server with no success in between (every request is
    refused: a setting, not a record, is wrong). Finished work is on disk; the message says to rerun."""

    def __init__(self, backend: _Describes, failed: str = "requests in a row failed") -> None:
        self.backend, self.failed_phrase = backend, failed
        self.limit = max(20, backend.parallelism)
        self.streak = 0
        self.rejections = 0

    def ok(self) -> None:
        self.streak = 0
        self.rejections = 0

    def failed(self, error: str) -> None:
        self.streak += 1
        if self.streak >= self.limit:
            raise BackendError(
                f"{self.streak} {self.failed_phrase} ({error}) at {self._where()}; is the server up? Rerun to resume"
            )

    def rejected(self, reason: str, detail: str = "") -> None:
        """A request the server refused; many in a row with no success mean every request would be."""
        self.streak = 0
        self.rejections += 1
        if self.rejections >= self.limit:
            shown = f": {detail}" if detail else ""
            raise BackendError(
                f"{self.rejections} requests in a row rejected by {self._where()} ({reason}{shown}); "
                "check the backend and sampling settings. Rerun to resume"
            )

    def _where(self) -> str:
        return str(self.backend.describe().get("base_url", self.backend.name))
