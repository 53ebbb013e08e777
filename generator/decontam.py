"""Decontamination: fail a job whose q* or a* overlaps an evaluation set the user reports on.

`curation.decontaminate: [{name, path | hf, fields: [...]}]` names the eval sets (ragloom ships
none). Each text of the named fields is indexed once per run and the index is cached on disk
(`EvalIndex.load_or_build`), keyed by the set's bytes (or hub name), fields and the n-gram sizes:
- `13gram`, `8gram`: a hash of every word n-gram of the normalised text (GPT-3's 13-gram rule,
  and a stricter 8-gram one); a q* or a* sharing one n-gram with an eval text matches it;
- `exact`: a text shorter than n words cannot be caught by n-grams (PopQA questions are 6-8
  words), so its whole normalised string is indexed: q* or a* matches when it equals it, and q*
  also when it contains it as whole words. Texts under `min_words` words (answers such as
  "Paris") are not indexed: equal to countless honest answers, they say nothing;
- `encoder` (optional, per set `cosine: 0.9`): cosine of q* against the eval texts' embeddings,
  for paraphrases; the embeddings are cached beside the n-gram index.
Words are hashed once (blake2b, cached) and n-grams by a polynomial over the word hashes in numpy;
lookups are sorted-array searches, so a 100k-question set costs tens of microseconds per record.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ragloom.errors import ConfigError, InputFormatError, MissingInputError

from .dedup import normalize_question

INDEX_VERSION = 1
Embed = Callable[[list[str]], np.ndarray]


class EvalSet(BaseModel):
    """One entry of `curation.decontaminate`."""

    model_config = ConfigDict(extra="forbid")
    name: str
    path: str | None = None
    hf: str | None = None
    split: str = "test"
    fields: list[str] = Field(default_factory=lambda: ["question"], min_length=1)
    id_field: str | None = Field(None, description="the eval item's id (default: its row number)")
    cosine: float | None = Field(None, gt=0, le=1, description="also match q* by encoder cosine >= this")

    @model_validator(mode="after")
    def _one_source(self) -> EvalSet:
        if (self.path is None) == (self.hf is None):
            raise ValueError(f"eval set {self.name!r}: give exactly one of `path` (a local file) or `hf` (a dataset)")
        return self


@dataclass(frozen=True, slots=True)
class Match:
    eval_set: str
    method: str  # 13gram | 8gram | exact | encoder
    eval_id: str
    field: str  # instruction | answer

    def as_dict(self) -> dict[str, str]:
        return {"eval_set": self.eval_set, "method": self.method, "eval_id": self.eval_id, "field": self.field}


_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the polynomial n-gram hash


@functools.lru_cache(maxsize=1 << 20)
def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def word_hashes(text: str) -> np.ndarray:
    """Stable 64-bit hashes of the normalised words of `text` (the same in every process)."""
    return np.fromiter((_word_hash(w) for w in normalize_question(text).split()), dtype=np.uint64)


_INV = np.uint64(pow(int(_MULT), -1, 2**64))


@functools.lru_cache(maxsize=8)
def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(M^1..M^length, M^0..M^-(length-1)) mod 2^64."""
    up = np.cumprod(np.full(length, _MULT, dtype=np.uint64), dtype=np.uint64)
    down = np.cumprod(np.concatenate([[np.uint64(1)], np.full(length - 1, _INV, dtype=np.uint64)]), dtype=np.uint64)
    return up, down


class Spans:
    """Every word n-gram hash of one text from one prefix sum: H(i, n) = sum_k w[i+k] M^(k+1)
    = (P[i+n] - P[i]) M^-i (mod 2^64), so each n costs two vector operations."""

    def __init__(self, words: np.ndarray) -> None:
        self.n_words = len(words)
        size = 1 << max(self.n_words, 1).bit_length()  # a few cached tables serve every length
        up, self._down = _powers(max(size, 64))
        with np.errstate(over="ignore"):
            self._prefix = np.concatenate([[np.uint64(0)], np.cumsum(words * up[: self.n_words], dtype=np.uint64)])

    def __call__(self, n: int) -> np.ndarray:
        if n > self.n_words or n <= 0:
            return np.empty(0, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return (self._prefix[n:] - self._prefix[:-n]) * self._down[: self.n_words - n + 1]


def ngram_hashes(words: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit hash of each word n-gram (a polynomial over the word hashes, wrapping mod 2^64)."""
    return Spans(words)(n)


def _all_ngrams(words: Sequence[np.ndarray], n: int, chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram hashes of many texts at once, and the index of the text each came from: the
    rolling hash runs over all words joined, and windows that cross a text boundary are dropped."""
    lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    if not len(words) or lengths.max(initial=0) < n:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    flat = np.concatenate(words)
    text_of = np.repeat(np.arange(len(words)), lengths)
    starts = np.arange(len(flat) - n + 1)
    keep = starts[text_of[starts] == text_of[starts + n - 1]]
    out = np.empty(len(keep), dtype=np.uint64)
    powers = np.cumprod(np.full(n, _MULT, dtype=np.uint64), dtype=np.uint64)
    win = np.lib.stride_tricks.sliding_window_view(flat, n)
    with np.errstate(over="ignore"):
        for a in range(0, len(keep), chunk):
            out[a : a + chunk] = (win[keep[a : a + chunk]] * powers).sum(axis=1, dtype=np.uint64)
    return out, text_of[keep]


def _sorted(hashes: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(hashes, kind="stable")
    return hashes[order], where[order].astype(np.int32)


def _lookup(table: tuple[np.ndarray, np.ndarray], q: np.ndarray) -> int | None:
    """The id position of the first of `q`'s hashes that is in `table`, or None."""
    hashes, where = table
    if not len(q) or not len(hashes):
        return None
    at = np.searchsorted(hashes, q).clip(0, len(hashes) - 1)
    hit = np.nonzero(hashes[at] == q)[0]
    return int(where[at[hit[0]]]) if len(hit) else None


def _rows(s: EvalSet) -> Iterator[tuple[Any, str]]:
    """(row, where) of the eval set: "file:line", "file:item N" or "name split row N"."""
    where = f"curation.decontaminate {s.name}"
    if s.hf is not None:
        import datasets

        try:
            ds = datasets.load_dataset(s.hf, split=s.split)
        except (OSError, ValueError, KeyError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise MissingInputError(f"{where}: cannot load hf={s.hf!r} ({first})") from None
        yield from ((row, f"{s.hf} {s.split} row {i}") for i, row in enumerate(ds, 1))
        return
    p = Path(str(s.path)).expanduser()
    if not p.exists():
        raise MissingInputError(f"{where}: {p} not found; fix `path` or remove the entry")
    if p.is_dir():
        yield from _dataset_dir_rows(p, s, where)
    elif p.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(p)
        except (OSError, pa.ArrowInvalid) as e:
            raise InputFormatError(f"{p}: not a readable Parquet file ({_first_line(e)})") from None
        yield from ((row, f"{p}:row {i}") for i, row in enumerate(table.to_pylist(), 1))
    elif p.suffix == ".csv":
        try:
            with p.open(encoding="utf-8", newline="") as f:
                yield from ((row, f"{p}:{i + 1}") for i, row in enumerate(csv.DictReader(f), 1))
        except UnicodeDecodeError as e:
            raise InputFormatError(f"{p}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    else:
        from .exemplars import records  # the exemplar loaders' reader (imported here: exemplars imports config)

        yield from records(p)


def _dataset_dir_rows(p: Path, s: EvalSet, where: str) -> Iterator[tuple[Any, str]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(p))
    except (OSError, ValueError) as e:
        raise InputFormatError(f"{where}: {p} is not a `datasets` directory ({_first_line(e)})") from None
    if isinstance(ds, datasets.DatasetDict):
        if s.split not in ds:
            raise ConfigError(f"{where}: {p} has no split {s.split!r} (splits: {', '.join(ds)}); set `split`")
        ds = ds[s.split]
    yield from ((row, f"{p} row {i}") for i, row in enumerate(ds, 1))


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def eval_texts(s: EvalSet) -> tuple[list[str], list[str]]:
    """(ids, texts) of the set: one text per non-empty field value (lists are flattened)."""
    ids, texts = [], []
    for i, (row, loc) in enumerate(_rows(s)):
        if not isinstance(row, dict):
            raise InputFormatError(f"{loc}: expected an object with {', '.join(s.fields)}, got {type(row).__name__}")
        missing = [f for f in s.fields if f not in row]
        if missing:
            raise ConfigError(
                f"{loc}: curation.decontaminate {s.name}: no field {missing[0]!r} "
                f"(fields: {', '.join(map(str, row))}); fix `fields`"
            )
        rid = str(row[s.id_field]) if s.id_field and row.get(s.id_field) is not None else str(i)
        for f in s.fields:
            values = row[f] if isinstance(row[f], list) else [row[f]]
            for v in values:
                if isinstance(v, str) and v.strip():
                    ids.append(rid)
                    texts.append(v)
    return ids, texts


@dataclass
class EvalIndex:
    """The n-gram and short-text index of one eval set: sorted hashes -> eval id positions."""

    name: str
    ids: list[str]
    ngrams: dict[int, tuple[np.ndarray, np.ndarray]]  # n -> (sorted hashes, id position)
    short: tuple[np.ndarray, np.ndarray]  # whole texts of min_words..max(n)-1 words
    short_lengths: list[int] = field(default_factory=list)  # their word counts
    vectors: np.ndarray | None = None  # eval text embeddings (encoder check)
    vector_ids: np.ndarray | None = None
    cosine: float | None = None
    _faiss: Any = None

    @classmethod
    def build(cls, s: EvalSet, ns: Sequence[int], min_words: int, embed: Embed | None = None) -> EvalIndex:
        ids, texts = eval_texts(s)
        uniq = list(dict.fromkeys(ids))
        pos = {k: i for i, k in enumerate(uniq)}
        words = [word_hashes(t) for t in texts]
        where = np.asarray([pos[r] for r in ids], dtype=np.int32)
        grams: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for n in ns:
            h, text = _all_ngrams(words, n)
            grams[n] = _sorted(h, where[text])
        lengths = sorted({len(w) for w in words if min_words <= len(w) < max(ns)})
        short_h, short_p = [np.empty(0, np.uint64)], [np.empty(0, np.int32)]
        for n in lengths:  # a whole text of n words is its one n-gram
            ix = np.asarray([i for i, w in enumerate(words) if len(w) == n])
            h, text = _all_ngrams([words[i] for i in ix], n)
            short_h.append(h)
            short_p.append(where[ix[text]])
        short = _sorted(np.concatenate(short_h), np.concatenate(short_p))
        idx = cls(s.name, uniq, grams, short, lengths, cosine=s.cosine)
        if s.cosine is not None and embed is not None:
            idx.vectors = np.asarray(embed(texts), dtype=np.float32)
            idx.vector_ids = np.asarray(where, dtype=np.int32)
        return idx

    def match(self, text: str, what: str, vector: np.ndarray | None = None) -> Match | None:
        """The first match of `text` (`what`: instruction | answer), longest n-gram first."""
        spans_of = Spans(word_hashes(text))
        for n in sorted(self.ngrams, reverse=True):
            found = _lookup(self.ngrams[n], spans_of(n))
            if found is not None:
                return Match(self.name, f"{n}gram", self.ids[found], what)
        # whole-string equality; q* also by containing a short eval text as whole words
        spans = [spans_of(spans_of.n_words)]
        if what == "instruction":
            spans += [spans_of(n) for n in self.short_lengths if n < spans_of.n_words]
        found = _lookup(self.short, np.concatenate(spans))
        if found is not None:
            return Match(self.name, "exact", self.ids[found], what)
        if vector is not None and self.vectors is not None and self.cosine is not None and what == "instruction":
            if self._faiss is None:
                from ragloom.retrieval.index import import_faiss

                self._faiss = import_faiss().IndexFlatIP(self.vectors.shape[1])
                self._faiss.add(self.vectors)
            score, row = self._faiss.search(np.asarray(vector, dtype=np.float32).reshape(1, -1), 1)
            if row[0, 0] >= 0 and score[0, 0] >= self.cosine and self.vector_ids is not None:
                return Match(self.name, "encoder", self.ids[int(self.vector_ids[row[0, 0]])], what)
        return None

    # -- cache -----------------------------------------------------------------------------
    @staticmethod
    def cache_key(s: EvalSet, ns: Sequence[int], min_words: int, encoder: str | None) -> str:
        src: dict[str, Any] = {"hf": s.hf, "split": s.split}
        if s.path is not None:
            p = Path(s.path).expanduser()
            st = p.stat() if p.exists() else None
            src = {
                "path": str(p.resolve()),
                "size": st.st_size if st else None,
                "mtime_ns": st.st_mtime_ns if st else None,
            }
        enc = encoder if s.cosine is not None else None
        what = [INDEX_VERSION, src, s.fields, s.id_field, sorted(ns), min_words, enc]
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]

    @classmethod
    def load_or_build(
        cls,
        s: EvalSet,
        cache_dir: Path,
        *,
        ns: Sequence[int] = (13, 8),
        min_words: int = 4,
        embed: Embed | None = None,
        encoder: str | None = None,
    ) -> tuple[EvalIndex, bool]:
        """The index from `cache_dir` when it holds one for this set, else built and saved;
        returns (index, loaded_from_cache)."""
        path = cache_dir / f"{cls.cache_key(s, ns, min_words, encoder)}.npz"
        if path.exists():
            return cls._load(path, s), True
        idx = cls.build(s, ns, min_words, embed)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
        arrays: dict[str, Any] = {f"h{n}": h for n, (h, _) in idx.ngrams.items()}
        arrays |= {f"p{n}": p for n, (_, p) in idx.ngrams.items()}
        arrays |= {"short_h": idx.short[0], "short_p": idx.short[1]}
        if idx.vectors is not None and idx.vector_ids is not None:
            arrays |= {"vectors": idx.vectors, "vector_ids": idx.vector_ids}
        meta = {"ids": idx.ids, "lengths": idx.short_lengths}
        np.savez(tmp, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        tmp.replace(path)
        return idx, False

    @classmethod
    def _load(cls, path: Path, s: EvalSet) -> EvalIndex:
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            ngrams = {int(k[1:]): (z[k], z["p" + k[1:]]) for k in z.files if k[0] == "h" and k[1:].isdigit()}
            short = (z["short_h"], z["short_p"])
            vectors = z["vectors"] if "vectors" in z.files else None
            vids = z["vector_ids"] if "vector_ids" in z.files else None
        return cls(s.name, meta["ids"], ngrams, short, meta["lengths"], vectors, vids, s.cosine)


class Decontaminator:
    """All eval sets of a run; `check(question, answer, vector)` gives the matches (empty: clean)."""

    def __init__(self, indexes: Sequence[EvalIndex]) -> None:
        self.indexes = list(indexes)

    @classmethod
    def open(
        cls,
        sets: Sequence[EvalSet],
        cache_dir: Path,
        *,
        ns: Sequence[int] = (13, 8),
        min_words: int = 4,
        embed: Embed | None = None,
        encoder: str | None = None,
    ) -> Decontaminator:
        names = [s.name for s in sets]
        if len(set(names)) != len(names):
            raise ConfigError(f"curation.decontaminate: eval set names repeat ({names}); give each a unique name")
        return cls(
            [
                EvalIndex.load_or_build(s, cache_dir, ns=ns, min_words=min_words, embed=embed, encoder=encoder)[0]
                for s in sets
            ]
        )

    def check(self, question: str, answer: str, vector: np.ndarray | None = None) -> list[Match]:
        out = []
        for idx in self.indexes:
            m = idx.match(question, "instruction", vector) or idx.match(answer, "answer")
            if m is not None:
                out.append(m)
        return out


def contamination_table(failed: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per eval set: matches by method and the matched eval ids, from `contaminated` failures."""
    table: dict[str, dict[str, Any]] = {}
    for f in failed:
        if f.get("reason") != "contaminated":
            continue
        for m in (f.get("curation") or {}).get("contamination", []):
            row = table.setdefault(m["eval_set"], {"methods": {}, "eval_ids": []})
            row["methods"][m["method"]] = row["methods"].get(m["method"], 0) + 1
            if m["eval_id"] not in row["eval_ids"]:
                row["eval_ids"].append(m["eval_id"])
    return table
