"""The curation step of the record stage: decontamination, then duplicates decided in plan order.

`Curator.decide(items)` runs in the record stage's worker thread on a batch of validated pairs:
it embeds their questions once (the same vectors then serve distractor search), fails the ones
that match an eval set (`contaminated`, not re-asked), offers the rest to the `InOrder` gate and
judges whatever the gate releases against the run's accepted questions. A duplicate is re-asked
with the next attempt (a new seed) until `validation.attempts`, then fails as
`duplicate_instruction`. See dedup.py for why decisions go in plan order.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ragloom.retrieval import Index

from .config import RunConfig
from .curation import Decontaminator, Deduper, InOrder, early_duplicates, open_decontaminator
from .records import Attempted
from .types import Job


@dataclass
class Decided:
    accepted: list[Attempted] = field(default_factory=list)
    vectors: np.ndarray | None = None
    failed: list[tuple[Job, str, dict[str, Any]]] = field(default_factory=list)
    reask: list[Job] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)  # duplicates by the check that found them


class Curator:
    def __init__(
        self,
        cfg: RunConfig,
        index: Index,
        written: Sequence[dict[str, Any]],
        order: Sequence[str],
        decon: Decontaminator | None = None,
    ) -> None:
        """`decon`: the eval sets opened by the caller (`open_decontaminator`); opened here when None."""
        self.cfg, self.index = cfg, index
        c = cfg.curation
        self.gate: InOrder[tuple[Attempted, Any]] = InOrder(order)
        self.deduper = Deduper.from_records(c.dedup, written, embed=index.embed_queries)
        self._probed: dict[str, tuple[int, int]] = {}
        self.decon = decon if decon is not None else open_decontaminator(c, index)

    def decide(self, items: Sequence[Attempted]) -> Decided:
        out = Decided()
        vecs = self.index.embed_queries([a.pair.question for a in items]) if items else None
        for i, item in enumerate(items):
            v = vecs[i] if vecs is not None else None
            matches = self.decon.check(item.pair.question, item.pair.answer, v) if self.decon else []
            if matches:
                out.failed.append((item.job, "contaminated", {"contamination": [m.as_dict() for m in matches]}))
                self.gate.done(item.job.id)
                continue
            self.gate.put(item.job.id, (item, v))
        keep: list[np.ndarray] = []
        if not self.cfg.curation.dedup.enabled:  # nothing to decide in order: release at once
            for item in items:
                if (taken := self.gate.take(item.job.id)) is not None:
                    out.accepted.append(taken[0])
                    keep.append(taken[1])
        while (head := self.gate.head()) is not None:
            key, (item, v) = head
            dup = self.deduper.check(item.pair.question, v)
            if dup is None:
                self.deduper.add(key, item.pair.question, v)
                out.accepted.append(item)
                keep.append(v)
                self.gate.done(key)
                continue
            out.rejected["duplicate_instruction"] += 1
            out.counts[f"duplicate_{dup.check}"] += 1
            if item.job.attempt < self.cfg.validation.attempts:
                self.gate.retry(key)
                out.reask.append(dataclasses.replace(item.job, attempt=item.job.attempt + 1))
                break  # the line waits for this job's next answer
            out.failed.append((item.job, "duplicate_instruction", {"duplicate": dup.as_dict()}))
            self.gate.done(key)
        if self.cfg.curation.dedup.enabled:
            last = self.cfg.validation.attempts

            def probe(held: tuple[Attempted, Any]) -> tuple[str, Any, int] | None:
                job = held[0].job
                return None if job.attempt >= last else (held[0].pair.question, held[1], job.attempt)

            for _, (item, _v), dup in early_duplicates(self.gate, self.deduper, probe, self._probed):
                out.rejected["duplicate_instruction"] += 1
                out.counts[f"duplicate_{dup.check}"] += 1
                out.reask.append(dataclasses.replace(item.job, attempt=item.job.attempt + 1))
        if keep:
            out.vectors = np.stack(keep)
        return out
