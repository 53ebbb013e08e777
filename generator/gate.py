"""The quality gate of the record stage: paradigm conformance (encoder, optionally the LLM judge)
for a batch of accepted pairs, before their records are built.

A pair whose sources do not relate to its answer as its paradigm requires is rejected as
`paradigm_mismatch` and asked again like any other rejection. The verdict and its scores are stored
in the record's `quality` field, so a user can re-threshold without regenerating.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .backends import Backend
from .config import RunConfig
from .conformance import CheckInput, ConformanceChecker
from .judge import JudgeCache, combine, judge
from .records import Attempted


class Gate:
    def __init__(self, cfg: RunConfig, checker: ConformanceChecker, backend: Backend) -> None:
        self.cfg, self.checker, self.backend = cfg, checker, backend
        q = cfg.quality
        self.cache = JudgeCache(Path(q.judge_cache or Path(cfg.output) / "quality_judge.jsonl")) if q.judge else None

    @property
    def on(self) -> bool:
        return self.cfg.quality.conformance or self.cfg.quality.judge

    async def check(self, items: list[Attempted]) -> list[dict[str, Any]]:
        """One verdict per item: {found, ok, scores[, judge]}; `ok` False means paradigm_mismatch."""
        inputs = [CheckInput(a.pair.question, a.pair.answer, a.job.sources, a.job.paradigm) for a in items]
        q = self.cfg.quality
        verdicts: list[dict[str, Any]]
        if q.conformance or q.combine != "judge":
            verdicts = await asyncio.to_thread(self.checker.check, inputs)
        else:
            verdicts = [{"found": None, "ok": None, "scores": {}} for _ in inputs]
        if self.cache is not None:
            judged = await judge(self.backend, inputs, self.cache)
            mode = q.combine if q.conformance else "judge"
            verdicts = [combine(v, j, mode) for v, j in zip(verdicts, judged, strict=True)]
        return verdicts
