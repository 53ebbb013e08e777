"""Reading any RAG instruction dataset into `AuditRecord`s for `ragloom audit`.

Accepted: a ragloom run directory (examples.jsonl + run.json); a JSONL/JSON file, a Parquet file or
a `datasets` directory in the raw view (documents as {id, title, text, role, rank, rule}); the
rag-instruct view (question, answer, documents as strings, optional paradigm); RAFT's layout
(question, context {title, sentences}, oracle_context, cot_answer: publish/raft.py, sources being the
documents in oracle_context).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragloom.errors import InputFormatError, MissingDependencyError, MissingInputError

from ..paradigms import PARADIGMS
from ..publish import from_raft, is_raft
from ..runs import Document, read_run_json
from ..runs import read_records as json_records

_QUESTION_KEYS = ("instruction", "question", "query", "prompt")
_ANSWER_KEYS = ("answer", "output", "response", "completion")


@dataclass(slots=True)
class AuditRecord:
    id: str
    question: str
    answer: str
    documents: list[Document] = field(default_factory=list)
    paradigm: str | None = None
    exemplar_text: str | None = None
    options: tuple[str, ...] = ()

    @property
    def has_roles(self) -> bool:
        return bool(self.documents) and all(d.role in ("source", "distractor") for d in self.documents)

    def with_role(self, role: str) -> list[Document]:
        return [d for d in self.documents if d.role == role]


def _doc(raw: Any, i: int, loc: str) -> Document:
    if isinstance(raw, str):
        title, _, text = raw.partition("\n") if "\n" in raw else ("", "", raw)
        return Document(f"doc{i}", title, text or title, None)
    if isinstance(raw, dict) and isinstance(raw.get("text"), str):
        role = raw.get("role") if raw.get("role") in ("source", "distractor") else None
        rank = raw.get("rank")
        return Document(
            str(raw.get("id") or f"doc{i}"),
            str(raw.get("title") or ""),
            raw["text"],
            role,
            int(rank) if isinstance(rank, int | float) else None,
            raw.get("rule"),
        )
    raise InputFormatError(f"{loc}: document {i} is neither a string nor an object with a `text` string")


def to_record(row: dict[str, Any], n: int, loc: str) -> AuditRecord:
    """One row of any accepted view; a row without a question or an answer is an error naming it."""
    q = next((row[k] for k in _QUESTION_KEYS if isinstance(row.get(k), str)), None)
    a = next((row[k] for k in _ANSWER_KEYS if isinstance(row.get(k), str)), None)
    if q is None or a is None:
        raise InputFormatError(
            f"{loc}: no question/answer; audit reads `instruction` or `question` and `answer` or `output`"
        )
    docs = row.get("documents") or []
    if not isinstance(docs, list):
        raise InputFormatError(f"{loc}: `documents` must be a list")
    paradigm = row.get("paradigm") if row.get("paradigm") in PARADIGMS else None
    raw_ex = row.get("exemplar")
    ex: dict[str, Any] = raw_ex if isinstance(raw_ex, dict) else {}
    return AuditRecord(
        id=str(row.get("id") or row.get("job_id") or n),
        question=q,
        answer=a,
        documents=[_doc(d, i, loc) for i, d in enumerate(docs)],
        paradigm=paradigm,
        exemplar_text=ex.get("text"),
        options=tuple(ex.get("options") or ()),
    )


def _jsonl_rows(path: Path) -> Iterator[tuple[Any, str]]:
    """(record, "file:line") from a JSON array or JSON lines file: the exemplar loaders' reader."""
    return json_records(path)


def _dataset_rows(path: Path) -> Iterator[tuple[dict[str, Any], str]]:
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("reading Parquet or a datasets directory needs: pip install datasets") from None
    if path.is_dir():
        try:
            ds = datasets.load_from_disk(str(path))
        except (OSError, ValueError) as e:  # FileNotFoundError: a folder that is neither a run nor a dataset
            raise InputFormatError(
                f"{path}: neither a run directory (no examples.jsonl) nor a `datasets` directory "
                f"({(str(e).strip().splitlines() or [type(e).__name__])[0]})"
            ) from None
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
    else:
        ds = datasets.Dataset.from_parquet(str(path))
    for i, row in enumerate(ds, 1):
        yield dict(row), f"{path}:row {i}"


def read_input(path: str | Path) -> tuple[list[AuditRecord], dict[str, Any]]:
    """The records of IN and what is known about how they were made (a run's run.json, else {})."""
    p = Path(path)
    if not p.exists():
        raise MissingInputError(
            f"audit input not found: {p}; give a run directory, a .jsonl/.parquet file or a datasets directory"
        )
    run: dict[str, Any] = {}
    if p.is_dir() and ((p / "examples.jsonl").exists() or (p / "run.json").exists()):
        run = read_run_json(p, fix="restore it from a backup, or audit OUT/examples.jsonl directly")
        if not (p / "examples.jsonl").exists():
            raise MissingInputError(
                f"{p}: the run has accepted no record yet (no examples.jsonl); audit it once `generate` has written some"
            )
        rows = _jsonl_rows(p / "examples.jsonl")
    elif p.is_dir() or p.suffix == ".parquet":
        rows = _dataset_rows(p)
    elif p.suffix in (".jsonl", ".json"):
        rows = _jsonl_rows(p)
    else:
        raise InputFormatError(
            f"{p}: unknown input; give a run directory, a .jsonl/.json/.parquet file or a datasets directory"
        )
    records = []
    for n, (row, loc) in enumerate(rows):
        if not isinstance(row, dict):
            raise InputFormatError(f"{loc}: expected an object, got {type(row).__name__}")
        records.append(to_record(from_raft(row) if is_raft(row) else row, n, loc))
    return records, run
