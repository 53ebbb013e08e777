"""Duplicate instructions across a whole run: exact, near-duplicate (MinHash LSH) and semantic.

Three checks, each against every instruction already accepted in the run (resumed parts
included, see `Deduper.from_records`):
- `exact`: the same text after normalisation (lower case, punctuation and spacing dropped);
- `minhash`: estimated Jaccard similarity of word shingles >= `curation.dedup.minhash_threshold`,
  with datasketch's MinHash LSH (sub-linear lookup);
- `semantic`: cosine of the question embeddings (the ones distractor search already computes)
  >= `curation.dedup.cosine_threshold`, over a faiss inner-product index of the accepted questions.

Determinism. A duplicate is re-asked with a new seed, so whether job j survives depends on
which questions were accepted before it. The rule: **decisions are made in one fixed order
(the plan's), and a job's question is judged against the questions accepted for the jobs
before it in that order, never after.** `InOrder` enforces it: a validated candidate is held
until every job before it is decided (accepted, failed, or abandoned for this run), then judged;
a duplicate is re-asked and holds the line again until its new candidate arrives. Generation
itself stays concurrent; only the decisions are serialised. Because records are decided and
written in that order, what an interrupted run leaves on disk is a prefix of the decisions;
the resumed run loads it (`from_records`) and decides the rest in the same order against the
same accepted set, so with a backend that answers the same seed the same way an interrupted
and an uninterrupted run keep the same jobs. Held candidates lost to a kill are asked again.
The one exception is a job abandoned for a transport error (kept for the next resume): jobs
after it are decided without it in this run, and it is judged, when resumed, against all
accepted questions. Transport errors are not reproducible anyway.

Waiting costs no generation (the LLM works on later jobs meanwhile), but a re-ask used to hold every
later decision for one LLM round trip; `early_duplicates` re-asks a waiting candidate as soon as it
repeats an accepted question, which it would also do at its turn (see there), so only a candidate
that repeats a question still undecided waits for it.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from ragloom.retrieval import normalize_text

T = TypeVar("T")


class DedupConfig(BaseModel):
    """`curation.dedup`: the three checks; a threshold of null turns that check off.

    Defaults calibrated on tests/fixtures/dedup_pairs.jsonl (30 duplicate pairs, 34 non-pairs
    written by hand, many of them the same question about another entity): the highest non-pair
    scores are cosine 0.926 ("first" vs "second person to walk on the Moon") and word-bigram
    Jaccard 0.75 ("functions of the human liver" vs "... kidneys"). Lexical overlap cannot tell a
    paraphrase from a swapped entity, so MinHash only catches near-verbatim repeats."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    exact: bool = True
    minhash_threshold: float | None = Field(0.85, gt=0, le=1, description="estimated Jaccard of word shingles")
    shingle_words: int = Field(2, ge=1, le=5)
    num_perm: int = Field(128, ge=16, le=1024)
    cosine_threshold: float | None = Field(0.93, gt=0, le=1, description="question-embedding cosine")


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Why a question is a duplicate: the check, the accepted job it repeats, and the score."""

    check: str  # exact | minhash | semantic
    of: str  # the accepted job id
    score: float

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "of": self.of, "score": round(self.score, 4)}


def normalize_question(text: str) -> str:
    """Unicode-folded, lower-cased words separated by single spaces."""
    return normalize_text(unicodedata.normalize("NFKC", text))


def shingles(text: str, n: int) -> set[str]:
    """Word n-grams of the normalised text; a text shorter than n is one shingle."""
    words = normalize_question(text).split()
    if len(words) <= n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class Deduper:
    """The accepted questions of a run and the three checks against them.

    Call `check(question, embedding)` for a candidate and `add(job_id, question, embedding)` once
    it is accepted. Embeddings are L2-normalised vectors (the index encoder's, normalize=True)."""

    def __init__(self, cfg: DedupConfig, dim: int | None = None) -> None:
        self.cfg = cfg
        self._exact: dict[str, str] = {}
        self._lsh: Any = None
        self._faiss: Any = None
        self._ids: list[str] = []  # faiss row -> job id
        self._seen: set[str] = set()
        self._perms: Any = None
        self._minhashes_of: dict[str, Any] = {}  # question -> MinHash: waiting candidates are probed again
        self.dim = dim
        if cfg.enabled and cfg.minhash_threshold is not None:  # off: no datasketch import (0.3 s)
            from datasketch import MinHashLSH

            self._lsh = MinHashLSH(threshold=cfg.minhash_threshold, num_perm=cfg.num_perm)
            self._minhashes: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def _minhash(self, question: str) -> Any:
        m = self._minhashes_of.get(question)
        if m is None:
            from datasketch import MinHash

            if self._perms is None:  # drawing the permutations costs more than hashing a question
                first = MinHash(num_perm=self.cfg.num_perm, seed=1)
                self._perms = (first.permutations, first.scheme)
            perms, scheme = self._perms
            m = MinHash(num_perm=self.cfg.num_perm, seed=1, permutations=perms, scheme=scheme)
            m.update_batch([s.encode() for s in shingles(question, self.cfg.shingle_words)])
            if len(self._minhashes_of) >= 65536:
                self._minhashes_of.clear()
            self._minhashes_of[question] = m
        return m

    def _index(self, dim: int) -> Any:
        if self._faiss is None:
            from ragloom.retrieval.index import import_faiss

            self.dim = dim
            self._faiss = import_faiss().IndexFlatIP(dim)
        return self._faiss

    def check(self, question: str, embedding: np.ndarray | None = None) -> Duplicate | None:
        """The first check that finds `question` a duplicate of an accepted one, or None."""
        if not self.cfg.enabled:
            return None
        norm = normalize_question(question)
        if self.cfg.exact and norm in self._exact:
            return Duplicate("exact", self._exact[norm], 1.0)
        if self._lsh is not None and self._exact:
            m = self._minhash(question)
            best = max(
                ((self._minhashes[k].jaccard(m), k) for k in self._lsh.query(m)), default=None, key=lambda x: x[0]
            )
            if best is not None and best[0] >= self.cfg.minhash_threshold:
                return Duplicate("minhash", best[1], float(best[0]))
        if self.cfg.cosine_threshold is not None and embedding is not None and self._ids:
            scores, rows = self._index(len(embedding)).search(_row(embedding), 1)
            if rows[0, 0] >= 0 and scores[0, 0] >= self.cfg.cosine_threshold:
                return Duplicate("semantic", self._ids[int(rows[0, 0])], float(scores[0, 0]))
        return None

    def add(self, job_id: str, question: str, embedding: np.ndarray | None = None) -> None:
        """Record an accepted question (idempotent per job id)."""
        if not self.cfg.enabled or job_id in self._seen:
            return
        self._exact.setdefault(normalize_question(question), job_id)
        if self._lsh is not None:
            m = self._minhash(question)
            self._lsh.insert(job_id, m, check_duplication=False)
            self._minhashes[job_id] = m
        if embedding is not None and self.cfg.cosine_threshold is not None:
            self._index(len(embedding)).add(_row(embedding))
            self._ids.append(job_id)
        self._seen.add(job_id)

    @classmethod
    def from_records(cls, cfg: DedupConfig, records: Iterable[dict[str, Any]], embed: Any = None) -> Deduper:
        """A Deduper holding the instructions of records already written (a resumed run).
        `embed(list[str]) -> np.ndarray` gives their embeddings in one batch."""
        d = cls(cfg)
        if not cfg.enabled:  # nothing is checked: embedding what was written would be wasted work
            return d
        recs = list(records)
        vecs = embed([r["instruction"] for r in recs]) if embed is not None and recs and cfg.cosine_threshold else None
        for i, r in enumerate(recs):
            d.add(r["job_id"], r["instruction"], None if vecs is None else vecs[i])
        return d


def _row(v: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(v, dtype=np.float32).reshape(1, -1))


class InOrder(Generic[T]):
    """Releases candidates for judging in one fixed order of job ids (see the module docstring).

    `put(key, item)` offers a candidate; `done(key)` marks a job decided (accepted, failed, or
    abandoned for this run); `head()` is the next candidate to judge, or None while the job at
    the front of the line has no candidate yet. After judging the head, call `done(head_key)`
    (accepted) or `retry(head_key)` (re-asked: the line waits for its next candidate)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._order = list(dict.fromkeys(keys))
        self._pos = {k: i for i, k in enumerate(self._order)}
        self._items: dict[str, T] = {}
        self._decided: set[str] = set()
        self._front = 0
        self._lock = threading.Lock()  # the record stage's thread and the event loop both decide

    def __len__(self) -> int:
        """Candidates held, waiting for a job before them."""
        return len(self._items)

    def put(self, key: str, item: T) -> None:
        if key not in self._pos:
            raise KeyError(f"job {key} is not in this run's order")
        with self._lock:
            self._items[key] = item

    def done(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)
            self._decided.add(key)
            while self._front < len(self._order) and self._order[self._front] in self._decided:
                self._front += 1

    def retry(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def take(self, key: str) -> T | None:
        """Release `key`'s candidate out of order and mark it decided (no order to keep)."""
        with self._lock:
            item = self._items.get(key)
        self.done(key)
        return item

    def head(self) -> tuple[str, T] | None:
        with self._lock:
            if self._front >= len(self._order):
                return None
            key = self._order[self._front]
            return (key, self._items[key]) if key in self._items else None

    def held(self) -> list[tuple[str, T]]:
        """The candidates waiting for a job before them, in plan order."""
        with self._lock:
            return sorted(self._items.items(), key=lambda kv: self._pos[kv[0]])

    @property
    def finished(self) -> bool:
        return self._front >= len(self._order)


def early_duplicates(
    gate: InOrder[T],
    deduper: Deduper,
    probe: Callable[[T], tuple[str, np.ndarray | None, int] | None],
    probed: dict[str, tuple[int, int]],
) -> list[tuple[str, T, Duplicate]]:
    """Held candidates that already repeat an accepted question, taken out of the line to be re-asked
    now rather than at their turn (without this, a run whose duplicates cluster re-asks them one LLM
    round trip after another: each waits for the re-ask before it).

    The decision is the one the candidate gets at its turn, only sooner: while it waits the accepted
    set only grows, and every check is monotone in that set (exact: a superset of texts; MinHash LSH:
    more candidates, the best Jaccard over more; faiss: the best cosine over more rows). So the same
    attempts are asked as in a strictly ordered run, and the same jobs survive. `probe(item)` gives
    (question, embedding, attempt), or None for a candidate that must wait for its turn: its last
    attempt, whose failure names the accepted question it repeats as found at its turn. `probed`
    remembers (attempt, accepted count) per job, so a candidate is probed again only after the
    accepted set has grown."""
    n = len(deduper)
    out = []
    for key, item in gate.held():
        p = probe(item)
        if p is None or probed.get(key) == (p[2], n):
            continue
        probed[key] = (p[2], n)
        if (dup := deduper.check(p[0], p[1])) is not None:
            gate.retry(key)
            out.append((key, item, dup))
    return out
