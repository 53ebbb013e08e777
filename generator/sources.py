"""Source-document selection: the exemplar is the query; a seeded pick from its top hits."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import OrderedDict
from collections.abc import Sequence

from ragloom.retrieval import Hit, Index, normalize_text

from .config import Sources
from .types import Job


def job_rng(seed: int, job_id: str, purpose: str) -> random.Random:
    """A per-job RNG: the same job gets the same draws however jobs are batched or resumed."""
    return random.Random(f"{seed}:{job_id}:{purpose}")


def near_duplicate(a: str, b: str, threshold: float) -> bool:
    wa, wb = set(normalize_text(a).split()), set(normalize_text(b).split())
    if not wa or not wb:
        return wa == wb
    return len(wa & wb) / len(wa | wb) >= threshold


def pick_sources(job: Job, hits: Sequence[Hit], cfg: Sources, seed: int) -> Job:
    """Fill `job.sources`: one of the top_k hits, or n distinct non-near-duplicate ones of the top multi_k."""
    rng = job_rng(seed, job.id, "sources")
    if job.n_sources == 1:
        pool = list(hits[: cfg.top_k])
        chosen = [rng.choice(pool).passage] if pool else []
    else:
        pool = list(hits[: cfg.multi_k])
        rng.shuffle(pool)
        chosen = []
        for h in pool:
            if all(not near_duplicate(h.passage.text, c.text, cfg.near_duplicate) for c in chosen):
                chosen.append(h.passage)
            if len(chosen) == job.n_sources:
                break
    return dataclasses.replace(job, sources=tuple(chosen))


class HitCache:
    """Exemplar text -> its hits. A plan uses each exemplar many times (1,000 jobs from 152
    built-in exemplars), and the same query always gets the same hits, so each is searched once."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._d: OrderedDict[tuple[str, int], list[Hit]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def search(self, index: Index, queries: Sequence[str], k: int) -> list[list[Hit]]:
        with self._lock:
            missing = list(dict.fromkeys(q for q in queries if (q, k) not in self._d))
        found = dict(zip(missing, index.search(missing, k=k), strict=True)) if missing else {}
        out = []
        with self._lock:
            for q in queries:
                hits = found.get(q)
                if hits is None:
                    hits = self._d[(q, k)]
                    self._d.move_to_end((q, k))
                    self.hits += 1
                else:
                    self.misses += 1
                out.append(hits)
            for q, hits in found.items():
                self._d[(q, k)] = hits
            while len(self._d) > self.max_entries:
                self._d.popitem(last=False)
        return out


def select_sources(
    jobs: Sequence[Job], index: Index, cfg: Sources, seed: int, cache: HitCache | None = None
) -> list[Job]:
    """Batch-retrieve for the exemplars of `jobs` and pick each job's sources; a job whose sources
    the plan decided (`source_rows`, generator/source_plan.py) reads them from the store instead."""
    if not jobs:
        return []
    if all(j.source_rows for j in jobs):
        rows = list(dict.fromkeys(r for j in jobs for r in j.source_rows))
        by_row = dict(zip(rows, index.store.get_rows(rows), strict=True))
        return [dataclasses.replace(j, sources=tuple(by_row[r] for r in j.source_rows)) for j in jobs]
    k = min(max(cfg.top_k, cfg.multi_k), len(index))
    queries = [j.exemplar.text for j in jobs]
    results = cache.search(index, queries, k) if cache is not None else index.search(queries, k=k)
    return [pick_sources(j, hits, cfg, seed) for j, hits in zip(jobs, results, strict=True)]
