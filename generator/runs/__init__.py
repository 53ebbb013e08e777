"""Runs: the run directory, its checkpoint files, the output record types and the document layout
(owns the `documents:` section, `DocumentsConfig`).

What it owns: `RunDir` (one session per output directory, run.json, the identity that decides resume),
`Checkpoint` (examples.jsonl / failed.jsonl, appended and fsynced), the record types (`Example`,
`Document`, the RA-DIT records), run statistics and breakers (`Stats`, `Breaker`), the JSON/JSONL
reader every input loader shares, and how documents are ordered and laid out (`layout.py`).
It may import: the core's leaf modules (types, paradigms, strict) and ragloom.errors. It is the bottom
wing: every other wing may read it, it reads none.
"""

from __future__ import annotations

from .checkpoint import EXAMPLES, FAILED, RUN, Checkpoint, read_jsonl, read_records
from .layout import FIXED, DocumentsConfig, Layouter, order_documents, render, source_slots
from .record import Document, Example, ExemplarRef, Generation, LmFtRecord, LsrChunk, LsrRecord, Record, from_dict
from .rundir import GENERATE, RunDir, identity_hash, index_identity, read_run_json
from .stats import Breaker, Stats

__all__ = [
    "EXAMPLES",
    "FAILED",
    "FIXED",
    "GENERATE",
    "RUN",
    "Breaker",
    "Checkpoint",
    "Document",
    "DocumentsConfig",
    "Example",
    "ExemplarRef",
    "Generation",
    "Layouter",
    "LmFtRecord",
    "LsrChunk",
    "LsrRecord",
    "Record",
    "RunDir",
    "Stats",
    "from_dict",
    "identity_hash",
    "index_identity",
    "order_documents",
    "read_jsonl",
    "read_records",
    "read_run_json",
    "render",
    "source_slots",
]
