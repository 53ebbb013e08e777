"""`quality.relevance`: answers that do not address their question fail as `off_topic`, measured on
hand-labelled pairs with the real encoder; in `generate` they are asked again, then fail; `audit`
reports them; the key turns it off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai import FakeServer, Faults
from ragloom.generator.audit.command import audit, parse_fail_on
from ragloom.generator.config import Quality
from ragloom.generator.quality.conformance import ConformanceChecker
from ragloom.generator.quality.relevance import RelevanceCheck, RelevanceThresholds
from ragloom.retrieval import Encoder
from runs import jsonl, run_config

from ragloom.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(scope="module")
def check() -> RelevanceCheck:
    return RelevanceCheck(ConformanceChecker(Encoder()))


def figures(check: RelevanceCheck, name: str) -> tuple[dict[str, float], list[dict], list[dict]]:
    """Accuracy, precision and recall of flagging `off_topic` on a fixture, with its rows and verdicts."""
    rows = [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]
    verdicts = check.verdict([(r["question"], r["answer"]) for r in rows])
    flag = [not v["ok"] for v in verdicts]
    off = [r["label"] == "off_topic" for r in rows]
    tp = sum(f and o for f, o in zip(flag, off, strict=True))
    fp = sum(f and not o for f, o in zip(flag, off, strict=True))
    fn = sum(o and not f for f, o in zip(flag, off, strict=True))
    acc = sum(f == o for f, o in zip(flag, off, strict=True)) / len(rows)
    return {"accuracy": acc, "precision": tp / (tp + fp), "recall": tp / (tp + fn)}, rows, verdicts


def test_calibration_fixture_at_the_frozen_thresholds(check: RelevanceCheck) -> None:
    """75 pairs: right answers, wrong answers on topic, off-topic replies (the quickstart's among them).
    Measured: accuracy 0.96, precision 1.00, recall 0.89 (25 of 28)."""
    assert len(jsonl(FIXTURES / "relevance.jsonl")) >= 60
    got, _, _ = figures(check, "relevance.jsonl")
    assert got["accuracy"] >= 0.96 and got["precision"] == 1.0 and got["recall"] >= 0.89, got


def test_held_out_fixture_at_the_frozen_thresholds(check: RelevanceCheck) -> None:
    """37 pairs written after the thresholds were frozen. Measured: accuracy 0.95, precision 0.93,
    recall 0.93 (one answer saying "it" for Impressionism flagged, one short off-topic answer missed)."""
    got, rows, _ = figures(check, "relevance_heldout.jsonl")
    assert len(rows) >= 30
    assert got["accuracy"] >= 0.94 and got["precision"] >= 0.93 and got["recall"] >= 0.93, got


@pytest.mark.parametrize("name", ["relevance.jsonl", "relevance_heldout.jsonl"])
def test_relevance_is_not_truth_wrong_and_short_answers_on_topic_pass(check: RelevanceCheck, name: str) -> None:
    """Every wrong answer about what was asked, and every short on-topic answer ("Rome", "1889",
    "Sydney" for Australia's capital), passes: the check judges whether it answers, not whether it is right."""
    _, rows, verdicts = figures(check, name)
    kept = [(r["question"], r["answer"]) for r, v in zip(rows, verdicts, strict=True) if v["ok"]]
    wrong_or_short = [
        (r["question"], r["answer"]) for r in rows if r["kind"] in ("wrong", "short_wrong", "short_right", "wrong_long")
    ]
    assert len(wrong_or_short) >= 10
    assert set(wrong_or_short) <= set(kept)
    assert all(v["rule"] == "statement" for r, v in zip(rows, verdicts, strict=True) if r["kind"] == "short_right")


def test_the_quickstart_replies_that_ignore_their_question_are_off_topic(check: RelevanceCheck) -> None:
    """The README's accepted useless_doc answer and the quickstart's asker-voiced replies fail; its
    on-topic wrong answers (Beethoven for a 20th-century composer, fission for fusion) pass."""
    pairs = [
        ("Give an overview of the Industrial Revolution in Britain.", "The Industrial Revolution changed my life. "
         "I was more efficient, and I learned to care for others. I have no regrets about it. You are all proud of me!"),
        ("What historical temples should I not miss?", "I would like to go to the temple of the goddess Jagannath."),
        ("What was the most popular piano composer of the 20th century", "Ludwig van Beethoven"),
        ("What is the purpose of a nuclear fusion reactor?", "Nuclear fission is used to create electricity and heat "
         "water. It is used in nuclear reactors to produce electricity and heat water."),
    ]  # fmt: skip
    assert [v["ok"] for v in check.verdict(pairs)] == [False, False, True, True]


def test_the_config_defaults_are_the_calibrated_thresholds() -> None:
    assert Quality().relevance is True
    assert Quality().relevance_thresholds() == RelevanceThresholds()


def test_off_topic_replies_are_asked_again_then_fail_and_good_ones_pass(wiki_index: Path, tmp_path: Path) -> None:
    """A third of the prompts always get a fluent answer that ignores its question: those jobs are
    asked again, then fail as off_topic; the others are written with the verdict in quality.relevance,
    counted in run.json and on the card."""
    with FakeServer(Faults(rate_off_topic=0.35)) as srv:
        cfg = run_config(
            tmp_path, wiki_index, srv.base_url, 16, paradigms={"useless_doc": 1}, validation={"attempts": 2}
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
        served_off = srv.counts["off_topic"]
    out = tmp_path / "out"
    recs, failed = jsonl(out / "examples.jsonl"), jsonl(out / "failed.jsonl")
    off = [f for f in failed if f["reason"] == "off_topic"]
    assert off and recs and len(recs) + len(off) == 16
    assert all(f["attempts"] == 2 for f in off)  # asked again before failing
    assert served_off == 2 * len(off)
    for r in recs:
        assert "garden" not in r["answer"]
        rel = r["quality"]["relevance"]
        assert rel["ok"] is True and rel["answer"] >= 0.42 and rel["first_person"] == 0.0
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert stats["rejected"]["off_topic"] == 2 * len(off) and stats["failed"]["off_topic"] == len(off)
    assert stats["counts"]["off_topic_useless_doc"] == 2 * len(off)
    assert stats["counts"]["relevance_passed"] == len(recs)
    assert main(["export", str(out), "--to", str(tmp_path / "exp" / "t.jsonl")]) == 0
    card = (tmp_path / "exp" / "README.md").read_text()
    assert f"{len(recs)} records checked; off_topic rejections (last session): useless_doc {2 * len(off)}" in card


def test_relevance_off_never_decides_and_audit_reports_what_it_let_through(wiki_index: Path, tmp_path: Path) -> None:
    """With quality.relevance false the same off-topic replies are written, unchecked; auditing that
    run respects its config, while auditing its records as a plain dataset reports them as off_topic."""
    with FakeServer(Faults(rate_off_topic=0.35)) as srv:
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            16,
            paradigms={"useless_doc": 1},
            quality={"conformance": False, "relevance": False},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
    out = tmp_path / "out"
    recs = jsonl(out / "examples.jsonl")
    rambles = {r["id"] for r in recs if "garden" in r["answer"]}
    assert len(recs) == 16 and rambles  # nothing rejected them
    assert all("relevance" not in (r.get("quality") or {}) for r in recs)
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert "off_topic" not in stats["rejected"] and "relevance_passed" not in stats["counts"]

    results, summary = audit(out)  # the run's config: relevance off
    assert all("off_topic" not in r["issues"] for r in results)
    plain = tmp_path / "plain.jsonl"
    plain.write_text(
        "".join(json.dumps({"id": r["id"], "question": r["instruction"], "answer": r["answer"]}) + "\n" for r in recs)
    )
    results, summary = audit(plain)
    assert {r["id"] for r in results if "off_topic" in r["issues"]} == rambles
    assert summary.issues["off_topic"] == len(rambles)
    assert all(r["scores"]["relevance"]["ok"] is ("off_topic" not in r["issues"]) for r in results)
    assert parse_fail_on("off_topic") == {"off_topic"}


NO_HELP = '{"states": false, "supports": false, "documents_used": []}'  # the paradigm judge's verdict


def _judge_requests(srv: FakeServer) -> int:
    return sum("Does the answer address the question?" in str(r.get("messages")) for r in srv.requests)


def test_with_the_judge_on_combine_says_who_decides_and_replies_are_cached(wiki_index: Path, tmp_path: Path) -> None:
    """The judge (here a server that says no to every answer) overrules the encoder under
    `combine: judge`: every job fails as off_topic. Under `combine: encoder` the same pairs are
    written with the judge's "no" stored beside the encoder's "yes", and nothing is asked again: the
    judge's replies are cached by content (one request per pair, none the second time)."""
    cache = tmp_path / "judge.jsonl"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    quality = {"conformance": False, "judge": True, "judge_cache": str(cache)}
    with FakeServer(Faults(relevance_judge=False, judge_reply=NO_HELP)) as srv:
        cfg = run_config(
            tmp_path / "a",
            wiki_index,
            srv.base_url,
            6,
            paradigms={"useless_doc": 1},
            validation={"attempts": 1},
            quality={**quality, "combine": "judge"},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
        asked = _judge_requests(srv)
    failed = jsonl(tmp_path / "a" / "out" / "failed.jsonl")
    off = {f["job_id"] for f in failed if f["reason"] == "off_topic"}
    assert jsonl(tmp_path / "a" / "out" / "examples.jsonl") == [] and len(off) >= 4 and asked == len(off)
    # the others failed validation first (the fake server does not write multiple-choice answers)
    assert {f["reason"] for f in failed if f["job_id"] not in off} <= {"not_multiple_choice"}
    replies = [json.loads(json.loads(line)["reply"]) for line in cache.read_text().splitlines()]
    assert replies.count({"addresses_question": False}) == len(off)
    with FakeServer(Faults(relevance_judge=False, judge_reply=NO_HELP)) as srv:
        cfg = run_config(
            tmp_path / "b",
            wiki_index,
            srv.base_url,
            6,
            paradigms={"useless_doc": 1},
            validation={"attempts": 1},
            quality={**quality, "combine": "encoder"},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
        assert _judge_requests(srv) == 0  # every pair's verdict came from the cache
    recs = jsonl(tmp_path / "b" / "out" / "examples.jsonl")
    # conformance is off: the paradigm judge (a "no help" verdict, right for useless_doc) decides alone, the
    # encoder check never runs, so the jobs the relevance judge failed in (a) are all written here
    assert {r["id"] for r in recs} == off
    assert {f["reason"] for f in jsonl(tmp_path / "b" / "out" / "failed.jsonl")} <= {"not_multiple_choice"}
    for r in recs:
        rel = r["quality"]["relevance"]
        assert (rel["ok"], rel["encoder"], rel["judge"]) == (True, True, False)


def test_a_roman_numeral_or_a_mine_is_not_the_answer_speaking_of_itself(check: RelevanceCheck) -> None:
    pairs = [
        ("Which war ended with the Treaty of Versailles?", "World War I"),
        ("Who was queen of England when the Spanish Armada sailed?", "Elizabeth I was queen; her fleet beat the Armada in 1588."),
        ("What happened to the Kolar gold fields?", "The mine at Kolar, once among the deepest in the world, closed in 2001 as gold ran out."),
        ("What makes I Ching significant?", "I Ching is significant for its lasting influence on Chinese thought."),
    ]  # fmt: skip
    assert [v["first_person"] for v in check.verdict(pairs)] == [0.0, 0.0, 0.0, 0.0]
