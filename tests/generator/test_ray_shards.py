"""Shard bookkeeping of a Ray run, without Ray: the merge into OUT only appends (what a local session
wrote stays), --retry-failed reopens every shard with a failure without dropping a record, a late
retry leaves no folder beside a finished shard, and a local session resumes from the shards."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from fake_openai import FakeServer, Faults
from ragloom.generator.backends import make_backend
from ragloom.generator.config import load_config
from ragloom.generator.plan import plan_hash
from ragloom.generator.ray_exec import ShardWorker, run_into
from ragloom.generator.ray_shards import absorb_shards, cut_shards, drop_shard_failures, reopen
from ragloom.generator.run import open_index, plan_jobs, run_templates
from ragloom.generator.runs.rundir import GENERATE, RunDir, index_identity
from ragloom.generator.runs.stats import Stats
from ragloom.generator.types import Exemplar, Job
from runs import jsonl, run_config

from ragloom.cli import main
from ragloom.errors import OutputError


def _jobs(n: int) -> list[Job]:
    ex = Exemplar("e", "What is it?", "test")
    return [Job(f"0-{i:06d}", i, "single_doc_answer", ex, 1) for i in range(n)]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _rec(job_id: str, attempts: int = 1) -> dict:
    return {"job_id": job_id, "instruction": f"question of {job_id}", "generation": {"attempts": attempts}}


def _ids(path: Path) -> list[str]:
    return [r["job_id"] for r in jsonl(path)]


def test_a_merge_keeps_the_records_a_local_session_wrote_and_only_appends(tmp_path: Path) -> None:
    # issue 23 item 1: 3 records in examples.jsonl and one finished shard once left 1 record
    jobs = _jobs(6)
    shards = [jobs[:3], jobs[3:]]
    root = tmp_path / "shards" / "abc"
    _write(tmp_path / "examples.jsonl", [_rec("0-000000"), _rec("0-000001"), _rec("0-000004")])
    _write(tmp_path / "failed.jsonl", [{"job_id": "0-000002", "reason": "too_short", "attempts": 3}])
    before = (tmp_path / "examples.jsonl").read_bytes()
    _write(root / "part-00001" / "examples.jsonl", [_rec("0-000003"), _rec("0-000004")])
    _write(root / "part-00000.partial" / "examples.jsonl", [_rec("0-000000")])  # also in OUT: not twice
    assert absorb_shards(tmp_path, root, shards) == {}
    after = (tmp_path / "examples.jsonl").read_bytes()
    assert after.startswith(before)  # never rewritten, never shorter
    assert _ids(tmp_path / "examples.jsonl") == ["0-000000", "0-000001", "0-000004", "0-000003"]
    assert _ids(tmp_path / "failed.jsonl") == ["0-000002"]
    # a second merge of the same folders adds nothing
    assert absorb_shards(tmp_path, root, shards) == {}
    assert (tmp_path / "examples.jsonl").read_bytes() == after


def test_a_partial_shard_joins_out_and_a_torn_last_line_is_left_for_its_worker(tmp_path: Path) -> None:
    jobs = _jobs(4)
    root = tmp_path / "shards" / "abc"
    _write(root / "part-00000.partial" / "examples.jsonl", [_rec("0-000001")])
    with open(root / "part-00000.partial" / "examples.jsonl", "a") as fh:
        fh.write('{"job_id": "0-0000')  # a worker killed mid-line
    absorb_shards(tmp_path, root, [jobs])
    assert _ids(tmp_path / "examples.jsonl") == ["0-000001"]


def test_a_record_in_a_shard_it_does_not_belong_to_is_refused_and_out_is_kept(tmp_path: Path) -> None:
    jobs = _jobs(4)
    root = tmp_path / "shards" / "abc"
    _write(root / "part-00000" / "examples.jsonl", [_rec("0-000000")])
    _write(root / "part-00001" / "examples.jsonl", [_rec("0-000000")])
    (tmp_path / "examples.jsonl").write_text("")
    with pytest.raises(OutputError, match=r"part-00001.*0-000000 is not this shard's"):
        absorb_shards(tmp_path, root, [jobs[:2], jobs[2:]])
    assert (tmp_path / "examples.jsonl").read_text() == ""


def test_repeats_across_shards_are_asked_again_at_their_next_attempt_until_spent(tmp_path: Path) -> None:
    jobs = _jobs(4)
    root = tmp_path / "shards" / "abc"
    _write(root / "part-00000" / "examples.jsonl", [_rec("0-000000"), _rec("0-000001", attempts=3)])
    _write(root / "part-00001" / "examples.jsonl", [_rec("0-000002"), _rec("0-000003")])

    def decide(held: list[dict], new: list[dict]) -> dict:  # 1 and 2 repeat 0 (plan order decides)
        assert [r["job_id"] for r in new] == ["0-000000", "0-000001", "0-000002", "0-000003"]
        return {j: {"duplicate": {"of": "0-000000"}, "across_shards": True} for j in ("0-000001", "0-000002")}

    again = absorb_shards(tmp_path, root, [jobs[:2], jobs[2:]], decide=decide, attempts=3)
    assert again == {"0-000002": 1}  # 0-000001 has no attempt left: it fails as one process fails it
    assert _ids(tmp_path / "examples.jsonl") == ["0-000000", "0-000003"]
    assert jsonl(tmp_path / "failed.jsonl") == [
        {
            "job_id": "0-000001",
            "reason": "duplicate_instruction",
            "attempts": 3,
            "curation": {"duplicate": {"of": "0-000000"}, "across_shards": True},
        }
    ]


def test_retry_failed_keeps_every_accepted_record_and_retries_failures_in_partial_shards_too(
    tmp_path: Path,
) -> None:
    # issue 23 item 4: reopen_failed renamed a finished shard with a failure to .partial and the merge
    # then skipped it (examples.jsonl shrank); failures already in a partial shard were never retried
    jobs = _jobs(6)
    shards = [jobs[:3], jobs[3:]]
    root = tmp_path / "shards" / "abc"
    _write(root / "part-00000" / "examples.jsonl", [_rec("0-000000"), _rec("0-000001")])
    _write(root / "part-00000" / "failed.jsonl", [{"job_id": "0-000002", "reason": "invalid_json", "attempts": 3}])
    _write(root / "part-00001.partial" / "examples.jsonl", [_rec("0-000003")])
    _write(root / "part-00001.partial" / "failed.jsonl", [{"job_id": "0-000004", "reason": "too_short"}])
    absorb_shards(tmp_path, root, shards)
    before = (tmp_path / "examples.jsonl").read_bytes()
    (tmp_path / "failed.jsonl").write_text("")  # what RunDir does to OUT's failures on --retry-failed
    drop_shard_failures(root, 2)
    absorb_shards(tmp_path, root, shards, retry=True)
    reopen(root, 0)
    assert (tmp_path / "examples.jsonl").read_bytes() == before
    assert _ids(tmp_path / "examples.jsonl") == ["0-000000", "0-000001", "0-000003"]
    assert _ids(tmp_path / "failed.jsonl") == []
    # both failures are unfinished again in their shard's checkpoint, so its worker asks them again
    for part in ("part-00000.partial", "part-00001.partial"):
        assert _ids(root / part / "failed.jsonl") == []
    assert not (root / "part-00000").exists()
    assert _ids(root / "part-00000.partial" / "examples.jsonl") == ["0-000000", "0-000001"]


def test_a_late_retry_leaves_no_folder_beside_a_finished_shard_and_retry_failed_then_reopens_it(
    tmp_path: Path, wiki_index: Path
) -> None:
    # issue 23 item 5: run_shard made part-N.partial (with its lock) before it saw part-N, and the next
    # --retry-failed failed in os.replace(part-N, part-N.partial)
    cfg = load_config(run_config(tmp_path, wiki_index, "http://127.0.0.1:9/v1", 5))
    root = tmp_path / "shards"
    _write(root / "part-00000" / "examples.jsonl", [_rec("0-000000")])
    _write(root / "part-00000" / "failed.jsonl", [{"job_id": "0-000001", "reason": "too_short"}])
    worker = ShardWorker(cfg.model_dump(mode="json"), str(root))
    worker.loaded = (cfg, None, None, None)  # type: ignore[assignment]

    async def loaded() -> None:
        return None

    worker.ready = loaded  # type: ignore[method-assign]
    done = asyncio.run(worker.run_shard(0, _jobs(2)))
    assert done["complete"] and sorted(p.name for p in root.iterdir()) == ["part-00000"]
    # and a stale partial left by an older version is cleared before the shard is reopened
    (root / "part-00000.partial").mkdir()
    (root / "part-00000.partial" / ".lock").write_text("")
    drop_shard_failures(root, 1)
    absorb_shards(tmp_path, root, [_jobs(2)], retry=True)
    reopen(root, 0)
    assert sorted(p.name for p in root.iterdir()) == ["part-00000.partial"]
    assert _ids(root / "part-00000.partial" / "examples.jsonl") == ["0-000000"]


def _ray_like_session(cfg_path: Path, finished: int, partial: int) -> Path:
    """What an interrupted Ray session leaves (its driver's RunDir, shard 0 finished, `partial` jobs
    of shard 1 in its partial folder), made with the workers' own `run_into`, without Ray."""
    cfg = load_config(cfg_path)
    index, templates = open_index(cfg), run_templates(cfg)
    jobs, _ = plan_jobs(cfg)
    phash = plan_hash(cfg, jobs, index=index_identity(index.manifest), templates=templates.digests())
    RunDir(cfg.output).open(kind=GENERATE, plan_hash=phash, info={"count": len(jobs)}).close()
    root, shards = Path(cfg.output) / "shards" / phash, cut_shards(jobs)

    async def shard(folder: Path, todo: list[Job]) -> None:
        folder.mkdir(parents=True)
        backend = make_backend(cfg.backend)
        try:
            kw = {"cfg": cfg, "index": index, "backend": backend, "templates": templates}
            assert await run_into(folder, todo, Stats(), **kw)
        finally:
            await backend.aclose()

    asyncio.run(shard(root / "part-00000.partial", shards[0][:finished]))
    os.replace(root / "part-00000.partial", root / "part-00000")
    asyncio.run(shard(root / "part-00001.partial", shards[1][:partial]))
    return root


def test_a_local_session_after_a_ray_session_asks_no_job_its_shards_hold(wiki_index: Path, tmp_path: Path) -> None:
    # issue 23 item 1: after a Ray session, plain `generate` reported "0 from earlier runs" and asked
    # every job again
    with FakeServer(Faults()) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 300)
        root = _ray_like_session(cfg, 100, 40)
        in_shards = [r for p in root.iterdir() for r in jsonl(p / "examples.jsonl") + jsonl(p / "failed.jsonl")]
        asked_before = len(srv.requests)
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        later = srv.requests[asked_before:]
    held = {int(r["job_id"].split("-")[1]) for r in in_shards}
    assert len(held) == 140 and later and not {r["seed"] // 101 for r in later} & held
    out = tmp_path / "out"
    ids = _ids(out / "examples.jsonl") + _ids(out / "failed.jsonl")
    assert len(ids) == len(set(ids)) == 300
    recs = {r["job_id"]: r for r in jsonl(out / "examples.jsonl")}
    assert all(recs[r["job_id"]] == r for r in in_shards if "instruction" in r)  # each shard record, as written
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert stats["skipped_done"] == 140 and stats["planned"] == 300
