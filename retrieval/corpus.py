"""Corpus readers: stream `Passage`s from JSONL, DPR TSV, Parquet, CSV, `datasets` or text files.

Every reader yields `(Passage, location)` pairs, where location is "file:line" (or
"file:row"), so later stages can name the place of a bad or duplicate record. Readers
never hold more than one batch of the corpus in memory.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ragloom.errors import InputFormatError, MissingInputError

from .types import Passage

CorpusFormat = Literal["jsonl", "tsv", "parquet", "csv", "hf", "text"]
FORMATS: tuple[str, ...] = ("jsonl", "tsv", "parquet", "csv", "hf", "text")
_SUFFIXES = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".csv": "csv",
    ".txt": "text",
    ".md": "text",
}


@dataclass
class CorpusStats:
    """Counts from one pass over a corpus; `skipped_empty` passages had no text."""

    read: int = 0
    skipped_empty: int = 0
    generated_ids: int = 0
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CorpusSpec:
    """Where a corpus is and how to read it."""

    path: str
    format: str | None = None
    id_field: str = "id"
    title_field: str = "title"
    text_field: str = "text"
    split: str = "train"
    chunk_words: int = 100
    chunk_overlap: int = 0
    # a passage is a retrieval unit (~100 words); one this long is a whole document or a broken
    # record, and would swamp every prompt it lands in
    max_chars: int = 100_000

    def resolved_format(self) -> str:
        if self.format:
            if self.format not in FORMATS:
                raise InputFormatError(f"unknown corpus format {self.format!r}; use one of {', '.join(FORMATS)}")
            return self.format
        p = Path(self.path)
        if p.is_dir():
            if (p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists():
                return "hf"
            return "text"
        if p.suffix.lower() in _SUFFIXES:
            return _SUFFIXES[p.suffix.lower()]
        if not p.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", self.path):
            return "hf"
        raise InputFormatError(f"{self.path}: cannot tell the corpus format; pass --format")


def stable_id(*parts: str) -> str:
    """A short id derived from content, the same on every run."""
    h = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return "p" + h.hexdigest()


def iter_corpus(spec: CorpusSpec, stats: CorpusStats | None = None) -> Iterator[tuple[Passage, str]]:
    """Yield `(passage, location)` for every non-empty passage of the corpus."""
    stats = stats if stats is not None else CorpusStats()
    fmt = spec.resolved_format()
    if fmt != "hf" and not Path(spec.path).exists():
        raise MissingInputError(f"corpus not found: {spec.path}")
    rows = _READERS[fmt](spec, stats)
    for rec_id, title, text, loc in rows:
        text = (text or "").strip()
        if not text:
            stats.skipped_empty += 1
            continue
        if len(text) > spec.max_chars:
            raise InputFormatError(
                f"{loc}: passage of {len(text):,} characters (limit {spec.max_chars:,}); split long documents "
                "into passages (a folder of .txt/.md files is chunked) or raise --max-passage-chars"
            )
        title = (title or "").strip()
        if rec_id is None or str(rec_id).strip() == "":
            rec_id = stable_id(title, text)
            stats.generated_ids += 1
        stats.read += 1
        yield Passage(str(rec_id).strip(), title, text), loc


def _field(rec: dict, name: str, loc: str, required: bool) -> str | None:
    if name not in rec:
        if required:
            raise InputFormatError(
                f"{loc}: record has no field {name!r} (fields: {', '.join(map(str, rec)) or 'none'}); "
                f"set the text field name with --text-field"
            )
        return None
    value = rec[name]
    if value is not None and not isinstance(value, (str, int)):
        raise InputFormatError(f"{loc}: field {name!r} must be a string, got {type(value).__name__}")
    return None if value is None else str(value)


def _from_mapping(rec: object, spec: CorpusSpec, loc: str) -> tuple[str | None, str | None, str | None, str]:
    if not isinstance(rec, dict):
        raise InputFormatError(f"{loc}: expected a JSON object, got {type(rec).__name__}")
    return (
        _field(rec, spec.id_field, loc, False),
        _field(rec, spec.title_field, loc, False),
        _field(rec, spec.text_field, loc, True),
        loc,
    )


def _read_jsonl(spec: CorpusSpec, stats: CorpusStats) -> Iterator[tuple]:
    stats.files.append(spec.path)
    with open(spec.path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            loc = f"{spec.path}:{lineno}"
            line = _decode(raw, loc).strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputFormatError(f"{loc}: invalid JSON ({e.msg} at column {e.colno})") from None
            yield _from_mapping(rec, spec, loc)


def _decode(raw: bytes, loc: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputFormatError(f"{loc}: not UTF-8 text (byte {e.start}); convert the file to UTF-8") from None


def _text_lines(path: str) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            yield lineno, _decode(raw, f"{path}:{lineno}")


def _read_tsv(spec: CorpusSpec, stats: CorpusStats) -> Iterator[tuple]:
    stats.files.append(spec.path)
    lines = _text_lines(spec.path)
    header = None
    for lineno, line in lines:
        cells = line.rstrip("\r\n").split("\t")
        if header is None:
            header = cells
            if header[:3] != ["id", "text", "title"]:
                raise InputFormatError(
                    f"{spec.path}:{lineno}: expected the DPR header 'id<TAB>text<TAB>title', got {line.strip()[:60]!r}"
                )
            continue
        if not line.strip():
            continue
        if len(cells) != len(header):
            raise InputFormatError(
                f"{spec.path}:{lineno}: expected {len(header)} tab-separated fields, got {len(cells)}"
            )
        text = cells[1]
        if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
            text = text[1:-1].replace('""', '"')
        yield cells[0], cells[2], text, f"{spec.path}:{lineno}"


def _read_csv(spec: CorpusSpec, stats: CorpusStats) -> Iterator[tuple]:
    stats.files.append(spec.path)
    csv.field_size_limit(sys.maxsize)
    with open(spec.path, newline="", encoding="utf-8", errors="strict") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
            for row in reader:
                loc = f"{spec.path}:{reader.line_num}"
                if not row:
                    continue
                if len(row) != len(header):
                    raise InputFormatError(f"{loc}: expected {len(header)} columns, got {len(row)}")
                yield _from_mapping(dict(zip(header, row, strict=False)), spec, loc)
        except UnicodeDecodeError as e:
            raise InputFormatError(f"{spec.path}:{reader.line_num + 1}: not UTF-8 text ({e.reason})") from None
        except csv.Error as e:
            raise InputFormatError(f"{spec.path}:{reader.line_num}: malformed CSV ({e})") from None
        except StopIteration:
            return


def _read_parquet(spec: CorpusSpec, stats: CorpusStats) -> Iterator[tuple]:
    import pyarrow.parquet as pq

    stats.files.append(spec.path)
    try:
        pf = pq.ParquetFile(spec.path)
    except Exception as e:  # pyarrow raises ArrowInvalid and OSError subclasses
        raise InputFormatError(f"{spec.path}: not a readable Parquet file ({e})") from None
    names = set(pf.schema_arrow.names)
    if spec.text_field not in names:
        raise InputFormatError(
            f"{spec.path}: no column {spec.text_field!r} (columns: {', '.join(sorted(names))}); "
            "set it with --text-field"
        )
    cols = [c for c in (spec.id_field, spec.title_field, spec.text_field) if c in names]
    row = 0
    for batch in pf.iter_batches(batch_size=4096, columns=cols):
        for rec in batch.to_pylist():
            row += 1
            yield _from_mapping(rec, spec, f"{spec.path}:row {row}")


def _read_hf(spec: CorpusSpec, stats: CorpusStats) -> Iterator[tuple]:
    import datasets

    p = Path(spec.path)
    if p.exists():
        try:
            ds = datasets.load_from_disk(spec.path)
        except Exception as e:
            raise InputFormatError(f"{spec.path}: not a `datasets` directory ({_first_line(e)})") from None
        if isinstance(ds, datasets.DatasetDict):
            if spec.split not in ds:
                raise InputFormatError(f"{spec.path}: no split {spec.split!r} (splits: {', '.join(ds)})")
            ds = ds[spec.split]
    else:
        try:
            ds = datasets.load_dataset(spec.path, split=spec.split)
        except Exception as e:  # offline, unknown name, bad split, no network: all one line
            raise MissingInputError(
                f"--corpus {spec.path} (--format hf): cannot load it from the Hub ({type(e).__name__}: {_first_line(e)}); "
                "check the name and --split, or pass a directory saved with `Dataset.save_to_disk` "
                "(offline, HF_HUB_OFFLINE=1, only cached datasets load)"
            ) from None
    stats.files.append(spec.path)
    if spec.text_field not in ds.column_names:
        raise InputFormatError(
            f"{spec.path}: no column {spec.text_field!r} (columns: {', '.join(ds.column_names)}); "
            "set it with --text-field"
        )
    for row, rec in enumerate(ds, 1):
        yield _from_mapping(rec, spec, f"{spec.path}:row {row}")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


def chunk_words(text: str, words: int, overlap: int) -> Iterator[str]:
    """Split text into passages of `words` words, consecutive ones sharing `overlap` words."""
    if words <= 0 or not 0 <= overlap < words:
        raise InputFormatError(f"chunk words={words} overlap={overlap}: need words > 0 and 0 <= overlap < words")
    tokens = text.split()
    step = words - overlap
    for start in range(0, max(len(tokens) - overlap, 1), step):
        piece = tokens[start : start + words]
        if piece:
            yield " ".join(piece)


def _read_text(spec: CorpusSpec, stats: CorpusStats) -> Iterator[tuple]:
    root = Path(spec.path)
    files = sorted(root.rglob("*")) if root.is_dir() else [root]
    for f in files:
        if not f.is_file() or f.suffix.lower() not in (".txt", ".md"):
            continue
        stats.files.append(str(f))
        raw = f.read_bytes()
        text = _decode(raw, str(f))
        title = f.stem.replace("_", " ")
        for line in text.splitlines():
            m = _HEADING.match(line)
            if m:
                title = m.group(1)
                break
        rel = f.relative_to(root).as_posix() if root.is_dir() else f.name
        for i, chunk in enumerate(chunk_words(text, spec.chunk_words, spec.chunk_overlap)):
            yield f"{rel}#{i}", title, chunk, f"{f}:chunk {i}"


_READERS = {
    "jsonl": _read_jsonl,
    "tsv": _read_tsv,
    "csv": _read_csv,
    "parquet": _read_parquet,
    "hf": _read_hf,
    "text": _read_text,
}
