"""End to end against the fault-injecting server, with the real encoder and index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fake_openai import FakeServer, Faults
from ragloom.retrieval import contains_answer
from runs import jsonl, run_config

from ragloom.cli import main


def test_200_jobs_with_faults_every_job_accounted_once(wiki_index: Path, tmp_path: Path, capsys) -> None:
    faults = Faults(rate_429=0.1, retry_after=0.05, rate_500=0.05, rate_bad_json=0.05, seed=1)
    with FakeServer(faults) as server:
        cfg = run_config(tmp_path, wiki_index, server.base_url, 200)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    out = tmp_path / "out"
    records, failed = jsonl(out / "examples.jsonl"), jsonl(out / "failed.jsonl")
    ids = [r["job_id"] for r in records] + [f["job_id"] for f in failed]
    assert sorted(ids) == [f"0-{i:06d}" for i in range(200)]
    assert len(set(ids)) == 200
    assert server.counts["429"] > 0 and server.counts["500"] > 0 and server.counts["bad_json"] > 0
    for r in records:
        assert {
            "id",
            "paradigm",
            "instruction",
            "answer",
            "documents",
            "exemplar",
            "generation",
            "ragloom_version",
        } <= set(r)
        assert {"backend", "model", "sampling", "template", "prompt_hash", "usage", "attempts"} <= set(r["generation"])
        docs = r["documents"]
        assert len(docs) == 10
        assert len({d["id"] for d in docs}) == 10
        sources = [d for d in docs if d["role"] == "source"]
        assert 1 <= len(sources) <= 4
        for d in docs:
            if d["role"] == "distractor":
                assert not contains_answer(d["text"], r["answer"])
                assert d["rule"] in {"band", "widened", "random"}
    # the corpus has 400 passages, so the [200, 250) band is real
    assert any(
        d["rule"] == "band" and 200 <= d["rank"] < 250
        for r in records
        for d in r["documents"]
        if d["role"] == "distractor"
    )


def test_resume_skips_finished_jobs_and_refuses_a_different_config(wiki_index: Path, tmp_path: Path) -> None:
    with FakeServer() as server:
        cfg = run_config(tmp_path, wiki_index, server.base_url, 20)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        first = server.counts["ok"]
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        assert server.counts["ok"] == first  # nothing asked again
        assert main(["generate", "--config", str(cfg), "--quiet", "--set", "seed=5"]) == 2
        assert main(["generate", "--config", str(cfg), "--quiet", "--set", "seed=5", "--overwrite"]) == 0
    records = jsonl(tmp_path / "out" / "examples.jsonl")
    assert {r["job_id"][:2] for r in records} == {"5-"}


def test_torn_last_line_is_dropped_on_resume(wiki_index: Path, tmp_path: Path) -> None:
    with FakeServer() as server:
        cfg = run_config(tmp_path, wiki_index, server.base_url, 12)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        path = tmp_path / "out" / "examples.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    ids = [r["job_id"] for r in jsonl(path)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 12


def test_dry_run_calls_no_llm(wiki_index: Path, tmp_path: Path, capsys) -> None:
    with FakeServer() as server:
        cfg = run_config(tmp_path, wiki_index, server.base_url, 50)
        assert main(["generate", "--config", str(cfg), "--dry-run"]) == 0
        assert sum(server.counts.values()) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["count"] == 50 and sum(plan["paradigms"].values()) == 50
    assert set(plan["paradigms"]) == {
        "useless_doc",
        "single_doc_support",
        "multi_doc_support",
        "single_doc_answer",
        "multi_doc_answer",
    }
    assert plan["estimate"]["prompt_tokens"] > 0


def test_401_fails_at_once_and_the_key_never_leaks(
    wiki_index: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-SENTINEL-do-not-print-1234"
    monkeypatch.setenv("MY_KEY", secret)
    with FakeServer(Faults(fixed_status=401)) as server:
        cfg = run_config(tmp_path, wiki_index, server.base_url, 5)
        code = main(["generate", "--config", str(cfg), "--quiet", "--set", "backend.api_key_env=MY_KEY"])
        assert server.counts["401"] == 0  # refused by the preflight GET /models: no generation request
    err = capsys.readouterr().err
    assert code == 2 and "rejected the API key (401)" in err and "$MY_KEY" in err
    assert secret not in err
    assert not (tmp_path / "out").exists()  # nothing written before the server accepted the key


def test_a_run_that_stops_before_it_starts_closes_the_backend_it_made(
    wiki_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused key stops the run in its preparation; the backend made for it (an HTTP session, an
    in-process engine) is closed there, not left to the garbage collector of a library user's process."""
    import ragloom.generator.run as run_module

    made, closed = [], []
    real = run_module.make_backend

    def recording(cfg):
        backend = real(cfg)
        made.append(backend)
        aclose = backend.aclose

        async def counted() -> None:
            closed.append(backend)
            await aclose()

        backend.aclose = counted
        return backend

    monkeypatch.setattr(run_module, "make_backend", recording)
    with FakeServer(Faults(fixed_status=401)) as server:
        cfg = run_config(tmp_path, wiki_index, server.base_url, 5)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 2
    assert len(made) == 1 and closed == made


def test_exports_load_with_datasets_and_card_matches_records(wiki_index: Path, tmp_path: Path) -> None:
    import datasets

    with FakeServer() as server:
        cfg = run_config(tmp_path, wiki_index, server.base_url, 15)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    out = tmp_path / "out"
    for view, to in [
        ("messages", "m.jsonl"),
        ("rag-instruct", "ri.parquet"),
        ("alpaca", "alp"),
        ("sharegpt", "s.jsonl"),
    ]:
        assert main(["export", str(out), "--format", view, "--to", str(tmp_path / "exp" / to)]) == 0
    msgs = datasets.load_dataset("json", data_files=str(tmp_path / "exp" / "m.jsonl"), split="train")
    assert len(msgs) == 15
    user = msgs[0]["messages"][0]["content"]
    assert user.startswith("### Paragraph:\n[1] ") and "\n[10] " in user and "\n\n### Instruction:\n" in user
    ri = datasets.load_dataset("parquet", data_files=str(tmp_path / "exp" / "ri.parquet"), split="train")
    assert {"question", "answer", "documents"} <= set(ri.column_names) and len(ri[0]["documents"]) == 10
    assert len(datasets.load_from_disk(str(tmp_path / "exp" / "alp"))) == 15
    card = (tmp_path / "exp" / "alp" / "README.md").read_text()
    stats = json.loads(card.split("```json\n")[1].split("\n```")[0])["statistics"]
    # counted here from the JSONL, not by the card's own code
    recs, failed = jsonl(out / "examples.jsonl"), jsonl(out / "failed.jsonl")
    per: dict[str, int] = {}
    for r in recs:
        per[r["paradigm"]] = per.get(r["paradigm"], 0) + 1
    assert stats["examples"] == len(recs) == 15 and stats["per_paradigm"] == per
    assert stats["failed_jobs"] == len(failed)
    words = [len(r["answer"].split()) for r in recs]
    assert stats["mean_answer_words"] == round(sum(words) / len(words), 2)
    assert stats["mean_documents"] == 10.0
    for paradigm, n in per.items():
        assert f"| {paradigm} | {n} |" in card
    # no licence is claimed for a corpus ragloom cannot know; the card says to set it
    assert card.startswith("---\nlicense: unknown") and "set `card.license`" in card


def test_jobs_sharing_an_exemplar_run_together_in_plan_order() -> None:
    from ragloom.generator.pipeline import by_exemplar
    from ragloom.generator.types import Exemplar, Job

    exs = [Exemplar(f"e{i}", f"question {i}?", "builtin") for i in range(3)]
    plan = [Job(f"j{n}", n, "useless_doc", exs[i], 1) for n, i in enumerate([2, 0, 2, 1, 0, 2, 1])]
    ordered = by_exemplar(plan)
    assert sorted(j.id for j in ordered) == sorted(j.id for j in plan)  # nothing lost or doubled
    # groups in order of first appearance (e2, e0, e1), plan order inside each group
    assert [j.id for j in ordered] == ["j0", "j2", "j5", "j1", "j4", "j3", "j6"]


@pytest.mark.parametrize("ending", ["done", "ctrl_c", "error"])
def test_a_run_keeps_the_loaded_heap_out_of_collections_and_gives_it_back(tmp_path: Path, ending: str) -> None:
    """Full collections that rescan torch, the encoder and the index stall every response in flight,
    so a run freezes what is loaded before it starts; a library caller gets a normal collector back
    however the run ends, and the checkpoint is closed."""
    import gc

    from ragloom.generator.config import Pricing
    from ragloom.generator.display import Display, run_with_display
    from ragloom.generator.runs.checkpoint import Checkpoint
    from ragloom.generator.runs.stats import Stats
    from rich.console import Console

    loaded = [{"weights": [0.0] * 8} for _ in range(1000)]  # stands for what setup allocated
    seen: dict[str, bool] = {}

    def body() -> None:
        seen["frozen"] = gc.get_freeze_count() >= len(loaded)
        checkpoint.write_failure("job-1", "refusal", 1)
        if ending == "ctrl_c":
            raise KeyboardInterrupt
        if ending == "error":
            raise RuntimeError("backend gave up")

    stats = Stats(planned=1)
    checkpoint = Checkpoint(tmp_path)
    display = Display(stats, Console(stderr=True, quiet=True), Pricing(), quiet=True)
    assert gc.get_freeze_count() == 0
    if ending == "error":
        with pytest.raises(RuntimeError):
            run_with_display(display, checkpoint, tmp_path, body)
    else:
        assert run_with_display(display, checkpoint, tmp_path, body) is (ending == "ctrl_c")
    assert seen["frozen"]
    assert gc.get_freeze_count() == 0
    assert jsonl(tmp_path / "failed.jsonl") == [{"job_id": "job-1", "reason": "refusal", "attempts": 1}]
