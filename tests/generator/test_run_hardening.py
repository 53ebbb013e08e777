"""Per-record problems stay per-record, and the run directory never mixes or duplicates runs.

Each test here failed on the code before the library-and-hardening change (see its docstring)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from fake_openai import FakeServer, Faults
from runs import jsonl, kill_at, run_config

from ragloom.cli import main


def _ids(out: Path) -> tuple[list[str], list[str]]:
    return [r["job_id"] for r in jsonl(out / "examples.jsonl")], [f["job_id"] for f in jsonl(out / "failed.jsonl")]


def _plan_ids(n: int) -> list[str]:
    return [f"0-{i:06d}" for i in range(n)]


def test_300_jobs_with_context_400s_and_no_response_format_finish(wiki_index: Path, tmp_path: Path, capsys) -> None:
    """5% of prompts get a context-length 400 and the server supports no response_format, at concurrency
    32. Before: the first 400 stopped the run (and every resume) with 0 records; the first step-down made
    every other in-flight rejection fatal. Now every job is written once or failed once with its reason."""
    faults = Faults(rate_too_long=0.05, reject_json_schema=True, reject_json_object=True, latency=0.005)
    with FakeServer(faults) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 300, backend={"concurrency": 32})
        rc = main(["generate", "--config", str(cfg), "--quiet"])
        sent_formats = {(r.get("response_format") or {}).get("type") for r in srv.requests if "messages" in r}
        too_long = srv.counts["too_long"]
    err = capsys.readouterr().err
    assert rc == 0, err  # finished (with failures), not "server down" (3) nor a user error (2)
    assert "finished with failures" in err and "prompt_too_long" in err
    done, failed = _ids(tmp_path / "out")
    assert sorted(done + failed) == _plan_ids(300)  # each job exactly once
    reasons = [f["reason"] for f in jsonl(tmp_path / "out" / "failed.jsonl")]
    # the fake server never writes multiple-choice questions: those jobs fail validation, as always
    assert set(reasons) <= {"prompt_too_long", "not_multiple_choice"}
    assert 0 < reasons.count("prompt_too_long") == too_long < 40
    assert None in sent_formats  # the run stepped down to plain requests


def test_step_down_under_concurrency_resends_every_rejected_request() -> None:
    """16 requests in flight at once, all rejected for json_schema then json_object. Before: only the
    first rejection stepped down; the others were judged against the already-changed mode and raised."""
    from ragloom.generator.backends import ChatRequest, make_backend
    from ragloom.generator.config import OpenAIBackendConfig

    with FakeServer(Faults(reject_json_schema=True, reject_json_object=True, latency=0.05)) as srv:
        cfg = OpenAIBackendConfig(type="openai", base_url=srv.base_url, model="fake", api_key_env=None, concurrency=16)
        backend = make_backend(cfg)
        reqs = [ChatRequest([{"role": "user", "content": f"[Document 1] T{i}\nq"}], json_schema={}) for i in range(16)]

        async def go():  # type: ignore[no-untyped-def]
            try:
                return await backend.chat(reqs)
            finally:
                await backend.aclose()

        results = asyncio.run(go())
        counts = dict(srv.counts)
    assert all(r.error is None and r.failure is None and "T" in r.text for r in results)
    assert counts["rejected_schema"] == 16  # all sent with json_schema before the first answer came back
    assert backend.describe()["structured_output"] == "off"


def test_empty_content_is_rejected_and_asked_again(wiki_index: Path, tmp_path: Path) -> None:
    """A 200 whose message is empty used to count as a transport failure: the job never finished and
    the run exited 3. It is now a rejection (`empty_response`), asked again like any other."""
    with FakeServer(Faults(rate_empty_content=0.3, seed=3)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 40)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["stats"]["rejected"].get("empty_response", 0) > 0
    assert run["stats"]["backend_errors"] == {}
    done, failed = _ids(tmp_path / "out")
    assert sorted(done + failed) == _plan_ids(40)


def test_prompt_over_max_prompt_tokens_is_cut_or_fails_before_sending(wiki_index: Path, tmp_path: Path) -> None:
    """Sources are cut to fit backend.max_prompt_tokens (and recorded); where even that cannot fit, the
    job fails as prompt_too_long and no request is sent for it."""
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 10, backend={"max_prompt_tokens": 650})
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        sent = [r["messages"][0]["content"] for r in srv.requests if "messages" in r]
    recs = jsonl(tmp_path / "out" / "examples.jsonl")
    cut = [r for r in recs if r["generation"].get("truncated_sources")]
    assert cut, "a 650-token budget must cut some multi-document prompts"
    assert all(len(p) / 3 <= 650 for p in sent)
    (tmp_path / "tiny").mkdir()
    with FakeServer() as srv:
        cfg = run_config(tmp_path / "tiny", wiki_index, srv.base_url, 5, backend={"max_prompt_tokens": 100})
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        assert not [r for r in srv.requests if "messages" in r]
    assert {f["reason"] for f in jsonl(tmp_path / "tiny" / "out" / "failed.jsonl")} == {"prompt_too_long"}


def test_retry_failed_leaves_one_line_per_job(wiki_index: Path, tmp_path: Path) -> None:
    """Before: --retry-failed left the old failed.jsonl lines after the job succeeded, and a second
    failure appended a duplicate job id."""
    out = tmp_path / "out"
    with FakeServer(Faults(rate_bad_json=1.0)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 12, validation={"attempts": 1})
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        assert len(jsonl(out / "failed.jsonl")) == 12
        # failing again: still one line per job
        assert main(["generate", "--config", str(cfg), "--quiet", "--retry-failed"]) == 0
    assert sorted(_ids(out)[1]) == _plan_ids(12)
    with FakeServer() as srv:
        args = [
            "generate",
            "--config",
            str(cfg),
            "--quiet",
            "--retry-failed",
            "--set",
            f"backend.base_url={srv.base_url}",
        ]
        assert main(args) == 0
    done, failed = _ids(out)
    assert sorted(done) == _plan_ids(12) and failed == []


def test_overwrite_discards_orphaned_examples(wiki_index: Path, tmp_path: Path) -> None:
    """Before: with examples.jsonl but no run.json, --overwrite kept the old lines and took them as done."""
    out = tmp_path / "out"
    out.mkdir()
    stale = {"id": "0-000000", "job_id": "0-000000", "paradigm": "useless_doc", "instruction": "stale"}
    (out / "examples.jsonl").write_text(json.dumps(stale) + "\n")
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 5)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 2  # refused without --overwrite
        assert main(["generate", "--config", str(cfg), "--quiet", "--overwrite"]) == 0
    recs = jsonl(out / "examples.jsonl")
    assert sorted(_ids(out)[0] + _ids(out)[1]) == _plan_ids(5)  # all five jobs ran again
    assert recs and all(r["instruction"] != "stale" for r in recs)


def test_an_index_rebuilt_at_the_same_path_is_another_run(wiki_corpus: Path, tmp_path: Path, capsys) -> None:
    """Before: the plan hash ignored the index's contents, so a rebuilt index resumed into the old run."""
    from ragloom.retrieval import CorpusSpec, build_index

    idx = tmp_path / "idx"
    lines = wiki_corpus.read_text().splitlines()
    (tmp_path / "a.jsonl").write_text("\n".join(lines[:300]) + "\n")
    build_index(CorpusSpec(str(tmp_path / "a.jsonl")), idx)
    with FakeServer() as srv:
        cfg = run_config(tmp_path, idx, srv.base_url, 4)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()][:250]
        (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        build_index(CorpusSpec(str(tmp_path / "b.jsonl")), idx, overwrite=True)
        capsys.readouterr()
        assert main(["generate", "--config", str(cfg), "--quiet", "--set", "count=8"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a different run" in err[0] and "index" in err[0]


def test_an_edited_template_is_another_run(wiki_index: Path, tmp_path: Path, capsys) -> None:
    """Before: the plan hash ignored the template text, so an edited template resumed into the old run."""
    from importlib import resources

    tdir = tmp_path / "tpl"
    tdir.mkdir()
    builtin = resources.files("ragloom.prompts")
    (tdir / "useless_doc.j2").write_text(builtin.joinpath("useless_doc.j2").read_text())
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 4, templates=str(tdir))
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        (tdir / "useless_doc.j2").write_text((tdir / "useless_doc.j2").read_text() + "\nBe concise.\n")
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 2
    assert "holds a different run" in capsys.readouterr().err


def test_resume_after_the_knowledge_filter_keeps_the_plan(wiki_index: Path, tmp_path: Path) -> None:
    """Exemplars whose decision failed were not cached: the next run asked again, decided otherwise,
    changed the plan and refused to resume. Undecided decisions are now cached (and kept)."""
    ex = tmp_path / "ex.jsonl"
    texts = [
        "Write a poem about the sea at night.",
        "Write a joke about a cat and a dog.",
        "Write a haiku about autumn leaves falling.",
        "Who painted the Mona Lisa and when was it painted?",
        "What is the tallest mountain on Earth and where is it?",
        "What does photosynthesis produce in plants and algae?",
    ]
    ex.write_text("".join(json.dumps({"instruction": t}) + "\n" for t in texts))
    extra = {"exemplars": [{"source": str(ex)}], "exemplar_filters": {"knowledge_filter": True}}
    backend = {"concurrency": 1, "max_retries": 0}
    with FakeServer(Faults(first=["500", "500", "500"])) as srv:  # the three creative ones get no decision
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 12, backend=backend, **extra)
        assert main(["generate", "--config", str(cfg), "--quiet"]) in (0, 3)
    with FakeServer() as srv:
        args = ["generate", "--config", str(cfg), "--quiet", "--set", f"backend.base_url={srv.base_url}"]
        assert main(args) == 0  # the same plan: resumed, not refused
    done, failed = _ids(tmp_path / "out")
    assert sorted(done + failed) == _plan_ids(12)
    cache = jsonl(tmp_path / "out" / "knowledge_filter.jsonl")
    assert len(cache) == 6 and sum(e["helps"] is None for e in cache) == 3


def _records(out: Path) -> dict[str, tuple]:
    return {
        r["id"]: (r["instruction"], r["answer"], [(d["id"], d["role"], d["rank"]) for d in r["documents"]])
        for r in jsonl(out / "examples.jsonl")
    }


def test_a_killed_and_resumed_run_equals_an_uninterrupted_one(wiki_index: Path, tmp_path: Path) -> None:
    """Same config and seed: the records of a run killed twice and resumed are those of a clean run."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with FakeServer(Faults(latency=0.01)) as srv:
        clean = run_config(tmp_path / "a", wiki_index, srv.base_url, 200)
        assert main(["generate", "--config", str(clean), "--quiet"]) == 0
        cfg = run_config(tmp_path / "b", wiki_index, srv.base_url, 200)
        out = tmp_path / "b" / "out"
        kill_at(cfg, out, (40, 120))
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    a, b = _records(tmp_path / "a" / "out"), _records(out)
    assert len(a) >= 150 and a == b
    fa = sorted((f["job_id"], f["reason"]) for f in jsonl(tmp_path / "a" / "out" / "failed.jsonl"))
    assert fa == sorted((f["job_id"], f["reason"]) for f in jsonl(out / "failed.jsonl"))


def test_the_library_works_inside_a_running_event_loop(wiki_index: Path, tmp_path: Path) -> None:
    """Jupyter runs cells inside an event loop, where asyncio.run raises. `await ragloom.agenerate`
    runs in that loop, and `ragloom.generate` works there too; both return a datasets.Dataset."""
    import datasets

    import ragloom

    with FakeServer() as srv:
        cfg = yaml.safe_load(run_config(tmp_path, wiki_index, srv.base_url, 6).read_text())

        async def notebook_cell():  # type: ignore[no-untyped-def]
            ds = await ragloom.agenerate(cfg, progress=False)
            more = ragloom.generate({**cfg, "count": 9}, progress=False, overwrite=True)
            return ds, more

        ds, more = asyncio.run(notebook_cell())
    done, failed = _ids(tmp_path / "out")
    assert len(done) + len(failed) == 9  # the second call resumed nothing: --overwrite, a new plan
    assert (
        isinstance(ds, datasets.Dataset)
        and 4 <= len(ds) <= 6
        and set(ds["paradigm"])
        <= {
            "useless_doc",
            "single_doc_support",
            "multi_doc_support",
            "single_doc_answer",
            "multi_doc_answer",
        }
    )
    assert isinstance(more, datasets.Dataset) and len(more) == len(done)
    assert len(ds[0]["documents"]) == 10


def test_corrupt_run_json_is_one_line(wiki_index: Path, tmp_path: Path, capsys) -> None:
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 3)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        (tmp_path / "out" / "run.json").write_text('{"plan_hash": "ab')
        capsys.readouterr()
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.json" in err[0] and "corrupt" in err[0]
    assert main(["export", str(tmp_path / "out"), "--to", str(tmp_path / "x.jsonl")]) == 2


def test_export_to_an_unwritable_place_is_one_line(wiki_index: Path, tmp_path: Path, capsys) -> None:
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 3)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    (tmp_path / "afile").write_text("x")
    capsys.readouterr()
    assert main(["export", str(tmp_path / "out"), "--to", str(tmp_path / "afile" / "sub" / "t.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("ragloom: error: cannot write")


def test_encoder_warm_up_failure_is_one_line(wiki_index: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Before: an exception in the warm-up thread printed a thread traceback and the run went on."""
    from ragloom.retrieval import Index

    from ragloom.errors import MissingInputError

    def broken(self, queries):  # type: ignore[no-untyped-def]
        raise MissingInputError("encoder model directory /x/model not found; rebuild the index or fix its path")

    monkeypatch.setattr(Index, "embed_queries", broken)
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 3)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines() == [
        "ragloom: error: encoder model directory /x/model not found; rebuild the index or fix its path"
    ]
    assert not (tmp_path / "out" / "run.json").exists()  # nothing written before setup is fine


def test_lsr_failures_are_per_query_and_the_export_is_written(wiki_index: Path, tmp_path: Path) -> None:
    """Before: no_logprobs / token_alignment counted as transport failures: the query never finished,
    the run exited 3 every time and never wrote its export."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"instruction": f"What is {t}?", "output": t}) + "\n" for t in "ABCDEF"))
    with FakeServer(Faults(first=["bad_json"])) as srv:  # the first scoring request comes back without logprobs
        args = ["radit", "lsr", "--pairs", str(pairs), "--index", str(wiki_index), "--k", "3", "--out"]
        args += [str(tmp_path / "lsr"), "--backend", "openai", "--base-url", srv.base_url, "--model", "fake", "--quiet"]
        assert main(args) == 0
    failed = jsonl(tmp_path / "lsr" / "failed.jsonl")
    assert [f["reason"] for f in failed] == ["no_logprobs"]
    assert len(jsonl(tmp_path / "lsr" / "examples.jsonl")) == 5
    assert len(jsonl(tmp_path / "lsr" / "train.jsonl")) == 5


def test_pushed_card_holds_no_server_paths_or_extras(wiki_index: Path, tmp_path: Path) -> None:
    """The card that push uploads used to carry base_url, absolute paths, extra_body, and claimed
    cc-by-sa-4.0 / en for every corpus. Licence and language now come from `card:` in the config."""
    with FakeServer() as srv:
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            4,
            backend={"extra_body": {"private_flag": "internal-routing-xyz"}},
            card={"license": "cc-by-sa-3.0", "language": ["en"], "pretty_name": "Wiki RAG"},
        )
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    assert main(["export", str(tmp_path / "out"), "--to", str(tmp_path / "exp" / "t.parquet")]) == 0
    card = (tmp_path / "exp" / "README.md").read_text()
    assert srv.base_url not in card and "127.0.0.1" not in card
    assert str(tmp_path) not in card and "internal-routing-xyz" not in card
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "cc-by-sa-3.0" and meta["language"] == ["en"] and meta["pretty_name"] == "Wiki RAG"
    shutil.rmtree(tmp_path / "exp")


def test_generate_writes_the_report_unless_told_not_to(wiki_index: Path, tmp_path: Path) -> None:
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 4)
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
        assert not (tmp_path / "out" / "report.html").exists()
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    first = jsonl(tmp_path / "out" / "examples.jsonl")[0]
    assert page.startswith("<!DOCTYPE html>") and f'"{first["id"]}"' in page


def test_the_notebook_example_gets_datasets_back(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            str(root / "examples" / "notebook.py"),
            "--workdir",
            str(tmp_path / "nb"),
            "--passages",
            "250",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "generate -> Dataset with" in done.stdout and "agenerate -> Dataset with" in done.stdout
    assert "Traceback" not in done.stderr


def test_exporting_a_run_whose_every_job_failed_is_one_line_naming_the_failures(
    wiki_index: Path, tmp_path: Path, capsys
) -> None:
    with FakeServer(Faults(rate_empty_content=1.0)) as srv:  # every answer empty: every job fails
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 4, validation={"attempts": 1})
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    out = tmp_path / "out"
    assert [f["reason"] for f in jsonl(out / "failed.jsonl")] == ["empty_response"] * 4
    capsys.readouterr()
    assert main(["export", str(out), "--to", str(tmp_path / "ds.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "accepted no records" in err[0] and "4 jobs failed" in err[0], err
    assert not (tmp_path / "ds.jsonl").exists()
