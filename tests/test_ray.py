"""ragloom on a local Ray cluster (one per module: Ray is slow to start on a 2-core box).

Generation against the fake OpenAI server on 127.0.0.1 with the real MiniLM encoder and a flat
index: exactly once across workers, a worker that dies, a driver that is SIGKILLed, the vLLM
wiring with a stand-in engine; sharded embedding against the single-process build.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from fake_openai import FakeServer, Faults
from ragloom.generator.config import load_config
from ragloom.generator.ray_exec import ShardWorker, run_ray_generate, worker_options
from runs import jsonl, run_config

from ragloom.cli import main

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def cluster() -> str:
    # the workers import this module (the worker subclasses below) and the vLLM stand-in
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(TESTS / "generator"), os.environ.get("PYTHONPATH", "")])
    ctx = ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=False)
    try:
        yield ctx.address_info["gcs_address"]
    finally:
        ray.shutdown()


def plan_ids(n: int) -> set[str]:
    """Job ids of a seed-0 plan of n jobs: `<seed>-<position, 6 digits>`."""
    return {f"0-{i:06d}" for i in range(n)}


def finished_ids(out: Path) -> list[str]:
    return [r["job_id"] for r in jsonl(out / "examples.jsonl") + jsonl(out / "failed.jsonl")]


def shape(rec: dict) -> tuple:
    """What must not depend on where a record was made (the fake server's text is a function of the prompt)."""
    docs = [(d["id"], d["role"], d["rank"], d["rule"]) for d in rec["documents"]]
    return rec["paradigm"], rec["instruction"], rec["answer"], rec["exemplar"]["id"], docs


def test_two_workers_write_every_job_once_and_match_a_single_process_run(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    with FakeServer() as srv:
        # a config key the workers must honour as the driver does (they once rendered English prompts)
        local = run_config(tmp_path / "local", wiki_index, srv.base_url, 300, language="German")
        distributed = run_config(tmp_path / "ray", wiki_index, srv.base_url, 300, language="German")
        assert main(["generate", "--config", str(local), "--quiet"]) == 0
        asked_locally = len(srv.requests)
        assert main(["generate", "--config", str(distributed), "--quiet", "--ray", "--workers", "2"]) == 0
        from_workers = [json.dumps(r["messages"]) for r in srv.requests[asked_locally:]]
    assert from_workers and all("both in German" in m for m in from_workers)
    a_out, b_out = tmp_path / "local" / "out", tmp_path / "ray" / "out"
    ids = finished_ids(b_out)
    assert len(ids) == 300 and set(ids) == plan_ids(300)
    a = {r["job_id"]: shape(r) for r in jsonl(a_out / "examples.jsonl")}
    b = {r["job_id"]: shape(r) for r in jsonl(b_out / "examples.jsonl")}
    assert len(a) > 250 and a == b
    fails = {r["job_id"]: r["reason"] for r in jsonl(a_out / "failed.jsonl")}
    assert fails == {r["job_id"]: r["reason"] for r in jsonl(b_out / "failed.jsonl")}
    run = json.loads((b_out / "run.json").read_text())
    assert run["execution"]["shards"] == 3 and run["execution"]["workers"] == 2
    assert run["plan_hash"] == json.loads((a_out / "run.json").read_text())["plan_hash"]
    assert sorted(p.name for p in (b_out / "shards" / run["plan_hash"]).iterdir()) == [
        "part-00000",
        "part-00001",
        "part-00002",
    ]


class DiesOnFirstShard(ShardWorker):
    """Exits the whole worker process once some records of its first shard are on disk."""

    async def run_shard(self, shard: int, jobs: list) -> dict:
        try:
            os.close(os.open(self.dir / "died", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return await super().run_shard(shard, jobs)
        task = asyncio.ensure_future(super().run_shard(shard, jobs))
        written = self.dir / f"part-{shard:05d}.partial" / "examples.jsonl"
        while not (written.exists() and written.read_bytes().count(b"\n") >= 10):
            await asyncio.sleep(0.02)
        os._exit(1)
        return await task


def test_a_worker_that_dies_is_restarted_and_every_job_is_written_once(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    with FakeServer(Faults(latency=0.02)) as srv:
        cfg = load_config(
            run_config(tmp_path, wiki_index, srv.base_url, 200, execution={"engine": "ray", "workers": 2})
        )
        assert run_ray_generate(cfg, quiet=True, worker_cls=DiesOnFirstShard) == 0
    out = tmp_path / "out"
    root = next((out / "shards").iterdir())
    assert (root / "died").exists()
    ids = finished_ids(out)
    assert len(ids) == 200 and set(ids) == plan_ids(200)
    for part in ("part-00000", "part-00001"):
        part_ids = [r["job_id"] for r in jsonl(root / part / "examples.jsonl") + jsonl(root / part / "failed.jsonl")]
        assert len(part_ids) == len(set(part_ids)) == 100


def test_each_worker_opens_the_necessity_scorer_once_for_all_its_shards(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    # an in-process llama_cpp scorer holds a model and ~2 GB of logits: it was once opened per shard,
    # so a worker held one per shard in flight. Every opening sends the start-up probe, so the probes
    # the scorer's server saw count the openings: 3 shards on 2 workers must open it twice.
    with FakeServer(Faults(grounded=True)) as srv, FakeServer() as scorer:
        cfg = load_config(
            run_config(
                tmp_path,
                wiki_index,
                srv.base_url,
                300,
                paradigms={"single_doc_answer": 1},
                execution={"engine": "ray", "workers": 2},
                quality={
                    "conformance": False,
                    "necessity": True,
                    "necessity_backend": {
                        "type": "openai",
                        "base_url": scorer.base_url,
                        "model": "fake",
                        "api_key_env": None,
                    },
                },
            )
        )
        assert run_ray_generate(cfg, quiet=True) == 0
        prompts = [r.get("prompt", "") for r in scorer.requests]
    probes = [p for p in prompts if "Is the sky blue on a clear day?" in p]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["execution"]["shards"] == 3 and len(probes) == 2
    recs = jsonl(tmp_path / "out" / "examples.jsonl")
    # and the scorer it kept scored every shard's records
    assert len(recs) > 250 and all(r["quality"]["necessity"]["gain"] > 0.1 for r in recs)
    assert len(prompts) - len(probes) >= 2 * len(recs)  # with and without the documents, per record


def test_a_scorer_that_cannot_score_stops_a_ray_run_with_one_line_before_any_shard(
    cluster: str, wiki_index: Path, tmp_path: Path, capsys
) -> None:
    # the workers check the scorer in ready(), before the driver hands out shards: a scorer with no
    # prompt log-probabilities holds for every record, so it is a user error (exit 2), not a traceback
    with FakeServer(Faults(grounded=True)) as srv, FakeServer(Faults(no_logprobs=True)) as scorer:
        scorer_cfg = {"type": "openai", "base_url": scorer.base_url, "model": "fake", "api_key_env": None}
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            300,
            quality={"conformance": False, "necessity": True, "necessity_backend": scorer_cfg},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--ray", "--workers", "2"]) == 2
        asked_chat = [r for r in srv.requests if "messages" in r]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "quality.necessity" in err[0] and "Traceback" not in err[0], err
    assert not asked_chat and not list((tmp_path / "out").glob("shards/*/part-*"))


def _positions(out: Path, parts: list[Path]) -> set[int]:
    ids = [r["job_id"] for p in parts for r in jsonl(p / "examples.jsonl") + jsonl(p / "failed.jsonl")]
    return {int(i.split("-")[1]) for i in ids}


def test_sigkilled_driver_resumes_and_never_asks_again_for_finished_shards(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    with FakeServer(Faults(latency=0.1)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 400, backend={"concurrency": 4})
        cmd = [sys.executable, "-m", "ragloom", "generate", "--config", str(cfg), "--quiet", "--ray", cluster]
        cmd += ["--workers", "2"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        shards = tmp_path / "out" / "shards"
        deadline = time.monotonic() + 240
        while not any(shards.glob("*/part-?????")):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = sorted(shards.glob("*/part-?????"))
        asked_before = len(srv.requests)
        assert 1 <= len(done) < 4
        again = subprocess.run(cmd, capture_output=True, timeout=300)
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        later = srv.requests[asked_before:]
    # the request seed is position * 101 + attempt (seed 0): each request names its job
    asked_again = {r["seed"] // 101 for r in later}
    finished_before = _positions(tmp_path / "out", done)
    assert later and finished_before and not asked_again & finished_before
    ids = finished_ids(tmp_path / "out")
    assert len(ids) == 400 and set(ids) == plan_ids(400)


class WithStandInEngine(ShardWorker):
    """The vLLM backend with its engine stood in (tests/generator/test_vllm.py: real signatures)."""

    def setup(self) -> None:
        import vllm
        from test_vllm import StandInLLM

        vllm.__dict__["LLM"] = StandInLLM
        super().setup()
        llm = StandInLLM.instances[-1]
        (self.dir / f"engine-{os.getpid()}.json").write_text(json.dumps({"model": llm.model, "tp": llm.tp}))


def test_vllm_workers_ask_for_their_tensor_parallel_gpus_and_run_the_engine(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    pytest.importorskip("vllm", reason="the test setup installs vllm==0.33.0 --no-deps")
    backend = {"type": "vllm", "model": "google/gemma-3-270m-it", "tensor_parallel_size": 2, "batch_size": 8}
    path = tmp_path / "run.yaml"
    cfg = {"index": str(wiki_index), "count": 150, "output": str(tmp_path / "out"), "backend": backend}
    path.write_text(json.dumps({**cfg, "quality": {"conformance": False}}))  # the gate is tested elsewhere
    cfg = load_config(path, ["execution.engine=ray", "execution.workers=2"])
    assert worker_options(cfg)["num_gpus"] == 2
    # no GPU here: the stand-in engine runs with num_gpus=0
    assert run_ray_generate(cfg, quiet=True, worker_cls=WithStandInEngine, num_gpus=0) == 0
    root = next((tmp_path / "out" / "shards").iterdir())
    engines = [json.loads(p.read_text()) for p in root.glob("engine-*.json")]
    assert engines and all(e == {"model": "google/gemma-3-270m-it", "tp": 2} for e in engines)
    ids = finished_ids(tmp_path / "out")
    assert len(ids) == 150 and set(ids) == plan_ids(150)


def test_ray_embedded_shards_equal_single_process_embeddings_and_a_rerun_skips_finished_ones(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    import faiss
    from ragloom.retrieval import EncoderSpec, PassageStore
    from ragloom.retrieval.embeddings import iter_embedding_shards
    from ragloom.retrieval.ray_embed import embed_shards

    store = PassageStore(wiki_index)
    out = tmp_path / "shards"
    assert embed_shards(store, EncoderSpec(), out, shards=4) == [0, 1, 2, 3]
    parts = list(iter_embedding_shards(out))
    ids = [i for p in parts for i in p[0]]
    assert ids == [p.id for p in store.get_rows(np.arange(len(store)))]
    single = faiss.read_index(str(wiki_index / "index.faiss"))
    np.testing.assert_allclose(np.concatenate([p[1] for p in parts]), single.reconstruct_n(0, single.ntotal), atol=1e-5)
    kept = {p: p.stat().st_mtime_ns for p in out.glob("part-*.npy") if p.name != "part-00002.npy"}
    (out / "part-00002.npy").unlink()
    assert embed_shards(store, EncoderSpec(), out, shards=4) == [2]
    assert {p: p.stat().st_mtime_ns for p in kept} == kept and (out / "part-00002.npy").exists()


def test_index_built_on_ray_answers_the_same_top_10(
    cluster: str, wiki_corpus: Path, wiki_index: Path, tmp_path: Path
) -> None:
    from ragloom.retrieval import Index

    out = tmp_path / "idx"
    assert main(["index", "build", "--corpus", str(wiki_corpus), "--out", str(out), "--ray", "--shards", "3"]) == 0
    assert json.loads((out / "manifest.json").read_text())["embeddings"] == "ray"
    assert not (tmp_path / ".idx.ray-embed").exists()
    mine, theirs = Index(out), Index(wiki_index)
    queries = ["Who painted the Mona Lisa?", "the highest mountain on Earth", "how plants turn light into sugar"]
    queries += ["a tower in Paris", "the theory of relativity", "antibiotics discovered by accident"]
    for q in queries:
        assert [h.passage.id for h in mine.search([q], k=10)[0]] == [h.passage.id for h in theirs.search([q], k=10)[0]]


def test_without_ray_installed_ray_flags_are_one_line_errors_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, wiki_corpus: Path, wiki_index: Path, tmp_path: Path, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    cfg = run_config(tmp_path, wiki_index, "http://127.0.0.1:9/v1", 5)
    for argv in (
        ["generate", "--config", str(cfg), "--ray"],
        ["index", "build", "--corpus", str(wiki_corpus), "--out", str(tmp_path / "idx"), "--ray"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "pip install 'ragloom[ray]'" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"]


def test_duplicates_across_shards_are_decided_at_the_merge_as_one_process_decides_them(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    # the fake server asks the same question for every job whose first source is the same passage,
    # so repeats fall in different shards (a worker sees only its own shard); asked again, a job gets
    # a question of its own (vary_on_retry), so one process accepts it at its next attempt, and the
    # Ray run must too: a merge that dropped the repeats matched only while retries repeated themselves
    from ragloom.generator.curation.dedup import normalize_question

    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    dedup = {"dedup": {"enabled": True}}
    with FakeServer(Faults(vary_on_retry=True)) as srv:
        local = run_config(tmp_path / "local", wiki_index, srv.base_url, 150, curation=dedup)
        distributed = run_config(tmp_path / "ray", wiki_index, srv.base_url, 150, curation=dedup)
        assert main(["generate", "--config", str(local), "--quiet"]) == 0
        assert main(["generate", "--config", str(distributed), "--quiet", "--ray", "--workers", "2"]) == 0
    a_out, b_out = tmp_path / "local" / "out", tmp_path / "ray" / "out"
    a = {r["job_id"]: pair(r) for r in jsonl(a_out / "examples.jsonl")}
    b_recs = jsonl(b_out / "examples.jsonl")
    b = {r["job_id"]: pair(r) for r in b_recs}
    questions = [normalize_question(r["instruction"]) for r in b_recs]
    assert len(questions) == len(set(questions)) == len(b_recs)
    # plan order decides in both: the same jobs accepted, with the same pairs (asked again the same way)
    assert a == b and len(b) > 100
    assert {f["job_id"]: f["reason"] for f in jsonl(a_out / "failed.jsonl")} == {
        f["job_id"]: f["reason"] for f in jsonl(b_out / "failed.jsonl")
    }
    assert len(finished_ids(b_out)) == len(set(finished_ids(b_out))) == 150
    stats = json.loads((b_out / "run.json").read_text())["stats"]
    # repeats across shards were found at the merge and asked again (not dropped)
    assert stats["counts"]["duplicate_across_shards"] > 0
    assert stats["accepted"] == len(b_recs) and sum(r["generation"]["attempts"] > 1 for r in b_recs) > 0
    root = b_out / "shards" / json.loads((b_out / "run.json").read_text())["plan_hash"]
    first_answers = {r["job_id"]: r for p in root.glob("part-*") for r in jsonl(p / "examples.jsonl")}
    moved = [j for j, r in first_answers.items() if b[j] != pair(r)]
    assert moved and all(first_answers[j]["generation"]["attempts"] < b_attempts(b_recs, j) for j in moved)


def pair(rec: dict) -> tuple:
    """The accepted pair and its attempt (distractors are left out: faiss ranks near-equal passages at
    the band's edge by float sums that differ with the search batch's size, in one process too)."""
    return rec["paradigm"], rec["instruction"], rec["answer"], rec["generation"]["attempts"]


def b_attempts(recs: list[dict], job_id: str) -> int:
    return next(r["generation"]["attempts"] for r in recs if r["job_id"] == job_id)


def test_ragloom_generate_runs_an_execution_engine_ray_config_on_ray(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    # issue 23 item 2: the library ran `execution.engine: ray` in one process without a word
    import ragloom

    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 150, execution={"engine": "ray", "workers": 2})
        ds = ragloom.generate(cfg, progress=False, report=False)
        asked = len(srv.requests)
        # agenerate too (the driver runs in a worker thread): a finished run resumes and asks nothing
        again = asyncio.run(ragloom.agenerate(cfg, progress=False, report=False))
        assert len(srv.requests) == asked and sorted(again["job_id"]) == sorted(ds["job_id"])
    out = tmp_path / "out"
    run = json.loads((out / "run.json").read_text())
    assert run["execution"]["engine"] == "ray" and run["execution"]["shards"] == 2
    root = out / "shards" / run["plan_hash"]
    assert sorted(p.name for p in root.iterdir()) == ["part-00000", "part-00001"]
    in_shards = [r["job_id"] for p in root.iterdir() for r in jsonl(p / "examples.jsonl")]
    assert sorted(ds["job_id"]) == sorted(in_shards) == sorted(r["job_id"] for r in jsonl(out / "examples.jsonl"))
    ids = finished_ids(out)
    assert len(ids) == 150 and set(ids) == plan_ids(150)


class RaisesOnShard(ShardWorker):
    async def run_shard(self, shard: int, jobs: list) -> dict:
        raise RuntimeError("this worker cannot run a shard")


def test_ray_retry_failed_keeps_every_record_and_asks_every_failure_again(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    # issue 23 item 4: --ray --retry-failed renamed each finished shard with a failure to .partial and
    # the merge skipped partial shards: a retry that stopped early shrank examples.jsonl
    out = tmp_path / "out"
    ray_cfg = {"execution": {"engine": "ray", "workers": 2}, "validation": {"attempts": 1}}
    with FakeServer(Faults(rate_bad_json=0.2)) as srv:
        assert run_ray_generate(load_config(run_config(tmp_path, wiki_index, srv.base_url, 300, **ray_cfg))) == 0
    before = (out / "examples.jsonl").read_bytes()
    failed = {int(r["job_id"].split("-")[1]) for r in jsonl(out / "failed.jsonl")}
    assert "invalid_json" in {r["reason"] for r in jsonl(out / "failed.jsonl")}
    assert len(failed) > 20 and before.count(b"\n") == 300 - len(failed)
    with FakeServer() as srv:  # a server that answers well now
        cfg = load_config(run_config(tmp_path, wiki_index, srv.base_url, 300, **ray_cfg))
        with pytest.raises(Exception, match="cannot run a shard"):
            run_ray_generate(cfg, quiet=True, retry_failed=True, worker_cls=RaisesOnShard)
        assert (out / "examples.jsonl").read_bytes() == before
        assert run_ray_generate(cfg, quiet=True, retry_failed=True) == 0
        asked = {r["seed"] // 101 for r in srv.requests if "messages" in r}
    assert asked == failed  # every failure asked again, and nothing else
    assert (out / "examples.jsonl").read_bytes().startswith(before)
    ids = finished_ids(out)
    assert len(ids) == len(set(ids)) == 300
    # what failed again fails for a reason of its own (the stand-in writes no options for multiple-choice
    # exemplars), not because of the bad replies the retry was for
    assert {r["reason"] for r in jsonl(out / "failed.jsonl")} == {"not_multiple_choice"}


def _finished_positions(out: Path) -> set[int]:
    """Jobs on disk anywhere in the run directory: OUT and every shard folder, finished or partial."""
    files = [out / "examples.jsonl", out / "failed.jsonl", *out.glob("shards/*/part-*/*.jsonl")]
    lines = [x for f in files for x in _read(f).splitlines(keepends=True) if x.endswith(b"\n")]
    return {int(json.loads(x)["job_id"].split("-")[1]) for x in lines}


def _out_count(out: Path) -> int:
    return sum(_read(out / name).count(b"\n") for name in ("examples.jsonl", "failed.jsonl"))


def test_local_ray_local_ray_sessions_on_one_output_account_for_every_job_once_and_lose_nothing(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    # issue 23 "done when": sessions of both kinds on one output directory, each stopped early (a
    # SIGINT, a SIGKILL of the Ray driver, a SIGINT), then a Ray session that finishes
    out = tmp_path / "out"
    with FakeServer(Faults(latency=0.1)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 400, backend={"concurrency": 4})
        local = [sys.executable, "-m", "ragloom", "generate", "--config", str(cfg), "--quiet"]
        on_ray = [*local, "--ray", cluster, "--workers", "2"]
        kept: list[bytes] = []

        def session(cmd: list[str], stop: Any = None, sig: int = signal.SIGINT) -> int:
            finished_before, prefix = _finished_positions(out), _read(out / "examples.jsonl")
            start, asked_from = len(finished_before), len(srv.requests)
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 300
            while stop is not None and not stop(start):
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                assert time.monotonic() < deadline
                time.sleep(0.05)
            if stop is not None:
                proc.send_signal(sig)
            proc.wait(timeout=300)
            time.sleep(2 if sig == signal.SIGKILL else 0)  # the killed driver's workers are stopped by Ray
            asked = {r["seed"] // 101 for r in srv.requests[asked_from:]}
            assert asked and not asked & finished_before  # no finished job is asked again
            assert _read(out / "examples.jsonl").startswith(prefix)  # nothing written is dropped
            kept.append(_read(out / "examples.jsonl"))
            return proc.returncode

        assert session(local, lambda _: _out_count(out) >= 60) == 130
        assert session(on_ray, lambda _: any(out.glob("shards/*/part-?????")), signal.SIGKILL) == -signal.SIGKILL
        assert session(local, lambda start: _out_count(out) >= start + 60) == 130
        assert session(on_ray) == 0
    ids = finished_ids(out)
    assert len(ids) == 400 and set(ids) == plan_ids(400)  # every job once
    recs = {r["job_id"]: r for r in jsonl(out / "examples.jsonl")}
    # every record a shard holds is in OUT, as written, unless another session finished its job first
    for part in out.glob("shards/*/part-*"):
        for r in jsonl(part / "examples.jsonl"):
            assert recs.get(r["job_id"], r) == r
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert stats["planned"] == 400 and stats["skipped_done"] + stats["accepted"] + sum(stats["failed"].values()) == 400


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def test_sources_decided_in_the_plan_are_the_same_on_ray_as_in_one_process(
    cluster: str, wiki_index: Path, tmp_path: Path
) -> None:
    """Issue 28: with reuse counted across jobs (exemplar + max_reuse, and corpus), each job's
    sources come from the plan built on the driver, so Ray's shards give every job the sources one
    process gives it, and no passage is a source more than max_reuse times across shards."""
    for name, sources in (("reuse", {"max_reuse": 2}), ("corpus", {"strategy": "corpus"})):
        (tmp_path / name / "local").mkdir(parents=True)
        (tmp_path / name / "ray").mkdir()
        with FakeServer() as srv:
            local = run_config(tmp_path / name / "local", wiki_index, srv.base_url, 220, sources=sources)
            distributed = run_config(tmp_path / name / "ray", wiki_index, srv.base_url, 220, sources=sources)
            assert main(["generate", "--config", str(local), "--quiet"]) == 0
            assert main(["generate", "--config", str(distributed), "--quiet", "--ray", "--workers", "2"]) == 0
        src = {}
        for where in ("local", "ray"):
            out = tmp_path / name / where / "out"
            src[where] = {
                r["job_id"]: [d["id"] for d in r["documents"] if d["role"] == "source"]
                for r in jsonl(out / "examples.jsonl")
            }
        assert len(src["local"]) > 170 and src["local"] == src["ray"]  # a few fake pairs fail validation
        uses: dict[str, int] = {}
        for ids in src["ray"].values():
            for i in ids:
                uses[i] = uses.get(i, 0) + 1
        assert max(uses.values()) <= (2 if name == "reuse" else 1)
        run = json.loads((tmp_path / name / "ray" / "out" / "run.json").read_text())
        assert run["coverage"]["distinct_sources"] == len(uses) and run["execution"]["shards"] == 3
