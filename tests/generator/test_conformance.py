"""Paradigm conformance, calibrated on hand-labelled records (tests/fixtures/conformance.jsonl).

Every label in the fixture was written by hand from the Wikipedia summaries before the checker
ran; the checker's defaults were then chosen on it. The levels asserted here are the ones reached
(50 of 52 right: see the report in the commit history); a change that loses accuracy fails.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ragloom.generator.quality.conformance import CheckInput, ConformanceChecker
from ragloom.retrieval import Encoder, Passage

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "conformance.jsonl"


class CountingEncoder:
    """The real MiniLM encoder, counting its calls and the sentences it embeds."""

    def __init__(self) -> None:
        self.inner = Encoder()
        self.calls = 0
        self.sentences = 0

    def encode_passages(self, texts: Any) -> np.ndarray:
        self.calls += 1
        self.sentences += len(texts)
        return self.inner.encode_passages(texts)


@pytest.fixture(scope="module")
def encoder() -> CountingEncoder:
    return CountingEncoder()


def _fixture() -> list[dict[str, Any]]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


def _inputs(recs: list[dict[str, Any]], with_paradigm: bool = True) -> list[CheckInput]:
    return [
        CheckInput(
            r["question"],
            r["answer"],
            [Passage("s", s["title"], s["text"]) for s in r["sources"]],
            r["paradigm"] if with_paradigm else None,
        )
        for r in recs
    ]


def test_fixture_is_large_and_balanced_enough_to_calibrate_on() -> None:
    recs = _fixture()
    counts = Counter((r["paradigm"], r["label"]) for r in recs)
    assert len(recs) >= 40
    for paradigm in ("useless_doc", "single_doc_support", "multi_doc_support", "single_doc_answer", "multi_doc_answer"):
        assert counts[(paradigm, "conforms")] >= 5 and counts[(paradigm, "not")] >= 5
    assert all(r["note"] and r["sources"] for r in recs)


def test_checker_agrees_with_the_hand_labels(encoder: CountingEncoder) -> None:
    recs = _fixture()
    results = ConformanceChecker(encoder).check(_inputs(recs))
    right: Counter[str] = Counter()
    for r, res in zip(recs, results, strict=True):
        assert res["found"] in ("states", "supports", "no_help")
        right[r["paradigm"]] += res["ok"] == (r["label"] == "conforms")
    total = sum(right.values())
    assert total >= 50, f"{total}/52 right"
    # the single-document paradigms are all right; each multi-document one misses at most one record
    for paradigm in ("useless_doc", "single_doc_support", "single_doc_answer"):
        n = sum(r["paradigm"] == paradigm for r in recs)
        assert right[paradigm] == n, paradigm
    for paradigm in ("multi_doc_support", "multi_doc_answer"):
        assert right[paradigm] >= 9, paradigm


def test_wrong_quickstart_answers_are_rejected_as_unsupported(encoder: CountingEncoder) -> None:
    recs = [r for r in _fixture() if "quickstart" in r["note"]]
    assert len(recs) == 2
    for res in ConformanceChecker(encoder).check(_inputs(recs)):
        assert res["ok"] is False and res["found"] == "no_help"


def test_a_batch_is_one_encoder_call_and_repeated_sentences_are_not_embedded_again(encoder: CountingEncoder) -> None:
    recs = _fixture()
    checker = ConformanceChecker(encoder)
    before = encoder.calls
    checker.check(_inputs(recs))
    assert encoder.calls == before + 1
    before_sentences = encoder.sentences
    checker.check(_inputs(recs[:10]))  # all seen: no new call
    assert encoder.calls == before + 1 and encoder.sentences == before_sentences


def test_without_a_paradigm_the_relation_is_found_but_not_judged(encoder: CountingEncoder) -> None:
    recs = _fixture()[:6]
    judged = ConformanceChecker(encoder).check(_inputs(recs))
    unjudged = ConformanceChecker(encoder).check(_inputs(recs, with_paradigm=False))
    assert [u["ok"] for u in unjudged] == [None] * 6
    assert [u["found"] for u in unjudged] == [j["found"] for j in judged]


def test_scores_are_stored_per_source_so_records_can_be_rethresholded(encoder: CountingEncoder) -> None:
    rec = next(r for r in _fixture() if r["paradigm"] == "multi_doc_answer")
    (res,) = ConformanceChecker(encoder).check(_inputs([rec]))
    for key in ("attr", "peak", "words", "spans"):
        assert len(res["scores"][key]) == len(rec["sources"])
    assert set(res["scores"]["union"]) == {"attr", "peak", "words", "spans"}
    json.dumps(res)  # stored in the record as is


def test_a_full_sentence_cache_still_gives_the_verdicts_of_an_empty_one(encoder: CountingEncoder) -> None:
    # a cache that overflows mid-run is cleared; a batch mixing sentences cached before the clear with
    # new ones must still be checked (it raised KeyError once the cache had filled)
    recs = _fixture()
    small = ConformanceChecker(encoder, cache_size=30)
    small.check(_inputs(recs[:3]))  # fills part of it
    tight = small.check(_inputs(recs[:12]))  # cached sentences plus enough new ones to overflow
    assert [r["found"] for r in tight] == [r["found"] for r in ConformanceChecker(encoder).check(_inputs(recs[:12]))]


def test_a_short_answer_the_source_holds_whole_is_stated(encoder: CountingEncoder) -> None:
    # a one- or two-word answer's embedding is too thin to match a whole sentence: the quickstart
    # kept "Rome" as a single_doc_support record whose document names the city (it states it)
    rome = (
        "In modern historiography, ancient Rome is the Roman civilisation from the founding of the Italian "
        "city of Rome in the 8th century BC to the collapse of the Western Roman Empire in the 5th century AD."
    )
    eiffel = "The Eiffel Tower is named after the engineer Gustave Eiffel, whose company built it from 1887 to 1889."
    q_rome = "What is the most ancient city that was once the capital of the Roman Empire?"
    support, answer, elsewhere = ConformanceChecker(encoder).check(
        [
            CheckInput(q_rome, "Rome", [Passage("s", "Ancient Rome", rome)], "single_doc_support"),
            CheckInput(
                "Whose company built the Paris tower?",
                "Gustave Eiffel",
                [Passage("s", "Eiffel Tower", eiffel)],
                "single_doc_answer",
            ),
            CheckInput(
                "Whose company built the Paris tower?",
                "Gustave Eiffel",
                [Passage("s", "Ancient Rome", rome)],
                "single_doc_answer",
            ),
        ]
    )
    aurora = (
        "An aurora is a natural light display in Earth's upper atmosphere. These collisions excite oxygen "
        "and nitrogen, which then emit light of different colours such as green, red, and purple."
    )
    (sky,) = ConformanceChecker(encoder).check(
        [CheckInput("Which color is the sky blue?", "Red", [Passage("s", "Aurora", aurora)], "single_doc_answer")]
    )
    assert sky["found"] != "states" and sky["ok"] is False  # the quickstart kept it: "red" is only a word match
    assert support["found"] == "states" and support["ok"] is False
    assert answer["found"] == "states" and answer["ok"] is True
    assert elsewhere["found"] == "no_help" and elsewhere["ok"] is False


HELD_OUT = Path(__file__).resolve().parents[1] / "fixtures" / "conformance_heldout.jsonl"
# right verdicts per paradigm on the held-out set when it was first run (8 records each)
HELD_OUT_FLOOR = {
    "useless_doc": 7,
    "single_doc_support": 6,
    "multi_doc_support": 4,
    "single_doc_answer": 7,
    "multi_doc_answer": 5,
}


def test_checker_on_held_out_records_written_after_the_thresholds_were_frozen(encoder: CountingEncoder) -> None:
    """tests/fixtures/conformance_heldout.jsonl: 40 records (8 per paradigm, 4 conforming and 4 not)
    on real Wikipedia summaries the calibration set does not use, labelled by hand before the checker
    ran on them; the thresholds were not touched after. Measured: 29 of 40 right (0.73), against 50 of
    52 on the calibration set. Weakest: multi_doc_support, whose 4 conforming records (each source
    gives a piece, none the answer) are all rejected: the checker finds fewer than two contributing
    sources when the answer is mostly reasoning beyond the documents."""
    recs = [json.loads(line) for line in HELD_OUT.read_text(encoding="utf-8").splitlines() if line.strip()]
    counts = Counter((r["paradigm"], r["label"]) for r in recs)
    assert len(recs) >= 30 and all(counts[(p, lab)] >= 3 for p in HELD_OUT_FLOOR for lab in ("conforms", "not"))
    assert not {r["question"] for r in recs} & {r["question"] for r in _fixture()}
    results = ConformanceChecker(encoder).check(_inputs(recs))
    right: Counter[str] = Counter()
    for r, res in zip(recs, results, strict=True):
        right[r["paradigm"]] += res["ok"] == (r["label"] == "conforms")
    assert sum(right.values()) >= 29, dict(right)
    for paradigm, floor in HELD_OUT_FLOOR.items():
        assert right[paradigm] >= floor, (paradigm, right[paradigm])
