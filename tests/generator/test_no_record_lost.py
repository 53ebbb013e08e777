"""Issue 23: no path loses a record, refuses a resume it should allow, or decides with a check that is off.

Each test failed on the code before its fix (the docstring says how)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from fake_openai import FakeServer, Faults
from runs import jsonl, run_config

from ragloom.cli import main

JUDGE_NO_HELP = '{"states": false, "supports": false, "documents_used": []}'


def _ids(out: Path) -> tuple[list[str], list[str]]:
    return [r["job_id"] for r in jsonl(out / "examples.jsonl")], [f["job_id"] for f in jsonl(out / "failed.jsonl")]


def _edit(cfg: Path, **changes) -> None:
    data = yaml.safe_load(cfg.read_text())
    for dotted, value in changes.items():
        node = data
        *path, last = dotted.split("__")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    cfg.write_text(yaml.safe_dump(data))


# ---------------------------------------------------------------- item 0: one session per directory
def test_a_second_session_on_a_running_directory_is_refused_and_the_first_writes_every_job_once(
    wiki_index: Path, tmp_path: Path
) -> None:
    """Before: both sessions ran and examples.jsonl held extra copies of the jobs both asked."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with FakeServer(Faults(latency=1.0)) as srv:  # 60 jobs, 2 at a time: the first session runs for 30 s or more
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 60, backend={"concurrency": 2})
        cmd = [sys.executable, "-m", "ragloom", "generate", "--config", str(cfg), "--quiet", "--no-report"]
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lock = tmp_path / "out" / ".ragloom.lock"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and f"pid {first.pid}" not in (lock.read_text() if lock.exists() else ""):
            time.sleep(0.2)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        still_running = first.poll() is None
        _, err = first.communicate(timeout=600)
    assert still_running, "the first session ended before the second started: the test proves nothing"
    assert second.returncode == 2, second.stderr
    lines = [ln for ln in second.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in second.stderr
    assert "in use by another ragloom session" in lines[0] and f"pid {first.pid}" in lines[0]
    assert first.returncode == 0, err
    done, failed = _ids(tmp_path / "out")
    assert sorted(done + failed) == [f"0-{i:06d}" for i in range(60)]  # every job once


def test_the_lock_dies_with_its_process(wiki_index: Path, tmp_path: Path) -> None:
    """A SIGKILLed session leaves no stale lock: the next session resumes at once."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with FakeServer(Faults(latency=0.5)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 30, backend={"concurrency": 2})
        cmd = [sys.executable, "-m", "ragloom", "generate", "--config", str(cfg), "--quiet", "--no-report"]
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (tmp_path / "out" / "examples.jsonl").exists():
            time.sleep(0.2)
        first.kill()
        first.wait()
        rc = main(["generate", "--config", str(cfg), "--quiet", "--no-report"])
    assert rc == 0
    done, failed = _ids(tmp_path / "out")
    assert sorted(done + failed) == [f"0-{i:06d}" for i in range(30)]


# ---------------------------------------------------------------- item 3: where things live is not the run
def test_moving_the_scorer_or_a_cache_resumes_and_a_real_change_names_its_keys(
    wiki_index: Path, tmp_path: Path, capsys
) -> None:
    """Before: a new port, timeout or concurrency of quality.necessity_backend (and a moved cache) made the
    directory 'a different run', and the only advice was --overwrite, which deletes the records."""
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 6)
        scorer = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "scorer", "api_key_env": None}
        _edit(cfg, quality__necessity_backend=scorer, quality__judge_cache=str(tmp_path / "j1.jsonl"))
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
        before = (tmp_path / "out" / "examples.jsonl").read_bytes()
        served = srv.served
        moved = {**scorer, "base_url": "http://127.0.0.1:10/v1", "timeout": 9, "concurrency": 3}
        _edit(
            cfg,
            quality__necessity_backend=moved,
            quality__judge_cache=str(tmp_path / "j2.jsonl"),
            curation__cache_dir=str(tmp_path / "decontam-cache"),
            exemplar_filters__knowledge_cache=str(tmp_path / "k.jsonl"),
        )
        capsys.readouterr()
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0  # resumed, not refused
        assert srv.served == served  # nothing asked again
        _edit(cfg, sampling__temperature=0.2, quality__necessity_margin=0.3)
        capsys.readouterr()
        rc = main(["generate", "--config", str(cfg), "--quiet", "--no-report"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "sampling.temperature" in err and "quality.necessity_margin" in err
    assert "base_url" not in err and "judge_cache" not in err
    # the way that keeps the records comes first
    assert err.index("another output directory") < err.index("--overwrite")
    assert (tmp_path / "out" / "examples.jsonl").read_bytes() == before


# ---------------------------------------------------------------- item 6: one RA-DIT identity
def test_radit_lm_ft_started_from_the_cli_resumes_from_the_library(wiki_index: Path, tmp_path: Path) -> None:
    """Before: the CLI's identity held instruction_field, output_field and limit, the library's did not,
    so the library refused the CLI's directory as another run."""
    from ragloom import radit

    pairs = tmp_path / "pairs.jsonl"
    rows = [{"instruction": f"Who painted the Mona Lisa? ({i})", "output": "Leonardo da Vinci."} for i in range(4)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "lmft"
    rc = main(
        ["radit", "lm-ft", "--pairs", str(pairs), "--index", str(wiki_index), "--k", "2", "--out", str(out), "--quiet"]
    )
    assert rc == 0
    before = (out / "examples.jsonl").read_bytes()
    ds = radit.lm_ft(str(pairs), out=out, index=wiki_index, k=2, progress=False)
    assert len(ds) == 8 and (out / "examples.jsonl").read_bytes() == before  # resumed: nothing written again
    # and the other way round: a run the library started resumes from the CLI
    out2 = tmp_path / "lmft2"
    radit.lm_ft(str(pairs), out=out2, index=str(wiki_index), k=2, progress=False)
    rc = main(
        ["radit", "lm-ft", "--pairs", str(pairs), "--index", str(wiki_index), "--k", "2", "--out", str(out2), "--quiet"]
    )
    assert rc == 0 and len(jsonl(out2 / "examples.jsonl")) == 8


# ---------------------------------------------------------------- item 9: the judge settings do what they say
def test_the_judge_runs_when_it_is_the_only_check_on(wiki_index: Path, tmp_path: Path) -> None:
    """Before: with judge on and conformance and leak_screen off no gate was built; the judge never ran."""
    with FakeServer(Faults(judge_reply=JUDGE_NO_HELP, relevance_judge=True)) as srv:
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            4,
            paradigms={"useless_doc": 1.0},
            quality={"conformance": False, "leak_screen": False, "relevance": False, "judge": True},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
        judged = srv.counts["judge"]
    records = jsonl(tmp_path / "out" / "examples.jsonl")
    assert records and judged >= len(records)
    for r in records:
        assert r["quality"]["judge"]["found"] == "no_help" and r["quality"]["encoder"] is None


def test_a_judge_without_a_verdict_leaves_the_job_unfinished_not_rejected_by_the_check_that_is_off(
    wiki_index: Path, tmp_path: Path, capsys
) -> None:
    """Before: with conformance off and judge on, the encoder check still ran, and where the judge's reply
    was invalid its verdict rejected the pair as paradigm_mismatch."""
    with FakeServer(Faults(judge_reply="I think the documents are fine.")) as srv:
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            4,
            paradigms={"single_doc_answer": 1.0},
            quality={"conformance": False, "judge": True},
        )
        rc = main(["generate", "--config", str(cfg), "--quiet", "--no-report"])
    err = capsys.readouterr().err
    assert rc == 3, err  # unfinished: rerun to resume
    done, failed = _ids(tmp_path / "out")
    assert done == [] and all(f["reason"] != "paradigm_mismatch" for f in jsonl(tmp_path / "out" / "failed.jsonl"))
    stats = json.loads((tmp_path / "out" / "run.json").read_text())["stats"]
    assert stats["backend_errors"].get("judge_no_verdict", 0) >= 4 - len(failed)
    assert "paradigm_mismatch" not in stats.get("rejected", {})


# ---------------------------------------------------------------- item 10: cut at max_tokens is truncated
def test_a_parseable_reply_cut_at_max_tokens_is_rejected_as_truncated(wiki_index: Path, tmp_path: Path) -> None:
    """Before: the pipeline passed no finish reason to parse_pair, so a cut reply that still parsed was kept."""
    with FakeServer(Faults(rate_length_whole=1.0)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 4, paradigms={"useless_doc": 1.0})
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
        assert srv.counts["length_whole"] >= 4
    assert jsonl(tmp_path / "out" / "examples.jsonl") == []
    assert [f["reason"] for f in jsonl(tmp_path / "out" / "failed.jsonl")] == ["truncated"] * 4


# ---------------------------------------------------------------- items 11 and 12: one line, exit 2
def _run_dir_with_records(tmp_path: Path, wiki_index: Path, n: int = 3) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, n, paradigms={"useless_doc": 1.0})
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
    return tmp_path / "out"


def _one_line_exit_2(argv: list[str], capsys, *pieces: str) -> str:
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for piece in pieces:
        assert piece in err, (piece, err)
    return err


def test_audit_of_a_run_with_nothing_accepted_or_a_corrupt_run_json_is_one_line(
    wiki_index: Path, tmp_path: Path, capsys
) -> None:
    """Before: both ended in a traceback (datasets' FileNotFoundError; json's JSONDecodeError)."""
    out = _run_dir_with_records(tmp_path, wiki_index)
    (out / "examples.jsonl").unlink()
    _one_line_exit_2(["audit", str(out)], capsys, "no examples.jsonl", str(out))
    out2 = _run_dir_with_records(tmp_path / "b", wiki_index)
    (out2 / "run.json").write_text('{"plan_hash": "x", ')
    _one_line_exit_2(["audit", str(out2)], capsys, "run.json", "corrupt")


def test_bad_eval_sets_are_one_line_naming_the_file_before_anything_is_written(
    wiki_index: Path, tmp_path: Path, capsys
) -> None:
    """Before: a malformed JSON array, a JSONL row that is a string, a non-UTF-8 file and a missing split
    ended in tracebacks (JSONDecodeError, TypeError, UnicodeDecodeError, KeyError), after run.json was
    written."""
    import datasets

    bad = {
        "array.json": ('[{"question": "Who wrote Hamlet?"}, {"question": ', "array.json:1", "invalid JSON"),
        "strings.jsonl": ('"Who wrote Hamlet?"\n', "strings.jsonl:1", "got str"),
        "latin1.jsonl": ('{"question": "Qui a \xe9crit Hamlet ?"}\n'.encode("latin-1"), "latin1.jsonl", "not UTF-8"),
    }
    cases = []
    for name, (content, *pieces) in bad.items():
        p = tmp_path / name
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
        cases.append((str(p), pieces))
    ds_dir = tmp_path / "evalds"
    datasets.DatasetDict({"validation": datasets.Dataset.from_list([{"question": "Who wrote Hamlet?"}])}).save_to_disk(
        str(ds_dir)
    )
    cases.append((str(ds_dir), ["no split 'test'", "split"]))
    out = _run_dir_with_records(tmp_path / "run", wiki_index)
    for path, pieces in cases:
        _one_line_exit_2(["audit", str(out), "--decontaminate", f"evalset={path}"], capsys, *pieces)
    with FakeServer() as srv:
        for i, (path, pieces) in enumerate(cases):
            (tmp_path / f"g{i}").mkdir()
            cfg = run_config(
                tmp_path / f"g{i}",
                wiki_index,
                srv.base_url,
                2,
                curation={"dedup": {"enabled": False}, "decontaminate": [{"name": "evalset", "path": path}]},
            )
            _one_line_exit_2(["generate", "--config", str(cfg), "--quiet"], capsys, *pieces)
            assert not (tmp_path / f"g{i}" / "out").exists()  # nothing written


# ---------------------------------------------------------------- item 13: audit dedup keyed by position
def test_audit_finds_a_duplicate_when_record_ids_repeat(tmp_path: Path, capsys) -> None:
    """Before: the record's own id keyed the deduper, which ignores an id it has seen: the third record
    repeats the second's question and was missed because the second shared the first's id."""
    rows = [
        {"id": "a", "question": "Who painted the Mona Lisa?", "answer": "Leonardo da Vinci painted it."},
        {"id": "a", "question": "Which river flows through Cairo?", "answer": "The Nile flows through Cairo."},
        {"id": "b", "question": "Which river flows through Cairo?", "answer": "The Nile does."},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from ragloom.generator.audit.command import audit

    results, _ = audit(path)
    assert [("duplicate_instruction" in r["issues"]) for r in results] == [False, False, True]
    assert results[2]["scores"]["duplicate"]["of"] == "a" and results[2]["scores"]["duplicate"]["of_position"] == 1


# ---------------------------------------------------------------- item 14: audit judges with the run's settings
def test_audit_uses_the_runs_leak_gate_words_and_rank_band(wiki_index: Path, tmp_path: Path, monkeypatch) -> None:
    """Before: audit built its leak screen without the run's leak_gate_words and restated the band's 200."""
    from ragloom.generator.audit import auditor as audit_mod
    from ragloom.generator.audit.command import audit

    with FakeServer() as srv:
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            2,
            paradigms={"useless_doc": 1.0},
            quality={"conformance": False, "leak_gate_words": 5},
            distractors={"rank_band": [120, 170], "max_rank": 400},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
    seen = {}
    real = audit_mod.Auditor.__init__

    def spy(self, checker, **kw):  # type: ignore[no-untyped-def]
        seen.update(kw)
        real(self, checker, **kw)

    monkeypatch.setattr(audit_mod.Auditor, "__init__", spy)
    results, _ = audit(tmp_path / "out")
    assert seen["leak_gate_words"] == 5 and seen["band_start"] == 120 and seen["total_docs"] == 10
    assert results and all("distractor_rank" not in r["issues"] for r in results)  # band 120+ is not "too shallow"


# ---------------------------------------------------------------- item 15: export never replaces a file it did not write
def test_export_refuses_to_replace_a_readme_it_did_not_write(wiki_index: Path, tmp_path: Path, capsys) -> None:
    """Before: `ragloom export OUT --to train.jsonl` overwrote the user's ./README.md with the card."""
    out = _run_dir_with_records(tmp_path, wiki_index)
    target = tmp_path / "proj"
    target.mkdir()
    (target / "README.md").write_text("# My project\n\nDo not lose this.\n")
    err = _one_line_exit_2(
        ["export", str(out), "--to", str(target / "train.jsonl")], capsys, "README.md", "--card-to", "--overwrite"
    )
    assert "not a ragloom dataset card" in err
    assert (target / "README.md").read_text() == "# My project\n\nDo not lose this.\n"
    assert not (target / "train.jsonl").exists()  # refused before writing anything
    assert (
        main(
            ["export", str(out), "--to", str(target / "train.jsonl"), "--card-to", str(tmp_path / "card" / "README.md")]
        )
        == 0
    )
    assert (target / "README.md").read_text() == "# My project\n\nDo not lose this.\n"
    card = (tmp_path / "card" / "README.md").read_text()
    assert "ragloom" in card and "../proj/train.jsonl" in card
    # a card ragloom wrote is refreshed without asking; a foreign one only with --overwrite
    assert main(["export", str(out), "--to", str(tmp_path / "x" / "train.jsonl")]) == 0
    assert main(["export", str(out), "--to", str(tmp_path / "x" / "train.jsonl")]) == 0
    assert main(["export", str(out), "--to", str(target / "train.jsonl"), "--overwrite"]) == 0
    assert "Do not lose this" not in (target / "README.md").read_text()


# ---------------------------------------------------------------- item 16: dedup off embeds nothing on resume
def test_a_resume_with_dedup_off_embeds_nothing_already_written() -> None:
    """Before: `from_records` checked cosine_threshold, not `enabled`, and embedded every written instruction."""
    from ragloom.generator.curation.dedup import DedupConfig, Deduper

    calls: list[int] = []

    def embed(texts: list[str]):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        raise AssertionError("embedded with dedup off")

    written = [{"job_id": f"0-{i:06d}", "instruction": f"Question number {i} about rivers?"} for i in range(50)]
    d = Deduper.from_records(DedupConfig(enabled=False), written, embed=embed)
    assert calls == [] and d.check("Question number 3 about rivers?") is None


def test_a_relevance_judge_without_a_verdict_leaves_the_job_unfinished(wiki_index: Path, tmp_path: Path) -> None:
    """The same rule for the relevance judge: no valid verdict -> unfinished, never the encoder's fallback
    (relevance.py first let the encoder's verdict stand)."""
    with FakeServer(Faults(judge_reply=JUDGE_NO_HELP)) as srv:  # relevance prompts get a pair, not a verdict
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            4,
            paradigms={"useless_doc": 1.0},
            quality={"conformance": False, "judge": True},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 3
    assert jsonl(tmp_path / "out" / "examples.jsonl") == []
    assert all(f["reason"] != "off_topic" for f in jsonl(tmp_path / "out" / "failed.jsonl"))
