"""Precision and recall of the distractor leak screen on the hand-labelled fixtures, per check.

    python bench/leak_eval.py [calibration|heldout ...] [--old] [--json bench/results/leaks.json]
    python bench/leak_eval.py calibration --evidence   # every key span found: share, near, similarity
    python bench/leak_eval.py calibration heldout --scores [--no-statement]
    python bench/leak_eval.py calibration heldout heldout2 --scores --encoder DIR   # another encoder
    python bench/leak_eval.py heldout4 --no-quantities   # before quantities were key spans
    python bench/leak_eval.py heldout5 --no-units        # quantities with a magnitude only, no unit
    python bench/leak_eval.py heldout5 --no-tie-spans    # before two key spans in a sentence tied them

The fixtures (bench/leak_fixture.py) hold, per record, the distractors the rank band gave for its
question (labelled leak-free unless read as a leak) and planted distractors that carry the answer
(labelled paraphrase, number, name, date). Span shares come from the fixtures' corpus (the same
passages, titles and texts, as the index's store). `--old`: the rule before issue 25 (every key
span found is a leak), for the before/after figures. `--no-statement`: the rule before the
statement check (issue 25, second pass). `--no-quantities`: before one- and two-digit numbers with
a magnitude ("71 million", "40 percent") were key spans. `--no-units`: before a unit carried one too
("72 days", "42 kilometres"). `--no-tie-spans`: before a sentence holding two rare key spans
of the answer tied them (`quality.leak_tie_spans: 0`). `--scores`: the statement check's scores (leak-free highest,
leaks lowest), where its threshold `quality.leak_statement` was set. `--encoder`: the screen's
checks embed with this sentence-transformers model (a name or a local directory) instead of the
default all-MiniLM-L6-v2, to measure whether a larger encoder separates what MiniLM cannot (its
thresholds are MiniLM's: read `--scores` to place one for it on the calibration set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

CHECKS = ("key_span", "meaning", "statement", "supports_answer")


def load(name: str) -> list[dict[str, Any]]:
    path = ROOT / "tests" / "fixtures" / "leaks" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def corpus_frequency() -> Any:
    from leak_corpus import leak_corpus
    from ragloom.generator.quality.span_freq import SpanFrequency

    return SpanFrequency.from_texts(f"{r['title']}\n{r['text']}" for r in leak_corpus())


def screen_of(screen: Any, rec: dict[str, Any]) -> Any:
    from ragloom.retrieval import Passage

    sources = [Passage(s["id"], s["title"], s["text"]) for s in rec["sources"]]
    return screen.screen_for(question=rec["question"], answer=rec["answer"], paradigm=rec["paradigm"], sources=sources)


def fired(s: Any, d: dict[str, Any]) -> dict[str, bool]:
    from ragloom.retrieval import Passage

    p = Passage(d["id"], d["title"], d["text"])
    return {c: bool(getattr(s, c)(p)) for c in CHECKS}


def evaluate(screen: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per check: precision and recall over every distractor; per record: the leak-free records flagged;
    per planted kind: how many were found (by any check)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    leaks = clean = 0
    flagged_clean_records: list[str] = []
    clean_records = 0
    kinds: dict[str, list[int]] = {}
    missed: list[str] = []
    false_flags: list[str] = []
    for rec in records:
        s = screen_of(screen, rec)
        record_clean = all(d["leak"] is None for d in rec["band"])
        record_flagged = False
        for d in rec["band"] + rec["planted"]:
            f = fired(s, d)
            f["any"] = any(f.values())
            if d["leak"]:
                leaks += 1
                tp.update(c for c, v in f.items() if v)
                k = kinds.setdefault(d["leak"], [0, 0])
                k[0] += f["any"]
                k[1] += 1
                if not f["any"]:
                    missed.append(f"{rec['id']} {d['leak']}: {d['title']}")
            else:
                clean += 1
                fp.update(c for c, v in f.items() if v)
                if f["any"]:
                    record_flagged = True
                    false_flags.append(f"{rec['id']} {[c for c in CHECKS if f[c]]}: {d['title']}")
        if record_clean:
            clean_records += 1
            if record_flagged:
                flagged_clean_records.append(rec["id"])
    per_check = {}
    for c in (*CHECKS, "any"):
        flagged = tp[c] + fp[c]
        per_check[c] = {
            "flagged": flagged,
            "true": tp[c],
            "precision": round(tp[c] / flagged, 3) if flagged else None,
            "recall": round(tp[c] / leaks, 3) if leaks else None,
        }
    return {
        "records": len(records),
        "distractors": leaks + clean,
        "leaks": leaks,
        "per_check": per_check,
        "leak_free_records": clean_records,
        "leak_free_records_flagged": len(flagged_clean_records),
        "leak_free_flag_rate": round(len(flagged_clean_records) / clean_records, 3) if clean_records else None,
        "found_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(kinds.items())},
        "missed": missed,
        "false_flags": false_flags,
    }


def make_screen(
    old: bool,
    no_statement: bool = False,
    encoder: str | None = None,
    no_quantities: bool = False,
    no_units: bool = False,
    no_tie_spans: bool = False,
) -> Any:
    from ragloom.generator.config import Quality
    from ragloom.generator.quality.conformance import ConformanceChecker
    from ragloom.generator.quality.leaks import STATEMENT, LeakRule, LeakScreen
    from ragloom.retrieval import Encoder, EncoderSpec

    if no_quantities:  # before quantities ("71 million") were key spans
        from ragloom.generator.quality import leaks

        leaks.quantities = lambda text: frozenset()
    if no_units:  # before a unit ("72 days") carried a quantity: only magnitudes and percentages
        from ragloom.generator.quality import leaks, spans

        leaks.quantities = lambda text: frozenset(
            x for x in spans.quantities(text) if x.split(" ", 1)[1] not in spans._UNITS
        )
    q = Quality(leak_statement=STATEMENT)  # the defaults (the frozen thresholds), the statement check opted in
    checker = ConformanceChecker(Encoder(EncoderSpec(name=encoder)) if encoder else Encoder(), q.thresholds())
    if old:  # before issue 25: any key span found is a leak; sentences vs the answer's sentences at 0.7
        from ragloom.generator.quality import leaks
        from ragloom.generator.quality.spans import split_sentences

        leaks.answer_parts = lambda answer: split_sentences(answer) or [answer]  # no clauses then
        return LeakScreen(
            checker, rule=LeakRule(span_share=1.0, tie_words=0, tie_similarity=-1.0, statement=2.0), similarity=0.7
        )
    return LeakScreen(
        checker,
        similarity=q.leak_similarity,
        gate_words=q.leak_gate_words,
        frequency=corpus_frequency(),
        rule=replace(
            q.leak_rule(),
            statement=2.0 if no_statement else q.leak_statement,  # 2.0: never fires
            tie_spans=0 if no_tie_spans else q.leak_tie_spans,
        ),
    )


def dump_evidence(screen: Any, records: list[dict[str, Any]]) -> None:
    from ragloom.retrieval import Passage

    for rec in records:
        s = screen_of(screen, rec)
        for d in rec["band"] + rec["planted"]:
            for e in s.evidence(Passage(d["id"], d["title"], d["text"]), full=True):
                print(
                    json.dumps(
                        {
                            "rec": rec["id"],
                            "leak": d["leak"],
                            "title": d["title"],
                            "span": e.span,
                            "share": round(e.share, 4),
                            "near": e.near,
                            "sim": round(e.similarity, 3),
                        },
                        ensure_ascii=False,
                    )
                )


def statement_scores(screen: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The statement check's score of every distractor: the highest leak-free ones and each planted
    or band-labelled leak's, lowest first (where a threshold can go)."""
    from ragloom.retrieval import Passage

    clean, leaks = [], []
    for rec in records:
        s = screen_of(screen, rec)
        for d in rec["band"] + rec["planted"]:
            score = round(s.statement_score(Passage(d["id"], d["title"], d["text"])), 3)
            (leaks if d["leak"] else clean).append((score, d["leak"], f"{rec['id']}: {d['title']}"))
    return {"leak_free_highest": sorted(clean, reverse=True)[:5], "leaks_lowest": sorted(leaks)[:12]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sets", nargs="*", default=["calibration", "heldout"])
    ap.add_argument("--old", action="store_true")
    ap.add_argument("--evidence", action="store_true")
    ap.add_argument("--no-statement", action="store_true", help="the rule before the statement check")
    ap.add_argument("--scores", action="store_true", help="the statement check's scores")
    ap.add_argument("--no-quantities", action="store_true", help="the rule before quantities were key spans")
    ap.add_argument("--no-units", action="store_true", help="the rule before units carried quantities")
    ap.add_argument("--no-tie-spans", action="store_true", help="quality.leak_tie_spans: 0")
    ap.add_argument("--encoder", help="a sentence-transformers model (name or directory) for the checks")
    ap.add_argument("--json")
    args = ap.parse_args()
    screen = make_screen(
        args.old, args.no_statement, args.encoder, args.no_quantities, args.no_units, args.no_tie_spans
    )
    out: dict[str, Any] = {name: evaluate(screen, load(name)) for name in args.sets}
    if args.scores:
        out["statement_scores"] = {name: statement_scores(screen, load(name)) for name in args.sets}
    if args.evidence:
        for name in args.sets:
            dump_evidence(screen, load(name))
    out["rule"] = "old: any key span" if args.old else f"{screen.rule}, similarity={screen.similarity}"
    emit(out, args.json)


def emit(out: dict[str, Any], path: str | None) -> None:
    """Print the figures, and write them to `path` when one is given."""
    print(json.dumps(out, indent=2, ensure_ascii=False))
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
