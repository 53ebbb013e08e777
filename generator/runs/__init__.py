"""Runs: the run directory, its checkpoint files, the output record types and the document layout
(owns the `documents:` section, `DocumentsConfig`).

What it owns: `RunDir` (one session per output directory, run.json, the identity that decides resume),
`Checkpoint` (examples.jsonl / failed.jsonl, appended and fsynced), the record types (`Example`,
`Document`, the RA-DIT records), run statistics and breakers (`Stats`, `Breaker`), the JSON/JSONL
reader every input loader shares, how documents are ordered and laid out (`layout.py`), and how an
answer refers to them (`citations.py`: `[n]` markers, RAFT quote markers).
It may import: the core's leaf modules (types, paradigms, strict) and ragloom.errors. It is the bottom
wing: every other wing may read it, it reads none.
"""

from __future__ import annotations

from .checkpoint import EXAMPLES, FAILED, RUN, Checkpoint, read_jsonl, read_records
from .citations import (
    MARKERS_WITH_SPACE,
    Quoted,
    final_numbers,
    has_citations,
    has_quotes,
    lead_in,
    marker_numbers,
    parse_quoted,
    renumber,
    strip_answer,
    strip_citations,
    strip_quote_marks,
)
from .layout import FIXED, DocumentsConfig, Layouter, order_documents, render, source_slots
from .record import Document, Example, ExemplarRef, Generation, LmFtRecord, LsrChunk, LsrRecord, Record, from_dict
from .rundir import GENERATE, RunDir, identity_hash, index_identity, read_run_json
from .stats import Breaker, Stats

__all__ = [
    "EXAMPLES",
    "FAILED",
    "FIXED",
    "GENERATE",
    "MARKERS_WITH_SPACE",
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
    "Quoted",
    "Record",
    "RunDir",
    "Stats",
    "final_numbers",
    "from_dict",
    "has_citations",
    "has_quotes",
    "identity_hash",
    "index_identity",
    "lead_in",
    "marker_numbers",
    "order_documents",
    "parse_quoted",
    "read_jsonl",
    "read_records",
    "read_run_json",
    "render",
    "renumber",
    "source_slots",
    "strip_answer",
    "strip_citations",
    "strip_quote_marks",
]
