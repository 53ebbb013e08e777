"""Distractor leak screening: a distractor must not carry the answer, in any words.

`LeakScreen.screen_for(...)` gives the callable `sample_distractors(screen=...)` takes. It returns
the name of the first check that fires on a candidate, or None:
- "key_span": the candidate holds one of the answer's key spans (a number or date, a quantity such as
  "71 million" or "40 percent", a multi-word proper name the question does not name, the correct
  option's text, the whole short answer) that is
  *specific* and *tied* to the question there. Specific: at most `span_share` of the corpus's passages
  hold it (`SpanFrequency`; "United States" or a year of the 1880s is held by hundreds of unrelated
  passages and gives nothing away). Tied: the candidate's sentence holding it also holds
  `tie_words` of the question's content words, or the encoder relates that sentence to an answer
  sentence (cosine >= `tie_similarity`), or the sentence holds `tie_spans` key spans of the answer
  together, each rare (held by at most `tie_span_share` of the passages): two of the answer's facts side
  by side are the answer, whatever words surround them ("the North Atlantic Drift, the northern arm of
  the Gulf Stream" for why Europe's winters are mild; not "deputy prime minister ... 1946", two
  commoner spans that many passages pair). Without a `SpanFrequency` every span counts as specific;
- "meaning": a sentence of the candidate is at least `similarity` close (cosine, index encoder) to a
  sentence of the answer. Only sentences sharing `gate_words` content words with the answer are
  embedded: a sentence with fewer is not a paraphrase of it, and the encoder is the cost here;
- "statement": the candidate states the fact the question asks, in its own words: a window of it
  (its title with its first sentence, or with two consecutive sentences) is at least `rule.statement`
  close to the question and answer read as one statement ("In which city did X die? X died in
  Hong Kong."). This finds what describes the answer without naming it ("an island off East Africa
  grew more of them than anywhere else" for Zanzibar's cloves): the question supplies what the
  answer alone leaves out, and the window supplies what a sentence saying "them" refers to;
- "supports_answer" (the *_answer paradigms only): the candidate holds at least as large a share
  of the answer's new words as the weakest source does (and at least the checker's support bar).
Sentence vectors are cached; `prefetch` embeds the gated sentences and the windows of many
candidates in one call (a window depends only on its passage, so it is embedded once per run while
the cache holds it).
Thresholds: calibrated on tests/fixtures/leaks/calibration.jsonl (bench/leak_eval.py); the statement
check's on calibration.jsonl and heldout.jsonl together, then measured on heldout2.jsonl.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from ragloom.retrieval import Passage

from .conformance import ConformanceChecker
from .span_freq import SpanFrequency
from .spans import content_words, key_spans, novel_words, quantities, sentence_words, span_in, split_sentences

LEAK_CHECKS = ("key_span", "meaning", "statement", "supports_answer")


@dataclass(frozen=True, slots=True)
class LeakRule:
    """The key-span rule's thresholds and the statement check's (see the module docstring)."""

    span_share: float = 0.01
    tie_words: int = 2
    tie_similarity: float = 0.5
    # a sentence holding this many of the answer's key spans, each held by at most `tie_span_share` of
    # the corpus's passages, ties each of them (0: off)
    tie_spans: int = 2
    tie_span_share: float = 0.001
    # None: the statement check is off (and embeds nothing). Opt-in, at the calibrated STATEMENT: on
    # real generate runs its removals were ordinary distractors and it multiplies the screen's encode
    statement: float | None = None


STATEMENT = 0.42  # quality.leak_statement calibrated on the calibration and first held-out fixtures


@dataclass(frozen=True, slots=True)
class SpanEvidence:
    """One key span found in a candidate: how common it is and how closely the candidate ties it to
    the question (`near`: question words in its sentence; `similarity`: that sentence vs the answer;
    `together`: the most rare key spans of the answer one of its sentences holds, itself included)."""

    span: str
    share: float
    near: int
    similarity: float
    together: int = 1

    def leaks(self, rule: LeakRule) -> bool:
        return self.share <= rule.span_share and (
            self.near >= rule.tie_words or self.similarity >= rule.tie_similarity or 0 < rule.tie_spans <= self.together
        )


_CLAUSE = re.compile(r",\s+(?:and|but|while|which|where|so|then)\s+|;\s+|:\s+")


def screen_spans(question: str, answer: str, short_answer_words: int) -> tuple[str, ...]:
    """The spans the "key_span" check looks for: the answer's key spans and its quantities ("71 million",
    "40 percent"), minus those the question holds. Quantities are the leak screen's alone: the paradigm
    check reads `key_spans`, whose thresholds were calibrated and measured without them."""
    found = sorted(quantities(answer) - quantities(question))
    return (*key_spans(question, answer, short_answer_words=short_answer_words), *found)


def answer_parts(answer: str) -> list[str]:
    """The answer's sentences and, for a sentence joining facts, its clauses of four or more words: a
    distractor that restates one fact matches that clause better than the sentence holding two."""
    sents = split_sentences(answer) or [answer]
    clauses = [c.strip() for s in sents for c in _CLAUSE.split(s) if len(c.split()) >= 4]
    return list(dict.fromkeys(sents + clauses))


def statement_of(question: str, answer: str) -> str:
    """The question and its answer read as one statement: what the "statement" check compares with."""
    return f"{question} {answer}"


def windows(candidate: Passage) -> list[str]:
    """What the "statement" check compares: the title with the first sentence, then the title with
    each pair of consecutive sentences (a sentence's "it" or "them" is named in the one before)."""
    sents = split_sentences(candidate.text) or [candidate.text]
    head = f"{candidate.title}. " if candidate.title else ""
    return list(dict.fromkeys([head + sents[0]] + [f"{head}{a} {b}" for a, b in pairwise(sents)]))


def coverage(new: frozenset[str], text: str, weight: Callable[[str], float] | None = None) -> float:
    """Share of the answer's new words `new` that occur in `text`, each word counted by `weight`
    (default 1; the leak screen weighs a word by how rare it is in the corpus)."""
    if not new:
        return 0.0
    w = weight or (lambda _: 1.0)
    return sum(w(x) for x in new & content_words(text)) / sum(w(x) for x in new)


def _distinct(spans: list[str]) -> int:
    """How many of `spans` are facts of their own: one inside another ("16.4" in "16.4 million") is
    one fact."""
    return sum(not any(a != b and a in b for b in spans) for a in spans)


class LeakScreen:
    """Builds one screen per record; shares the checker's sentence-embedding cache."""

    def __init__(
        self,
        checker: ConformanceChecker,
        *,
        similarity: float = 0.58,
        gate_words: int = 2,
        frequency: SpanFrequency | None = None,
        rule: LeakRule | None = None,
    ) -> None:
        self.checker, self.similarity, self.gate_words = checker, similarity, gate_words
        self.frequency, self.rule = frequency, rule or LeakRule()
        self._shares: dict[str, float] = {}

    def share(self, span: str) -> float:
        """The share of the corpus's passages holding `span` (0 without a `SpanFrequency`)."""
        if self.frequency is None:
            return 0.0
        share = self._shares.get(span)
        if share is None:
            self.warm([span])
            share = self._shares[span]
        return share

    def warm(self, spans: Iterable[str]) -> None:
        """Count the spans `share` will be asked for, in one call (remembered; at most 100,000 kept)."""
        if self.frequency is None:
            return
        todo = [s for s in dict.fromkeys(spans) if s not in self._shares]
        if not todo:
            return
        if len(self._shares) + len(todo) > 100_000:
            self._shares.clear()
        self._shares.update(zip(todo, self.frequency.shares(todo), strict=True))

    def weight(self, word: str) -> float:
        """A word's weight in `coverage`: its inverse document frequency in the corpus (1 without one)."""
        if self.frequency is None:
            return 1.0
        n = self.frequency.passages
        return math.log((n + 1) / (self.share(word) * n + 1))

    def gated(self, answer_words: frozenset[str], text: str) -> list[str]:
        """The sentences of `text` that share enough content words with the answer to be embedded."""
        need = min(self.gate_words, max(1, len(answer_words)))
        return [s for s, words in sentence_words(text) if len(words & answer_words) >= need]

    def prefetch(self, pairs: Sequence[tuple[str, Passage]], questions: Sequence[tuple[str, str]] = ()) -> None:
        """Embed, in one encoder call, the sentences of the answers of many (answer, candidate) pairs,
        the gated sentences and the windows of their candidates, and the statements of the records'
        (question, answer) `questions` (an encoder call per record would cost more than all the
        embedding itself: bench/generation.py G3)."""
        answers = dict.fromkeys(a for a, _ in pairs)
        sents = [s for a in answers for s in answer_parts(a)]
        words = {a: content_words(a) for a in answers}
        gated = [s for a, p in pairs for s in self.gated(words[a], p.text)]
        cands = {(p.title, p.text): p for _, p in pairs}.values()  # a record's Document is not hashable
        short = self.checker.t.short_answer_words
        self.warm(x for q, a in questions for x in (*screen_spans(q, a, short), *novel_words(a, q)))
        if self.rule.statement is None:
            self.checker.embed(sents + gated)
            return
        said = [statement_of(q, a) for q, a in questions]
        self.checker.embed(sents + said + gated + [w for p in cands for w in windows(p)])

    def screen_for(
        self, *, question: str, answer: str, paradigm: str | None = None, sources: Sequence[Passage] = ()
    ) -> _Screen:
        return _Screen(self, question, answer, paradigm, sources)


class _Screen:
    def __init__(
        self, owner: LeakScreen, question: str, answer: str, paradigm: str | None, sources: Sequence[Passage]
    ) -> None:
        self.owner = owner
        sents = answer_parts(answer)
        self.spans = screen_spans(question, answer, owner.checker.t.short_answer_words)
        self.question_words = content_words(question)
        self.words = content_words(answer)
        said = [statement_of(question, answer)] if owner.rule.statement is not None else []
        vecs = owner.checker.embed([*sents, *said])
        self.answer_vecs = np.stack([vecs[s] for s in sents])
        self.statement_vec = vecs[said[0]] if said else None
        self.new = novel_words(answer, question)
        self.bar: float | None = None
        self.new_weight: dict[str, float] = {}  # `coverage`'s weights of the new words, read once
        if paradigm is not None and paradigm.endswith("_answer") and sources and self.new:
            self.new_weight = {w: owner.weight(w) for w in self.new}
            weakest = min(coverage(self.new, p.text, self.new_weight.__getitem__) for p in sources)
            self.bar = max(weakest, owner.checker.t.support_words)

    def evidence(self, candidate: Passage, *, full: bool = False) -> list[SpanEvidence]:
        """Each key span the candidate holds, with its share of the corpus and its tie to the question.
        A span in the title ties to the first sentence too (the title is what the passage is about).
        The similarity is computed only where it decides (a specific span its sentence's words do not
        tie), unless `full` (calibration)."""
        text = f"{candidate.title}\n{candidate.text}" if candidate.title else candidate.text
        found = [s for s in self.spans if span_in(s, text)]
        if not found:
            return []
        sents = split_sentences(candidate.text) or [candidate.text]
        rule = self.owner.rule
        shares = {span: self.owner.share(span) for span in found}
        rare = [span for span in found if shares[span] <= rule.tie_span_share]
        out = []
        for span in found:
            share = shares[span]
            where = [s for s in sents if span_in(span, s)]
            if candidate.title and span_in(span, candidate.title):
                where = [f"{candidate.title}. {sents[0]}", *where]
            span_words = content_words(span)
            near = max((len((content_words(s) & self.question_words) - span_words) for s in where), default=0)
            together = max((_distinct([x for x in rare if span_in(x, s)]) for s in where), default=0)
            tied = near >= rule.tie_words or 0 < rule.tie_spans <= together
            sim = 0.0
            if where and (full or (share <= rule.span_share and not tied)):
                vecs = self.owner.checker.embed(where)  # only specific, untied spans cost an encode
                sim = float((self.answer_vecs @ np.stack([vecs[s] for s in where]).T).max())
            out.append(SpanEvidence(span, share, near, sim, together))
        return out

    def key_span(self, candidate: Passage) -> bool:
        return any(e.leaks(self.owner.rule) for e in self.evidence(candidate))

    def meaning(self, candidate: Passage) -> bool:
        sents = self.owner.gated(self.words, candidate.text)
        if not sents:
            return False
        vecs = self.owner.checker.embed(sents)
        return float((self.answer_vecs @ np.stack([vecs[s] for s in sents]).T).max()) >= self.owner.similarity

    def statement_score(self, candidate: Passage) -> float:
        """The closest window of `candidate` to the question and answer read as one statement."""
        if self.statement_vec is None:
            return 0.0
        ws = windows(candidate)
        vecs = self.owner.checker.embed(ws)
        return float((np.stack([vecs[w] for w in ws]) @ self.statement_vec).max())

    def statement(self, candidate: Passage) -> bool:
        bar = self.owner.rule.statement
        return bar is not None and self.statement_score(candidate) >= bar

    def supports_answer(self, candidate: Passage) -> bool:
        return self.bar is not None and coverage(self.new, candidate.text, self.new_weight.__getitem__) >= self.bar

    def __call__(self, candidate: Passage) -> str | None:
        """The first check (in `LEAK_CHECKS` order) that fires on `candidate`, or None."""
        for name in LEAK_CHECKS:
            if getattr(self, name)(candidate):
                return name
        return None
