"""`answer_style` in the paradigm templates: plain renders today's prompts byte for byte; cited and
quoted add one instruction (one macro) that fits each paradigm."""

from __future__ import annotations

from pathlib import Path

import pytest
from ragloom.generator.templates import Templates
from ragloom.generator.types import Exemplar
from ragloom.retrieval import Passage

ROOT = Path(__file__).resolve().parents[2]
PARADIGMS = ("useless_doc", "single_doc_support", "multi_doc_support", "single_doc_answer", "multi_doc_answer")
EX = Exemplar("e", "Who built the Eiffel Tower?", "test", "open_qa")
MC = Exemplar("m", "Which is a gas? A) iron B) neon C) salt D) wood", "test", "multiple_choice", ("iron", "neon", "salt", "wood"))  # fmt: skip
DOCS = [Passage("a", "Eiffel Tower", "The Eiffel Tower is in Paris."), Passage("b", "Gustave Eiffel", "He built it.")]


@pytest.fixture(scope="module")
def old_templates() -> Path:
    """prompts/*.j2 as they were before answer_style: copied from commit 87c78a4 (`git show
    87c78a4:prompts/NAME.j2`) into the fixtures, so the check needs no git history."""
    return ROOT / "tests" / "fixtures" / "prompts_before_answer_style"


@pytest.mark.parametrize("paradigm", PARADIGMS)
@pytest.mark.parametrize("exemplar", [EX, MC])
def test_plain_prompts_are_byte_identical_to_before(old_templates: Path, paradigm: str, exemplar: Exemplar) -> None:
    docs = DOCS[:2] if paradigm.startswith("multi") else DOCS[:1]
    old = Templates(old_templates, [paradigm]).render(paradigm, exemplar, docs)
    assert Templates(None, [paradigm]).render(paradigm, exemplar, docs) == old
    assert Templates(None, [paradigm], answer_style="plain").render(paradigm, exemplar, docs) == old


@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_cited_and_quoted_add_one_instruction_in_its_place(paradigm: str) -> None:
    docs = DOCS[:2] if paradigm.startswith("multi") else DOCS[:1]
    plain = Templates().render(paradigm, EX, docs)
    cited = Templates(answer_style="cited").render(paradigm, EX, docs)
    quoted = Templates(answer_style="quoted").render(paradigm, EX, docs)
    for text, head in ((cited, "Citations: "), (quoted, "Form of the answer: ")):
        before, _, rest = text.partition(head)
        rules, _, after = rest.partition("\n\nRules:")
        assert before.endswith("not a one-word reply.\n") and len(rules.splitlines()) <= 2
        assert before + "\nRules:" + after == plain  # the plain prompt plus the rules, nothing else moved
    if paradigm == "useless_doc":
        assert "cites nothing" in cited and "quote nothing" in quoted and "##begin_quote##" not in quoted
    else:
        assert "[1][2]" in cited and "[Document n]" in cited
        assert "##begin_quote##" in quoted and "<ANSWER>: " in quoted
        assert ("general knowledge carries no citation" in cited) == paradigm.endswith("_support")


def test_a_template_set_that_never_asks_for_citations_is_refused_for_cited_runs() -> None:
    """`templates: small` has no citation block: a cited run on it would fail every answer as
    citation_missing after paying for it, so it is refused before any request, naming the file."""
    import pytest
    from ragloom.generator.templates import Templates

    from ragloom.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"small/\w+\.j2: answer_style is cited .* never uses the variable 'answer_style'"
    ):
        Templates("small", answer_style="cited")
    assert Templates("small").render  # plain runs on the small set are fine
