"""Build the citation check's fixtures: hand-written cited answers + the distractors the rank band gives.

    python bench/citation_fixture.py calibration   # tests/fixtures/citations/calibration.yaml -> .jsonl
    python bench/citation_fixture.py heldout       # tests/fixtures/citations/heldout.yaml -> .jsonl

Each hand-written record (paradigm, source titles, question, cited answer, label) gets its sources from
the leak screen's corpus (`bench/leak_fixture.py`: every third Wikipedia summary, 3,345 passages) and
its distractors as `generate` draws them: ranks [200, 250) for the question, `total_docs` 10. The record's
documents are its sources first (so `[n]` in the YAML, the prompt's numbering, is also the record's), then
the band distractors; `[dK]` in an answer is written as the K-th distractor's number. `source_edits`
replace text in a source (the noise of PDF/OCR text a faithful quote must survive).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "citations"
sys.path.insert(0, str(ROOT / "bench"))

from leak_fixture import draw, open_index  # noqa: E402


def build(name: str, index_dir: Path) -> Path:
    import yaml

    records = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text(encoding="utf-8"))
    index = open_index(index_dir)
    lines = []
    for i, r in enumerate(records):
        sources = []
        for t in r["sources"]:
            p = index.store.get(f"wiki:{t}")
            sources.append({"id": p.id, "title": p.title, "text": p.text, "role": "source", "rank": None})
        for old, new in r.get("source_edits") or []:
            assert any(old in s["text"] for s in sources), (r["sources"], old)
            for s in sources:
                s["text"] = s["text"].replace(old, new)
        band = [
            {"id": d["id"], "title": d["title"], "text": d["text"], "role": "distractor", "rank": d["rank"]}
            for d in draw(index, r, i)
        ]
        k = len(sources)
        answer = re.sub(r"\[d(\d)\]", lambda m, k=k: f"[{k + int(m.group(1))}]", r["answer"])
        row = {
            "id": f"{name}-{i:02d}",
            "paradigm": r["paradigm"],
            "style": r.get("style", "cited"),
            "question": r["question"],
            "answer": answer,
            "documents": sources + band,
            "label": r["label"],
            "kind": r["kind"],
        }
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    out = FIXTURES / f"{name}.jsonl"
    out.write_text("".join(lines), encoding="utf-8")
    return out


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["calibration", "heldout"])
    ap.add_argument("--index-dir", default=os.path.expanduser("~/.cache/ragloom/leak-fixture-index"))
    args = ap.parse_args()
    print(build(args.what, Path(args.index_dir)))


if __name__ == "__main__":
    main()
