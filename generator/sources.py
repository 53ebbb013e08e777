"""Source-document selection: the exemplar is the query; a seeded pick from its top hits."""

from __future__ import annotations

import random
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
    return Job(job.id, job.position, job.paradigm, job.exemplar, job.n_sources, tuple(chosen), job.attempt)


def select_sources(jobs: Sequence[Job], index: Index, cfg: Sources, seed: int) -> list[Job]:
    """Batch-retrieve for the exemplars of `jobs` and pick each job's sources."""
    if not jobs:
        return []
    k = max(cfg.top_k, cfg.multi_k)
    results = index.search([j.exemplar.text for j in jobs], k=min(k, len(index)))
    return [pick_sources(j, hits, cfg, seed) for j, hits in zip(jobs, results, strict=True)]
