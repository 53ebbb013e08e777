"""Decontamination: fail a job whose q* or a* overlaps an evaluation set the user reports on.

`curation.decontaminate: [{name, path | hf, fields: [...], answer_fields: [...]}]` names the eval
sets (ragloom ships none). Questions are matched against questions and answers against answers:
the eval set's `fields` (default `[question]`) against q*, its `answer_fields` (default none)
against a*; `match_across: true` matches every eval text against both. Each side is indexed once
per run and the index is cached on disk (`EvalIndex.load_or_build`), keyed by the set's bytes (or
hub name), fields and the n-gram sizes:
- `13gram`, `8gram`: a hash of every word n-gram of the normalised text (GPT-3's 13-gram rule,
  and a stricter 8-gram one); a q* (a*) sharing one n-gram with an eval question (answer) matches it;
- `exact`: a text shorter than n words cannot be caught by n-grams (PopQA questions are 6-8
  words), so its whole normalised string is indexed: q* (a*) matches when, normalised, it equals
  it whole. Not as a substring: "How did the Treaty of Versailles shape German politics?" only
  mentions an eval answer, "Who is the author of Dune Messiah?" is not "Who is the author of
  Dune?". Texts under `min_words` words (answers such as "Paris") are not indexed: equal to
  countless honest answers, they say nothing;
- `encoder` (optional, per set `cosine: true` for the default DEFAULT_COSINE, or a number): cosine
  of q* against the embeddings of the eval questions, for paraphrases; cached beside the n-gram index.
The hashing and the tables are ngram_tables.py; a 100k-question set costs tens of microseconds per record.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ragloom.errors import ConfigError, InputFormatError, MissingInputError

from ..runs import read_records
from .ngram_tables import Spans, Tables, word_hashes

if TYPE_CHECKING:  # config.py imports this module (EvalSet)
    from ragloom.retrieval import Index

    from .config import Curation

INDEX_VERSION = 2
Embed = Callable[[list[str]], np.ndarray]
SIDES = ("instruction", "answer")  # what of a record each table is matched against: q*, a*
# The encoder match's default threshold (`cosine: true`): what the README's examples have always used;
# not re-tuned on the held-out fixture (tests/fixtures/decontam/heldout.jsonl). Measured in test_decontam.py.
DEFAULT_COSINE = 0.9


class EvalSet(BaseModel):
    """One entry of `curation.decontaminate`."""

    model_config = ConfigDict(extra="forbid")
    name: str
    path: str | None = None
    hf: str | None = None
    split: str = "test"
    fields: list[str] = Field(
        default_factory=lambda: ["question"], min_length=1, description="eval columns of questions, matched against q*"
    )
    answer_fields: list[str] = Field(default_factory=list, description="eval columns of answers, matched against a*")
    match_across: bool = Field(False, description="match every eval text against both q* and a*")
    id_field: str | None = Field(None, description="the eval item's id (default: its row number)")
    cosine: float | None = Field(
        None, gt=0, le=1, description=f"also match q* by encoder cosine >= this (true: {DEFAULT_COSINE})"
    )

    @field_validator("cosine", mode="before")
    @classmethod
    def _default_cosine(cls, v: Any) -> Any:
        if v is True:
            return DEFAULT_COSINE
        return None if v is False else v

    @model_validator(mode="after")
    def _one_source(self) -> EvalSet:
        if (self.path is None) == (self.hf is None):
            raise ValueError(f"eval set {self.name!r}: give exactly one of `path` (a local file) or `hf` (a dataset)")
        answers = [f for f in self.fields if "answer" in f.lower() and f not in self.answer_fields]
        if answers and not self.match_across:
            raise ValueError(
                f"eval set {self.name!r}: `fields` lists {answers[0]!r}, and `fields` are matched against generated "
                f"questions; put answer columns in `answer_fields` (matched against generated answers), or set "
                f"`match_across: true` to match every field against both"
            )
        return self

    def sides_of(self, column: str) -> tuple[str, ...]:
        """What of a generated record the eval column is matched against."""
        if self.match_across:
            return SIDES
        return ("answer",) if column in self.answer_fields and column not in self.fields else ("instruction",)


@dataclass(frozen=True, slots=True)
class Match:
    eval_set: str
    method: str  # 13gram | 8gram | exact | encoder
    eval_id: str
    field: str  # instruction | answer

    def as_dict(self) -> dict[str, str]:
        return {"eval_set": self.eval_set, "method": self.method, "eval_id": self.eval_id, "field": self.field}


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
        yield from read_records(p)


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


def eval_texts(s: EvalSet) -> tuple[list[str], list[str], list[str]]:
    """(ids, texts, columns) of the set: one text per non-empty field value (lists are flattened)."""
    ids, texts, columns = [], [], []
    wanted = list(dict.fromkeys([*s.fields, *s.answer_fields]))
    for i, (row, loc) in enumerate(_rows(s)):
        if not isinstance(row, dict):
            raise InputFormatError(f"{loc}: expected an object with {', '.join(wanted)}, got {type(row).__name__}")
        missing = [f for f in wanted if f not in row]
        if missing:
            key = "fields" if missing[0] in s.fields else "answer_fields"
            raise ConfigError(
                f"{loc}: curation.decontaminate {s.name}: no field {missing[0]!r} "
                f"(fields: {', '.join(map(str, row))}); fix `{key}`"
            )
        rid = str(row[s.id_field]) if s.id_field and row.get(s.id_field) is not None else str(i)
        for f in wanted:
            values = row[f] if isinstance(row[f], list) else [row[f]]
            for v in values:
                if isinstance(v, str) and v.strip():
                    ids.append(rid)
                    texts.append(v)
                    columns.append(f)
    return ids, texts, columns


@dataclass
class EvalIndex:
    """The n-gram and short-text index of one eval set, per side: sorted hashes -> eval id positions."""

    name: str
    ids: list[str]
    sides: dict[str, Tables] = field(default_factory=dict)  # "instruction" | "answer" -> its tables
    vectors: np.ndarray | None = None  # embeddings of the texts matched against q* (encoder check)
    vector_ids: np.ndarray | None = None
    cosine: float | None = None
    _faiss: Any = None

    @classmethod
    def build(cls, s: EvalSet, ns: Sequence[int], min_words: int, embed: Embed | None = None) -> EvalIndex:
        ids, texts, columns = eval_texts(s)
        uniq = list(dict.fromkeys(ids))
        pos = {k: i for i, k in enumerate(uniq)}
        words = [word_hashes(t) for t in texts]
        where = np.asarray([pos[r] for r in ids], dtype=np.int32)
        idx = cls(s.name, uniq, cosine=s.cosine)
        for side in SIDES:
            rows = [i for i, c in enumerate(columns) if side in s.sides_of(c)]
            if rows:
                idx.sides[side] = Tables.build([words[i] for i in rows], where[rows], ns, min_words)
        asked = [i for i, c in enumerate(columns) if "instruction" in s.sides_of(c)]
        if s.cosine is not None and embed is not None and asked:
            idx.vectors = np.asarray(embed([texts[i] for i in asked]), dtype=np.float32)
            idx.vector_ids = np.asarray(where[asked], dtype=np.int32)
        return idx

    def match(self, text: str, what: str, vector: np.ndarray | None = None) -> Match | None:
        """The first match of `text` (`what`: instruction | answer) against the eval texts of that
        side, longest n-gram first, then the whole normalised text, then the encoder (q* only)."""
        tables = self.sides.get(what)
        if tables is not None and (hit := tables.match(Spans(word_hashes(text)))) is not None:
            return Match(self.name, hit[0], self.ids[hit[1]], what)
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
        what = [INDEX_VERSION, src, s.fields, s.answer_fields, s.match_across, s.id_field, sorted(ns), min_words, enc]
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
        arrays: dict[str, Any] = {}
        for side, t in idx.sides.items():
            arrays |= {f"{side}.h{n}": h for n, (h, _) in t.ngrams.items()}
            arrays |= {f"{side}.p{n}": p for n, (_, p) in t.ngrams.items()}
            arrays |= {f"{side}.short_h": t.short[0], f"{side}.short_p": t.short[1]}
        if idx.vectors is not None and idx.vector_ids is not None:
            arrays |= {"vectors": idx.vectors, "vector_ids": idx.vector_ids}
        meta = {
            "ids": idx.ids,
            "sides": sorted(idx.sides),
            "ngrams": {k: sorted(t.ngrams) for k, t in idx.sides.items()},
        }
        np.savez(tmp, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        tmp.replace(path)
        return idx, False

    @classmethod
    def _load(cls, path: Path, s: EvalSet) -> EvalIndex:
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            sides = {
                side: Tables(
                    {n: (z[f"{side}.h{n}"], z[f"{side}.p{n}"]) for n in meta["ngrams"][side]},
                    (z[f"{side}.short_h"], z[f"{side}.short_p"]),
                )
                for side in meta["sides"]
            }
            vectors = z["vectors"] if "vectors" in z.files else None
            vids = z["vector_ids"] if "vector_ids" in z.files else None
        return cls(s.name, meta["ids"], sides, vectors, vids, s.cosine)


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


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "ragloom" / "decontam"


def open_decontaminator(c: Curation, index: Index) -> Decontaminator | None:
    """The run's eval sets, loaded (or built and cached) with the index's encoder; None without any.
    `generate` calls it before anything is written, so a bad eval set is a one-line error."""
    if not c.decontaminate:
        return None
    return Decontaminator.open(
        c.decontaminate,
        Path(c.cache_dir).expanduser() if c.cache_dir else default_cache_dir(),
        ns=c.decontam_ngrams,
        min_words=c.decontam_min_words,
        embed=index.embed_queries,
        encoder=index.encoder.cache_tag,
    )
