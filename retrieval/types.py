"""The record types of the retrieval layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable unit of the corpus."""

    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    """A search result: a passage, its inner-product score and its 0-based rank."""

    passage: Passage
    score: float
    rank: int


@dataclass(frozen=True, slots=True)
class Distractor:
    """A sampled distractor; `rule` says how it was picked: band, widened (deeper than the band),
    shallow (above the band, only in a corpus smaller than the band) or random.

    `rank` is its retrieval rank for the query, or None when it came from the random
    corpus fallback.
    """

    passage: Passage
    rank: int | None
    rule: str
