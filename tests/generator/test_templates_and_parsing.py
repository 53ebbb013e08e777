from __future__ import annotations

import json
from pathlib import Path

import pytest
from ragloom.generator import PARADIGMS, Exemplar, Templates, parse_pair
from ragloom.retrieval import Index

from ragloom.errors import ConfigError

CONTRACTS = {
    "useless_doc": "does NOT help answer",
    "single_doc_support": "does NOT state the answer directly",
    "multi_doc_support": "none of them states the answer directly",
    "single_doc_answer": "fully worked out from this one document",
    "multi_doc_answer": "combining information from at least two",
}
EX = Exemplar("e1", "Who painted The Starry Night?", "builtin", "factoid")


def test_every_template_renders_real_passages_with_its_contract(wiki_index: Path) -> None:
    passages = [h.passage for h in Index(wiki_index).search(["Eiffel Tower Paris"], k=4)[0]]
    t = Templates()
    for paradigm, entry in PARADIGMS.items():
        hi = entry.sources[1]
        docs = passages[:hi]
        text = t.render(paradigm, EX, docs)
        assert CONTRACTS[paradigm] in text
        assert EX.text in text and 'two string keys, "question"' in text
        for d in docs:
            assert d.text in text
        assert f"[Document {len(docs)}]" in text and f"[Document {len(docs) + 1}]" not in text


def test_multiple_choice_exemplar_asks_for_options() -> None:
    mc = Exemplar("m", "Which gas is most abundant in air?", "builtin", "multiple_choice", ("O2", "N2", "Ar", "CO2"))
    from ragloom.retrieval import Passage

    text = Templates().render("single_doc_answer", mc, [Passage("p", "Air", "Air is mostly nitrogen.")])
    assert "A), B), C) and D)" in text
    assert "A), B), C) and D)" not in Templates().render("single_doc_answer", EX, [Passage("p", "Air", "x")])


@pytest.mark.parametrize(
    "body,message",
    [
        ("{{ documents }} {{ exemplar.text }} {{ secret_var }}", "unknown variable 'secret_var'"),
        ("{{ exemplar.text }} only", "never uses the variable 'documents'"),
        ("{{ documents }} {{ exemplar.text }} {% if %}", "template syntax error"),
    ],
)
def test_user_template_errors_name_template_and_variable(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "useless_doc.j2").write_text(body)
    with pytest.raises(ConfigError, match=message) as e:
        Templates(tmp_path, ["useless_doc"])
    assert "useless_doc.j2" in str(e.value)


def test_user_template_overrides_builtin_and_others_fall_back(tmp_path: Path) -> None:
    from ragloom.retrieval import Passage

    (tmp_path / "useless_doc.j2").write_text(
        "MINE {{ exemplar.text }} {% for d in documents %}{{ d.title }}{% endfor %}"
    )
    t = Templates(tmp_path)
    assert t.render("useless_doc", EX, [Passage("p", "T", "x")]).startswith("MINE")
    assert "fully worked out" in t.render("single_doc_answer", EX, [Passage("p", "T", "x")])


DOC = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named after "
    "the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889."
)


def _pair(q: str, a: str) -> str:
    return json.dumps({"question": q, "answer": a})


@pytest.mark.parametrize(
    "reply,reason",
    [
        ("not json at all", "invalid_json"),
        ('{"question": "only a question here please"}', "invalid_json"),
        (_pair("", "x"), "empty"),
        (_pair("Why?", "Because."), "too_short"),
        (_pair("<the new question>", "<its answer>"), "placeholder"),
        (_pair("Which river flows through Vienna?", "The Danube flows through Vienna."), "placeholder"),
        (_pair("Who painted The Starry Night?", "Van Gogh."), "instruction_echo"),
        (
            _pair(
                "Tell me: the Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France?",
                "Yes.",
            ),
            "question_copies_document",
        ),
        (_pair("Who gave the Paris tower its name and when was it built?", DOC), "answer_is_document"),
        (_pair("Who designed the famous iron tower in Paris?", "I'm sorry, but I cannot answer that."), "refusal"),
        # the 270M quickstart model wrote this pair (the answer, and a wrong one, inside the question)
        (
            _pair("Who was the first woman to win a Nobel Prize? Answer: Anna Akhmatova", "Anna Akhmatova"),
            "answer_in_question",
        ),
        (_pair("Q: Who designed the iron tower in Paris? A: Gustave Eiffel", "Gustave Eiffel"), "answer_in_question"),
        # a useless_doc answer the quickstart's Gemma 3 270M wrote, accepted before (its documents do
        # not help, so the paradigm check passes it): the reply comments on its input instead of answering
        (
            _pair(
                "Is the snowpack avaliable to a person?",
                "No, the snowpack avaliable to a person is not avaliable to a person. This document is not an "
                "instruction. It is a reference.",
            ),
            "meta_reply",
        ),
        # the two the issue saw accepted with other exemplars: an announced answer never given, and narration
        (_pair("Who designed the famous iron tower in Paris?", "The answer to this question is..."), "meta_reply"),
        (
            _pair("I have already written this question: who designed the iron tower in Paris?", "Gustave Eiffel."),
            "meta_reply",
        ),
        (_pair("Here is the new question: who built the Paris tower?", "Gustave Eiffel's company."), "meta_reply"),
    ],
)
def test_rejections_carry_a_reason_code(reply: str, reason: str) -> None:
    from ragloom.retrieval import Passage

    pair, why = parse_pair(reply, sources=[Passage("p", "Eiffel Tower", DOC)], exemplar=EX)
    assert pair is None and why == reason


def test_good_pair_in_prose_and_code_fence_is_accepted() -> None:
    from ragloom.retrieval import Passage

    reply = 'Sure!\n```json\n{"question": "Which engineer lent his name to the Paris landmark finished in 1889?", "answer": "Gustave Eiffel."}\n```'
    pair, why = parse_pair(reply, sources=[Passage("p", "Eiffel Tower", DOC)], exemplar=EX)
    assert why is None and pair is not None and pair.answer == "Gustave Eiffel."


def test_questions_that_mention_answers_without_giving_one_are_accepted() -> None:
    from ragloom.retrieval import Passage

    src = [Passage("p", "Eiffel Tower", DOC)]
    for q in (
        "Why is there no single answer to who designed the Paris tower?",
        "Answer briefly: which engineer's company built the Paris tower between 1887 and 1889?",
        "Plan A: visit the tower at dawn. Is that a good idea for avoiding crowds?",
    ):
        assert parse_pair(_pair(q, "Gustave Eiffel's company built it."), sources=src, exemplar=EX)[1] is None, q


def test_answers_that_speak_of_answers_or_writing_but_do_the_task_are_accepted() -> None:
    from ragloom.retrieval import Passage

    src = [Passage("p", "Eiffel Tower", DOC)]
    q = "Who built the famous iron tower in Paris, and when?"
    for a in (
        "The answer to this question is that Gustave Eiffel's company built it from 1887 to 1889.",
        "The answer is Gustave Eiffel's company, between 1887 and 1889.",
        "Here is the tower's history: Eiffel's firm built it for the 1889 World's Fair.",
        "I have written about it before: Eiffel's company built it from 1887 to 1889.",
    ):
        assert parse_pair(_pair(q, a), sources=src, exemplar=EX)[1] is None, a


def test_multiple_choice_pairs_need_options_and_a_letter() -> None:
    from ragloom.retrieval import Passage

    mc = Exemplar("m", "Which gas is most abundant in air?", "builtin", "multiple_choice", ("a", "b", "c", "d"))
    src = [Passage("p", "Eiffel Tower", DOC)]
    good = _pair("Who designed the tower? A) Eiffel B) Rodin C) Monet D) Hugo", "A) Eiffel, because his firm built it.")
    assert parse_pair(good, sources=src, exemplar=mc)[1] is None
    bad = _pair("Who designed the famous Paris tower?", "Gustave Eiffel designed it.")
    assert parse_pair(bad, sources=src, exemplar=mc)[1] == "not_multiple_choice"


def test_invisible_characters_do_not_hide_an_echo_and_never_reach_the_record() -> None:
    """Gemma 270M under DRY sampling copied the exemplar with zero-width spaces inside words ("o\u200br");
    split by them, the copy passed the echo check. They are dropped before any check."""
    ex = Exemplar("e", "Give me the best sense of the empire's history in three sentences.", "test", "open_qa")
    echo = "Give me the best sense o\u200br \u200bof the empire's history in three sentences."
    reply = json.dumps({"question": echo, "answer": "The empire rose, ruled and fell over three centuries."})
    assert parse_pair(reply, sources=[], exemplar=ex) == (None, "instruction_echo")
    clean = json.dumps({"question": "How did the Roman\u00ad Empire fall?", "answer": "Slowly\u200b, over centuries."})
    pair, reason = parse_pair(clean, sources=[], exemplar=ex)
    assert reason is None and pair is not None
    assert pair.question == "How did the Roman Empire fall?" and pair.answer == "Slowly, over centuries."
