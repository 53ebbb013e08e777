"""The `curation:` section: duplicates across the run, overlap with eval sets."""

from __future__ import annotations

from pydantic import Field

from ..strict import Strict
from .decontam import EvalSet
from .dedup import DedupConfig


class Curation(Strict):
    """Dataset-level checks: duplicate instructions across the run, overlap with eval sets."""

    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: list[EvalSet] = Field(default_factory=list)
    decontam_ngrams: list[int] = Field(default_factory=lambda: [13, 8], min_length=1)
    decontam_min_words: int = Field(4, ge=1, description="eval texts shorter than this are not indexed")
    cache_dir: str | None = Field(None, description="eval-set index cache (default: ~/.cache/ragloom/decontam)")
