"""Coverage of the corpus (issue 28): how many distinct passages the records use as sources, the
share of the corpus that is, how often one passage is reused, and the reuse histogram.

One definition for run.json, the card, the report and `ragloom audit --index`: a record's source
passages are its documents with `role: source`, counted once per record (a source slot).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Coverage:
    records: int  # records with at least one source
    slots: int  # source slots over all records
    distinct: int  # distinct source passages
    corpus: int | None  # passages in the index (None: unknown)
    max_reuse: int  # records of the most used passage
    histogram: dict[int, int] = field(default_factory=dict)  # k -> passages that are a source of k records

    @property
    def share(self) -> float | None:
        return self.distinct / self.corpus if self.corpus else None

    @property
    def mean_reuse(self) -> float:
        return self.slots / self.distinct if self.distinct else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "source_slots": self.slots,
            "distinct_sources": self.distinct,
            "corpus_passages": self.corpus,
            "corpus_share": None if self.share is None else round(self.share, 6),
            "max_reuse": self.max_reuse,
            "mean_reuse": round(self.mean_reuse, 4),
            "reuse_histogram": {str(k): v for k, v in sorted(self.histogram.items())},
        }

    def lines(self) -> list[str]:
        """Markdown bullets for the card."""
        share = "unknown corpus size" if self.share is None else f"{self.share:.1%} of {self.corpus:,} passages"
        hist = ", ".join(f"{k}x {v}" for k, v in sorted(self.histogram.items())) or "none"
        return [
            f"- distinct source passages: {self.distinct:,} ({share})",
            f"- source slots: {self.slots:,} in {self.records:,} records",
            f"- reuse per passage: max {self.max_reuse}, mean {self.mean_reuse:.2f}",
            f"- passages by number of records they are a source of: {hist}",
        ]


def coverage(sources: Iterable[Sequence[str]], corpus: int | None) -> Coverage:
    """From each record's source passage ids (a passage twice in one record counts once)."""
    uses: Counter[str] = Counter()
    records = 0
    for ids in sources:
        ids = list(dict.fromkeys(ids))
        if ids:
            records += 1
            uses.update(ids)
    return Coverage(
        records=records,
        slots=sum(uses.values()),
        distinct=len(uses),
        corpus=corpus,
        max_reuse=max(uses.values(), default=0),
        histogram=dict(Counter(uses.values())),
    )


def source_ids(record: dict[str, Any]) -> list[str]:
    return [str(d["id"]) for d in record.get("documents") or [] if d.get("role") == "source" and "id" in d]


def of_records(records: Iterable[dict[str, Any]], corpus: int | None) -> Coverage:
    return coverage((source_ids(r) for r in records), corpus)


def of_file(path: Path, corpus: int | None) -> Coverage:
    """Coverage of a checkpoint file, read a line at a time (a torn last line is skipped)."""

    def ids() -> Iterable[list[str]]:
        if not path.exists():
            return
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.endswith("\n") and line.strip():
                    yield source_ids(json.loads(line))

    return coverage(ids(), corpus)


def corpus_size(run: dict[str, Any]) -> int | None:
    """Passages in the run's index, from run.json's index manifest."""
    n = (run.get("index") or {}).get("passages")
    return int(n) if isinstance(n, int) else None
