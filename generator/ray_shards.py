"""Shard bookkeeping for Ray runs, without Ray: fixed shards of a plan, their directory names,
stats passed between processes as plain dicts, and the merge into `OUT/examples.jsonl`."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragloom.errors import OutputError

from .checkpoint import EXAMPLES, FAILED
from .pipeline import by_exemplar
from .stats import Stats
from .types import Job, Usage


def shard_size(count: int) -> int:
    """Jobs per shard, fixed by the plan size: 100, or more so that there are at most 2,000 shards."""
    return max(100, -(-count // 2000))


def cut_shards(jobs: list[Job]) -> list[list[Job]]:
    ordered, size = by_exemplar(jobs), shard_size(len(jobs))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def part_name(shard: int) -> str:
    return f"part-{shard:05d}"


def stats_dict(s: Stats) -> dict[str, Any]:
    return s.as_dict()


def add_stats(total: Stats, d: dict[str, Any]) -> None:
    """Add counters sent as `Stats.as_dict()` (from a worker) to `total`."""
    total.skipped_done += d["skipped_done"]
    total.accepted += d["accepted"]
    for name in ("failed", "rejected", "retried", "backend_errors", "counts"):
        getattr(total, name).update(d[name])
    total.usage.add(Usage(d["usage"]["prompt_tokens"], d["usage"]["completion_tokens"]))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def merge_shards(
    out: Path,
    root: Path,
    count: int,
    drop: Callable[[list[dict[str, Any]]], dict[str, dict[str, Any]]] | None = None,
) -> int:
    """Write the finished shards, in shard order, to OUT/examples.jsonl and failed.jsonl; returns
    the number of jobs. A job id in two shards is an error: the shards were not this plan's.
    `drop(records)` (the records in shard order) names records to move to failed.jsonl as
    `duplicate_instruction`, with their curation info: each worker dedups its own shard only, so
    duplicates across shards are decided here, in plan order, from the shards as they are (the
    same shards always merge the same way)."""
    seen: set[str] = set()
    records = [json.loads(x) for i in range(count) for x in _lines(root / part_name(i) / EXAMPLES)]
    dropped = drop(records) if drop is not None and records else {}
    for name in (EXAMPLES, FAILED):
        tmp = out / f".{name}.merge"
        try:
            with open(tmp, "wb") as dst:
                for i in range(count):
                    src = root / part_name(i) / name
                    for line in _lines(src):
                        job_id = json.loads(line)["job_id"]
                        if job_id in seen:
                            raise OutputError(f"{src}: job {job_id} is in two shards; remove {root} and rerun")
                        seen.add(job_id)
                        if name == EXAMPLES and job_id in dropped:
                            continue
                        dst.write(line)
                if name == FAILED:
                    attempts = {r["job_id"]: (r.get("generation") or {}).get("attempts", 1) for r in records}
                    for job_id, info in dropped.items():
                        entry = {"job_id": job_id, "reason": "duplicate_instruction", "attempts": attempts[job_id]}
                        dst.write((json.dumps({**entry, "curation": info}, ensure_ascii=False) + "\n").encode())
                dst.flush()
                os.fsync(dst.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, out / name)
    return len(seen)


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True) if path.exists() else []


def reopen_failed(root: Path, count: int) -> None:
    """--retry-failed: a finished shard with failures becomes a partial one without them."""
    for i in range(count):
        part = root / part_name(i)
        if (part / FAILED).exists() and (part / FAILED).stat().st_size:
            (part / FAILED).unlink()
            os.replace(part, root / f"{part_name(i)}.partial")
