"""The `quality:` and `validation:` sections (this wing's checks and the reply validation)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..backends import ScoringBackendConfig
from ..strict import Strict
from .citations import CitationThresholds
from .conformance import ConformanceThresholds
from .leaks import LeakRule
from .relevance import RelevanceThresholds

_T = ConformanceThresholds()
_R = RelevanceThresholds()
_L = LeakRule()
_C = CitationThresholds()


class Quality(Strict):
    """The quality gate. Encoder defaults are calibrated on tests/fixtures/conformance.jsonl."""

    conformance: bool = Field(
        True, description="reject records whose sources do not relate to the answer as the paradigm requires"
    )
    judge: bool = Field(False, description="also ask the LLM judge (the run's backend) for a structured verdict")
    combine: Literal["both", "judge", "encoder"] = Field(
        "both",
        description="with judge on: both = reject when either says mismatch; judge = the judge decides "
        "(the encoder's verdict is still stored); encoder = the encoder decides (the judge's is stored)",
    )
    judge_cache: str | None = Field(
        None, description="JSON lines of judge decisions (default: OUTPUT/quality_judge.jsonl)"
    )
    state_words: float = Field(_T.state_words, ge=0, le=1)
    state_attr: float = Field(_T.state_attr, ge=-1, le=1)
    support_words: float = Field(_T.support_words, ge=0, le=1)
    support_peak: float = Field(_T.support_peak, ge=-1, le=1)
    leak_screen: bool = Field(
        True, description="screen distractor candidates for the answer (key spans, meaning, support)"
    )
    leak_similarity: float = Field(
        0.58, gt=0, le=1, description="a candidate sentence this close to an answer sentence carries the answer"
    )
    leak_gate_words: int = Field(
        2, ge=1, description="only candidate sentences sharing this many content words with the answer are embedded"
    )
    leak_span_share: float = Field(
        _L.span_share,
        ge=0,
        le=1,
        description="a key span held by more than this share of the index's passages is not specific: no leak",
    )
    leak_tie_words: int = Field(
        _L.tie_words, ge=0, description="a key span leaks where its sentence holds this many of the question's words"
    )
    leak_tie_similarity: float = Field(
        _L.tie_similarity, ge=-1, le=1, description="... or where its sentence is this close to an answer sentence"
    )
    leak_tie_spans: int = Field(
        _L.tie_spans,
        ge=0,
        description=f"... or where its sentence holds this many key spans of the answer held by at most "
        f"{_L.tie_span_share:.1%} of the passages (0: off)",
    )
    leak_statement: float | None = Field(
        _L.statement,
        ge=-1,
        le=1,
        description="a candidate whose title and one or two sentences are this close to the question and answer "
        "read as one statement states the answer (null: that check off, and its encoder cost)",
    )
    necessity: bool = Field(
        False, description="LM-score whether the sources are needed for the answer (*_answer, useless_doc)"
    )
    necessity_margin: float = Field(
        0.1, ge=0, description="mean log p(a | q, D*) - mean log p(a | q) must exceed this (nats per token)"
    )
    necessity_loo_margin: float = Field(
        0.05, ge=0, description="multi_doc_answer: dropping any one source must lower the score by more than this"
    )
    necessity_backend: ScoringBackendConfig | None = Field(
        None, description="the scorer (default: the run's backend); {type: llama_cpp, model_path: ...} on CPU"
    )

    relevance: bool = Field(True, description="reject answers that do not address the question (`off_topic`)")
    relevance_answer: float = Field(_R.answer, ge=-1, le=1, description="a longer answer's cosine to the question")
    relevance_statement: float = Field(
        _R.statement, ge=-1, le=1, description="a short answer's: question + answer against the question"
    )
    relevance_first_person: float = Field(
        _R.first_person, ge=0, le=1, description="off topic when this share of the answer's sentences says I/me/my"
    )

    citations: bool | None = Field(
        None,
        description="verify the answers' [n] citations / RAFT quotes (default: on when answer_style is not plain)",
    )
    citation_precision: float = Field(
        _C.precision, ge=0, le=1, description="share of an answer's citations that must support what cites them"
    )
    citation_recall: float = Field(
        _C.recall, ge=0, le=1, description="share of the answer sentences a source states that must cite one"
    )

    def citation_thresholds(self) -> CitationThresholds:
        return CitationThresholds(self.citation_precision, self.citation_recall)

    def thresholds(self) -> ConformanceThresholds:
        return ConformanceThresholds(self.state_words, self.state_attr, self.support_words, self.support_peak)

    def relevance_thresholds(self) -> RelevanceThresholds:
        return RelevanceThresholds(self.relevance_answer, self.relevance_statement, self.relevance_first_person)

    def leak_rule(self) -> LeakRule:
        return LeakRule(
            span_share=self.leak_span_share,
            tie_words=self.leak_tie_words,
            tie_similarity=self.leak_tie_similarity,
            tie_spans=self.leak_tie_spans,
            statement=self.leak_statement,
        )


class Validation(Strict):
    attempts: int = Field(3, ge=1, le=20)
    min_question_words: int = Field(4, ge=1)
    min_answer_words: int = Field(1, ge=1)
    copy_ngram: int = Field(12, ge=3)
    echo_similarity: float = Field(0.9, gt=0, le=1)
