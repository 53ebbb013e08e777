"""Curation: dataset-level checks, across records (owns the `curation:` section, `Curation`).

What it owns: duplicate instructions across the run (`Deduper`: MinHash + cosine, decided in plan
order by `InOrder`), overlap with evaluation sets (`Decontaminator`, `EvalSet`, n-gram tables).
Record-level checks are in quality/; the pipeline's in-order curation stage that calls this wing
is core (`curate.py`).
It may import: runs (through its `__init__`), the core's leaf modules (types, strict),
ragloom.retrieval and ragloom.errors.
"""

from __future__ import annotations

from .config import Curation
from .decontam import Decontaminator, EvalSet, contamination_table, default_cache_dir, open_decontaminator
from .dedup import DedupConfig, Deduper, InOrder, early_duplicates

__all__ = [
    "Curation",
    "Decontaminator",
    "DedupConfig",
    "Deduper",
    "EvalSet",
    "InOrder",
    "contamination_table",
    "default_cache_dir",
    "early_duplicates",
    "open_decontaminator",
]
