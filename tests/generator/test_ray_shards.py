"""Shard merge of a Ray run (no Ray needed): order, partial shards left out, duplicate ids refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ragloom.generator.ray_shards import merge_shards

from ragloom.errors import OutputError


def _shard(root: Path, name: str, examples: list[str], failed: list[str] = ()) -> None:
    d = root / name
    d.mkdir(parents=True)
    (d / "examples.jsonl").write_text("".join(json.dumps({"job_id": j, "answer": "a"}) + "\n" for j in examples))
    if failed:
        (d / "failed.jsonl").write_text(
            "".join(json.dumps({"job_id": j, "reason": "too_short"}) + "\n" for j in failed)
        )


def test_merge_writes_finished_shards_in_shard_order_and_skips_partial_ones(tmp_path: Path) -> None:
    root = tmp_path / "shards" / "abc"
    _shard(root, "part-00002", ["0-000004"])
    _shard(root, "part-00000", ["0-000001", "0-000000"], ["0-000002"])
    _shard(root, "part-00001.partial", ["0-000003"])
    assert merge_shards(tmp_path, root, 3) == 4
    ids = [json.loads(x)["job_id"] for x in (tmp_path / "examples.jsonl").read_text().splitlines()]
    assert ids == ["0-000001", "0-000000", "0-000004"]
    assert [json.loads(x)["job_id"] for x in (tmp_path / "failed.jsonl").read_text().splitlines()] == ["0-000002"]


def test_merge_refuses_a_job_id_in_two_shards_and_keeps_the_old_output(tmp_path: Path) -> None:
    root = tmp_path / "shards" / "abc"
    _shard(root, "part-00000", ["0-000000", "0-000001"])
    _shard(root, "part-00001", ["0-000001"])
    (tmp_path / "examples.jsonl").write_text("earlier\n")
    with pytest.raises(OutputError, match=r"part-00001.*0-000001 is in two shards"):
        merge_shards(tmp_path, root, 2)
    assert (tmp_path / "examples.jsonl").read_text() == "earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples.jsonl", "shards"]
