"""Export views of a run's records: generate runs as messages, rag-instruct, alpaca, sharegpt,
raw; RA-DIT runs as prompt-completion / messages / raw (lm-ft) and lsr / raw.

PATH picks the container: `*.jsonl`, `*.parquet`, or anything else as a `datasets`
`save_to_disk` directory. A dataset card `README.md` is written beside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragloom.errors import ConfigError, MissingInputError, OutputError

from .card import write_card, write_radit_card
from .checkpoint import EXAMPLES, RUN, read_jsonl
from .layout import FIXED, Layouter, render


def user_turn(rec: dict[str, Any]) -> str:
    """The RAG-Instruct prompt: numbered paragraphs, then the instruction (`--layout fixed`)."""
    return render(rec, FIXED)


def _rag_instruct(rec: dict[str, Any]) -> dict[str, Any]:
    docs = [f"{d['title']}\n{d['text']}" if d.get("title") else d["text"] for d in rec["documents"]]
    return {
        "question": rec["instruction"],
        "answer": rec["answer"],
        "documents": docs,
        "paradigm": rec["paradigm"],
        "id": rec["id"],
    }


def _messages(rec: dict[str, Any], turn: str | None = None) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": turn or user_turn(rec)},
            {"role": "assistant", "content": rec["answer"]},
        ],
        "paradigm": rec["paradigm"],
        "id": rec["id"],
    }


def _alpaca(rec: dict[str, Any]) -> dict[str, Any]:
    paras = user_turn(rec).split("\n\n### Instruction:\n")[0]
    return {"instruction": rec["instruction"], "input": paras, "output": rec["answer"]}


def _sharegpt(rec: dict[str, Any], turn: str | None = None) -> dict[str, Any]:
    return {
        "conversations": [{"from": "human", "value": turn or user_turn(rec)}, {"from": "gpt", "value": rec["answer"]}],
        "id": rec["id"],
    }


def _raw(rec: dict[str, Any]) -> dict[str, Any]:
    return rec


def _prompt_completion(rec: dict[str, Any]) -> dict[str, Any]:
    return {"prompt": rec["prompt"], "completion": rec["completion"]}


def _lm_ft_messages(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": rec["prompt"]}, {"role": "assistant", "content": rec["completion"]}],
        "id": rec["id"],
    }


def _lsr(rec: dict[str, Any]) -> dict[str, Any]:
    return {"query": rec["query"], "answers": rec["answers"], "ctxs": rec["ctxs"], "id": rec["id"]}


View = Callable[[dict[str, Any]], dict[str, Any]]
# the views of each kind of run (run.json "kind"; generate runs have none); the first is the default
KIND_VIEWS: dict[str, dict[str, View]] = {
    "generate": {
        "messages": _messages,
        "rag-instruct": _rag_instruct,
        "alpaca": _alpaca,
        "sharegpt": _sharegpt,
        "raw": _raw,
    },
    "radit-lm-ft": {"prompt-completion": _prompt_completion, "messages": _lm_ft_messages, "raw": _raw},
    "radit-lsr": {"lsr": _lsr, "raw": _raw},
}
ALL_VIEWS = sorted({v for views in KIND_VIEWS.values() for v in views})
# the views with one user turn that `--layout mixed` rewrites
LAYOUT_VIEWS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "messages": _messages,
    "sharegpt": _sharegpt,
}


def load_run(out: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    if not (out / EXAMPLES).exists():
        raise MissingInputError(f"{out}: no {EXAMPLES}; run `ragloom generate` first")
    run = json.loads((out / RUN).read_text(encoding="utf-8")) if (out / RUN).exists() else {}
    records = sorted(read_jsonl(out / EXAMPLES, repair=False), key=lambda r: r["id"])
    failed = read_jsonl(out / "failed.jsonl", repair=False)
    return records, failed, run


def export(
    out: Path, view: str | None, to: Path, *, layout: str = "fixed", seed: int | None = None, plain_share: float = 0.0
) -> tuple[Path, str, int]:
    """Write the records of run directory `out` in `view` (None: the run kind's default) to `to`;
    return the card's path, the view written and the number of rows. `layout="mixed"` draws a
    prompt layout per record (seeded; see `layout.py`) for the messages and sharegpt views."""
    import datasets

    datasets.disable_progress_bars()  # the card and the one-line summary say what happened
    records, failed, run = load_run(out)
    kind = run.get("kind", "generate")
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
        if kind != "generate" or view not in LAYOUT_VIEWS:
            raise ConfigError(f"--layout mixed: applies to the {' and '.join(LAYOUT_VIEWS)} views of a generate run")
        rows = [LAYOUT_VIEWS[view](r, layouter.user_turn(r)) for r in records]
    else:
        rows = [views[view](r) for r in records]
    to.parent.mkdir(parents=True, exist_ok=True)
    try:
        if to.suffix == ".jsonl":
            tmp = to.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            tmp.replace(to)
            card_dir = to.parent
        else:
            ds = datasets.Dataset.from_list(rows)
            if to.suffix == ".parquet":
                ds.to_parquet(str(to))
                card_dir = to.parent
            else:
                ds.save_to_disk(str(to))
                card_dir = to
    except OSError as e:
        raise OutputError(f"cannot write {to}: {e.strerror or e}") from None
    if kind != "generate":
        card = write_radit_card(card_dir, records, run, view=view, data_file=to.name)
    else:
        summary = layouter.summary() if view in LAYOUT_VIEWS else None
        card = write_card(card_dir, records, failed, run, view=view, data_file=to.name, layouts=summary)
    return card, view, len(rows)
