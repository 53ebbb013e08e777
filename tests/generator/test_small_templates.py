"""The small-model template set (`templates: small`, prompts/small/) and the default set it must
leave alone: a prompt change for the 270M model must not change what a strong model is asked."""

from __future__ import annotations

from ragloom.generator.paradigms import PARADIGMS
from ragloom.generator.templates import Templates
from ragloom.generator.types import Exemplar
from ragloom.retrieval import Passage

EXEMPLAR = Exemplar(id="ex", source="builtin", text="Which river flows through Baghdad?", task_type="factoid")
DOCS = [
    Passage(id="wiki:Baghdad", title="Baghdad", text="Baghdad is the capital of Iraq, on the Tigris."),
    Passage(id="wiki:Tigris", title="Tigris", text="The Tigris is the eastern of the two great rivers of Mesopotamia."),
]

# that the default (RAG-Instruct) templates still render what they rendered before the small set and
# the citation block were added is test_citation_prompts.py's byte-identity test against 87c78a4


def test_small_set_is_selected_by_name_and_is_another_run() -> None:
    small = Templates("small")
    assert set(small.digests()) == set(PARADIGMS)
    assert not set(small.digests().values()) & set(Templates().digests().values())


def test_small_prompt_shows_the_exemplar_first_and_ends_on_the_documents_task_and_a_short_contract() -> None:
    small, default = Templates("small"), Templates()
    for paradigm in PARADIGMS:
        docs = DOCS if paradigm.startswith("multi") else DOCS[:1]
        text = small.render(paradigm, EXEMPLAR, docs)
        assert text.index(EXEMPLAR.text) < text.index("[Document 1] Baghdad") < text.index("Task:")
        task = text[text.index("Task:") :].splitlines()[0]
        assert "Baghdad" in task and (paradigm.startswith("single") or paradigm == "useless_doc" or "Tigris" in task)
        assert text.rstrip().endswith('Reply with only JSON: {"question": "...", "answer": "..."}')
        assert len(text) < 0.75 * len(default.render(paradigm, EXEMPLAR, docs))
        assert "accurate, detailed and comprehensive" not in text
    assert "accurate, detailed and comprehensive" in default.render("single_doc_answer", EXEMPLAR, DOCS[:1])
