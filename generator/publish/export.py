"""Export views of a run's records: generate runs as messages, rag-instruct, alpaca, sharegpt,
raw; RA-DIT runs as prompt-completion / messages / raw (lm-ft) and lsr / raw.

PATH picks the container: `*.jsonl`, `*.parquet`, or anything else as a `datasets`
`save_to_disk` directory. A dataset card `README.md` is written beside it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragloom.errors import ConfigError, InputFormatError, MissingInputError, OutputError

from ..runs import (
    EXAMPLES,
    FAILED,
    FIXED,
    GENERATE,
    Example,
    Layouter,
    LmFtRecord,
    LsrRecord,
    Record,
    from_dict,
    read_jsonl,
    read_run_json,
    render,
    strip_answer,
)
from .card import CARD, is_ragloom_card, write_card, write_radit_card
from .raft import raft_row


def user_turn(rec: Example) -> str:
    """The RAG-Instruct prompt: numbered paragraphs, then the instruction (`--layout fixed`)."""
    return render(rec.to_dict(), FIXED)


def _rag_instruct(rec: Example) -> dict[str, Any]:
    docs = [f"{d.title}\n{d.text}" if d.title else d.text for d in rec.documents]
    return {
        "question": rec.instruction,
        "answer": rec.answer,
        "documents": docs,
        "paradigm": rec.paradigm,
        "id": rec.id,
    }


def _messages(rec: Example, turn: str | None = None) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": turn or user_turn(rec)},
            {"role": "assistant", "content": rec.answer},
        ],
        "paradigm": rec.paradigm,
        "id": rec.id,
    }


def _alpaca(rec: Example) -> dict[str, Any]:
    paras = user_turn(rec).split("\n\n### Instruction:\n")[0]
    return {"instruction": rec.instruction, "input": paras, "output": rec.answer}


def _sharegpt(rec: Example, turn: str | None = None) -> dict[str, Any]:
    return {
        "conversations": [{"from": "human", "value": turn or user_turn(rec)}, {"from": "gpt", "value": rec.answer}],
        "id": rec.id,
    }


def _raw(rec: Record) -> dict[str, Any]:
    return rec.to_dict()


def _prompt_completion(rec: LmFtRecord) -> dict[str, Any]:
    return {"prompt": rec.prompt, "completion": rec.completion}


def _lm_ft_messages(rec: LmFtRecord) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": rec.prompt}, {"role": "assistant", "content": rec.completion}],
        "id": rec.id,
    }


def _lsr(rec: LsrRecord) -> dict[str, Any]:
    d = rec.to_dict()
    return {"query": d["query"], "answers": d["answers"], "ctxs": d["ctxs"], "id": d["id"]}


View = Callable[[Any], dict[str, Any]]
# the views of each kind of run (run.json "kind"; generate runs have none); the first is the default
KIND_VIEWS: dict[str, dict[str, View]] = {
    "generate": {
        "messages": _messages,
        "rag-instruct": _rag_instruct,
        "alpaca": _alpaca,
        "sharegpt": _sharegpt,
        "raft": lambda rec: raft_row(rec.to_dict()),
        "raw": _raw,
    },
    "radit-lm-ft": {"prompt-completion": _prompt_completion, "messages": _lm_ft_messages, "raw": _raw},
    "radit-lsr": {"lsr": _lsr, "raw": _raw},
}
ALL_VIEWS = sorted({v for views in KIND_VIEWS.values() for v in views})
# the views with one user turn that `--layout mixed` rewrites
LAYOUT_VIEWS: dict[str, Callable[[Example, str], dict[str, Any]]] = {"messages": _messages, "sharegpt": _sharegpt}


def load_run(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(records as JSON dicts in id order, failed jobs, run.json) of a run directory."""
    if not (out / EXAMPLES).exists() and not (out / "run.json").exists():
        raise MissingInputError(f"{out}: no {EXAMPLES}; run `ragloom generate` first")
    run = read_run_json(out)
    # a run whose every job failed has written no examples.jsonl: read_jsonl gives no records
    records = sorted(read_jsonl(out / EXAMPLES, repair=False), key=lambda r: r["id"])
    failed = read_jsonl(out / FAILED, repair=False)
    return records, failed, run


def load_typed(out: Path) -> tuple[str, list[Record], list[dict[str, Any]], dict[str, Any]]:
    """(kind, typed records, failed jobs, run.json) of a run directory."""
    dicts, failed, run = load_run(out)
    kind = run.get("kind", GENERATE)
    try:
        return kind, [from_dict(kind, d) for d in dicts], failed, run
    except (KeyError, TypeError) as e:
        raise InputFormatError(f"{out / EXAMPLES}: a record lacks {e} for a {kind} run; was it edited?") from None


def export(
    out: Path,
    view: str | None,
    to: Path,
    *,
    layout: str = "fixed",
    seed: int | None = None,
    plain_share: float = 0.0,
    card_to: Path | None = None,
    overwrite: bool = False,
    strip_citations: bool = False,
) -> tuple[Path, str, int]:
    """Write the records of run directory `out` in `view` (None: the run kind's default) to `to`;
    return the card's path, the view written and the number of rows. `layout="mixed"` draws a
    prompt layout per record (seeded; see `layout.py`) for the messages and sharegpt views. The card
    goes to `card_to` (default: README.md beside a file, inside a `datasets` directory); a file there
    that is not a ragloom card is never replaced unless `overwrite`. `strip_citations`: the answers'
    plain text, without `[n]` citations or RAFT quote markers."""
    import datasets

    datasets.disable_progress_bars()  # the card and the one-line summary say what happened
    kind, records, failed, run = load_typed(out)
    if not records:
        raise MissingInputError(
            f"{out}: the run accepted no records, nothing to export ({len(failed)} jobs failed; "
            f"their reasons are in {out / FAILED}); run more jobs or relax the checks that rejected them"
        )
    if strip_citations:
        records = [
            dataclasses.replace(r, answer=strip_answer(r.answer)) if isinstance(r, Example) else r for r in records
        ]
    views = KIND_VIEWS[kind]
    view = view or next(iter(views))
    if view not in views:
        raise ConfigError(f"--format {view}: a {kind} run exports as {', '.join(views)}")
    try:
        seed = run.get("config", {}).get("seed", 0) if seed is None else seed
        layouter = Layouter(layout, seed=seed, plain_share=plain_share)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if layout == "mixed":
        if kind != GENERATE or view not in LAYOUT_VIEWS:
            raise ConfigError(f"--layout mixed: applies to the {' and '.join(LAYOUT_VIEWS)} views of a generate run")
        rows = [LAYOUT_VIEWS[view](r, layouter.user_turn(r.to_dict())) for r in records if isinstance(r, Example)]
    else:
        rows = [views[view](r) for r in records]
    card_path = card_to or ((to.parent if to.suffix in (".jsonl", ".parquet") else to) / CARD)
    if card_path.exists() and not overwrite and not is_ragloom_card(card_path):
        raise OutputError(
            f"{card_path} exists and is not a ragloom dataset card; pass --card-to PATH to write the card "
            "elsewhere, or --overwrite to replace it"
        )
    try:
        to.parent.mkdir(parents=True, exist_ok=True)
        if to.suffix == ".jsonl":
            tmp = to.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            tmp.replace(to)
        else:
            ds = datasets.Dataset.from_list(rows)
            if to.suffix == ".parquet":
                ds.to_parquet(str(to))
            else:
                ds.save_to_disk(str(to))
    except OSError as e:
        raise OutputError(f"cannot write {to}: {e.strerror or e}") from None
    card_dir = card_path.parent
    card_dir.mkdir(parents=True, exist_ok=True)
    data_file = os.path.relpath(to, card_dir) if card_to is not None else to.name
    if kind != "generate":
        card = write_radit_card(card_dir, records, run, view=view, data_file=data_file, name=card_path.name)
    else:
        examples = [r for r in records if isinstance(r, Example)]
        summary = layouter.summary() if view in LAYOUT_VIEWS else None
        card = write_card(
            card_dir, examples, failed, run, view=view, data_file=data_file, layouts=summary, name=card_path.name
        )
    return card, view, len(rows)
