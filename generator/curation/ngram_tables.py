"""The word n-gram hashing and sorted-array tables decontamination looks texts up in.

Words are hashed once (blake2b, cached) and n-grams by a polynomial over the word hashes in numpy;
lookups are sorted-array searches, so a 100k-text table costs tens of microseconds per record.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .dedup import normalize_question

_MULT = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the polynomial n-gram hash


@functools.lru_cache(maxsize=1 << 20)
def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def word_hashes(text: str) -> np.ndarray:
    """Stable 64-bit hashes of the normalised words of `text` (the same in every process)."""
    return np.fromiter((_word_hash(w) for w in normalize_question(text).split()), dtype=np.uint64)


_INV = np.uint64(pow(int(_MULT), -1, 2**64))


@functools.lru_cache(maxsize=8)
def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(M^1..M^length, M^0..M^-(length-1)) mod 2^64."""
    up = np.cumprod(np.full(length, _MULT, dtype=np.uint64), dtype=np.uint64)
    down = np.cumprod(np.concatenate([[np.uint64(1)], np.full(length - 1, _INV, dtype=np.uint64)]), dtype=np.uint64)
    return up, down


class Spans:
    """Every word n-gram hash of one text from one prefix sum: H(i, n) = sum_k w[i+k] M^(k+1)
    = (P[i+n] - P[i]) M^-i (mod 2^64), so each n costs two vector operations."""

    def __init__(self, words: np.ndarray) -> None:
        self.n_words = len(words)
        size = 1 << max(self.n_words, 1).bit_length()  # a few cached tables serve every length
        up, self._down = _powers(max(size, 64))
        with np.errstate(over="ignore"):
            self._prefix = np.concatenate([[np.uint64(0)], np.cumsum(words * up[: self.n_words], dtype=np.uint64)])

    def __call__(self, n: int) -> np.ndarray:
        if n > self.n_words or n <= 0:
            return np.empty(0, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return (self._prefix[n:] - self._prefix[:-n]) * self._down[: self.n_words - n + 1]


def ngram_hashes(words: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit hash of each word n-gram (a polynomial over the word hashes, wrapping mod 2^64)."""
    return Spans(words)(n)


def _all_ngrams(words: Sequence[np.ndarray], n: int, chunk: int = 1 << 18) -> tuple[np.ndarray, np.ndarray]:
    """The n-gram hashes of many texts at once, and the index of the text each came from: the
    rolling hash runs over all words joined, and windows that cross a text boundary are dropped."""
    lengths = np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    if not len(words) or lengths.max(initial=0) < n:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    flat = np.concatenate(words)
    text_of = np.repeat(np.arange(len(words)), lengths)
    starts = np.arange(len(flat) - n + 1)
    keep = starts[text_of[starts] == text_of[starts + n - 1]]
    out = np.empty(len(keep), dtype=np.uint64)
    powers = np.cumprod(np.full(n, _MULT, dtype=np.uint64), dtype=np.uint64)
    win = np.lib.stride_tricks.sliding_window_view(flat, n)
    with np.errstate(over="ignore"):
        for a in range(0, len(keep), chunk):
            out[a : a + chunk] = (win[keep[a : a + chunk]] * powers).sum(axis=1, dtype=np.uint64)
    return out, text_of[keep]


def _sorted(hashes: np.ndarray, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(hashes, kind="stable")
    return hashes[order], where[order].astype(np.int32)


def _lookup(table: tuple[np.ndarray, np.ndarray], q: np.ndarray) -> int | None:
    """The id position of the first of `q`'s hashes that is in `table`, or None."""
    hashes, where = table
    if not len(q) or not len(hashes):
        return None
    at = np.searchsorted(hashes, q).clip(0, len(hashes) - 1)
    hit = np.nonzero(hashes[at] == q)[0]
    return int(where[at[hit[0]]]) if len(hit) else None


@dataclass
class Tables:
    """The n-gram and whole-text tables of one side (eval questions, or eval answers)."""

    ngrams: dict[int, tuple[np.ndarray, np.ndarray]]  # n -> (sorted hashes, id position)
    short: tuple[np.ndarray, np.ndarray]  # whole texts of min_words..max(n)-1 words

    @classmethod
    def build(cls, words: Sequence[np.ndarray], where: np.ndarray, ns: Sequence[int], min_words: int) -> Tables:
        grams: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for n in ns:
            h, text = _all_ngrams(words, n)
            grams[n] = _sorted(h, where[text])
        lengths = sorted({len(w) for w in words if min_words <= len(w) < max(ns)})
        short_h, short_p = [np.empty(0, np.uint64)], [np.empty(0, np.int32)]
        for n in lengths:  # a whole text of n words is its one n-gram
            ix = np.asarray([i for i, w in enumerate(words) if len(w) == n])
            h, text = _all_ngrams([words[i] for i in ix], n)
            short_h.append(h)
            short_p.append(where[ix[text]])
        return cls(grams, _sorted(np.concatenate(short_h), np.concatenate(short_p)))

    def match(self, spans_of: Spans) -> tuple[str, int] | None:
        """(method, id position) of the first match, longest n-gram first, then the whole text."""
        for n in sorted(self.ngrams, reverse=True):
            found = _lookup(self.ngrams[n], spans_of(n))
            if found is not None:
                return f"{n}gram", found
        found = _lookup(self.short, spans_of(spans_of.n_words))
        return None if found is None else ("exact", found)
