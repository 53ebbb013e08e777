"""The small-model template set (`templates: small`, prompts/small/) and the default set it must
leave alone: a prompt change for the 270M model must not change what a strong model is asked."""

from __future__ import annotations

from ragloom.generator.paradigms import PARADIGMS
from ragloom.generator.templates import Templates
from ragloom.generator.types import Exemplar
from ragloom.retrieval import Passage

EXEMPLAR = Exemplar(id="ex", source="builtin", text="Which river flows through Baghdad?", task_type="factoid")
DOCS = [
    Passage(
        id="wiki:Baghdad",
        title="Baghdad",
        text="Baghdad is the capital of Iraq, on the Tigris. It is one of the largest cities in the Middle East.",
    ),
    Passage(
        id="wiki:Tigris",
        title="Tigris",
        text="The Tigris is the eastern of the two great rivers of Mesopotamia. It flows through Baghdad.",
    ),
]

# that the default (RAG-Instruct) templates still render what they rendered before the small set and
# the citation block were added is test_citation_prompts.py's byte-identity test against 87c78a4


def test_small_set_is_selected_by_name_and_is_another_run() -> None:
    small = Templates("small")
    assert set(small.digests()) == set(PARADIGMS)
    assert not set(small.digests().values()) & set(Templates().digests().values())


def test_small_prompt_names_the_exemplars_kind_not_its_text_and_ends_on_task_and_contract() -> None:
    # the 270M model asked the example's own question when it was shown (bench/quickstart_replies.py)
    small, default = Templates("small"), Templates()
    for paradigm in PARADIGMS:
        docs = DOCS if paradigm.startswith("multi") else DOCS[:1]
        text = small.render(paradigm, EXEMPLAR, docs)
        assert EXEMPLAR.text not in text and "factoid" in text.split("[Document 1]")[0]
        assert text.index("[Document 1] Baghdad") < text.index("Task:")
        task = text[text.index("Task:") :].splitlines()[0]
        assert "Baghdad" in task and (paradigm.startswith("single") or paradigm == "useless_doc" or "Tigris" in task)
        assert text.rstrip().endswith('Reply with only JSON: {"question": "...", "answer": "..."}')
        assert len(text) < 0.75 * len(default.render(paradigm, EXEMPLAR, docs))
        assert "accurate, detailed and comprehensive" not in text
    assert "accurate, detailed and comprehensive" in default.render("single_doc_answer", EXEMPLAR, DOCS[:1])


def test_answer_paradigms_quote_each_documents_first_sentence_in_the_task() -> None:
    small = Templates("small")
    for paradigm in ("single_doc_answer", "single_doc_support", "multi_doc_answer", "multi_doc_support"):
        docs = DOCS if paradigm.startswith("multi") else DOCS[:1]
        task = small.render(paradigm, EXEMPLAR, docs).split("Task:")[1].split("Rules:")[0]
        assert '"Baghdad is the capital of Iraq, on the Tigris."' in task
        assert "largest cities" not in task  # the first sentence only
        quoted = '"The Tigris is the eastern of the two great rivers of Mesopotamia."'
        assert (quoted in task) == paradigm.startswith("multi")
        assert "It flows through Baghdad" not in task
    assert '"Baghdad' not in small.render("useless_doc", EXEMPLAR, DOCS[:1]).split("Task:")[1]


def test_first_sentence_runs_past_abbreviations() -> None:
    doc = Passage(
        id="wiki:MSH",
        title="Mount St. Helens",
        text="Mount St. Helens is an active volcano in the U.S. state of Washington. It erupted in 1980.",
    )
    task = Templates("small").render("single_doc_answer", EXEMPLAR, [doc]).split("Task:")[1]
    assert '"Mount St. Helens is an active volcano in the U.S. state of Washington."' in task
    assert "1980" not in task
