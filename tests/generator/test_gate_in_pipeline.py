"""The quality gate inside `generate`: paradigm conformance rejects and re-asks, verdicts are stored,
and distractors are screened for the answer."""

from __future__ import annotations

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


def test_distractors_never_carry_the_answer_and_leaks_are_counted(wiki_index: Path, tmp_path: Path) -> None:
    """With the leak screen on, no distractor contains the answer's key spans (checked here by hand on the
    numbers of 3+ digits each answer holds), and the screened candidates are counted in run.json."""
    import json
    import re

    with FakeServer(Faults(grounded=True)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 24, paradigms={"single_doc_answer": 1})
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
    recs = jsonl(tmp_path / "out" / "examples.jsonl")
    checked = 0
    for r in recs:
        numbers = set(re.findall(r"\b\d{3,}\b", r["answer"]))
        for d in r["documents"]:
            if d["role"] == "distractor" and numbers:
                checked += 1
                assert not numbers & set(re.findall(r"\b\d{3,}\b", d["text"])), (r["answer"], d["title"])
            if d["role"] == "distractor":
                assert d["rule"] in {"band", "widened", "random"} and (d["rank"] is None or d["rank"] >= 200)
    assert checked > 20  # the check above ran on many distractors, not on none
    stats = json.loads((tmp_path / "out" / "run.json").read_text())["stats"]
    assert stats["counts"].get("distractor_rule_band", 0) > 0
