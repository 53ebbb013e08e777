"""The run directory, one class for `generate` and both `radit` commands.

`OUT/run.json` names the run (kind, plan hash, config, index manifest, versions); `OUT/examples.jsonl`
and `OUT/failed.jsonl` are its checkpoint. Opening a directory:
- holding the same run (same plan hash): resume, skipping every job already written;
- holding another run, or records with no `run.json`: refused, unless `overwrite`, which deletes them;
- `retry_failed`: the failed jobs' lines are dropped (atomically) so those jobs run again and each
  ends with one line, wherever it lands.

One session at a time: `open` takes an exclusive `flock` on `OUT/.ragloom.lock` for the whole session
(`close` releases it; the OS releases it when the process dies, so a SIGKILL leaves no stale lock). A
second session on the same directory is refused with one line naming the process that holds it.

The run's identity (`identity`: the settings that change what a record contains, the index contents,
the templates) is stored in `run.json`, so a refusal names the keys that differ.
"""

from __future__ import annotations

import contextlib
import fcntl
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
LOCK = ".ragloom.lock"


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


def read_run_json(out: Path, fix: str = "restore it, or pass --overwrite to start over") -> dict[str, Any]:
    """`OUT/run.json`, or {} when there is none; a corrupt one is a one-line error ending with `fix`."""
    path = out / RUN
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFormatError(f"{path}: corrupt run file ({getattr(e, 'msg', e)}); {fix}") from None
    if not isinstance(data, dict):
        raise InputFormatError(f"{path}: not a ragloom run file; {fix}")
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


_MISSING = object()


def differing_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two JSON-like trees (a key on one side only counts,
    even when the other side's value is null)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            out += differing_keys(old.get(k, _MISSING), new.get(k, _MISSING), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".") or "(all)"]


class RunDir:
    """A run's output directory: session lock, identity check, `run.json`, the checkpoint,
    retry-failed, overwrite."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.info: dict[str, Any] = {}
        self._lock_fh: Any = None

    def lock(self) -> None:
        """Hold `OUT/.ragloom.lock` exclusively until `close` (or this process's end); refuse when
        another session holds it."""
        if self._lock_fh is not None:
            return
        path = self.out / LOCK
        try:
            fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the session
        except OSError as e:
            raise OutputError(f"cannot create {path}: {e.strerror or e}") from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise OutputError(
                f"{self.out} is in use by another ragloom session ({holder}); wait for it to finish, "
                "or write to another output directory"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        self._lock_fh = fh

    def close(self) -> None:
        """Release the session lock (idempotent)."""
        if self._lock_fh is not None:
            with contextlib.suppress(OSError):
                self._lock_fh.close()
            self._lock_fh = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        """Lock, create or resume the directory and return its checkpoint; nothing is written before
        the identity check passes. `info["identity"]`, when given, is what the plan hash was computed
        from: a refusal names the keys in which it differs from the run already there."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"cannot create output directory {self.out}: {e.strerror}") from None
        self.lock()
        try:
            self._check_same_run(plan_hash, overwrite, info.get("identity"))
            if retry_failed:
                self._drop_failed()
        except BaseException:
            self.close()
            raise
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

    def _check_same_run(self, plan_hash: str, overwrite: bool, identity: dict[str, Any] | None = None) -> None:
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
                f"{self.out} holds a different run ({_what_differs(old_info.get('identity'), identity)}); "
                "to keep its records write to another output directory, or pass --overwrite to delete them and start over"
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


def _what_differs(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """'differs in: quality.necessity_margin, templates.useless_doc' when both identities are known."""
    if not old or not new:
        return "the config, the index contents or a template changed"
    keys = [k.removeprefix("settings.") for k in differing_keys(old, new)]
    if not keys:
        return "the same settings but another plan: the exemplars changed"
    shown = ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    return f"differs in: {shown}"
