"""The paradigm check (`quality.conformance`, and the LLM judge with `quality.judge`): do a pair's
sources relate to its answer as its paradigm requires?

A pair whose sources do not is rejected as `paradigm_mismatch` and asked again like any other
rejection. The verdict and its scores are stored at the top of the record's `quality` field, so a
user can re-threshold without regenerating. One object of the check protocol (checks.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..backends import Backend
from .checks import CheckContext, CheckItem, Outcome
from .config import Quality
from .conformance import CheckInput, ConformanceChecker
from .judge import JudgeCache, combine, judge


class ParadigmCheck:
    """Runs the parts that are on, and only those: the encoder when `quality.conformance`, the LLM judge
    whenever `quality.judge`. A judge that could not answer (no valid verdict, or its request failed)
    leaves the job unfinished; it never falls back to a part the user turned off."""

    name = "paradigm"
    key = None  # the verdict {found, ok, scores[, encoder, judge]} is the record's `quality` itself
    codes = ("paradigm_mismatch",)
    per_paradigm = frozenset({"paradigm_mismatch"})
    breaker = "judge"
    reads_markers = False

    def __init__(
        self, q: Quality, checker: ConformanceChecker | None, backend: Backend | None, cache: JudgeCache | None
    ) -> None:
        """`cache`: the run's judge cache (`judge.judge_cache`), None when `quality.judge` is off."""
        if q.conformance and checker is None:
            raise ValueError("quality.conformance is on: pass the ConformanceChecker")
        if q.judge and (cache is None or backend is None):
            raise ValueError("quality.judge is on: pass the backend and the judge cache")
        self.q, self.checker, self.backend, self.cache = q, checker, backend, cache

    @classmethod
    def build(cls, q: Quality, ctx: CheckContext) -> ParadigmCheck | None:
        return cls(q, ctx.checker, ctx.backend, ctx.judge_cache) if (q.conformance or q.judge) else None

    def applies(self, paradigm: str | None) -> bool:
        return True

    async def averdicts(self, items: Sequence[CheckItem]) -> list[Outcome]:
        return [self._outcome(v) for v in await self.check(items)]

    async def check(self, items: Sequence[CheckItem]) -> list[dict[str, Any] | None]:
        """One verdict per item: {found, ok, scores[, encoder, judge]}; `ok` False means paradigm_mismatch
        (None: no paradigm to judge); None: the judge is on and gave no verdict."""
        inputs = [CheckInput(i.question, i.answer, list(i.sources), i.paradigm) for i in items]
        encoded: list[dict[str, Any] | None] = [None] * len(inputs)
        if self.q.conformance:
            assert self.checker is not None
            encoded = list(await asyncio.to_thread(self.checker.check, inputs))
        if self.cache is None:
            return encoded
        assert self.backend is not None
        judged = await judge(self.backend, inputs, self.cache)
        mode = self.q.combine if self.q.conformance else "judge"
        return [None if j is None else combine(v, j, mode) for v, j in zip(encoded, judged, strict=True)]

    def figures(self, outcomes: Sequence[Outcome]) -> Counter[str]:
        return Counter()

    @staticmethod
    def _outcome(v: dict[str, Any] | None) -> Outcome:
        if v is None:
            return Outcome(False, unfinished="judge_no_verdict")
        ok = v.get("ok") is not False
        return Outcome(ok, None if ok else "paradigm_mismatch", v)
