"""The plan: every job derived from the config and seed before any LLM call."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from typing import Any

from .config import RunConfig
from .types import PARADIGMS, Exemplar, Job


def paradigm_counts(weights: dict[str, float], count: int) -> dict[str, int]:
    """Split `count` over paradigms in proportion to the weights (largest remainder)."""
    total = sum(weights.values())
    exact = {p: count * w / total for p, w in weights.items() if w > 0}
    counts = {p: int(v) for p, v in exact.items()}
    for p in sorted(exact, key=lambda p: (-(exact[p] - counts[p]), p))[: count - sum(counts.values())]:
        counts[p] += 1
    return counts


def make_plan(
    cfg: RunConfig, sources: list[list[Exemplar]], weights: list[float], picks: list[int] | None = None
) -> list[Job]:
    """Jobs in plan order. Exemplars are drawn by source weight, cycling each source in a seeded order;
    `picks`, if given, receives each job's exemplar source (sources.strategy corpus draws within it)."""
    rng = random.Random(cfg.seed)
    counts = paradigm_counts(cfg.paradigms, cfg.count)
    paradigms = [p for p, n in sorted(counts.items()) for _ in range(n)]
    rng.shuffle(paradigms)
    orders = [rng.sample(range(len(s)), len(s)) for s in sources]
    cursor = [0] * len(sources)
    live = [i for i, s in enumerate(sources) if s]
    jobs = []
    for pos, paradigm in enumerate(paradigms):
        si = rng.choices(live, weights=[weights[i] for i in live])[0]
        ex = sources[si][orders[si][cursor[si] % len(sources[si])]]
        cursor[si] += 1
        if picks is not None:
            picks.append(si)
        lo, hi = PARADIGMS[paradigm]
        jobs.append(Job(f"{cfg.seed}-{pos:06d}", pos, paradigm, ex, rng.randint(lo, hi)))
    return jobs


def plan_hash(
    cfg: RunConfig, jobs: list[Job], *, index: dict[str, Any] | None = None, templates: dict[str, str] | None = None
) -> str:
    """Identifies the work: the plan, every setting that changes what a record contains, what the
    index holds (`index`: its manifest's encoder, size and corpus fingerprint, so an index rebuilt at
    the same path is another run) and the templates' digests (an edited template is another run)."""
    settings = cfg.model_dump(
        mode="json",
        exclude={
            "output": True,
            "pricing": True,
            "execution": True,  # where it runs (this process or Ray) is not what it makes
            # how the server is reached is not what it makes: a restarted server on a new port resumes
            "backend": {
                "concurrency",
                "timeout",
                "max_retries",
                "max_retry_wait",
                "batch_size",
                "base_url",
                "api_key_env",
                "extra_headers",
                "default_query",
                "auth_header",
            },
            "card": True,
        },
    )
    ident = {"settings": settings, "index": index or {}, "templates": templates or {}}
    h = hashlib.sha256(json.dumps(ident, sort_keys=True).encode())
    for j in jobs:
        rows = f"|{','.join(map(str, j.source_rows))}" if j.source_rows else ""  # sources decided in the plan
        h.update(f"{j.id}|{j.paradigm}|{j.exemplar.id}|{j.n_sources}{rows}\n".encode())
    return h.hexdigest()[:20]


def summarize(jobs: list[Job]) -> dict[str, int]:
    return dict(sorted(Counter(j.paradigm for j in jobs).items()))
