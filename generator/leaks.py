"""Distractor leak screening: a distractor must not carry the answer, in any words.

`LeakScreen.screen_for(...)` gives the callable `sample_distractors(screen=...)` takes. It returns
the name of the first check that fires on a candidate, or None:
- "key_span": the candidate holds one of the answer's key spans (a number or date, a multi-word
  proper name the question does not name, the correct option's text, the whole short answer);
- "meaning": a sentence of the candidate is at least `similarity` close (cosine, index encoder) to a
  sentence of the answer. Only sentences sharing `gate_words` content words with the answer are
  embedded: a sentence with fewer is not a paraphrase of it, and the encoder is the cost here;
- "supports_answer" (the *_answer paradigms only): the candidate holds at least as large a share
  of the answer's new words as the weakest source does (and at least the checker's support bar).
Sentence vectors are cached; `prefetch` embeds the gated sentences of many candidates in one call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ragloom.retrieval import Passage

from .conformance import ConformanceChecker
from .spans import content_words, key_spans, novel_words, span_in, split_sentences

LEAK_CHECKS = ("key_span", "meaning", "supports_answer")


def coverage(new: frozenset[str], text: str) -> float:
    """Share of the answer's new words `new` that occur in `text`."""
    return len(new & content_words(text)) / len(new) if new else 0.0


class LeakScreen:
    """Builds one screen per record; shares the checker's sentence-embedding cache."""

    def __init__(self, checker: ConformanceChecker, *, similarity: float = 0.7, gate_words: int = 2) -> None:
        self.checker, self.similarity, self.gate_words = checker, similarity, gate_words

    def gated(self, answer_words: frozenset[str], text: str) -> list[str]:
        """The sentences of `text` that share enough content words with the answer to be embedded."""
        need = min(self.gate_words, max(1, len(answer_words)))
        return [s for s in split_sentences(text) if len(content_words(s) & answer_words) >= need]

    def prefetch(self, pairs: Sequence[tuple[str, Passage]]) -> None:
        """Embed, in one encoder call, the sentences of the answers of many (answer, candidate) pairs
        and the gated sentences of their candidates (an encoder call per record would cost more than
        all the embedding itself: bench/generation.py G3)."""
        answers = dict.fromkeys(a for a, _ in pairs)
        sents = [s for a in answers for s in (split_sentences(a) or [a])]
        words = {a: content_words(a) for a in answers}
        self.checker.embed(sents + [s for a, p in pairs for s in self.gated(words[a], p.text)])

    def screen_for(
        self, *, question: str, answer: str, paradigm: str | None = None, sources: Sequence[Passage] = ()
    ) -> _Screen:
        return _Screen(self, question, answer, paradigm, sources)


class _Screen:
    def __init__(
        self, owner: LeakScreen, question: str, answer: str, paradigm: str | None, sources: Sequence[Passage]
    ) -> None:
        self.owner = owner
        sents = split_sentences(answer) or [answer]
        self.spans = key_spans(question, answer, short_answer_words=owner.checker.t.short_answer_words)
        self.words = content_words(answer)
        vecs = owner.checker.embed(sents)
        self.answer_vecs = np.stack([vecs[s] for s in sents])
        self.new = novel_words(answer, question)
        self.bar: float | None = None
        if paradigm is not None and paradigm.endswith("_answer") and sources and self.new:
            weakest = min(coverage(self.new, p.text) for p in sources)
            self.bar = max(weakest, owner.checker.t.support_words)

    def __call__(self, candidate: Passage) -> str | None:
        text = f"{candidate.title}\n{candidate.text}" if candidate.title else candidate.text
        if any(span_in(s, text) for s in self.spans):
            return "key_span"
        sents = self.owner.gated(self.words, candidate.text)
        if sents:
            vecs = self.owner.checker.embed(sents)
            best = self.answer_vecs @ np.stack([vecs[s] for s in sents]).T
            if float(best.max()) >= self.owner.similarity:
                return "meaning"
        if self.bar is not None and coverage(self.new, candidate.text) >= self.bar:
            return "supports_answer"
        return None
