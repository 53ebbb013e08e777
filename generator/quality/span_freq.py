"""How many passages of the corpus hold a key span: what tells a specific span from a common one.

A year or "United States" in a distractor is no evidence that it gives the answer away when hundreds
of unrelated passages hold it too. `SpanFrequency` counts, for every word, every pair of adjacent
words, every number and every quantity (as `spans.numbers` and `spans.quantities` read them), the passages that hold it, in a count-min
sketch: a fixed table (`depth` rows of `width` uint32 counters, 16 MiB by default) whatever the
corpus size. A count is never below the true one; a collision can only make a span look more common.
A span's count is the smallest count of its word pairs (its word, for one word; the number, for a
number): at least the passages that hold the whole span.

`for_index_dir` counts an index's passage store once and keeps the table beside it, keyed by the
corpus fingerprint (`span_freq-<fingerprint>.npz`; in ~/.cache/ragloom/span_freq when the index
directory is read-only). A table another version of the features (`FORMAT`) counted is counted again.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
from ragloom.retrieval import PassageStore, normalize_text, read_manifest

from .spans import is_quantity, numbers, quantities

# the features a table counts; a table saved before a change to them is counted again
FORMAT = 3  # 2: quantities ("71 million") too; 3: with units ("72 days")
WIDTH = 1 << 21
DEPTH = 2
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragloom" / "span_freq"


class CountStopped(Exception):
    """`SpanFrequency.for_index_dir` was told to stop before it finished counting."""


def _hash(features: list[str]) -> np.ndarray:
    from pandas.util import hash_array  # vectorised, seeded SipHash: stable across processes

    return hash_array(np.asarray(features, dtype=object))


def text_features(text: str) -> set[str]:
    """The words, adjacent word pairs, numbers and quantities of `text` (what a span's count is read from)."""
    words = normalize_text(text).split()
    out = set(words)
    out.update(f"{a} {b}" for a, b in pairwise(words))
    out.update(f"#{n}" for n in numbers(text))
    out.update(f"#{q}" for q in quantities(text))
    return out


def span_features(span: str) -> list[str]:
    """The features whose smallest count bounds `span`'s count (a normalised span from `key_spans`)."""
    if span.replace(".", "").isdigit() or is_quantity(span):
        return [f"#{span}"]
    words = span.split()
    if len(words) == 1:
        return words
    return [f"{a} {b}" for a, b in pairwise(words)]


class SpanFrequency:
    """Passage counts of spans in one corpus; `share(span)` is the fraction of passages holding it."""

    def __init__(self, table: np.ndarray, passages: int) -> None:
        self.table, self.passages = table, passages

    @classmethod
    def from_texts(
        cls, texts: Iterable[str], *, width: int = WIDTH, depth: int = DEPTH, stop: threading.Event | None = None
    ) -> SpanFrequency:
        """Count `texts`; raises `CountStopped` as soon as `stop` is set (a run that ends before it starts)."""
        table = np.zeros((depth, width), dtype=np.uint32)
        n = 0
        batch: list[str] = []

        def flush() -> None:
            if batch:
                for row, idx in enumerate(_rows(_hash(batch), width, depth)):
                    np.add.at(table[row], idx, 1)
                batch.clear()

        for text in texts:
            if stop is not None and stop.is_set():
                raise CountStopped
            n += 1
            batch.extend(text_features(text))
            if len(batch) >= 200_000:
                flush()
        flush()
        return cls(table, n)

    @classmethod
    def for_index_dir(
        cls, directory: str | Path, stop: threading.Event | None = None, store: PassageStore | None = None
    ) -> SpanFrequency:
        """The counts of an index's passage store (titles and texts), computed once and cached. The
        hasher (pandas, 0.2 s to import) is loaded here too, not at the leak screen's first batch.
        `stop`: counting ends with `CountStopped` once it is set, and nothing is written. `store`: the
        index's store, already open (a run counts in a thread while the encoder imports transformers:
        opening the store again there fingerprints it with datasets' pickler, which reads transformers
        and fails on a half-imported one)."""
        _hash([""])
        directory = Path(directory)
        fingerprint = str(read_manifest(directory)["corpus"]["fingerprint"])
        name = f"span_freq-{fingerprint}.npz"
        for path in (directory / name, CACHE_DIR / name):
            if path.exists():
                try:
                    with np.load(path) as z:
                        if int(z["format"]) == FORMAT:
                            return cls(z["table"], int(z["passages"]))
                except (OSError, ValueError, KeyError):
                    pass  # a torn or foreign file, or one an older ragloom counted: count again
        store = store if store is not None else PassageStore(directory)
        freq = cls.from_texts(
            (f"{title}\n{text}" for _, titles, texts in store.iter_batches() for title, text in zip(titles, texts)),
            stop=stop,
        )
        for path in (directory / name, CACHE_DIR / name):
            if freq.save(path):
                break
        return freq

    def save(self, path: Path) -> bool:
        """Write the table atomically; False when `path`'s directory cannot be written."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
            with os.fdopen(fd, "wb") as f:
                np.savez(f, table=self.table, passages=np.int64(self.passages), format=np.int64(FORMAT))
            os.replace(tmp, path)
            return True
        except OSError:
            return False

    def count(self, span: str) -> int:
        """Passages holding `span` (an upper bound: the smallest count of its features)."""
        return self.counts([span])[0]

    def counts(self, spans: Sequence[str]) -> list[int]:
        """`count` of each span, their features hashed in one call (a call per span costs more than
        the hashing: the leak screen asks for thousands of words per batch of records)."""
        feats = [span_features(s) for s in spans]
        flat = [f for fs in feats for f in fs]
        if not flat:
            return [0] * len(spans)
        width, depth = self.table.shape[1], self.table.shape[0]
        rows = _rows(_hash(flat), width, depth)
        per_feature = np.min(np.stack([self.table[r][idx] for r, idx in enumerate(rows)]), axis=0)
        out, at = [], 0
        for fs in feats:
            out.append(int(per_feature[at : at + len(fs)].min()) if fs else 0)
            at += len(fs)
        return out

    def share(self, span: str) -> float:
        return self.shares([span])[0]

    def shares(self, spans: Sequence[str]) -> list[float]:
        """The fraction of passages holding each span (`counts` over the passage count)."""
        return [c / self.passages if self.passages else 0.0 for c in self.counts(spans)]


def _rows(hashes: np.ndarray, width: int, depth: int) -> list[np.ndarray]:
    """One bucket per sketch row: independent bit slices of the 64-bit hash (mixed for rows > 2)."""
    out = []
    for r in range(depth):
        h = hashes if r < 2 else hashes * np.uint64(0x9E3779B97F4A7C15 + 2 * r)
        out.append(((h >> np.uint64(32 * (r % 2))) % np.uint64(width)).astype(np.int64))
    return out
