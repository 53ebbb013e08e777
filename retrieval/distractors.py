"""Distractor sampling: topically close passages that neither are, nor copy, nor answer the sources.

RAG-Instruct pads each example with passages from retrieval ranks beyond the top 200:
close enough to look relevant, far enough not to hold the answer. `sample_distractors`
is pure: the same hits, sources, answer, screen and RNG state give the same picks.
"""

from __future__ import annotations

import functools
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence

from .types import Distractor, Hit, Passage

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@functools.lru_cache(maxsize=8192)
def normalize_text(text: str) -> str:
    """Lower-case words separated by single spaces, for duplicate and containment checks.

    Cached: the same passages come back in the rank bands of many questions."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def contains_answer(text: str, answer: str | None) -> bool:
    """True when the normalised answer occurs in the normalised text as whole words."""
    if not answer:
        return False
    a = normalize_text(answer)
    return bool(a) and f" {a} " in f" {normalize_text(text)} "


Screen = Callable[[Passage], str | None]


def sample_distractors(
    hits: Sequence[Hit],
    *,
    sources: Sequence[Passage],
    n: int,
    rng: random.Random,
    band: tuple[int, int] = (200, 250),
    max_rank: int = 1000,
    corpus_size: int | None = None,
    answer: str | None = None,
    screen: Screen | None = None,
    leaks: Counter[str] | None = None,
    random_passage: Callable[[random.Random], Passage] | None = None,
    max_random_tries: int = 50,
) -> list[Distractor]:
    """Pick `n` distractors for one query from its ranked `hits`.

    Rules, in order: (1) "band": ranks in [band[0], band[1]); (2) "widened": when the band runs
    short, windows of the same width *below* it (deeper ranks, less relevant), nearest first, down to
    `max_rank`; (3) "random": passages drawn with `random_passage(rng)`. Ranks above band[0] are used
    only when the corpus is too small to have the band (`corpus_size` < band[1]): then (2) is
    (2') "shallow": windows above the band, nearest first, before random.

    A candidate is never a source, never has a source's text, never contains `answer`, and is never
    picked twice. `screen(candidate)` names a leak check that fired (or None): such a candidate is
    skipped, counted in `leaks[check]`, and the next one in the draw is taken. Fewer than `n` are
    returned only when every rule runs dry.
    """
    lo, hi = band
    if not 0 <= lo < hi:
        raise ValueError(f"band {band} is invalid; need 0 <= start < end")
    if max_rank < hi:
        raise ValueError(f"max_rank {max_rank} is above the band {band}; need max_rank >= band end")
    if n <= 0:
        return []
    source_ids = {p.id for p in sources}
    source_texts = {normalize_text(p.text) for p in sources}
    chosen: list[Distractor] = []
    taken: set[str] = set()

    def ok(p: Passage) -> bool:
        # normalize_text is cached, so the text normalised here is not normalised again inside
        if (
            p.id in source_ids
            or p.id in taken
            or normalize_text(p.text) in source_texts
            or contains_answer(p.text, answer)
            or contains_answer(p.title, answer)
        ):
            return False
        fired = screen(p) if screen is not None else None
        if fired is not None:
            if leaks is not None:
                leaks[fired] += 1
            taken.add(p.id)  # screened once, never again
            return False
        return True

    def take_from(window: list[Hit], rule: str) -> None:
        # a seeded shuffle, then the first that pass: the same uniform draw as sampling from the
        # filtered window, but the (costly) checks run on a few candidates instead of all of them
        order = list(window)
        rng.shuffle(order)
        for h in order:
            if len(chosen) >= n:
                return
            if ok(h.passage):
                chosen.append(Distractor(h.passage, h.rank, rule))
                taken.add(h.passage.id)

    take_from([h for h in hits if lo <= h.rank < hi], "band")
    width = hi - lo
    if corpus_size is not None and corpus_size < hi:
        top = lo
        while len(chosen) < n and top > 0:
            bottom = max(0, top - width)
            take_from([h for h in hits if bottom <= h.rank < top], "shallow")
            top = bottom
    else:
        bottom = hi
        while len(chosen) < n and bottom < max_rank:
            top, bottom = bottom, min(bottom + width, max_rank)
            take_from([h for h in hits if top <= h.rank < bottom], "widened")
    tries = 0
    while random_passage is not None and len(chosen) < n and tries < max_random_tries * n:
        tries += 1
        p = random_passage(rng)
        if ok(p):
            chosen.append(Distractor(p, None, "random"))
            taken.add(p.id)
    return chosen
