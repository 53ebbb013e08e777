"""Checkpoint: `OUT/examples.jsonl` (accepted records), `OUT/failed.jsonl` (jobs that failed
validation on every attempt) and `OUT/run.json` (config, versions, plan hash).

Lines are appended as records finish and fsynced in small batches. On resume a torn last
line (a kill mid-write) is cut off; a bad line anywhere else is an error. A job id is
written at most once: the writer refuses ids it has already seen.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ragloom.errors import InputFormatError, OutputError

from .record import Record

EXAMPLES = "examples.jsonl"
FAILED = "failed.jsonl"
RUN = "run.json"


def read_jsonl(path: Path, *, repair: bool) -> list[dict[str, Any]]:
    """All records of a checkpoint file. A last line without its newline was torn by a kill:
    it is dropped (and, with `repair`, truncated away). Any other bad line is an error."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    pos = 0
    lineno = 0
    while pos < len(data):
        lineno += 1
        nl = data.find(b"\n", pos)
        if nl == -1:
            if repair:
                with open(path, "r+b") as fh:
                    fh.truncate(pos)
            break
        raw = data[pos:nl]
        if raw.strip():
            try:
                records.append(json.loads(raw))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise InputFormatError(f"{path}:{lineno}: corrupt checkpoint line; remove it to resume") from None
        pos = nl + 1
    return records


class Checkpoint:
    """Appends records and failures; remembers every job id already on disk.

    `sync_inline=False` leaves fsync to the caller (`sync_due` says when): the pipeline runs it in a
    worker thread so the event loop never blocks on the disk."""

    def __init__(
        self, out: Path, *, fsync_every: int = 16, fsync_seconds: float = 1.0, sync_inline: bool = True
    ) -> None:
        self.out = out
        self.fsync_every = fsync_every
        self.fsync_seconds = fsync_seconds
        self.sync_inline = sync_inline
        self.reload()
        self._files: dict[str, TextIO] = {}
        self._pending = 0
        self._last_sync = time.monotonic()
        self._lock = threading.Lock()

    def reload(self) -> None:
        """Read the files again (before anything is written: another writer added records, e.g. the
        merge of a Ray session's shards)."""
        self.examples = read_jsonl(self.out / EXAMPLES, repair=True)
        self.failed = read_jsonl(self.out / FAILED, repair=True)
        self.done: set[str] = {r["job_id"] for r in self.examples} | {r["job_id"] for r in self.failed}

    def _file(self, name: str) -> TextIO:
        if name not in self._files:
            self._files[name] = open(self.out / name, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
        return self._files[name]

    def write_example(self, record: Record) -> None:
        self._append(EXAMPLES, record.to_dict())

    def write_failure(
        self, job_id: str, reason: str, attempts: int, detail: str = "", curation: dict[str, Any] | None = None
    ) -> None:
        entry: dict[str, Any] = {"job_id": job_id, "reason": reason, "attempts": attempts}
        if detail:
            entry["detail"] = detail
        if curation:
            entry["curation"] = curation
        self._append(FAILED, entry)

    def _append(self, name: str, record: dict[str, Any]) -> None:
        job_id = record["job_id"]
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            if job_id in self.done:
                return
            try:
                fh = self._file(name)
                fh.write(line)
                fh.flush()
            except OSError as e:
                raise OutputError(
                    f"cannot write {self.out / name}: {e.strerror or e}; free space and rerun to resume"
                ) from None
            self.done.add(job_id)
            self._pending += 1
        if self.sync_inline and self.sync_due():
            self.sync()

    def sync_due(self) -> bool:
        return self._pending >= self.fsync_every or (
            self._pending > 0 and time.monotonic() - self._last_sync >= self.fsync_seconds
        )

    def sync(self) -> None:
        with self._lock:
            files = list(self._files.values())
            self._pending = 0
            self._last_sync = time.monotonic()
        try:
            for fh in files:
                fh.flush()
                os.fsync(fh.fileno())
        except (OSError, ValueError) as e:  # ValueError: closed meanwhile
            if isinstance(e, OSError):
                raise OutputError(
                    f"cannot write {self.out}: {e.strerror or e}; free space and rerun to resume"
                ) from None

    def close(self) -> None:
        try:
            self.sync()
        finally:
            for fh in self._files.values():
                try:
                    fh.close()
                except OSError:
                    pass
            self._files.clear()


def read_records(path: Path) -> Iterator[tuple[Any, str]]:
    """(record, "file:line") from a JSON array or JSON lines file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputFormatError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputFormatError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        for i, rec in enumerate(data, 1):
            yield rec, f"{path}:item {i}"
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield json.loads(line), f"{path}:{lineno}"
        except json.JSONDecodeError as e:
            raise InputFormatError(f"{path}:{lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
