"""The card's figures: PNGs drawn headless with matplotlib (Agg), written beside the card.

`draw_figures(records, failed, run, directory)` writes them into `directory/figures/` and returns
{name: relative path}; the card references those paths, so they render on the Hub once `push`
uploads the folder. Each figure is skipped when there is nothing to draw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..paradigms import PARADIGMS
from ..runs import source_slots
from .coverage import corpus_size, of_records

FIGURE_DIR = "figures"


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, directory: Path, name: str) -> str:
    rel = f"{FIGURE_DIR}/{name}.png"
    (directory / FIGURE_DIR).mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    # no timestamp in the PNG metadata: the same records draw the same bytes
    fig.savefig(directory / rel, dpi=100, metadata={"Software": None})
    _plt().close(fig)
    return rel


def _lengths(records: Sequence[dict[str, Any]], directory: Path) -> str | None:
    if not records:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, what in ((axes[0], "instruction", "question"), (axes[1], "answer", "answer")):
        by = {p: [len(r[key].split()) for r in records if r["paradigm"] == p] for p in PARADIGMS}
        by = {p: v for p, v in by.items() if v}
        ax.hist(list(by.values()), bins=20, stacked=True, label=list(by))
        ax.set_xlabel(f"{what} length (words)")
        ax.set_ylabel("records")
        ax.set_title(f"{what} length per paradigm")
    axes[1].legend(fontsize=7)
    return _save(fig, directory, "lengths")


def _ranks(records: Sequence[dict[str, Any]], directory: Path) -> str | None:
    ranks = [
        d["rank"] for r in records for d in r["documents"] if d.get("role") != "source" and d.get("rank") is not None
    ]
    rules = Counter(d.get("rule") or "none" for r in records for d in r["documents"] if d.get("role") != "source")
    if not rules:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [3, 2]})
    if ranks:
        axes[0].hist(ranks, bins=30)
    axes[0].set_xlabel("retrieval rank of distractor")
    axes[0].set_ylabel("distractors")
    axes[0].set_title("distractor rank distribution")
    names = sorted(rules)
    axes[1].barh(names, [rules[n] for n in names])
    axes[1].set_title("distractors by rule")
    return _save(fig, directory, "distractor_ranks")


def _slots(records: Sequence[dict[str, Any]], directory: Path) -> str | None:
    slots = source_slots(records)
    if not slots:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    xs = list(range(max(slots) + 1))
    ax.bar([x + 1 for x in xs], [slots.get(x, 0) for x in xs])
    ax.set_xlabel("document slot (1 = first in the prompt)")
    ax.set_ylabel("source documents")
    ax.set_title("where the source documents sit")
    return _save(fig, directory, "source_slots")


def _reuse(records: Sequence[dict[str, Any]], run: dict[str, Any], directory: Path) -> str | None:
    cover = of_records(records, corpus_size(run))
    if not cover.histogram:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ks = sorted(cover.histogram)
    ax.bar(ks, [cover.histogram[k] for k in ks])
    ax.set_xlabel("records a passage is a source of")
    ax.set_ylabel("passages")
    share = "" if cover.share is None else f", {cover.share:.1%} of the corpus"
    ax.set_title(f"source reuse: {cover.distinct} distinct passages{share}")
    return _save(fig, directory, "source_reuse")


def outcome_counts(failed: Sequence[dict[str, Any]], run: dict[str, Any]) -> dict[str, int]:
    """Rejections and curation drops by reason: failed jobs' final reasons, plus the per-attempt
    rejection counts a run recorded in run.json (`stats.rejected`), if any."""
    c: Counter[str] = Counter(f"failed: {f['reason']}" for f in failed)
    for k, v in ((run.get("stats") or {}).get("rejected") or {}).items():
        c[f"rejected attempt: {k}"] += int(v)
    return dict(c.most_common())


def _outcomes(failed: Sequence[dict[str, Any]], run: dict[str, Any], directory: Path) -> str | None:
    counts = outcome_counts(failed, run)
    if not counts:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.35 * len(counts)))
    names = list(counts)[::-1]
    ax.barh(names, [counts[n] for n in names])
    ax.set_xlabel("jobs / attempts")
    ax.set_title("rejections and curation")
    return _save(fig, directory, "rejections")


def draw_figures(
    records: Sequence[dict[str, Any]], failed: Sequence[dict[str, Any]], run: dict[str, Any], directory: Path
) -> dict[str, str]:
    """Draw every figure there is data for; {name: path relative to `directory`}."""
    out: dict[str, str] = {}
    for name, path in (
        ("lengths", _lengths(records, directory)),
        ("distractor_ranks", _ranks(records, directory)),
        ("source_slots", _slots(records, directory)),
        ("source_reuse", _reuse(records, run, directory)),
        ("rejections", _outcomes(failed, run, directory)),
    ):
        if path:
            out[name] = path
    return out
