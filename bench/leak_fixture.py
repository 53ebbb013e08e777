"""Build the leak screen's fixtures: hand-written records + the distractors the rank band really gives.

    python bench/leak_fixture.py calibration   # tests/fixtures/leaks/calibration.yaml -> calibration.jsonl
    python bench/leak_fixture.py heldout       # tests/fixtures/leaks/heldout.yaml -> heldout.jsonl
    python bench/leak_fixture.py heldout2      # tests/fixtures/leaks/heldout2.yaml -> heldout2.jsonl
    python bench/leak_fixture.py heldout3      # tests/fixtures/leaks/heldout3.yaml -> heldout3.jsonl
    python bench/leak_fixture.py heldout4      # tests/fixtures/leaks/heldout4.yaml -> heldout4.jsonl
    python bench/leak_fixture.py heldout5      # tests/fixtures/leaks/heldout5.yaml -> heldout5.jsonl
    python bench/leak_fixture.py heldout6      # tests/fixtures/leaks/heldout6.yaml -> heldout6.jsonl
    python bench/leak_fixture.py show TITLE    # print a corpus passage (to write records from)

The corpus is `leak_corpus()`: every third Wikipedia summary of `wiki_summaries()` (sorted by title,
3,345 passages), indexed with the default encoder in `--index-dir` (built once). For each hand-written
record (paradigm, source titles, question, answer, planted leaks) the question is searched and the
distractors are drawn as `generate` draws them: `sample_distractors` over ranks [200, 250) with the
job's seeded RNG, no leak screen, `total_docs` 10 minus the sources. The hand-written parts
(questions, answers, planted leak texts and their labels, the labels of band distractors read as
leaks) are data in the YAML files; this script only adds the band draws, so the JSONL is reproducible.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "leaks"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "tests"))

from leak_corpus import leak_corpus  # noqa: E402

TOTAL_DOCS = 10
BAND = (200, 250)


def open_index(index_dir: Path) -> Any:
    from ragloom.retrieval import CorpusSpec, Index, build_index

    if not (index_dir / "manifest.json").exists():
        corpus = index_dir.parent / f"{index_dir.name}.jsonl"
        corpus.parent.mkdir(parents=True, exist_ok=True)
        corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in leak_corpus()), encoding="utf-8")
        build_index(CorpusSpec(str(corpus)), index_dir)
    return Index(index_dir)


def draw(index: Any, record: dict[str, Any], position: int) -> list[dict[str, Any]]:
    """The record's distractors as `generate` draws them (band first, the job's seeded RNG, no screen)."""
    from ragloom.retrieval import sample_distractors

    sources = [index.store.get(f"wiki:{t}") for t in record["sources"]]
    hits = index.search([record["question"]], BAND[1])[0]
    rng = random.Random(f"leak-fixture:{position}:{record['question']}")
    picks = sample_distractors(
        hits,
        sources=sources,
        n=TOTAL_DOCS - len(sources),
        rng=rng,
        band=BAND,
        corpus_size=len(index),
        answer=record["answer"],
    )
    labels = record.get("band_leaks") or {}
    return [
        {
            "id": d.passage.id,
            "title": d.passage.title,
            "text": d.passage.text,
            "rank": d.rank,
            "leak": labels.get(d.passage.title),
        }
        for d in picks
    ]


def build(name: str, index_dir: Path) -> Path:
    import yaml

    records = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text(encoding="utf-8"))
    index = open_index(index_dir)
    out = FIXTURES / f"{name}.jsonl"
    lines = []
    for i, r in enumerate(records):
        sources = [index.store.get(f"wiki:{t}") for t in r["sources"]]
        planted = [
            {"id": f"planted:{i}:{k}", "title": p["title"], "text": p["text"], "rank": None, "leak": p["kind"]}
            for k, p in enumerate(r.get("planted") or [])
        ]
        row = {
            "id": f"{name}-{i:02d}",
            "paradigm": r["paradigm"],
            "question": r["question"],
            "answer": r["answer"],
            "sources": [{"id": p.id, "title": p.title, "text": p.text} for p in sources],
            "band": draw(index, r, i),
            "planted": planted,
        }
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    out.write_text("".join(lines), encoding="utf-8")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "what",
        choices=["calibration", "heldout", "heldout2", "heldout3", "heldout4", "heldout5", "heldout6", "show", "index"],
    )
    ap.add_argument("titles", nargs="*")
    ap.add_argument("--index-dir", default=os.path.expanduser("~/.cache/ragloom/leak-fixture-index"))
    args = ap.parse_args()
    index_dir = Path(args.index_dir)
    if args.what == "show":
        index = open_index(index_dir)
        for t in args.titles:
            p = index.store.get(f"wiki:{t}")
            print(f"## {p.title}\n{p.text}\n")
    elif args.what == "index":
        print(len(open_index(index_dir)))
    else:
        print(build(args.what, index_dir))


if __name__ == "__main__":
    main()
