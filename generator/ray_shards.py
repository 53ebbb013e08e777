"""Shard bookkeeping for Ray runs, without Ray: fixed shards of a plan, their directory names,
stats passed between processes as plain dicts, and the merge into `OUT/examples.jsonl`.

`OUT/examples.jsonl` and `failed.jsonl` are the run's record, whichever sessions (local or Ray)
wrote it: a merge only appends the shard records OUT lacks, so it never drops what a local
session wrote, and every session (local ones too) absorbs the shards first and skips every job
OUT then holds."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ragloom.retrieval import Index

from ragloom.errors import OutputError

from .config import RunConfig
from .curation import Deduper
from .pipeline import by_exemplar
from .runs import EXAMPLES, FAILED, Stats, read_jsonl
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


REDO_LOCK = "redo.lock"  # held by the worker that asks duplicates found across shards again, into OUT


class ShardDuplicates:
    """`absorb_shards`'s `decide`: each worker dedups its own shard only, so the records a merge adds
    are checked once more, in plan order, against every record OUT holds and the new ones before
    them. A repeat is asked again at its next attempt, as one process asks it again."""

    def __init__(self, cfg: RunConfig, index: Index) -> None:
        self.cfg, self.index = cfg, index

    def __call__(self, held: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        dd = self.cfg.curation.dedup
        if not dd.enabled or not new:
            return {}
        deduper = Deduper.from_records(dd, held, embed=self.index.embed_queries)
        questions = [r["instruction"] for r in new]
        vecs = self.index.embed_queries(questions) if dd.cosine_threshold is not None else None
        dups: dict[str, dict[str, Any]] = {}
        for i, r in enumerate(new):
            v = None if vecs is None else vecs[i]
            dup = deduper.check(r["instruction"], v)
            if dup is None:
                deduper.add(r["job_id"], r["instruction"], v)
            else:
                dups[r["job_id"]] = {"duplicate": dup.as_dict(), "across_shards": True}
        return dups


Decide = Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, dict[str, Any]]]


def absorb_shards(
    out: Path,
    root: Path,
    shards: list[list[Job]],
    *,
    decide: Decide | None = None,
    attempts: int = 1,
    retry: bool = False,
) -> dict[str, int]:
    """Append to OUT/examples.jsonl and failed.jsonl every record of the shard folders under `root`
    (finished or partial) whose job OUT does not hold yet; OUT is only ever appended to, so what
    any session wrote there, local or Ray, stays. Returns the jobs to ask again (job id -> the
    attempts already used): records `decide(held, new)` names as repeats of an accepted question.
    A repeat whose attempts are spent fails as `duplicate_instruction` (with `retry`: asked again
    from the first attempt, as --retry-failed asks every failed job again)."""
    if not root.is_dir():
        return {}
    owner = {j.id: i for i, s in enumerate(shards) for j in s}
    rank = {j.id: n for n, j in enumerate(j for s in shards for j in s)}
    held = read_jsonl(out / EXAMPLES, repair=True)
    known = {r["job_id"] for r in held} | {r["job_id"] for r in read_jsonl(out / FAILED, repair=True)}
    new: dict[str, list[dict[str, Any]]] = {EXAMPLES: [], FAILED: []}
    for i in range(len(shards)):
        final, partial = root / part_name(i), root / f"{part_name(i)}.partial"
        with _settled(partial):  # a worker of a killed driver may still be writing it: wait for it to end
            for folder in (final, partial):
                for name, bucket in new.items():
                    for r in read_jsonl(folder / name, repair=False):
                        if owner.get(r["job_id"]) != i:
                            raise OutputError(f"{folder / name}: job {r['job_id']} is not this shard's; remove {root}")
                        if r["job_id"] not in known:
                            known.add(r["job_id"])
                            bucket.append(r)
    new[EXAMPLES].sort(key=lambda r: rank[r["job_id"]])
    dups = decide(held, new[EXAMPLES]) if decide is not None else {}
    again: dict[str, int] = {}
    for r in new[EXAMPLES]:
        if r["job_id"] in dups:
            used = (r.get("generation") or {}).get("attempts", 1)
            if used < attempts or retry:
                again[r["job_id"]] = used if used < attempts else 0
            else:
                entry = {"job_id": r["job_id"], "reason": "duplicate_instruction", "attempts": used}
                new[FAILED].append({**entry, "curation": dups[r["job_id"]]})
    _append(out / FAILED, new[FAILED])
    _append(out / EXAMPLES, [r for r in new[EXAMPLES] if r["job_id"] not in dups])
    for i in range(len(shards)):  # a late retry's folder beside a finished shard holds no record of its own
        if (root / part_name(i)).is_dir():
            shutil.rmtree(root / f"{part_name(i)}.partial", ignore_errors=True)
    return again


@contextlib.contextmanager
def _settled(partial: Path) -> Iterator[None]:
    if not partial.is_dir():
        yield
        return
    try:
        fh = open(partial / ".lock", "a")  # noqa: SIM115 - closed below
    except FileNotFoundError:  # renamed to its final name meanwhile
        yield
        return
    with fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def wait_for_redo(root: Path) -> None:
    """Wait for a worker of a killed driver that still asks repeats again into OUT."""
    if (root / REDO_LOCK).exists():
        with open(root / REDO_LOCK, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)


def _append(path: Path, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    try:
        with open(path, "ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; free space and rerun to resume") from None


def drop_shard_failures(root: Path, count: int) -> None:
    """--retry-failed: the failures in every shard folder, finished or partial, are dropped so that
    their jobs run again (`reopen` makes a finished shard with jobs to run partial again); the
    accepted records stay where they are."""
    for i in range(count):
        for folder in (root / part_name(i), root / f"{part_name(i)}.partial"):
            path = folder / FAILED
            if path.exists() and path.stat().st_size:
                tmp = folder / f".{FAILED}.tmp"
                tmp.write_bytes(b"")
                os.replace(tmp, path)


def reopen(root: Path, shard: int) -> None:
    """Make finished shard `shard` partial again (it has jobs to run): a stale partial beside it,
    left by a late retry, is removed first (`absorb_shards` has read it)."""
    final, partial = root / part_name(shard), root / f"{part_name(shard)}.partial"
    if final.is_dir():
        shutil.rmtree(partial, ignore_errors=True)
        os.replace(final, partial)


class Absorb:
    """One session's view of the shards under `root`: `absorb()` merges them into OUT (see
    `absorb_shards`) and returns the jobs to ask again; `held()` is the job ids OUT holds."""

    def __init__(
        self, cfg: RunConfig, index: Index, out: Path, root: Path, shards: list[list[Job]], retry: bool = False
    ) -> None:
        self.out, self.root, self.shards, self.retry = out, root, shards, retry
        self.decide, self.attempts = ShardDuplicates(cfg, index), cfg.validation.attempts

    def __call__(self) -> dict[str, int]:
        return absorb_shards(
            self.out, self.root, self.shards, decide=self.decide, attempts=self.attempts, retry=self.retry
        )

    def held(self) -> set[str]:
        return {r["job_id"] for name in (EXAMPLES, FAILED) for r in read_jsonl(self.out / name, repair=False)}

    def session_stats(self, stats: Stats, before: set[str]) -> None:
        """This session's accepted and failed jobs, counted from what OUT gained (the workers'
        counters miss records moved at the merge and the shards a stop cut short)."""
        stats.accepted = sum(r["job_id"] not in before for r in read_jsonl(self.out / EXAMPLES, repair=False))
        failed = [r["reason"] for r in read_jsonl(self.out / FAILED, repair=False) if r["job_id"] not in before]
        stats.failed = Counter(failed)


def asked_again(jobs: list[Job], again: dict[str, int]) -> list[Job]:
    """The jobs `again` names, at their next attempt."""
    return [dataclasses.replace(j, attempt=again[j.id] + 1) for j in jobs if j.id in again]
