"""Helpers the end-to-end tests share: a run config aimed at the fake server, and reading JSONL."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml


def run_config(tmp: Path, index: Path, base_url: str, count: int, *, backend: dict | None = None, **extra) -> Path:
    """Write `tmp/run.yaml` for `count` jobs against `base_url` (output `tmp/out`); `backend` overrides
    backend keys, `extra` adds or replaces top-level keys."""
    cfg = {
        "index": str(index),
        "count": count,
        "seed": 0,
        "output": str(tmp / "out"),
        "backend": {
            "type": "openai",
            "base_url": base_url,
            "model": "fake",
            "api_key_env": None,
            "concurrency": 16,
            "timeout": 5,
            "max_retry_wait": 0.2,
            **(backend or {}),
        },
        # the fake server's pairs are not grounded in the documents: the paradigm check is off unless asked
        "quality": {"conformance": False},
        # and it asks the same question for jobs whose first source is the same: no dedup unless asked
        "curation": {"dedup": {"enabled": False}},
        **extra,
    }
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def jsonl(path: Path) -> list[dict]:
    """Every line of a JSONL file, parsed (a torn line raises); [] when the file does not exist."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def kill_at(cfg: Path, out: Path, marks: tuple[int, ...]) -> None:
    """Run `ragloom generate --config cfg` in a subprocess once per mark and SIGKILL it as soon as
    `out/examples.jsonl` holds that many records (or after 180 s)."""
    cmd = [sys.executable, "-m", "ragloom", "generate", "--config", str(cfg), "--quiet"]
    for mark in marks:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if (out / "examples.jsonl").exists() and (out / "examples.jsonl").read_bytes().count(b"\n") >= mark:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
