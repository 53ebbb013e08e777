"""The `card:` section: dataset-card metadata."""

from __future__ import annotations

from pydantic import Field

from ..strict import Strict


class Card(Strict):
    """Dataset-card metadata: what the corpus is licensed under and written in (ragloom cannot know)."""

    license: str | None = Field(None, description="an SPDX-style Hub licence id, e.g. cc-by-sa-4.0; default: unknown")
    language: list[str] = Field(default_factory=list, description="ISO 639-1 codes of the corpus, e.g. [en]")
    pretty_name: str | None = None
