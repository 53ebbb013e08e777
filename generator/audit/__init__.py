"""Audit: `ragloom audit`, reading any RAG instruction dataset and running the same check objects on it.

What it owns: readers for the formats it accepts (ragloom's records and views, RAG-Instruct's,
plain JSON/JSONL/parquet), the per-record auditor, the dataset-level curation audit and the command.
It may import: quality, curation, runs and publish (through their `__init__`), the core's config
(the `quality:` and `distractors:` sections a run used), the core's leaf modules (`aio.run_sync` runs
the checks' async method), ragloom.retrieval and ragloom.errors.
Nothing imports it but the CLI and the library API.
"""

from __future__ import annotations

from .command import run_audit

__all__ = [
    "run_audit",
]
