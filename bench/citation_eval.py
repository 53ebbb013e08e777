"""Precision and recall of each citation failure code on the hand-labelled fixtures.

    python bench/citation_eval.py                 # both fixtures at the frozen thresholds
    python bench/citation_eval.py --show          # also every record whose verdict differs from its label

The fixtures (tests/fixtures/citations/*.jsonl, built by bench/citation_fixture.py) hold cited and
quoted answers over real Wikipedia summaries, each with its sources and the distractors the rank band
[200, 250) gives, labelled by hand with the code the check should raise (`ok`: none). The check sees
every document of the record with its role, as `ragloom audit` does. For each code: precision = records
flagged with it that carry that label / records flagged with it; recall = labelled records flagged with it.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "citations"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@dataclass(frozen=True, slots=True)
class Doc:
    title: str
    text: str
    role: str


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def verdicts(check: Any, rows: list[dict[str, Any]]) -> list[Any]:
    from ragloom.generator.quality import CheckItem

    items = [
        CheckItem(
            r["question"], r["answer"], r["paradigm"], [Doc(d["title"], d["text"], d["role"]) for d in r["documents"]]
        )
        for r in rows
    ]
    return check.verdicts(items)


def table(rows: list[dict[str, Any]], outs: list[Any]) -> dict[str, dict[str, float | int | None]]:
    """Per code: labelled, flagged, precision, recall; and `any`: a record flagged at all vs labelled not ok."""
    from ragloom.generator.quality.citations import CODES

    got = [o.code or "ok" for o in outs]
    want = [r["label"] for r in rows]
    out: dict[str, dict[str, float | int | None]] = {}
    for code in [*CODES, "any"]:
        if code == "any":
            f = [g != "ok" for g in got]
            w = [x != "ok" for x in want]
        else:
            f = [g == code for g in got]
            w = [x == code for x in want]
        tp = sum(a and b for a, b in zip(f, w, strict=True))
        out[code] = {
            "labelled": sum(w),
            "flagged": sum(f),
            "precision": round(tp / sum(f), 2) if sum(f) else None,
            "recall": round(tp / sum(w), 2) if sum(w) else None,
        }
    out["accuracy"] = {"records": len(rows), "right": sum(g == x for g, x in zip(got, want, strict=True))}
    return out


def main() -> None:
    from ragloom.generator.quality import ConformanceChecker
    from ragloom.generator.quality.citations import CitationCheck
    from ragloom.retrieval import Encoder

    ap = argparse.ArgumentParser()
    ap.add_argument("--show", action="store_true")
    ap.add_argument("fixtures", nargs="*", default=["calibration", "heldout"])
    args = ap.parse_args()
    check = CitationCheck(ConformanceChecker(Encoder()), style="auto")
    for name in args.fixtures:
        if not (FIXTURES / f"{name}.jsonl").exists():
            continue
        rows = load(name)
        outs = verdicts(check, rows)
        print(f"## {name}: {len(rows)} records")
        print(json.dumps(table(rows, outs), indent=1))
        if args.show:
            for r, o in zip(rows, outs, strict=True):
                if (o.code or "ok") != r["label"]:
                    fig = {k: v for k, v in o.figures.items() if k != "paradigm"}
                    print(f"- {r['id']} {r['kind']} label={r['label']} got={o.code} {fig}")


if __name__ == "__main__":
    main()
