"""Sources decided in the plan (issue 28): `sources.strategy: corpus`, or `exemplar` with `max_reuse`.

Whether a passage may still be a source depends on what the jobs before it took, so these choices
are made once, on the driver, in plan order, and stored in the job (`Job.source_rows`): a resumed
run and every Ray shard read them from the plan instead of choosing again. (The default, `exemplar`
without `max_reuse`, needs no counts and still picks at run time: generator/sources.py.)

Reuse is counted in planned slots: a job that fails still holds its sources, so no passage is a
source of more than `max_reuse` records, and a failed job's passages are not handed to another.

- `exemplar` + `max_reuse N`: each job looks at its exemplar's ranking (searched once per exemplar,
  `max_depth` deep); its window is the first `top_k` (`multi_k`) hits still under N uses, so a job
  whose top hits are used up draws deeper; the pick in the window is the seeded pick of sources.py
  (the same passage as today while nothing is used up). With no hit under N within `max_depth`,
  the least used hit is taken and counted as `source_reuse_exceeded`.
- `corpus`: a seeded permutation of the rows is walked; each job takes the next passage not yet
  used in this round as its first source (so every passage is a source once before any is used
  twice); a multi-doc job adds that passage's nearest neighbours (the index's own vectors, no
  re-encoding) that are unused and not near duplicates; the exemplar is a seeded pick among the
  `exemplar_pool` exemplars of the job's exemplar source nearest to the passage. Memory: the plan,
  two arrays of corpus length (use counts, this round's flags) and the walk; searches: one per
  multi-doc job (a second, deeper one only when its neighbours are used up).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
from ragloom.retrieval import Index

from .config import Sources
from .sources import job_rng, near_duplicate
from .types import Exemplar, Job

BLOCK = 1024  # jobs decided per batch of searches


@dataclasses.dataclass
class Tally:
    """Planned source use: per-row counts and the jobs that had to exceed the limit."""

    uses: np.ndarray
    exceeded: int = 0
    rounds: int = 1

    def take(self, rows: Sequence[int]) -> None:
        for r in rows:
            self.uses[r] += 1

    def figures(self, strategy: str, cfg: Sources) -> dict[str, Any]:
        used = self.uses[self.uses > 0]
        return {
            "strategy": strategy,
            "max_reuse": cfg.max_reuse,
            "planned_slots": int(used.sum()),
            "planned_distinct": len(used),
            "planned_max_reuse": int(used.max()) if len(used) else 0,
            "source_reuse_exceeded": self.exceeded,
            **({"corpus_rounds": self.rounds} if strategy == "corpus" else {}),
        }


class _Texts(dict[int, str]):
    """Passage texts by row, read from the store when first asked (`fetch` reads many at once)."""

    def __init__(self, index: Index) -> None:
        super().__init__()
        self.index = index

    def fetch(self, rows: Sequence[int] | np.ndarray) -> _Texts:
        todo = list(dict.fromkeys(int(r) for r in rows if int(r) not in self))
        self.update({r: p.text for r, p in zip(todo, self.index.store.get_rows(todo), strict=True)})
        return self

    def __missing__(self, row: int) -> str:
        return self.fetch([row])[row]


def _texts(index: Index, rows: Sequence[int] | np.ndarray) -> _Texts:
    return _Texts(index).fetch(rows)


def _pick_distinct(order: Sequence[int], need: int, chosen: list[int], texts: _Texts, threshold: float) -> list[int]:
    """`chosen` extended, in `order`, by rows that are not near duplicates of any chosen one."""
    for r in order:
        if len(chosen) >= need:
            break
        if r not in chosen and all(not near_duplicate(texts[r], texts[c], threshold) for c in chosen):
            chosen.append(r)
    return chosen


# -- exemplar + max_reuse -----------------------------------------------------------------


def _exemplar_job(job: Job, ranking: np.ndarray, tally: Tally, cfg: Sources, seed: int, index: Index) -> list[int]:
    assert cfg.max_reuse is not None
    ranking = ranking[ranking >= 0]
    avail = ranking[tally.uses[ranking] < cfg.max_reuse]
    rng = job_rng(seed, job.id, "sources")
    if job.n_sources == 1:
        window = [int(r) for r in avail[: cfg.top_k]]
        if window:
            return [rng.choice(window)]
        tally.exceeded += 1
        return [int(ranking[np.argmin(tally.uses[ranking])])] if len(ranking) else []
    window = [int(r) for r in avail[: cfg.multi_k]]
    rng.shuffle(window)
    texts = _texts(index, window)  # deeper rows are read only if the window falls short
    chosen = _pick_distinct(window, job.n_sources, [], texts, cfg.near_duplicate)
    chosen = _pick_distinct([int(r) for r in avail[cfg.multi_k :]], job.n_sources, chosen, texts, cfg.near_duplicate)
    if len(chosen) < job.n_sources:  # used up to max_depth: the least used of its hits, counted
        before = len(chosen)
        least = [int(ranking[i]) for i in np.argsort(tally.uses[ranking], kind="stable")]
        chosen = _pick_distinct(least, job.n_sources, chosen, texts, cfg.near_duplicate)
        tally.exceeded += len(chosen) - before
    return chosen


def plan_exemplar_reuse(jobs: list[Job], index: Index, cfg: Sources, seed: int) -> tuple[list[Job], Tally]:
    depth = min(max(cfg.max_depth, cfg.top_k, cfg.multi_k), len(index))
    tally = Tally(np.zeros(len(index), dtype=np.int32))
    rankings: dict[str, np.ndarray] = {}
    out: list[Job] = []
    for start in range(0, len(jobs), BLOCK):
        block = jobs[start : start + BLOCK]
        missing = list(dict.fromkeys(j.exemplar.text for j in block if j.exemplar.text not in rankings))
        if missing:
            _, rows = index.search_rows(missing, depth)
            rankings.update({q: rows[i].astype(np.int32) for i, q in enumerate(missing)})
        for job in block:
            chosen = _exemplar_job(job, rankings[job.exemplar.text], tally, cfg, seed, index)
            tally.take(chosen)
            out.append(dataclasses.replace(job, source_rows=tuple(chosen)))
    return out, tally


# -- corpus ---------------------------------------------------------------------------------


class Walk:
    """A seeded order of the corpus rows; a new order (round) once every row was used in this one."""

    def __init__(self, n: int, seed: int, tally: Tally) -> None:
        self.n, self.seed, self.tally = n, seed, tally
        self.used = np.zeros(n, dtype=bool)  # in this round
        self._start_round()

    def _start_round(self) -> None:
        rng = np.random.default_rng([self.seed, self.tally.rounds])
        self.order = rng.permutation(self.n).astype(np.int32)
        self.cursor, self.left = 0, self.n

    def next(self) -> int:
        while self.used[self.order[self.cursor]]:
            self.cursor += 1
        row = int(self.order[self.cursor])
        self.mark([row])
        return row

    def mark(self, rows: Sequence[int]) -> None:
        new = [r for r in dict.fromkeys(rows) if not self.used[r]]  # a reused one (counted) is not new
        self.used[new] = True
        self.left -= len(new)
        if not self.left:  # every passage used once: the next round starts (neighbours too)
            self.tally.rounds += 1
            self.used[:] = False
            self._start_round()


class ExemplarChooser:
    """Per exemplar source, the exemplars' query embeddings in a small flat index; a seeded pick
    among the `pool` nearest to a passage's vector."""

    def __init__(self, sources: Sequence[Sequence[Exemplar]], index: Index, pool: int, seed: int) -> None:
        import faiss

        self.sources, self.pool, self.seed = sources, pool, seed
        self.indexes: list[Any] = []
        for exs in sources:
            flat = faiss.IndexFlatIP(int(index.manifest["encoder"]["dim"]))
            if exs:
                flat.add(np.ascontiguousarray(index.embed_queries([e.text for e in exs]), dtype=np.float32))
            self.indexes.append(flat)

    def choose(self, jobs: Sequence[Job], picks: Sequence[int], vectors: np.ndarray) -> list[Exemplar]:
        out: list[Exemplar | None] = [None] * len(jobs)
        for si, flat in enumerate(self.indexes):
            mine = [i for i, p in enumerate(picks) if p == si]
            if not mine or not flat.ntotal:
                continue
            _, near = flat.search(np.ascontiguousarray(vectors[mine]), min(self.pool, flat.ntotal))
            for i, rows in zip(mine, near, strict=True):
                cands = [int(r) for r in rows if r >= 0]
                out[i] = self.sources[si][job_rng(self.seed, jobs[i].id, "exemplar").choice(cands)]
        return [e if e is not None else j.exemplar for e, j in zip(out, jobs, strict=True)]


def _neighbours(
    index: Index, row: int, vector: np.ndarray, found: np.ndarray, walk: Walk, need: int, cfg: Sources
) -> tuple[list[int], int]:
    """`row` and up to `need - 1` of its nearest neighbours, unused in this round and not near
    duplicates; deeper (max_depth) when the first ones are used; then the least used, counted."""

    def unused(rows: np.ndarray) -> list[int]:
        return [int(r) for r in rows if r >= 0 and r != row and not walk.used[r]]

    chosen = _pick_distinct(unused(found), need, [row], _texts(index, [row, *found[found >= 0]]), cfg.near_duplicate)
    seen = found
    depth = min(max(cfg.max_depth, len(found)), len(index))
    if len(chosen) < need and depth > len(found):
        seen = index.search_embeddings(vector[None, :], depth)[1][0]
        chosen = _pick_distinct(unused(seen), need, chosen, _texts(index, [row, *seen[seen >= 0]]), cfg.near_duplicate)
    if len(chosen) >= need:
        return chosen, 0
    every = [int(r) for r in seen if r >= 0 and r != row]
    least = [every[i] for i in np.argsort(walk.tally.uses[every], kind="stable")]
    before = len(chosen)
    chosen = _pick_distinct(least, need, chosen, _texts(index, [row, *every]), cfg.near_duplicate)
    return chosen, len(chosen) - before


def plan_corpus(
    jobs: list[Job],
    picks: Sequence[int],
    exemplars: Sequence[Sequence[Exemplar]],
    index: Index,
    cfg: Sources,
    seed: int,
) -> tuple[list[Job], Tally]:
    """`picks[i]`: the exemplar source of job i (make_plan's weighted draw), kept so the sources'
    weights still hold."""
    tally = Tally(np.zeros(len(index), dtype=np.int32))
    walk = Walk(len(index), seed, tally)
    chooser = ExemplarChooser(exemplars, index, cfg.exemplar_pool, seed)
    k = min(cfg.multi_k + 1, len(index))
    out: list[Job] = []
    start = 0
    while start < len(jobs):
        # reserved: neighbours never take a later job's passage. A block takes at most a quarter of
        # what is left of the round (a job takes up to 4), so it never reserves into the next round.
        block = jobs[start : start + max(1, min(BLOCK, walk.left // 4))]
        first = [walk.next() for _ in block]
        vectors = index.vectors(first)
        multi = [i for i, j in enumerate(block) if j.n_sources > 1]
        found = index.search_embeddings(vectors[multi], k)[1] if multi else np.empty((0, k), dtype=np.int64)
        near = dict(zip(multi, found, strict=True))
        chosen_ex = chooser.choose(block, picks[start : start + len(block)], vectors)
        for i, job in enumerate(block):
            rows = [first[i]]
            if job.n_sources > 1:
                rows, exceeded = _neighbours(index, first[i], vectors[i], near[i], walk, job.n_sources, cfg)
                tally.exceeded += exceeded
                walk.mark(rows[1:])
            tally.take(rows)
            out.append(dataclasses.replace(job, exemplar=chosen_ex[i], source_rows=tuple(rows)))
        start += len(block)
    return out, tally


def plan_sources(
    jobs: list[Job],
    picks: Sequence[int],
    exemplars: Sequence[Sequence[Exemplar]],
    index: Index,
    cfg: Sources,
    seed: int,
) -> tuple[list[Job], dict[str, Any] | None]:
    """The jobs with their sources decided, and the plan's source figures for run.json; unchanged
    jobs and None when sources are picked at run time (`exemplar` without `max_reuse`)."""
    if cfg.strategy == "corpus":
        planned, tally = plan_corpus(jobs, picks, exemplars, index, cfg, seed)
    elif cfg.max_reuse is not None:
        planned, tally = plan_exemplar_reuse(jobs, index, cfg, seed)
    else:
        return jobs, None
    return planned, tally.figures(cfg.strategy, cfg)
