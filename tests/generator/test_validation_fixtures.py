"""`meta_reply` and `answer_in_question` measured on hand-written fixtures.

- tests/fixtures/validation_legit.jsonl: 217 legitimate pairs in the forms real instruction data
  takes (multiple-choice with lettered options, "Choose the correct answer: ...", "Here is a
  question ...", answers opening "Here is ...", "Answer the following ...", quoted dialogue, answer
  labels in the answer). The rules were fixed against it (issue 23 item 7): none may be flagged.
- KNOWN_POSITIVES: the replies these codes exist for (the Gemma 3 270M quickstart wrote the first
  three; the rest are the shapes the earlier issues saw). All must still be flagged.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from ragloom.generator import Exemplar, parse_pair
from ragloom.retrieval import Passage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LEGIT = [json.loads(line) for line in (FIXTURES / "validation_legit.jsonl").read_text(encoding="utf-8").splitlines()]
DOC = Passage(
    "p",
    "Eiffel Tower",
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after "
    "the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889.",
)
EX = Exemplar("e1", "Who painted The Starry Night?", "builtin", "factoid")

KNOWN_POSITIVES = [
    # the 270M quickstart model: the answer (a wrong one) inside the question
    ("Who was the first woman to win a Nobel Prize? Answer: Anna Akhmatova", "Anna Akhmatova", "answer_in_question"),
    # the quickstart's Gemma, an accepted useless_doc answer that comments on its input
    (
        "Is the snowpack avaliable to a person?",
        "No, the snowpack avaliable to a person is not avaliable to a person. This document is not an instruction. "
        "It is a reference.",
        "meta_reply",
    ),
    # the quickstart's Gemma on llama-cpp-python's server, kept as useless_doc (shared/evidence, 15-job run)
    (
        "The answer is correct. It's not the document itself that has to be answered, it's the text that you need "
        "to know.",
        "The document itself (the text) cannot be changed without a rewrite or an explanation of the content of the "
        "answer.",
        "meta_reply",
    ),
    ("Q: Who designed the iron tower in Paris? A: Gustave Eiffel", "Gustave Eiffel", "answer_in_question"),
    ("Who designed the famous iron tower in Paris?", "The answer to this question is...", "meta_reply"),
    ("I have already written this question: who designed the iron tower in Paris?", "Gustave Eiffel.", "meta_reply"),
    ("Here is the new question: who built the Paris tower?", "Gustave Eiffel's company.", "meta_reply"),
]


def reason(question: str, answer: str) -> str | None:
    reply = json.dumps({"question": question, "answer": answer})
    return parse_pair(reply, sources=[DOC], exemplar=EX)[1]


def test_the_legitimate_fixture_is_large_and_in_the_forms_the_issue_names() -> None:
    forms = Counter(r["form"] for r in LEGIT)
    assert len(LEGIT) >= 200
    for form in ("multiple_choice", "choose", "here_is", "here_answer", "answer_following", "dialogue"):
        assert forms[form] >= 8, form
    assert len({r["question"] for r in LEGIT}) == len(LEGIT)


def test_no_legitimate_question_or_answer_is_flagged_meta_reply_or_answer_in_question() -> None:
    flagged = [(reason(r["question"], r["answer"]), r["question"], r["answer"]) for r in LEGIT]
    assert [f for f in flagged if f[0] in ("meta_reply", "answer_in_question")] == []
    # and nothing else rejects them either: every one reaches the two rules and passes the whole of validation
    assert [f for f in flagged if f[0] is not None] == []


@pytest.mark.parametrize("question,answer,code", KNOWN_POSITIVES, ids=[p[2] for p in KNOWN_POSITIVES])
def test_every_known_positive_is_still_flagged(question: str, answer: str, code: str) -> None:
    assert reason(question, answer) == code


@pytest.mark.parametrize(
    "question,answer",
    [
        ("Choose the correct answer: which astronomer first described orbits as ellipses? A) Kepler B) Galileo "
         "C) Copernicus D) Brahe", "A) Kepler."),
        ("Read the passage, then give an example answer: how would Socrates respond to a man who claims to know "
         "what justice is?", "He would ask for a definition and test it until it broke."),
        ("Here is a question many historians ask: why did the Roman Republic fall?",
         "Civil wars between generals with private armies ended it."),
        ("Summarise the causes of the French Revolution in one line.",
         "Here is the question's short version: a bankrupt crown and hungry people brought down the old regime."),
    ],
)  # fmt: skip
def test_the_issues_examples_pass_validation(question: str, answer: str) -> None:
    assert reason(question, answer) is None


HELD_OUT = [
    json.loads(line) for line in (FIXTURES / "validation_heldout.jsonl").read_text(encoding="utf-8").splitlines()
]


def _precision_recall(code: str) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of `code` on the held-out fixture."""
    got = [reason(r["question"], r["answer"]) for r in HELD_OUT]
    tp = sum(g == code and r["label"] == code for g, r in zip(got, HELD_OUT, strict=True))
    fp = sum(g == code and r["label"] != code for g, r in zip(got, HELD_OUT, strict=True))
    fn = sum(g != code and r["label"] == code for g, r in zip(got, HELD_OUT, strict=True))
    return tp, fp, fn


def test_held_out_fixture_was_written_apart_and_holds_both_kinds() -> None:
    # validation_heldout.jsonl was written after the rules were frozen (commit 183d49e) and never tuned on
    labels = Counter(r["label"] for r in HELD_OUT)
    assert len(HELD_OUT) >= 30 and labels["answer_in_question"] >= 15 and labels["meta_reply"] >= 15
    assert labels["ok"] >= 30
    assert not {r["question"] for r in HELD_OUT} & {r["question"] for r in LEGIT}


@pytest.mark.parametrize(
    "code,min_tp,positives",
    # measured when the fixture was first run (67 records): answer_in_question 14 of 18 found (missed:
    # "(Answer: 1945)", "Answer - eight", "The answer is 1912.", a bare answer after the question mark);
    # meta_reply 10 of 16 (missed: talk of the task without its set phrases, e.g. "Is this a good question
    # for the document?" / "Yes, this is a good question because...", "My new question is: ..."). No false alarm.
    [("answer_in_question", 14, 18), ("meta_reply", 10, 16)],
)
def test_held_out_precision_and_recall(code: str, min_tp: int, positives: int) -> None:
    tp, fp, fn = _precision_recall(code)
    assert tp + fn == positives
    assert fp == 0, f"{code}: {fp} legitimate pairs flagged"
    assert tp >= min_tp, f"{code}: recall {tp}/{positives}"
