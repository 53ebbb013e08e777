"""The plan: every job derived from the config and seed before any LLM call."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from typing import Any

from .backends import identity_of_backend
from .config import RunConfig
from .paradigms import PARADIGMS, paradigm_counts
from .types import Exemplar, Job


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
        lo, hi = PARADIGMS[paradigm].sources
        jobs.append(Job(f"{cfg.seed}-{pos:06d}", pos, paradigm, ex, rng.randint(lo, hi)))
    return jobs


# where a cache lives is not what the run makes
_CACHE_KEYS = {
    "quality": {"judge_cache"},
    "curation": {"cache_dir"},
    "exemplar_filters": {"knowledge_cache"},
}


def plan_identity(
    cfg: RunConfig, *, index: dict[str, Any] | None = None, templates: dict[str, str] | None = None
) -> dict[str, Any]:
    """What makes two runs the same run: every setting that changes what a record contains, what the
    index holds (`index`: its manifest's encoder, size and corpus fingerprint, so an index rebuilt at the
    same path is another run) and the templates' digests (an edited template is another run). Never
    where it runs, where a server or a cache lives, or how a server is reached."""
    settings = cfg.model_dump(
        mode="json",
        exclude={"output": True, "pricing": True, "execution": True, "card": True, **_CACHE_KEYS},
    )
    settings["backend"] = identity_of_backend(settings["backend"])
    settings["quality"]["necessity_backend"] = identity_of_backend(settings["quality"].get("necessity_backend"))
    return {"settings": settings, "index": index or {}, "templates": templates or {}}


def plan_hash(
    cfg: RunConfig, jobs: list[Job], *, index: dict[str, Any] | None = None, templates: dict[str, str] | None = None
) -> str:
    """Identifies the work: `plan_identity` and the plan's jobs."""
    return hash_identity(plan_identity(cfg, index=index, templates=templates), jobs)


def hash_identity(ident: dict[str, Any], jobs: list[Job]) -> str:
    """The plan hash of a `plan_identity` and the plan's jobs."""
    h = hashlib.sha256(json.dumps(ident, sort_keys=True).encode())
    for j in jobs:
        rows = f"|{','.join(map(str, j.source_rows))}" if j.source_rows else ""  # sources decided in the plan
        h.update(f"{j.id}|{j.paradigm}|{j.exemplar.id}|{j.n_sources}{rows}\n".encode())
    return h.hexdigest()[:20]


def summarize(jobs: list[Job]) -> dict[str, int]:
    return dict(sorted(Counter(j.paradigm for j in jobs).items()))
