"""The run directory, one class for `generate` and both `radit` commands.

`OUT/run.json` names the run (kind, plan hash, config, index manifest, versions); `OUT/examples.jsonl`
and `OUT/failed.jsonl` are its checkpoint. Opening a directory:
- holding the same run (same plan hash): resume, skipping every job already written;
- holding another run, or records with no `run.json`: refused, unless `overwrite`, which deletes them;
- `retry_failed`: the failed jobs' lines are dropped (atomically) so those jobs run again and each
  ends with one line, wherever it lands.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import ragloom
from ragloom.errors import InputFormatError, OutputError

from .checkpoint import EXAMPLES, FAILED, RUN, Checkpoint, read_jsonl

GENERATE = "generate"


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]


def index_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """What an index holds, for run identity: an index rebuilt at the same path from another corpus,
    with another encoder or index type, makes another run."""
    return {
        "encoder": manifest["encoder"]["name"],
        "dim": manifest["encoder"].get("dim"),
        "passages": manifest["passages"],
        "fingerprint": manifest["corpus"]["fingerprint"],
        "index": manifest.get("index"),
    }


def read_run_json(out: Path) -> dict[str, Any]:
    """`OUT/run.json`, or {} when there is none; a corrupt one is a one-line error."""
    path = out / RUN
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFormatError(
            f"{path}: corrupt run file ({getattr(e, 'msg', e)}); restore it, or pass --overwrite to start over"
        ) from None
    if not isinstance(data, dict):
        raise InputFormatError(f"{path}: not a ragloom run file; pass --overwrite to start over")
    return data


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None


class RunDir:
    """A run's output directory: identity check, `run.json`, the checkpoint, retry-failed, overwrite."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.info: dict[str, Any] = {}

    def open(
        self,
        *,
        kind: str,
        plan_hash: str,
        info: dict[str, Any],
        overwrite: bool = False,
        retry_failed: bool = False,
        sync_inline: bool = True,
    ) -> Checkpoint:
        """Create or resume the directory and return its checkpoint; nothing is written before the
        identity check passes."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create output directory {self.out}: {e.strerror}") from None
        self._check_same_run(plan_hash, overwrite)
        if retry_failed:
            self._drop_failed()
        self.info = {
            **({} if kind == GENERATE else {"kind": kind}),
            "plan_hash": plan_hash,
            **info,
            "versions": {"ragloom": ragloom.__version__, "python": platform.python_version()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self.write_info()
        return Checkpoint(self.out, sync_inline=sync_inline)

    def write_info(self, **extra: Any) -> None:
        """Write `run.json` atomically (with `extra` keys, e.g. the last session's stats)."""
        self.info.update(extra)
        _atomic_write(self.out / RUN, json.dumps(self.info, indent=2, ensure_ascii=False) + "\n")

    def _check_same_run(self, plan_hash: str, overwrite: bool) -> None:
        """Refuse to mix two different runs in one directory."""
        has_records = (self.out / EXAMPLES).exists() or (self.out / FAILED).exists()
        if overwrite:
            if (has_records or (self.out / RUN).exists()) and self._old_hash_or_none() != plan_hash:
                self._clear()
            return
        old_info = read_run_json(self.out)
        if not old_info:
            if has_records:
                raise OutputError(f"{self.out} holds records but no {RUN}; pass --overwrite to start over")
            return
        if old_info.get("plan_hash") != plan_hash:
            raise OutputError(
                f"{self.out} holds a different run (plan {old_info.get('plan_hash')} vs {plan_hash}: the config, "
                "the index contents or a template changed); use another output directory or pass --overwrite"
            )

    def _old_hash_or_none(self) -> str | None:
        try:
            return read_run_json(self.out).get("plan_hash")
        except InputFormatError:
            return None

    def _clear(self) -> None:
        for name in (EXAMPLES, FAILED, RUN):
            (self.out / name).unlink(missing_ok=True)

    def _drop_failed(self) -> None:
        path = self.out / FAILED
        if path.exists() and read_jsonl(path, repair=True):
            _atomic_write(path, "")
