"""Citation figures for the card and the report (`answer_style: cited | quoted`, `quality.citations`).

From the accepted records' `quality.citations` (what the check measured on each): per paradigm, the
records checked, citation precision (citations whose document supports what cites them / citations),
recall (answer sentences a source states that cite a supporting source / those sentences) and, for
quoted answers, quotes found in a source / quotes; and the jobs that failed on each citation code.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

CODES = ("citation_to_useless", "citation_unsupported", "citation_missing", "quote_not_in_source")
_COUNTS = ("citations", "supported", "stated_sentences", "cited_stated", "quotes", "quotes_found")


def citation_table(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{paradigm: {records, citations, supported, ..., precision, recall, quotes_verbatim}} over the
    records (JSON dicts) that carry `quality.citations`."""
    by: dict[str, Counter[str]] = {}
    for r in records:
        fig = (r.get("quality") or {}).get("citations")
        if not isinstance(fig, dict):
            continue
        c = by.setdefault(str(r.get("paradigm")), Counter())
        c["records"] += 1
        c.update({k: int(fig[k]) for k in _COUNTS if isinstance(fig.get(k), int)})

    def share(c: Counter[str], a: str, b: str) -> float | None:
        return round(c[a] / c[b], 3) if c[b] else None

    return {
        p: {
            **dict(c),
            "precision": share(c, "supported", "citations"),
            "recall": share(c, "cited_stated", "stated_sentences"),
            "quotes_verbatim": share(c, "quotes_found", "quotes"),
        }
        for p, c in sorted(by.items())
    }


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def citation_summary(records: list[dict[str, Any]]) -> dict[str, str]:
    """One line per paradigm for the report: precision / recall (and quotes) of its accepted records."""
    out = {}
    for p, t in citation_table(records).items():
        line = f"precision {_fmt(t['precision'])}, recall {_fmt(t['recall'])}"
        if t.get("quotes"):
            line += f", quotes in a source {_fmt(t['quotes_verbatim'])}"
        out[p] = f"{line} ({t['records']} records)"
    return out


def citation_lines(records: list[dict[str, Any]], failed: list[dict[str, Any]]) -> list[str]:
    """The card's lines: per paradigm figures, then the jobs failed on each citation code."""
    table = citation_summary(records)
    if not table:
        return []
    lost = Counter(str(f.get("reason")) for f in failed if f.get("reason") in CODES)
    return [
        "- citations (`quality.citations`) of the accepted records: "
        + "; ".join(f"{p} {line}" for p, line in table.items()),
        "- jobs failed on a citation code: " + (", ".join(f"{k} {v}" for k, v in sorted(lost.items())) or "none"),
    ]
