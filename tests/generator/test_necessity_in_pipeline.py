"""`quality.necessity: true` inside `generate`, against the fake server: its completions endpoint
scores a token -0.1 when the prompt's documents hold it and -3.0 otherwise, and its grounded answers
restate document 1 only. So a single_doc_answer needs its document (passes, with the scores in the
record), and a multi_doc_answer whose answer comes from document 1 alone has sources it does not
use (fails as `source_unused` after its attempts)."""

from __future__ import annotations

import json
from pathlib import Path

from fake_openai import FakeServer, Faults
from runs import jsonl, run_config

from ragloom.cli import main


def _cfg(tmp: Path, index: Path, url: str, count: int, **quality) -> Path:  # type: ignore[no-untyped-def]
    return run_config(
        tmp,
        index,
        url,
        count,
        paradigms={"single_doc_answer": 1, "multi_doc_answer": 1},
        quality={"conformance": False, "necessity": True, **quality},
        validation={"attempts": 2},
    )


def test_needed_sources_pass_with_their_scores_and_unused_ones_fail(wiki_index: Path, tmp_path: Path) -> None:
    with FakeServer(Faults(grounded=True)) as srv:
        assert main(["generate", "--config", str(_cfg(tmp_path, wiki_index, srv.base_url, 12)), "--quiet"]) == 0
    out = tmp_path / "out"
    recs, failed = jsonl(out / "examples.jsonl"), jsonl(out / "failed.jsonl")
    assert len(recs) + len(failed) == 12
    singles = [r for r in recs if r["paradigm"] == "single_doc_answer"]
    assert singles and all(r["quality"]["necessity"]["gain"] > 0.1 for r in singles)
    for r in singles:  # the scores are the record's, from the two prompts (with and without the document)
        n = r["quality"]["necessity"]
        assert n["with_sources"] > n["closed_book"] and abs(n["gain"] - (n["with_sources"] - n["closed_book"])) < 1e-3
    # every multi_doc_answer job failed (its answer uses document 1 only), after both its attempts
    assert not [r for r in recs if r["paradigm"] == "multi_doc_answer"] and len(singles) == len(recs)
    assert failed and all(f["reason"] == "source_unused" and f["attempts"] == 2 for f in failed)
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert stats["counts"]["necessity_source_unused"] == 2 * len(failed)  # each job asked twice
    assert stats["rejected"]["source_unused"] == 2 * len(failed)
    assert main(["export", str(out), "--to", str(tmp_path / "ds.jsonl")]) == 0
    card = (tmp_path / "README.md").read_text()
    assert f"source_unused {2 * len(failed)}" in card and f"passed {len(singles)}" in card
    assert "paradigm conformance: not checked" in card  # necessity scores are not a conformance verdict


def test_without_necessity_the_same_run_keeps_the_multi_doc_answers(wiki_index: Path, tmp_path: Path) -> None:
    # the control: the failures above come from the necessity check, not from anything else
    with FakeServer(Faults(grounded=True)) as srv:
        cfg = _cfg(tmp_path, wiki_index, srv.base_url, 12, necessity=False)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    recs = jsonl(tmp_path / "out" / "examples.jsonl")
    assert len(recs) == 12 and any(r["paradigm"] == "multi_doc_answer" for r in recs)
    assert all("necessity" not in (r.get("quality") or {}) for r in recs)


def test_a_scorer_without_log_probabilities_stops_the_run_before_anything_is_written(
    wiki_index: Path, tmp_path: Path, capsys
) -> None:
    with FakeServer(Faults(no_logprobs=True)) as srv:
        assert main(["generate", "--config", str(_cfg(tmp_path, wiki_index, srv.base_url, 4)), "--quiet"]) == 2
        asked_chat = [r for r in srv.requests if "messages" in r]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "quality.necessity" in err[0] and "necessity_backend" in err[0], err
    assert not (tmp_path / "out" / "run.json").exists() and not asked_chat


def test_a_scorer_that_goes_down_mid_run_leaves_its_jobs_unfinished_not_written_unscored(
    wiki_index: Path, tmp_path: Path, capsys
) -> None:
    # the scorer answers its start-up probe, then every request fails: a record it could not score
    # for that reason was once written as "unscored" (and a rerun would judge it differently); the
    # jobs stay unfinished for a resume instead, and the run says the server is the problem
    with FakeServer(Faults(grounded=True)) as srv, FakeServer(Faults(down_after=1)) as scorer:
        scoring = {"type": "openai", "base_url": scorer.base_url, "model": "fake", "api_key_env": None}
        scoring |= {"max_retries": 0, "concurrency": 4}
        cfg = _cfg(tmp_path, wiki_index, srv.base_url, 6, necessity_backend=scoring)
        code = main(["generate", "--config", str(cfg), "--quiet"])
    out = tmp_path / "out"
    assert code == 3, capsys.readouterr()  # unfinished: rerun to resume
    failed = jsonl(out / "failed.jsonl")  # only what the generation itself rejected (e.g. not_multiple_choice)
    assert jsonl(out / "examples.jsonl") == [] and len(failed) < 6
    assert not {f["reason"] for f in failed} & {"answerable_closed_book", "source_unused"}
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert "necessity_unscored" not in stats["counts"]
    assert sum(stats["backend_errors"].values()) == 6 - len(failed)
