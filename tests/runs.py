"""Helpers the end-to-end tests share: a run config aimed at the fake server, and reading JSONL."""

from __future__ import annotations

import json
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
