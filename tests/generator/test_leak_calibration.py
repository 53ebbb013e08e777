"""The leak screen at its frozen thresholds (the config's defaults) on records it was not tuned on,
and on the spans the issue found flagged in ordinary distractors (issue 25).

tests/fixtures/leaks/heldout.jsonl was written after the thresholds were frozen on calibration.jsonl:
per record, the distractors the rank band [200, 250) of a real index over 3,345 Wikipedia summaries
gave for its question (leak-free, read by hand), and distractors written to carry the answer,
labelled by what carries it. Span shares come from the same passages (tests/leak_corpus.py).
The statement check (`quality.leak_statement`) was tuned on both calibration.jsonl and heldout.jsonl;
heldout2.jsonl was written after its threshold was frozen, on other articles, and heldout3.jsonl after
that (session 15), on articles none of the others uses, with 11 broad questions and long answers;
heldout4.jsonl after quantities became key spans (session 16), on articles none of the others uses;
heldout5.jsonl and heldout6.jsonl in session 17, each blind and on new articles: the rules of that
session (a small number with a unit is a quantity; two key spans of the answer in one sentence tie
each other) were made on the sets before heldout5 and on heldout5's one miss, so heldout6 is the
held-out set for them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from leak_corpus import leak_corpus
from ragloom.generator.config import Quality
from ragloom.generator.quality.conformance import ConformanceChecker
from ragloom.generator.quality.leaks import STATEMENT, LeakScreen
from ragloom.generator.quality.span_freq import SpanFrequency
from ragloom.retrieval import Encoder, Passage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "leaks"


@pytest.fixture(scope="module")
def corpus() -> list[Passage]:
    return [Passage(r["id"], r["title"], r["text"]) for r in leak_corpus()]


@pytest.fixture(scope="module")
def screen(corpus: list[Passage]) -> LeakScreen:
    q = Quality(leak_statement=STATEMENT)  # the defaults, with the opt-in statement check at its calibrated value
    return LeakScreen(
        ConformanceChecker(Encoder(), q.thresholds()),
        similarity=q.leak_similarity,
        gate_words=q.leak_gate_words,
        frequency=SpanFrequency.from_texts(f"{p.title}\n{p.text}" for p in corpus),
        rule=q.leak_rule(),
    )


def figures(screen: LeakScreen, name: str) -> tuple[int, int, dict[str, list[bool]]]:
    """(records, leak-free records with a flagged band distractor, per planted kind: found or not)."""
    records = [json.loads(line) for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines()]
    assert all(d["leak"] is None for r in records for d in r["band"])  # the band read as leak-free
    flagged_records = 0
    found: dict[str, list[bool]] = {}
    for r in records:
        sources = [Passage(s["id"], s["title"], s["text"]) for s in r["sources"]]
        s = screen.screen_for(question=r["question"], answer=r["answer"], paradigm=r["paradigm"], sources=sources)
        flagged_records += any(s(Passage(d["id"], d["title"], d["text"])) for d in r["band"])
        for d in r["planted"]:
            found.setdefault(d["leak"], []).append(s(Passage(d["id"], d["title"], d["text"])) is not None)
    return len(records), flagged_records, found


def test_held_out_records_leak_free_distractors_are_rarely_flagged_and_planted_leaks_are_found(
    screen: LeakScreen,
) -> None:
    records, flagged_records, found = figures(screen, "heldout")
    assert records >= 30
    assert flagged_records <= 0.05 * records, flagged_records  # at most 1 in 20 (measured: 1 of 30)
    for kind in ("number", "name", "date"):
        assert all(found[kind]), (kind, found[kind])
    # The statement check (issue 25, second pass) was tuned on this set too: it was held out for the
    # key-span and meaning thresholds only. Measured: 6 of 7 paraphrases found (3 before it); the
    # one missed names neither the subject nor the answer ("its star died in the former British colony
    # where he grew up", from an article on Enter the Dragon, for where Bruce Lee died).
    assert sum(found["paraphrase"]) >= 6, found["paraphrase"]


def test_second_held_out_set_at_the_frozen_thresholds(screen: LeakScreen) -> None:
    """tests/fixtures/leaks/heldout2.*: 22 records on articles neither other set uses, written after
    `quality.leak_statement` was frozen, 13 of their 22 planted leaks paraphrases that describe the
    answer without naming it. Measured at the frozen thresholds: no leak-free record flagged, 11 of 13
    paraphrases found (4 without the statement check), every date and number, 4 of 5 names."""
    records, flagged_records, found = figures(screen, "heldout2")
    assert records >= 20 and len(found["paraphrase"]) >= 8
    assert flagged_records <= 0.05 * records, flagged_records  # at most 1 in 20
    assert all(found["date"]) and all(found["number"]), found
    # Measured and not met: the two paraphrases missed score 0.37 and 0.21 against the statement ("the
    # autumn rising in Budapest ... held out for barely two weeks"; "the settlement ... that grew into
    # the Arctic island's seat of government" for Nuuk); the name missed ("Steven Spielberg filmed his
    # shark thriller there") is a key span whose sentence holds none of the question's words. These
    # floors keep the measured figures from falling; the README reports the shortfall.
    assert sum(found["paraphrase"]) >= 11 and sum(found["name"]) >= 4, found
    without = LeakScreen(
        screen.checker,
        similarity=screen.similarity,
        gate_words=screen.gate_words,
        frequency=screen.frequency,
        rule=Quality(leak_statement=None).leak_rule(),  # `quality.leak_statement: null`: that check off
    )
    assert sum(figures(without, "heldout2")[2]["paraphrase"]) <= 4  # what the other checks find alone


def test_third_held_out_set_with_broad_questions_and_long_answers(screen: LeakScreen) -> None:
    """tests/fixtures/leaks/heldout3.*: 30 records on articles no other set uses, written after every
    threshold was frozen and not scored while they were written. 11 are broad questions with long
    answers ("What is known about The Night Watch?", "Describe Coco Chanel's career ..."): the shape
    of every false alarm the statement check raised in a real `generate` run. Measured at the frozen
    thresholds, statement check on: no leak-free record flagged (6 of them broad), every date and
    name, 3 of 4 numbers, 7 of 8 paraphrases; without it 3 of 4 names and 5 of 8 paraphrases. The
    number missed ("sandstones, some 75 to 71 million years old", for when Velociraptor lived) is
    found since quantities are key spans (session 16; measured then on heldout4.jsonl)."""
    records, flagged_records, found = figures(screen, "heldout3")
    assert records >= 30 and len(found["paraphrase"]) >= 8
    assert flagged_records <= 0.05 * records, flagged_records  # at most 1 in 20 (measured: 0 of 30)
    assert all(found["date"]) and all(found["name"]) and all(found["number"]), found
    # Measured and not met: the paraphrase missed (the couturiere "whose house went on to sell ... the
    # world's most famous scent, No. 5", for Coco Chanel) scores 0.418 against the statement, under its
    # 0.42. A floor at the measured figure.
    assert sum(found["paraphrase"]) >= 7, found


def test_fourth_held_out_set_after_quantities_became_key_spans(screen: LeakScreen) -> None:
    """tests/fixtures/leaks/heldout4.*: 30 records on articles no other set uses, written blind (the
    labeller did not run the screen) after quantities ("71 million", "40 percent") became key spans,
    to measure that rule on data it was not made on: 3 of its 6 planted numbers are one- or two-digit
    quantities, and 5 leak-free records' answers hold one. Measured at the frozen thresholds,
    statement check on: no leak-free record flagged, every number and name, 3 of 4 dates, 7 of 8
    paraphrases; without it 2 of 4 dates and 4 of 8 paraphrases."""
    records, flagged_records, found = figures(screen, "heldout4")
    assert records >= 30 and len(found["number"]) >= 6 and len(found["paraphrase"]) >= 8
    assert flagged_records <= 0.05 * records, flagged_records  # at most 1 in 20 (measured: 0 of 30)
    assert all(found["number"]) and all(found["name"]), found
    # Measured and not met: the date missed ("inaugurated on 16 May 1770 with the festivities for the
    # wedding of the Dauphin ... to a fourteen-year-old archduchess from Vienna", for whom and when
    # Louis XVI married) ties 1770 to the question only through who the Dauphin was; the paraphrase
    # missed (the Mid-Atlantic Ridge "helped revive an idea put forward decades earlier by a German polar
    # meteorologist", for Wegener's continental drift) scores 0.283 against the statement. Floors.
    assert sum(found["date"]) >= 3 and sum(found["paraphrase"]) >= 7, found


def test_fifth_held_out_set_written_before_units_and_the_span_tie(screen: LeakScreen) -> None:
    """tests/fixtures/leaks/heldout5.*: 30 records on articles no other set uses, written blind before
    small numbers with a unit ("66 years", "42 kilometres") were key spans; 3 of its 6 planted numbers
    are such quantities and 5 leak-free answers hold one ("about 21 years", "33 metres"). Measured
    before this session's rules, statement check on: no leak-free record flagged, every number and
    name, 3 of 4 dates, 7 of 8 paraphrases. The missed paraphrase ("the North Atlantic Drift, the
    northern arm of the Gulf Stream, bathes the islands in warm water carried from the Gulf of
    Mexico", for why Europe's winters are mild) holds three of the answer's names and none of the
    question's words: the span tie was made on it, and finds it, so this set is tuned on for that tie."""
    records, flagged_records, found = figures(screen, "heldout5")
    assert records >= 30 and len(found["number"]) >= 6 and len(found["paraphrase"]) >= 8
    assert flagged_records <= 0.05 * records, flagged_records  # at most 1 in 20 (measured: 0 of 30)
    assert all(found["number"]) and all(found["name"]) and all(found["paraphrase"]), found
    # Measured and not met: the date missed ("As a girl of five she was painted in 1656 at the centre of
    # the great group portrait of the royal household", from an article on Margaret Theresa of Spain,
    # for when Las Meninas was painted) ties 1656 to the question only through knowing the painting.
    assert sum(found["date"]) >= 3, found


def test_sixth_held_out_set_for_units_and_the_span_tie(screen: LeakScreen) -> None:
    """tests/fixtures/leaks/heldout6.*: 30 records on articles no other set uses, written blind by a
    labeller not told of this session's rules, and scored only when finished: 3 of its 6 planted
    numbers are small numbers with a unit ("48 years", "just over 7 days", "34 days"), 4 leaks sit in
    side remarks of passages about far subjects, 5 leak-free answers hold a small quantity and 5 name
    several people, places or works. Measured at the frozen thresholds, statement check on: no
    leak-free record flagged, every date, name and number, 7 of 8 paraphrases; at the defaults (no
    statement check) 4 of 8 paraphrases and still no leak-free record flagged."""
    records, flagged_records, found = figures(screen, "heldout6")
    assert records >= 30 and len(found["number"]) >= 6 and len(found["paraphrase"]) >= 8
    assert flagged_records <= 0.05 * records, flagged_records  # at most 1 in 20 (measured: 0 of 30)
    assert all(found["date"]) and all(found["name"]) and all(found["number"]), found
    # Measured and not met: the paraphrase missed (Loja's cloud forests "were the original home of the
    # fever tree, whose bark gave Europeans the bitter drug they took against malaria, and which still
    # flavours a popular fizzy mixer", for why tonic water is bitter) names neither quinine nor tonic
    # water: a reader must know what the fever tree gives. A floor at the measured figure.
    assert sum(found["paraphrase"]) >= 7, found


def holding(corpus: list[Passage], pattern: str) -> list[Passage]:
    rx = re.compile(pattern)
    return [p for p in corpus if rx.search(f"{p.title}\n{p.text}")]


def test_spans_many_unrelated_passages_hold_do_not_flag_them(screen: LeakScreen, corpus: list[Passage]) -> None:
    """The issue's three patterns, over every passage of the corpus that holds the span: "United States"
    for a question about a U.S. president of the 1880s, a year of the 1880s for it, "United States" or
    a year of the 1930s for where a physicist spent his last years, a year for a timeline of
    20th-century Germany. The passages listed by title tie the span to the question (read by hand)."""
    president = screen.screen_for(
        question="Which U.S. president of the 1880s served two terms that were not consecutive?",
        answer="Grover Cleveland, president of the United States from 1885 to 1889 and from 1893 to 1897.",
    )
    united_states = holding(corpus, r"United States")
    assert len(united_states) > 100  # a span held by many passages
    assert [p.title for p in united_states if president.key_span(p)] == []
    eighties = holding(corpus, r"\b188[5-9]\b|\b189[37]\b")
    assert len(eighties) > 20
    assert [p.title for p in eighties if president.key_span(p)] == []

    physicist = screen.screen_for(
        question="Where did the physicist Albert Einstein spend the last years of his life?",
        answer="Einstein left Germany in 1933 and spent his last years in Princeton, New Jersey, in the United "
        "States, where he died in 1955.",
    )
    thirties = holding(corpus, r"United States|\b193[3]\b|\b1955\b")
    assert len(thirties) > 100
    assert [p.title for p in thirties if physicist.key_span(p)] == []

    germany = screen.screen_for(
        question="How did Germany's form of government change over the 20th century?",
        answer="Germany went from an empire to the Weimar Republic after 1918, to Nazi dictatorship from 1933, "
        "was divided into West and East Germany in 1949, and was reunified in 1990.",
    )
    years = holding(corpus, r"\b(1918|1933|1949|1990)\b")
    assert len(years) > 20
    # "Nazi Germany built and operated a system of concentration camps between 1933 and 1945": it does
    # give a step of the answer (Nazi rule from 1933), so it is screened, rightly
    assert [p.title for p in years if germany.key_span(p)] == ["Nazi concentration camps"]
