"""Encode batches of like length.

A transformer pads every text of a batch to the batch's longest, and attention costs grow faster than
length, so a batch that mixes a 110-token answer with 31 ten-token clauses pays for 32 long texts.
Sorting by length (what sentence-transformers does) and cutting fixed runs of `batch_size` still
mixes them wherever the lengths change inside a run: the quality checks embed each record's answer,
question, clauses and source sentences in one call, and on such calls fixed runs padded 1.7x the
tokens the texts hold (bench/generation.py G3, 4,314 texts; cutting at a length drop as below: 1.1x).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# a batch ends where a text is shorter than this share of the batch's first (longest) text ...
LENGTH_RATIO = 0.8


def length_batches(
    lengths: Sequence[int], batch_size: int, *, slack: int, ratio: float = LENGTH_RATIO
) -> list[np.ndarray]:
    """Indices into `lengths`, longest first, in batches of at most `batch_size` whose texts are at
    least `ratio` of the batch's longest, or within `slack` of it (short texts pad little, so they
    are not split for a few tokens). Every index appears once."""
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    out: list[np.ndarray] = []
    start = 0
    for pos in range(1, len(order) + 1):
        if pos == len(order):
            out.append(order[start:pos])
            break
        head, n = lengths[order[start]], lengths[order[pos]]
        if pos - start >= batch_size or (n < ratio * head and head - n > slack):
            out.append(order[start:pos])
            start = pos
    return out
