"""Cited answers (`[n]`) and RAFT quotes: parsing, renumbering, stripping, and the citation check measured
on hand-labelled fixtures (tests/fixtures/citations: calibration, then a held-out set written after the
thresholds were frozen) with the real encoder."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from ragloom.generator.quality import CheckItem, ConformanceChecker, Outcome
from ragloom.generator.quality.citations import CitationCheck, CitationThresholds, cited_sentences, precision_recall
from ragloom.generator.quality.quotes import find_quote
from ragloom.generator.quality.spans import split_sentences
from ragloom.generator.runs import parse_quoted, renumber, strip_citations
from ragloom.retrieval import Encoder


def _bench(name: str):
    """A bench/ script as a module, by path: bench/ on sys.path would shadow packages (bench/ray.py)."""
    path = Path(__file__).resolve().parents[2] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in it look their module up
    spec.loader.exec_module(module)
    return module


_eval = _bench("citation_eval")
load, table, verdicts = _eval.load, _eval.table, _eval.verdicts


@dataclass(frozen=True)
class Doc:
    title: str
    text: str
    role: str = "source"


@pytest.fixture(scope="module")
def check() -> CitationCheck:
    return CitationCheck(ConformanceChecker(Encoder()), style="auto")


# -- markers ------------------------------------------------------------------------------------


def test_markers_are_read_per_sentence_in_every_form_models_write() -> None:
    answer = (
        "The tower was finished in 1889 [1]. It stands in Paris.[2] [3] Many visit it [1, 3]. "
        "Others do not. [2-3] Some say so [2][1]."
    )
    got = [(s.text, s.cites) for s in cited_sentences(answer)]
    assert got == [
        ("The tower was finished in 1889.", (1,)),
        ("It stands in Paris.", (2, 3)),
        ("Many visit it.", (1, 3)),
        ("Others do not.", (2, 3)),
        ("Some say so.", (2, 1)),
    ]


def test_a_marker_inside_a_sentence_cites_the_clause_before_it() -> None:
    s = cited_sentences("Elbrus rises 5,642 metres [2], while Kilimanjaro reaches 5,895 metres above the sea [1].")[0]
    assert s.claims == (
        ("Elbrus rises 5,642 metres", (2,)),
        ("while Kilimanjaro reaches 5,895 metres above the sea.", (1,)),
    )
    lead = cited_sentences("According to [1], the Nile flows north into the sea.")[0]
    assert lead.text == "The Nile flows north into the sea." and lead.claims == ((lead.text, (1,)),)


@pytest.mark.parametrize(
    "cited, plain",
    [
        ("Paris is the capital [1].", "Paris is the capital."),
        ("Paris [1][2] and Rome [3] are capitals.", "Paris and Rome are capitals."),
        ("It is old.[1] It is big. [2]", "It is old. It is big."),
        ("According to [1], the Nile is long [1, 2].", "The Nile is long."),
        ("Line one [1].\nLine two [2-3].", "Line one.\nLine two."),
        ("No markers here, only [brackets].", "No markers here, only [brackets]."),
    ],
)
def test_strip_citations_gives_the_plain_answer(cited: str, plain: str) -> None:
    assert strip_citations(cited) == plain


def test_the_check_sees_the_sentences_the_paradigm_check_embeds() -> None:
    """Same sentence texts as split_sentences of the stripped answer: the encoder cache is shared."""
    a = "According to [1], the Nile is long. It flows north [2]. Beyond it lies Sudan.[1][3] End."
    assert [s.text for s in cited_sentences(a)] == split_sentences(strip_citations(a))


def test_renumber_maps_each_number_and_keeps_one_marker_per_group() -> None:
    a = "A [1]. B [2][1]. C [1, 2]. D [1-2]. E [3]."
    assert renumber(a, {1: 7, 2: 4}) == "A [7]. B [4][7]. C [7, 4]. D [7, 4]. E [3]."


# -- quotes -------------------------------------------------------------------------------------

SOURCE = (
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris , France. It is named "
    "after the engi-\nneer Gustave Eiffel, whose company designed and built tbe tower from 1887 to 1889. "
    'Locally nicknamed "La dame de fer", it was diffi\u00adcult to build.'
)


@pytest.mark.parametrize(
    "quote",
    [
        "named after the engineer Gustave Eiffel",  # hyphenated at a line break in the source
        "on the Champ de Mars in Paris, France",  # space before the comma in the source
        "designed and built the tower from 1887 to 1889",  # OCR "tbe" cleaned up
        "Locally nicknamed \u2018La dame de fer\u2019",  # curly single quotes for straight double
        "it was difficult to build",  # soft hyphen
        "The Eiffel Tower is a wrought-iron lattice tower ... designed and built the tower",  # ellipsis
        "The Eiffel Tower is a wrought\u2011iron   lattice\ntower",  # other hyphen, whitespace
    ],
)
def test_faithful_quotes_with_real_world_noise_are_found(quote: str) -> None:
    assert find_quote(quote, ["Unrelated text about rivers.", SOURCE]) is not None


@pytest.mark.parametrize(
    "quote",
    [
        "built the tower from 1887 to 1898",  # a changed number
        "named after the architect Gustave Eiffel",  # a changed word
        "named after Gustave Eiffel",  # a dropped word
        "on the Champ de Mars in Lyon, France",
        "The Eiffel Tower is a wrought-iron lattice tower ... designed and built the bridge",
    ],
)
def test_a_quote_with_a_changed_word_is_not_found(quote: str) -> None:
    assert find_quote(quote, [SOURCE]) is None


def test_parse_quoted_reads_raft_replies() -> None:
    r = parse_quoted(
        "##Reason: It says ##begin_quote## A b ##end_quote## and ##begin_quote##C##end_quote##.\n<ANSWER>: D"
    )
    assert r.quotes == ["A b", "C"] and r.answer == "D" and r.reasoning.startswith("##Reason: It says")


# -- the check on hand-made records ---------------------------------------------------------------

KILI = Doc("Mount Kilimanjaro", "Mount Kilimanjaro is a large dormant volcano in Tanzania. It is the highest mountain in Africa, at 5,895 m above sea level.")  # fmt: skip
ELBRUS = Doc("Mount Elbrus", "Mount Elbrus is the highest mountain in Russia and Europe. It is a dormant stratovolcano rising 5,642 m above sea level.")  # fmt: skip
DISTRACTOR = Doc("Alaric I", "Alaric I was the first king of the Visigoths, from 395 to 410.", "distractor")
Q = "How high are Kilimanjaro and Elbrus?"


def test_rules_per_paradigm_and_document(check: CitationCheck) -> None:
    good = "Kilimanjaro in Tanzania rises 5,895 m and is Africa's highest mountain [1]. Elbrus, a dormant stratovolcano, reaches 5,642 m and is the highest in Europe [2]."  # fmt: skip
    swapped = good.replace("[1]", "[x]").replace("[2]", "[1]").replace("[x]", "[2]")
    outs = check.verdicts(
        [
            CheckItem(Q, good, "multi_doc_answer", [KILI, ELBRUS]),
            CheckItem(Q, swapped, "multi_doc_answer", [KILI, ELBRUS]),
            CheckItem(Q, good.replace("[2]", "[3]"), "multi_doc_answer", [KILI, ELBRUS, DISTRACTOR]),
            CheckItem(Q, good.replace("[2]", "[4]"), "multi_doc_answer", [KILI, ELBRUS, DISTRACTOR]),
            CheckItem(Q, good.replace(" [1]", "").replace(" [2]", ""), "multi_doc_answer", [KILI, ELBRUS]),
            CheckItem("How do volcanoes form?", "Magma rises through cracks in the crust [1].", "useless_doc", [KILI]),
        ]
    )
    assert [o.code for o in outs] == [
        None,
        "citation_unsupported",
        "citation_unsupported",
        "citation_unsupported",
        "citation_missing",
        "citation_to_useless",
    ]
    assert outs[0].figures["precision"] == 1.0 and outs[0].figures["recall"] == 1.0
    assert [b["why"] for b in outs[2].figures["unsupported"]] == ["distractor"]
    assert [b["why"] for b in outs[3].figures["unsupported"]] == ["no_document"]
    assert outs[4].figures["recall"] == 0.0 and 0 in outs[4].figures["missing"]


def test_a_distractor_citation_fails_whatever_the_precision_threshold() -> None:
    lax = CitationCheck(ConformanceChecker(Encoder()), CitationThresholds(precision=0.0, recall=0.0))
    answer = "Kilimanjaro in Tanzania rises 5,895 m [1]. It is the highest mountain in Africa [1]. It is old [2]."
    (o,) = lax.verdicts([CheckItem(Q, answer, "single_doc_answer", [KILI, DISTRACTOR])])
    assert o.code == "citation_unsupported" and o.figures["precision"] == pytest.approx(0.667)


def test_figures_count_precision_and_recall_per_paradigm(check: CitationCheck) -> None:
    good = "Kilimanjaro in Tanzania rises 5,895 m and is Africa's highest mountain [1]."
    outs = asyncio.run(
        check.averdicts(
            [
                CheckItem(Q, good, "single_doc_answer", [KILI]),
                CheckItem(Q, good.replace("[1]", "[2]"), "single_doc_answer", [KILI, DISTRACTOR]),
            ]
        )
    )
    assert all(isinstance(o, Outcome) for o in outs)
    figs = CitationCheck.figures([*outs, None])
    assert figs["citations_passed"] == 1 and figs["citation_unsupported_single_doc_answer"] == 1
    assert precision_recall(figs, "single_doc_answer") == (0.5, 0.5)
    assert check.name == "citations" and set(check.codes) >= {"citation_missing", "quote_not_in_source"}


# -- measured on the fixtures ----------------------------------------------------------------------


def measured(check: CitationCheck, name: str) -> dict:
    rows = load(name)
    return table(rows, verdicts(check, rows))


def test_calibration_fixture_at_the_frozen_thresholds(check: CitationCheck) -> None:
    """56 records (29 faulty). Measured: 55 right; citation_unsupported P 0.93 / R 1.00 (the false alarm:
    "Kilimanjaro is therefore about 250 metres taller [1][2]", a difference no document states), the other
    codes 1.00 / 1.00."""
    got = measured(check, "calibration")
    assert got["accuracy"] == {"records": 56, "right": 55}
    assert got["citation_unsupported"]["precision"] >= 0.93 and got["citation_unsupported"]["recall"] == 1.0
    for code in ("citation_to_useless", "citation_missing", "quote_not_in_source"):
        assert (got[code]["precision"], got[code]["recall"]) == (1.0, 1.0), code


def test_held_out_fixture_at_the_frozen_thresholds(check: CitationCheck) -> None:
    """49 records written after freezing (26 faulty), other articles. Measured: 46 right; every faulty
    record flagged with its code (recall 1.00 for each); false alarms: two multi_doc_support answers
    whose mid-sentence clause ("Maize is a tall grass grown for its grain [1]") scores under
    support_cos, and one faithful quote over OCR text with "kev" for "key" (v/y is not in the OCR table)."""
    got = measured(check, "heldout")
    assert got["accuracy"]["records"] == 49 and got["accuracy"]["right"] >= 46
    assert all(got[c]["recall"] == 1.0 for c in ("citation_to_useless", "citation_unsupported", "citation_missing", "quote_not_in_source"))  # fmt: skip
    assert got["citation_unsupported"]["precision"] >= 0.85 and got["quote_not_in_source"]["precision"] >= 0.83
    assert got["any"]["precision"] >= 0.89


def test_fixture_sizes_and_kinds() -> None:
    for name, n in (("calibration", 50), ("heldout", 45)):
        rows = load(name)
        kinds = {r["kind"] for r in rows}
        assert len(rows) >= n and {"correct", "wrong_source", "distractor", "missing", "quote_altered", "quote_faithful"} <= kinds  # fmt: skip
        for r in rows:  # every record has the band's distractors, as generate draws them
            band = [d for d in r["documents"] if d["role"] == "distractor"]
            assert len(r["documents"]) == 10 and all(200 <= d["rank"] < 1000 for d in band)
    assert json.dumps(load("heldout"), ensure_ascii=False).count("\u00ad") >= 1  # held-out quotes face soft hyphens too


# -- the fake server's cited and quoted modes, on real prompts over real summaries -----------------


@pytest.mark.parametrize("style", ["cited", "quoted"])
def test_the_fake_servers_answers_pass_and_its_planted_faults_fail(check: CitationCheck, style: str) -> None:
    from fake_openai import cited_pair, quoted_pair
    from leak_corpus import leak_corpus
    from ragloom.generator.templates import Templates
    from ragloom.generator.types import Exemplar
    from ragloom.retrieval import Passage

    data = {r["title"]: r for r in leak_corpus()}
    docs = [Passage(data[t]["id"], t, data[t]["text"]) for t in ("Moon", "Iron")]
    templates = Templates(answer_style=style)
    make = cited_pair if style == "cited" else quoted_pair
    items, wrong_items = [], []
    for p in ("useless_doc", "single_doc_support", "multi_doc_support", "single_doc_answer", "multi_doc_answer"):
        srcs = docs if p.startswith("multi") else docs[:1]
        prompt = templates.render(p, Exemplar("e", "What is the Moon?", "test"), srcs)
        for wrong, into in ((False, items), (True, wrong_items)):
            pair = make(prompt, wrong=wrong)
            into.append(CheckItem(pair["question"], pair["answer"], p, [Doc(d.title, d.text) for d in srcs]))
    assert [o.code for o in check.verdicts(items)] == [None] * 5
    want = {"cited": "citation_unsupported", "quoted": "quote_not_in_source"}[style]
    got = [o.code for o in check.verdicts(wrong_items)]
    useless = 0
    assert got[useless] == ("citation_to_useless" if style == "cited" else None)  # a quoted one quotes nothing
    assert [c for i, c in enumerate(got) if i != useless] == [want] * 4
