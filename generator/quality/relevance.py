"""Relevance: does the answer address the question? (`quality.relevance`, reason code `off_topic`).

Relevance is not truth: a wrong answer about what was asked passes; an answer about another
subject, a personal ramble or talk about the task does not. The index's encoder decides, through
the paradigm check's sentence cache (`ConformanceChecker.embed`: one model, one cache):
- a short answer (up to `short_answer_words` words: "Rome", "1889") is scored as a statement, the
  question followed by the answer, against the question (`statement`): a bare name or number is too
  thin to compare with a question (on the calibration fixture "Au" scores 0.18 against "What is
  the chemical symbol for gold?", lower than off-topic sentences), while appending it barely moves
  an on-topic statement (0.84 and up);
- a longer answer must be close to the question as a whole (`answer`, the cosine of the two);
- and an answer that speaks of itself or as the one asking (`first_person`: half or more of its
  sentences say I, me or my) is off topic unless the question addresses the answerer (you, your).
  That is how the 270M quickstart model's fluent non-answers read ("The Industrial Revolution
  changed my life. I was more efficient ... You are all proud of me!", "I would like to go to the
  temple of the goddess Jagannath."): they open on the question's subject, so the encoder scores
  them as close as real answers (0.45-0.54), and the mean over their sentences, which separates
  them on the fixture, also fails real answers whose later sentences say "He" for the subject.
Thresholds are calibrated on tests/fixtures/relevance.jsonl and reported on a held-out fixture
(tests/generator/test_relevance.py). With `quality.judge` on, the run's backend is also asked
whether the answer addresses the question (cached by content, like the paradigm judge), and
`quality.combine` says who decides. Each verdict, with its scores, goes in the record's
`quality.relevance`, so a user can re-threshold without regenerating.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from .checks import CheckContext, CheckItem, Outcome
from .parsing import extract_json
from .spans import split_sentences

if TYPE_CHECKING:  # quality/config.py imports this module (its thresholds)
    from ..backends import Backend
    from .config import Quality
    from .judge import JudgeCache

CODES = ("off_topic",)

JUDGE_PROMPT = """\
Does the answer address the question? Judge only that, not whether the answer is true: a wrong \
answer about what the question asks addresses it; an answer about another subject, a personal \
story, a reply about the task, or a reply that speaks as the one asking does not.

Question: {question}
Answer: {answer}

Reply with only a JSON object: {{"addresses_question": true or false}}"""

JUDGE_JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"addresses_question": {"type": "boolean"}},
    "required": ["addresses_question"],
    "additionalProperties": False,
}


class Embedder(Protocol):
    def embed(self, sentences: Sequence[str]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class RelevanceThresholds:
    """Calibrated on tests/fixtures/relevance.jsonl (75 pairs), each in the gap between the classes."""

    answer: float = 0.42  # cos(question, answer): other subjects 0.39 and below, on-topic answers 0.45 and up
    statement: float = 0.80  # short answers, cos(question, question + answer): on-topic 0.84 and up
    first_person: float = 0.5  # share of sentences in the first person singular that makes it off topic
    short_answer_words: int = 4


_FIRST_PERSON = re.compile(r"\b(?:me|my|myself|I'm|I've|I'd|I'll)\b")
_WORD = re.compile(r"[\w']+")
_YOU = re.compile(r"\b(?:you|your|yours|yourself)\b", re.IGNORECASE)


def first_person_share(question: str, answer: str) -> float:
    """The share of the answer's sentences that say I, me or my (0 when the question addresses the
    answerer, "What would you recommend?", which invites them)."""
    if _YOU.search(question):
        return 0.0
    sents = split_sentences(answer) or [answer]
    return sum(_says_i(s) for s in sents) / len(sents)


def _says_i(sentence: str) -> bool:
    """I, me or my as the speaker. The pronoun "I" comes before a lower-case word ("I was", "and I
    learned"); after a capitalised word it is a numeral ("World War I", "Elizabeth I was crowned"),
    before one part of a name ("I Ching")."""
    if _FIRST_PERSON.search(sentence):
        return True
    w = _WORD.findall(sentence)
    return any(
        x == "I" and i + 1 < len(w) and w[i + 1][0].islower() and (i == 0 or not w[i - 1][0].isupper())
        for i, x in enumerate(w)
    )


class _JudgeReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    addresses_question: bool


def parse_judge(text: str) -> bool | None:
    try:
        return _JudgeReply.model_validate(extract_json(text)).addresses_question
    except (ValueError, ValidationError):
        return None


class RelevanceCheck:
    """One verdict per (question, answer): `{"ok", "rule", <scores>[, "judge"]}`; `ok` False is `off_topic`.
    One object of the check protocol (checks.py): its figures go in the record's `quality.relevance`."""

    name = "relevance"
    key = "relevance"
    codes = CODES
    per_paradigm = frozenset({"off_topic"})
    breaker = "judge"
    reads_markers = False

    def __init__(
        self,
        embedder: Embedder,
        thresholds: RelevanceThresholds | None = None,
        *,
        backend: Backend | None = None,
        cache: JudgeCache | None = None,
        combine: str = "both",
    ) -> None:
        """`backend` and `cache` together turn the LLM judge on; `combine` as `quality.combine`."""
        self.embedder, self.t = embedder, thresholds or RelevanceThresholds()
        self.backend, self.cache, self.combine = backend, cache, combine

    def verdict(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """The encoder's verdicts, in order; one encoder call for every text not cached."""
        parts = [self._texts(q, a) for q, a in pairs]
        vecs = self.embedder.embed([t for texts in parts for t in texts[1]])
        out = [self._one(rule, texts, vecs) for rule, texts in parts]
        for v, (q, a) in zip(out, pairs, strict=True):
            v["first_person"] = round(first_person_share(q, a), 3)
            v["ok"] = v["ok"] and v["first_person"] < self.t.first_person
        return out

    async def averdict(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """The encoder's verdicts (in a thread), merged with the judge's when it is on; None where the
        judge is on and gave no verdict (the caller leaves that job unfinished: no fallback)."""
        verdicts = await asyncio.to_thread(self.verdict, pairs)
        if self.backend is None or self.cache is None:
            return list(verdicts)
        judged = await self._judge(pairs)
        return [None if j is None else self._merge(v, j) for v, j in zip(verdicts, judged, strict=True)]

    @classmethod
    def build(cls, q: Quality, ctx: CheckContext) -> RelevanceCheck | None:
        """`quality.relevance` on the paradigm check's encoder cache; with `quality.judge`, the run's backend
        is asked too, its replies in the run's judge cache (shared with the paradigm judge)."""
        if not q.relevance or ctx.checker is None:
            return None
        judged = q.judge and ctx.backend is not None
        return cls(
            ctx.checker,
            q.relevance_thresholds(),
            backend=ctx.backend if judged else None,
            cache=ctx.judge_cache if judged else None,
            combine=q.combine,
        )

    def applies(self, paradigm: str | None) -> bool:
        return True

    async def averdicts(self, items: Sequence[CheckItem]) -> list[Outcome]:
        verdicts = await self.averdict([(i.question, i.answer) for i in items])
        return [
            Outcome(False, unfinished="judge_no_verdict")
            if v is None
            else Outcome(bool(v["ok"]), None if v["ok"] else "off_topic", v)
            for v in verdicts
        ]

    def figures(self, outcomes: Sequence[Outcome]) -> Counter[str]:
        """Counts for run.json: relevance_passed, relevance_off_topic."""
        return Counter("relevance_passed" if o.ok else "relevance_off_topic" for o in outcomes)

    def _texts(self, question: str, answer: str) -> tuple[str, list[str]]:
        if len(answer.split()) <= self.t.short_answer_words:
            return "statement", [question, f"{question} {answer}"]
        return "answer", [question, answer]

    def _one(self, rule: str, texts: list[str], vecs: dict[str, np.ndarray]) -> dict[str, Any]:
        q = vecs[texts[0]]
        if rule == "statement":
            s = float(q @ vecs[texts[1]])
            return {"ok": s >= self.t.statement, "rule": rule, "statement": round(s, 3)}
        whole = float(q @ vecs[texts[1]])
        return {"ok": whole >= self.t.answer, "rule": rule, "answer": round(whole, 3)}

    def _merge(self, enc: dict[str, Any], judged: bool) -> dict[str, Any]:
        """both: ok only when both say so; judge: the judge decides; encoder: the encoder decides."""
        out = {**enc, "encoder": enc["ok"], "judge": judged}
        if self.combine == "judge":
            out["ok"] = judged
        elif self.combine == "both":
            out["ok"] = enc["ok"] and judged
        return out

    async def _judge(self, pairs: Sequence[tuple[str, str]]) -> list[bool | None]:
        from ..backends import ChatRequest

        assert self.backend is not None and self.cache is not None
        model = self.backend.model
        hashes = [hashlib.sha256("\x1f".join(("relevance", model, q, a)).encode()).hexdigest()[:32] for q, a in pairs]
        todo = [(h, p) for h, p in zip(hashes, pairs, strict=True) if h not in self.cache.replies]
        if todo:
            reqs = [
                ChatRequest(
                    [{"role": "user", "content": JUDGE_PROMPT.format(question=q, answer=a)}],
                    0.0,
                    1.0,
                    32,
                    0,
                    JUDGE_JSON_SCHEMA,
                )
                for _, (q, a) in todo
            ]
            results = await self.backend.chat(reqs)
            fresh = {
                h: r.text
                for (h, _), r in zip(todo, results, strict=True)
                if not r.error and parse_judge(r.text) is not None
            }
            self.cache.add(fresh)
        return [parse_judge(self.cache.replies[h]) if h in self.cache.replies else None for h in hashes]
