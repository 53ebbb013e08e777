"""Exemplar instructions: the built-in set and loaders for JSON/JSONL, Alpaca, ShareGPT, messages, `datasets`."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from ragloom.retrieval import normalize_text

from ragloom.errors import InputFormatError, MissingInputError

from .config import ExemplarFilters, ExemplarSource
from .runs import read_records as records
from .types import Exemplar, InstructionPair


def _first_turn(turns: Any, roles: tuple[str, ...], role_key: str, text_key: str, loc: str) -> str:
    if not isinstance(turns, list):
        raise InputFormatError(f"{loc}: expected a list of turns, got {type(turns).__name__}")
    for turn in turns:
        if isinstance(turn, dict) and turn.get(role_key) in roles:
            return str(turn.get(text_key) or "")
    raise InputFormatError(f"{loc}: no turn with {role_key} in {list(roles)}")


def record_text(rec: Any, fmt: str, src: ExemplarSource, loc: str) -> str:
    """The instruction text of one record, read the way its format says."""
    if not isinstance(rec, dict):
        raise InputFormatError(f"{loc}: expected a JSON object, got {type(rec).__name__}")
    if fmt == "alpaca":
        if "instruction" not in rec:
            raise InputFormatError(f"{loc}: Alpaca record has no 'instruction'")
        extra = str(rec.get("input") or "").strip()
        return f"{rec['instruction']}\n\n{extra}".strip() if extra else str(rec["instruction"])
    if fmt == "sharegpt":
        return _first_turn(rec.get("conversations"), ("human", "user"), "from", "value", loc)
    if fmt == "messages":
        return _first_turn(rec.get("messages"), ("user",), "role", "content", loc)
    if src.text_field not in rec:
        raise InputFormatError(
            f"{loc}: no field {src.text_field!r} (fields: {', '.join(rec)}); set text_field for this exemplar source"
        )
    value = rec[src.text_field]
    if not isinstance(value, str):
        raise InputFormatError(f"{loc}: field {src.text_field!r} must be a string, got {type(value).__name__}")
    return value


def _detect(path: Path) -> str:
    if path.is_dir():
        return "hf"
    return "json"


def _looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).suffix.lower() in {
        ".json", ".jsonl", ".parquet", ".csv", ".txt", ".arrow"
    }  # fmt: skip


def _format_of(src: ExemplarSource, what: str) -> str:
    """The source's format: given, detected from the file, or `hf` for a hub dataset name."""
    path = Path(src.source)
    if path.exists():
        return src.format or _detect(path)
    if src.format not in (None, "hf") or _looks_like_path(src.source):
        raise MissingInputError(f"{what} not found: {src.source}")
    return "hf"


def load_source(src: ExemplarSource) -> list[Exemplar]:
    """Every exemplar of one source, unfiltered."""
    if src.source == "builtin":
        path = Path(str(resources.files("ragloom.exemplars").joinpath("builtin.jsonl")))
        out = []
        for rec, _ in records(path):
            out.append(Exemplar(rec["id"], rec["text"], "builtin", rec.get("task_type"), tuple(rec.get("options", ()))))
        return out[: src.limit] if src.limit else out
    path = Path(src.source)
    fmt = _format_of(src, "exemplar file")
    rows: Iterator[tuple[Any, str]] = _hf_rows(src) if fmt == "hf" else records(path)
    name = path.name if path.exists() else src.source
    out = []
    for i, (rec, loc) in enumerate(rows):
        text = record_text(rec, fmt, src, loc).strip()
        options = tuple(str(o) for o in rec.get(src.options_field) or ()) if src.options_field else ()
        task = str(rec[src.task_type_field]) if src.task_type_field and rec.get(src.task_type_field) else None
        out.append(Exemplar(f"{name}:{i}", text, name, task, options))
        if src.limit and len(out) >= src.limit:
            break
    return out


def _hf_rows(src: ExemplarSource) -> Iterator[tuple[Any, str]]:
    import datasets

    try:
        if Path(src.source).exists():
            ds = datasets.load_from_disk(src.source)
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[src.split]
        else:
            ds = datasets.load_dataset(src.source, split=src.split)
    except (OSError, ValueError, KeyError) as e:  # not a dataset dir, no such hub dataset, offline, no split
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MissingInputError(f"{src.source}: cannot load it as a `datasets` dataset ({first})") from None
    for i, rec in enumerate(ds, 1):
        yield rec, f"{src.source}:row {i}"


def filter_exemplars(items: list[Exemplar], f: ExemplarFilters, dropped: dict[str, int]) -> list[Exemplar]:
    """Length and exact-duplicate filters; drops are counted in `dropped` by reason."""
    seen: set[str] = set()
    out = []
    for ex in items:
        words = len(ex.text.split())
        if words < f.min_words:
            dropped["exemplar_too_short"] = dropped.get("exemplar_too_short", 0) + 1
            continue
        if words > f.max_words:
            dropped["exemplar_too_long"] = dropped.get("exemplar_too_long", 0) + 1
            continue
        key = normalize_text(ex.text)
        if f.dedupe and key in seen:
            dropped["exemplar_duplicate"] = dropped.get("exemplar_duplicate", 0) + 1
            continue
        seen.add(key)
        out.append(ex)
    return out


def _turn_pair(turns: Any, user: tuple[str, ...], reply: tuple[str, ...], role_key: str, text_key: str, loc: str):
    """The first user turn and the reply that follows it."""
    if not isinstance(turns, list):
        raise InputFormatError(f"{loc}: expected a list of turns, got {type(turns).__name__}")
    for i, turn in enumerate(turns):
        if isinstance(turn, dict) and turn.get(role_key) in user:
            nxt = turns[i + 1] if i + 1 < len(turns) else None
            if not isinstance(nxt, dict) or nxt.get(role_key) not in reply:
                raise InputFormatError(f"{loc}: the first {role_key}={turn.get(role_key)} turn has no reply after it")
            return str(turn.get(text_key) or ""), str(nxt.get(text_key) or "")
    raise InputFormatError(f"{loc}: no turn with {role_key} in {list(user)}")


def _field(rec: dict[str, Any], name: str, loc: str, flag: str) -> str:
    if name not in rec:
        raise InputFormatError(f"{loc}: no field {name!r} (fields: {', '.join(rec)}); set {flag}")
    value = rec[name]
    if not isinstance(value, str):
        raise InputFormatError(f"{loc}: field {name!r} must be a string, got {type(value).__name__}")
    return value


def load_pairs(
    src: ExemplarSource, output_field: str = "output", context_field: str | None = None
) -> list[InstructionPair]:
    """(instruction, output) pairs from the exemplar loaders' formats, for RA-DIT.

    json/hf read `src.text_field` and `output_field`; alpaca reads instruction + input and
    output; sharegpt and messages read the first user turn and the reply after it.
    """
    path = Path(src.source)
    fmt = _format_of(src, "pairs file")
    rows: Iterator[tuple[Any, str]] = _hf_rows(src) if fmt == "hf" else records(path)
    name = path.name if path.exists() else src.source
    out: list[InstructionPair] = []
    for i, (rec, loc) in enumerate(rows):
        if not isinstance(rec, dict):
            raise InputFormatError(f"{loc}: expected a JSON object, got {type(rec).__name__}")
        if fmt == "sharegpt":
            x, y = _turn_pair(rec.get("conversations"), ("human", "user"), ("gpt", "assistant"), "from", "value", loc)
        elif fmt == "messages":
            x, y = _turn_pair(rec.get("messages"), ("user",), ("assistant",), "role", "content", loc)
        else:
            x = record_text(rec, fmt, src, loc)
            y = _field(rec, "output" if fmt == "alpaca" else output_field, loc, "--output-field")
        context = _field(rec, context_field, loc, "--context-field") if context_field else None
        if not x.strip() or not y.strip():
            raise InputFormatError(f"{loc}: empty instruction or output; remove the record or fix the field names")
        out.append(InstructionPair(f"{name}:{i}", x.strip(), y.strip(), name, context))
        if src.limit and len(out) >= src.limit:
            break
    if not out:
        raise InputFormatError(f"{src.source}: no records")
    return out
