"""Publish: what leaves a run (owns the `card:` section, `Card`).

What it owns: export views (`export`, the layouts' use of runs/layout.py; RAFT's layout in raft.py), the dataset card and its
figures, `push` to the Hub, the HTML report (`write_report`, with report.html.j2/.css/.js), and the
corpus-coverage figures run.json, the card, the report and audit share.
It may import: runs and curation (through their `__init__`), the core's leaf modules (types,
paradigms, strict), ragloom.retrieval and ragloom.errors.
"""

from __future__ import annotations

from .config import Card
from .coverage import corpus_size, coverage, of_records
from .coverage import of_file as coverage_of_file
from .export import ALL_VIEWS, export, load_run
from .push import push
from .raft import from_raft, is_raft, raft_row
from .report import write_report

__all__ = [
    "ALL_VIEWS",
    "Card",
    "corpus_size",
    "coverage",
    "coverage_of_file",
    "export",
    "from_raft",
    "is_raft",
    "load_run",
    "of_records",
    "push",
    "raft_row",
    "write_report",
]
