"""The quality gate inside `generate`: paradigm conformance rejects and re-asks, verdicts are stored,
and distractors are screened for the answer."""

from __future__ import annotations

import re
from pathlib import Path

from fake_openai import FakeServer, Faults
from runs import jsonl, run_config

from ragloom.cli import main


def test_conformance_keeps_answers_the_source_states_and_rejects_useless_doc_ones(
    wiki_index: Path, tmp_path: Path
) -> None:
    """The server's answer restates document 1. For single_doc_answer that conforms (the source states
    it); for useless_doc it cannot (the document is meant not to help): those are re-asked and fail."""
    with FakeServer(Faults(grounded=True)) as srv:
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            16,
            paradigms={"single_doc_answer": 1, "useless_doc": 1},
            quality={"conformance": True},
            validation={"attempts": 2},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
    recs = jsonl(tmp_path / "out" / "examples.jsonl")
    failed = jsonl(tmp_path / "out" / "failed.jsonl")
    by = {p: [r for r in recs if r["paradigm"] == p] for p in ("single_doc_answer", "useless_doc")}
    assert by["useless_doc"] == []
    assert len(by["single_doc_answer"]) >= 6  # most of the 8 get through
    for r in by["single_doc_answer"]:
        assert r["quality"]["found"] == "states" and r["quality"]["ok"] is True and r["quality"]["scores"]
    assert {f["reason"] for f in failed if f["job_id"] not in {r["id"] for r in recs}} <= {"paradigm_mismatch"}
    useless_failed = [f for f in failed if f["reason"] == "paradigm_mismatch"]
    assert len(useless_failed) >= 8 and all(f["attempts"] == 2 for f in useless_failed)  # asked again first
    # the card accounts for it: per paradigm, records checked and conforming, and the mismatches
    assert main(["export", str(tmp_path / "out"), "--to", str(tmp_path / "exp" / "t.jsonl")]) == 0
    card = (tmp_path / "exp" / "README.md").read_text()
    n = len(by["single_doc_answer"])
    assert f"| single_doc_answer | {n} | {n} |" in card
    assert "| useless_doc | 0 | 0 | " in card and "## Quality" in card


def test_distractors_never_carry_the_answer_and_leaks_are_counted(wiki_corpus: Path, tmp_path: Path) -> None:
    """The grounded fake server answers with its source's first sentence. The corpus is the tests' 400
    Wikipedia summaries plus, for each, a mirror that restates its first sentence (as mirrored and
    merged articles do in real corpora), and the band is ranks [1, 40): each question's mirror (or
    original) is among the candidates, so the screen has answer-bearing passages to remove. With the
    screen on, no distractor holds the answer's sentence and the screened candidates are counted in
    run.json; with `quality.leak_screen: false` both assertions fail (checked)."""
    import json

    from ragloom.generator.quality.leaks import LEAK_CHECKS
    from ragloom.retrieval import CorpusSpec, build_index

    rows = [json.loads(line) for line in wiki_corpus.read_text().splitlines()]
    mirrors = []
    for r in rows:
        first = re.split(r"(?<=[.!?])\s", r["text"].strip())[0]
        text = f"{first} It is described here as in other reference works."
        mirrors.append({"id": f"mirror:{r['title']}", "title": f"{r['title']} (mirror)", "text": text})
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows + mirrors))
    index = tmp_path / "idx"
    build_index(CorpusSpec(str(corpus)), index)
    with FakeServer(Faults(grounded=True)) as srv:
        cfg = run_config(
            tmp_path,
            index,
            srv.base_url,
            24,
            paradigms={"single_doc_answer": 1},
            distractors={"rank_band": [1, 40], "max_rank": 200},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
    recs = jsonl(tmp_path / "out" / "examples.jsonl")
    assert len(recs) >= 20
    for r in recs:
        said = r["answer"].split(" explains that ", 1)[1].lower()  # the source's first sentence
        for d in r["documents"]:
            if d["role"] == "distractor":
                assert said not in d["text"].lower(), (r["answer"], d["title"])
                assert d["rule"] in {"band", "widened", "random"} and (d["rank"] is None or d["rank"] >= 1)
    counts = json.loads((tmp_path / "out" / "run.json").read_text())["stats"]["counts"]
    leaks = {k.removeprefix("distractor_leak_"): v for k, v in counts.items() if k.startswith("distractor_leak_")}
    assert set(leaks) <= set(LEAK_CHECKS) and sum(leaks.values()) >= 5, counts
    assert counts.get("distractor_rule_band", 0) > 0
