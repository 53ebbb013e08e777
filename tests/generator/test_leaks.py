"""Distractor leak screening: the answer must not reach a distractor in other words."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from ragloom.generator.config import Quality
from ragloom.generator.quality.conformance import ConformanceChecker
from ragloom.generator.quality.leaks import LeakRule, LeakScreen
from ragloom.generator.quality.spans import correct_option, key_spans, quantities, span_in
from ragloom.retrieval import Encoder, Hit, Passage, sample_distractors

EIFFEL = Passage(
    "wiki:Eiffel Tower",
    "Eiffel Tower",
    "The Eiffel Tower is a lattice tower on the Champ de Mars in Paris, France. It is named after the engineer "
    "Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.",
)
NILE = Passage(
    "wiki:Nile",
    "Nile",
    "The Nile is a major north-flowing river in northeast Africa which empties into the Mediterranean Sea. At "
    "7,088 kilometers (4,404 mi) long, it is the longest river in the world.",
)
QUESTION = "When was the Eiffel Tower built, and by whom?"
ANSWER = "The Eiffel Tower was built between 1887 and 1889 by the company of the engineer Gustave Eiffel."


@pytest.fixture(scope="module")
def screen() -> LeakScreen:
    return LeakScreen(ConformanceChecker(Encoder()))


def test_paraphrased_answer_bearing_distractor_is_screened_out(screen: LeakScreen) -> None:
    s = screen.screen_for(question=QUESTION, answer=ANSWER, paradigm="single_doc_answer", sources=[EIFFEL])
    paraphrase = Passage("d1", "Paris landmarks", "Eiffel's firm erected it from 1887 to 1889.")
    assert s(paraphrase) == "key_span"
    assert s(NILE) is None
    hits = [Hit(paraphrase, 0.5, 210), Hit(NILE, 0.4, 220)]
    # the substring check alone (before this screen) lets it through
    unscreened = sample_distractors(hits, sources=[EIFFEL], n=2, rng=random.Random(0), answer=ANSWER)
    assert "d1" in {p.passage.id for p in unscreened}
    leaks: Counter[str] = Counter()
    screened = sample_distractors(
        hits, sources=[EIFFEL], n=2, rng=random.Random(0), answer=ANSWER, screen=s, leaks=leaks
    )
    assert [p.passage.id for p in screened] == ["wiki:Nile"] and leaks == {"key_span": 1}


def test_a_paraphrase_without_numbers_or_names_is_caught_by_meaning(screen: LeakScreen) -> None:
    s = screen.screen_for(
        question="Who built the famous iron tower in Paris?",
        answer="The iron tower was put up by the engineering firm of Gustave Eiffel.",
    )
    assert s(Passage("d", "Landmarks", "Eiffel's firm erected the iron tower in Paris.")) == "meaning"
    assert s(NILE) is None


def test_a_candidate_backing_the_answer_as_well_as_the_weakest_source_is_screened(screen: LeakScreen) -> None:
    question = "What do the Nile and the Amazon have in common?"
    answer = "Both are among the longest rivers on Earth and both carry enormous volumes of water to the sea."
    amazon = Passage(
        "a", "Amazon", "The Amazon carries the largest volume of water of any river; it is among the longest rivers."
    )
    s = screen.screen_for(question=question, answer=answer, paradigm="multi_doc_answer", sources=[NILE, amazon])
    backing = Passage(
        "c",
        "Rivers",
        "Rivers such as these carry enormous volumes of water, and the longest run thousands of kilometres.",
    )
    assert s(backing) in ("meaning", "supports_answer")
    off_topic = Passage("o", "Moon", "The Moon is the only natural satellite of Earth and orbits it every 29.5 days.")
    assert s(off_topic) is None
    # the same candidate is not judged on support for a paradigm that does not state the answer
    loose = screen.screen_for(question=question, answer=answer, paradigm="multi_doc_support", sources=[NILE, amazon])
    assert loose(off_topic) is None


def test_a_small_number_with_its_magnitude_is_a_key_span_of_the_screen(screen: LeakScreen) -> None:
    """Numbers under three digits are not key spans ("3", "12" are in every passage), but with a
    magnitude they are as specific as a long one: "37 million people" gives the answer away."""
    question = "How many people live in the Tokyo metropolitan area?"
    answer = "About 37 million people live there, which makes it the most populous metropolitan area in the world."
    s = screen.screen_for(question=question, answer=answer)
    kanto = Passage(
        "k",
        "Kanto region",
        "The Kanto region is the most developed region of Japan. The metropolitan area of its capital alone is home "
        "to some 37 million people.",
    )
    assert s(kanto) == "key_span"
    box_office = Passage(
        "b", "Ghost in the Shell (1995 film)", "The anime film grossed 37 million dollars at the box office worldwide."
    )
    assert s(box_office) is None  # the same quantity, nowhere near what was asked
    # the forms writers use read as one quantity; a year before "million" is not one
    assert quantities("some 75 to 71 million years old, 40% of the vote, 1.5 billion") == {
        "71 million",
        "40 percent",
        "1.5 billion",
    }
    assert quantities("won 40 per cent in 1945 million-strong") == {"40 percent"}
    assert span_in("40 percent", "it took 40% of the seats") and not span_in("40 percent", "it took 40 seats")
    # the paradigm check's key spans are as they were calibrated: no quantities
    assert "71 million" not in key_spans("When did it live?", "About 75 to 71 million years ago.")


def test_a_small_number_with_its_unit_is_a_key_span_of_the_screen(screen: LeakScreen) -> None:
    """A one- or two-digit number with a unit ("33 hours", "a 66-year reign", "42 km") is read as a
    quantity too: the flight's duration, stated where the flight is named, gives the answer away."""
    question = "How long did Charles Lindbergh's nonstop flight from New York to Paris take?"
    answer = "Lindbergh landed at Le Bourget about 33 hours after taking off, the first solo crossing of the Atlantic."
    s = screen.screen_for(question=question, answer=answer)
    crossing = Passage(
        "t",
        "Transatlantic flight",
        "Flights across the Atlantic Ocean became a goal of aviators after the First World War. The first solo "
        "nonstop flight from New York to Paris kept its pilot in the air for some 33 hours.",
    )
    assert s(crossing) == "key_span"
    race = Passage("r", "Ultramarathon", "Runners in the longest races can be on the course for 33 hours or more.")
    assert s(race) is None  # the same quantity, nowhere near what was asked
    assert quantities("a 66-year reign, just over 42 km, 72 Days, 30 tons, 7-day week, 12 ft") == {
        "66 years",
        "42 kilometres",
        "72 days",
        "30 tonnes",
        "7 days",
        "12 feet",
    }
    assert quantities("13 km\u00b2 in 1945 years") == set()  # an area's unit is not read; nor a year
    assert span_in("42 kilometres", "a 42-kilometre course") and not span_in("42 kilometres", "42 miles")


def test_two_key_spans_of_the_answer_in_one_sentence_tie_each_other(screen: LeakScreen) -> None:
    """A sentence that holds two rare key spans of the answer ties them to it though it holds none
    of the question's words and the encoder does not relate it to an answer sentence: the two facts
    side by side are the answer. One of them alone, in the same kind of sentence, is not."""
    question = "Why does almost no rain fall on the coast of Peru?"
    answer = (
        "Because of the Humboldt Current. This cold ocean current flows north from Antarctica along the west coast "
        "of South America and chills the air above it, so that clouds seldom form and rain hardly ever falls; "
        "further south the same effect makes the Atacama Desert the driest place on Earth."
    )
    anchoveta = Passage(
        "f",
        "Anchoveta",
        "The Peruvian anchoveta is a small fish. It is caught in enormous numbers off the Atacama Desert coast, "
        "where the Humboldt Current wells up.",
    )
    observatory = Passage(
        "o",
        "Paranal Observatory",
        "Paranal Observatory is an astronomical observatory. Its telescopes stand on a mountain in the Atacama "
        "Desert, chosen for its clear skies.",
    )
    s = screen.screen_for(question=question, answer=answer)
    assert s(anchoveta) == "key_span"
    assert {e.span: e.together for e in s.evidence(anchoveta)} == {"atacama desert": 2, "humboldt current": 2}
    assert s(observatory) is None
    # `quality.leak_tie_spans: 0` turns the tie off: then neither its words nor the encoder ties the two
    off_rule = Quality(leak_tie_spans=0).leak_rule()
    assert off_rule == LeakRule(tie_spans=0)  # the config key reaches the rule; the rest at its defaults
    off = LeakScreen(screen.checker, rule=off_rule).screen_for(question=question, answer=answer)
    assert off(anchoveta) is None


def test_key_spans_are_numbers_names_the_correct_option_and_short_answers() -> None:
    spans = key_spans("When was the Eiffel Tower built?", "Gustave Eiffel's company built it from 1887 to 1889.")
    assert {"1887", "1889"} <= set(spans) and any(x.startswith("gustave eiffel") for x in spans)
    assert "eiffel tower" not in spans  # the question's subject is not the answer
    q = "Which sea does the Nile empty into? A) the Red Sea B) the Mediterranean Sea C) the Arabian Sea D) the Black Sea"
    assert correct_option(q, "B) It flows north into the Mediterranean.") == "the Mediterranean Sea"
    assert "the mediterranean sea" in key_spans(q, "B) It flows north into the Mediterranean.")
    assert key_spans("What is the capital of Bahrain?", "Manama") == ["manama"]
    assert "8849" in key_spans("How high is it?", "About 8,849 metres.")
