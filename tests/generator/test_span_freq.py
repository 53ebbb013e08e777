"""How many passages of an index hold a key span: counted once, cached beside the index."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from ragloom.generator.quality import span_freq
from ragloom.generator.quality.span_freq import SpanFrequency


def passages_holding(rows: list[dict], pattern: str) -> int:
    rx = re.compile(pattern, re.IGNORECASE)
    return sum(bool(rx.search(f"{r['title']}\n{r['text']}")) for r in rows)


def test_span_counts_match_a_count_by_hand_and_are_cached_by_corpus_fingerprint(
    wiki_corpus: Path, wiki_index: Path
) -> None:
    rows = [json.loads(line) for line in wiki_corpus.read_text().splitlines()]
    freq = SpanFrequency.for_index_dir(wiki_index)
    assert freq.passages == len(rows) == 400
    # names (word pairs), a three-word name, a number written with a comma, a year
    for span, pattern in [
        ("united states", r"\bunited states\b"),
        ("leonardo da vinci", r"\bleonardo da vinci\b"),
        ("8848.86", r"\b8,848\.86\b"),
        ("1889", r"\b1889\b"),
    ]:
        assert freq.count(span) == passages_holding(rows, pattern), span
    # a quantity in any of its forms ("40%", "40 per cent", "40 percent")
    for span, pattern in [
        ("2.8 million", r"(?<![\d.,])2\.8(?:\s*|-)million\b"),
        ("10 percent", r"(?<![\d.,])10(?:\s*%|\s*per\s*cent)"),
        # a small number with a unit: "17 years", "a 30-metre ..."
        ("17 years", r"(?<![\d.,])17(?:\s*|-)years?\b"),
        ("30 metres", r"(?<![\d.,])30(?:\s*|-)(?:metres?|meters?)\b"),
    ]:
        assert freq.count(span) == passages_holding(rows, pattern) > 0, span
    assert freq.count("united states") > 5 and freq.count("zzyzx quorble") == 0
    # many spans at once (the leak screen's warm-up for a batch of records): the same counts by hand
    spans = ["united states", "zzyzx quorble", "1889", "", "leonardo da vinci", "united states"]
    patterns = [r"\bunited states\b", None, r"\b1889\b", None, r"\bleonardo da vinci\b", r"\bunited states\b"]
    assert freq.counts(spans) == [passages_holding(rows, p) if p else 0 for p in patterns]
    assert freq.share("united states") == freq.count("united states") / 400

    fingerprint = json.loads((wiki_index / "manifest.json").read_text())["corpus"]["fingerprint"]
    cached = wiki_index / f"span_freq-{fingerprint}.npz"
    assert cached.exists()
    stamp = cached.stat().st_mtime_ns
    again = SpanFrequency.for_index_dir(wiki_index)  # read back, not counted again
    assert cached.stat().st_mtime_ns == stamp and (again.table == freq.table).all()
    # a table an older ragloom counted (no quantities, no format) is counted again, not trusted
    np.savez(cached, table=np.zeros_like(freq.table), passages=np.int64(400))
    recounted = SpanFrequency.for_index_dir(wiki_index)
    assert (recounted.table == freq.table).all() and recounted.count("2.8 million") == freq.count("2.8 million") > 0
    # and so is one counted before units carried quantities (format 2: no "17 years")
    np.savez(cached, table=np.zeros_like(freq.table), passages=np.int64(400), format=np.int64(2))
    recounted = SpanFrequency.for_index_dir(wiki_index)
    assert (recounted.table == freq.table).all() and recounted.count("17 years") == freq.count("17 years") > 0
    assert freq.table.nbytes <= 16 * 2**20  # bounded whatever the corpus size


def test_a_run_counts_from_the_store_its_index_has_open(
    wiki_corpus: Path, wiki_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run counts in a thread while the encoder imports transformers; opening the store a second time
    there fingerprints it with datasets' pickler, which read a half-imported transformers and failed
    (AttributeError: module 'transformers' has no attribute 'PreTrainedTokenizerBase', seen in a real
    run). Given the index's open store, the count opens none and counts the same passages."""
    from ragloom.retrieval import Index

    index = tmp_path / "idx"
    shutil.copytree(wiki_index, index, ignore=shutil.ignore_patterns("span_freq-*"))
    monkeypatch.setattr(span_freq, "CACHE_DIR", tmp_path / "cache")
    store = Index(index).store

    def no_second_store(*args: object, **kwargs: object) -> None:
        raise AssertionError("the store was opened again")

    monkeypatch.setattr(span_freq, "PassageStore", no_second_store)
    freq = SpanFrequency.for_index_dir(index, store=store)
    rows = [json.loads(line) for line in wiki_corpus.read_text().splitlines()]
    assert freq.passages == len(store) == len(rows) == 400
    assert freq.count("united states") == passages_holding(rows, r"\bunited states\b") > 5


def test_a_stopped_count_ends_at_once_and_writes_nothing(
    wiki_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run whose server refuses the key stops the first count of its corpus (run._prepare) rather
    than wait for it: nothing half-counted is kept, and the next count is whole."""
    monkeypatch.setattr(span_freq, "CACHE_DIR", tmp_path / "cache")
    index = tmp_path / "idx"
    shutil.copytree(wiki_index, index, ignore=shutil.ignore_patterns("span_freq-*"))
    stop = threading.Event()
    stop.set()
    with pytest.raises(span_freq.CountStopped):
        SpanFrequency.for_index_dir(index, stop)
    assert not list(index.glob("span_freq-*")) and not (tmp_path / "cache").exists()
    whole = SpanFrequency.for_index_dir(index, threading.Event())
    assert whole.passages == 400 and len(list(index.glob("span_freq-*.npz"))) == 1
