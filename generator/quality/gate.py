"""The quality gate of the record stage: paradigm conformance (encoder, optionally the LLM judge)
for a batch of accepted pairs, before their records are built.

A pair whose sources do not relate to its answer as its paradigm requires is rejected as
`paradigm_mismatch` and asked again like any other rejection. The verdict and its scores are stored
in the record's `quality` field, so a user can re-threshold without regenerating.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..backends import Backend
from ..config import Quality
from ..records import Attempted
from .conformance import CheckInput, ConformanceChecker
from .judge import JudgeCache, combine, judge


class Gate:
    """Runs the checks that are on, and only those: the encoder check when `quality.conformance`, the
    LLM judge whenever `quality.judge`. A verdict is None where the judge could not answer (no valid
    verdict, or its request failed): the caller leaves that job unfinished, it never falls back to a
    check the user turned off."""

    def __init__(
        self, q: Quality, checker: ConformanceChecker | None, backend: Backend, cache: JudgeCache | None
    ) -> None:
        """`cache`: the run's judge cache (`judge.judge_cache`), None when `quality.judge` is off."""
        if q.conformance and checker is None:
            raise ValueError("quality.conformance is on: pass the ConformanceChecker")
        if q.judge and cache is None:
            raise ValueError("quality.judge is on: pass the judge cache")
        self.q, self.checker, self.backend, self.cache = q, checker, backend, cache

    @property
    def on(self) -> bool:
        return self.q.conformance or self.q.judge

    async def check(self, items: list[Attempted]) -> list[dict[str, Any] | None]:
        """One verdict per item: {found, ok, scores[, encoder, judge]}; `ok` False means
        paradigm_mismatch; None: the judge is on and gave no verdict."""
        inputs = [CheckInput(a.pair.question, a.pair.answer, a.job.sources, a.job.paradigm) for a in items]
        encoded: list[dict[str, Any] | None] = [None] * len(inputs)
        if self.q.conformance:
            assert self.checker is not None
            encoded = list(await asyncio.to_thread(self.checker.check, inputs))
        if self.cache is None:
            return encoded
        judged = await judge(self.backend, inputs, self.cache)
        mode = self.q.combine if self.q.conformance else "judge"
        return [None if j is None else combine(v, j, mode) for v, j in zip(encoded, judged, strict=True)]
