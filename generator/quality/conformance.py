"""Paradigm conformance: do a record's sources state its answer, support it, or not help?

For each source the checker measures two things against the answer:
- attribution: for every answer sentence, the encoder's best cosine to a sentence of the source,
  averaged over the answer's sentences (`attr`), and the best single pair (`peak`);
- coverage: the share of the answer's new content words (those the question does not already
  contain) that the source has (`words`), and the share of its key spans (numbers, multi-word
  names, the correct option) it has (`spans`).
A source *states* the answer when coverage and attribution are both high; it *contributes* when
either passes the lower support bar. The sources together state it when their union does.

found: "states" (one source states it, or two or more contribute and together state it),
"supports" (at least one contributes), "no_help". What each paradigm needs:
each paradigm's registry entry (generator/paradigms.py): useless_doc no_help; single_doc_support
supports; single_doc_answer states; multi_doc_answer states with >= 2 contributing; multi_doc_support
no single source stating and >= 2 contributing.

One encoder call per batch embeds every answer and source sentence not seen before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..paradigms import get as get_paradigm
from .spans import content_words, key_spans, novel_words, span_in, split_sentences


class SentenceEncoder(Protocol):
    def encode_passages(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class ConformanceThresholds:
    """Defaults calibrated on tests/fixtures/conformance.jsonl (see tests/generator/test_conformance.py)."""

    state_words: float = 0.6  # share of the answer's new words a stating source must hold
    state_attr: float = 0.65  # mean best answer-sentence similarity a stating source must reach
    support_words: float = 0.2  # a contributing source holds this share of the new words ...
    support_peak: float = 0.65  # ... or has one sentence this close to an answer sentence
    short_answer_words: int = 4


@dataclass(frozen=True, slots=True)
class CheckInput:
    """One record to check; `paradigm` None checks what the sources do without judging it."""

    question: str
    answer: str
    sources: Sequence[Any]  # passages: ragloom.retrieval.Passage or a record's runs.Document
    paradigm: str | None = None


def verdict(paradigm: str | None, found: str, any_states: bool, contributing: int) -> bool | None:
    """What the paradigm's registry entry requires of what was found (None: no paradigm given)."""
    if paradigm is None:
        return None
    return get_paradigm(paradigm).conformance(found, any_states, contributing)


def gated_sentences(answer: str, text: str, gate_words: int) -> list[str]:
    """The sentences of `text` sharing at least `gate_words` content words with `answer` (all of
    them when `gate_words` is 0): what the check embeds of a source."""
    sents = split_sentences(text) or [text]
    if not gate_words:
        return sents
    words = content_words(answer)
    return [s for s in sents if len(content_words(s) & words) >= gate_words]


class ConformanceChecker:
    """Batched paradigm check over many records; see the module docstring for the rule."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        thresholds: ConformanceThresholds | None = None,
        cache_size: int = 50_000,
        *,
        gate_words: int = 1,
    ) -> None:
        """`gate_words`: a source sentence is embedded only when it shares this many content words with
        the answer (0: every sentence); the similarity of one left out counts as 0. One sharing none is
        not the answer's best match in practice: the same verdicts on all 52 calibration records, with
        7% fewer sentences embedded there and 37% fewer on bench G3's conforming pairs."""
        self.encoder, self.t, self.gate_words = encoder, thresholds or ConformanceThresholds(), gate_words
        self._cache: dict[str, np.ndarray] = {}
        self._cache_size = cache_size

    def embed(self, sentences: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors for `sentences`, the new ones in one encoder call."""
        # the check stage and the record stage's leak screen call this from two threads: a lookup that
        # meets a cache another call just cleared embeds the sentence again
        have = {s: v for s in sentences if (v := self._cache.get(s)) is not None}
        new = list(dict.fromkeys(s for s in sentences if s not in have))
        if new:
            fresh = dict(zip(new, self.encoder.encode_passages(new), strict=True))
            if len(self._cache) + len(fresh) > self._cache_size:
                self._cache.clear()  # full: start again (what this call needs is held in `have`)
            self._cache.update(fresh)
            have.update(fresh)
        return have

    def check(self, items: Sequence[CheckInput]) -> list[dict[str, Any]]:
        """`{"found", "ok", "scores"}` per item, in order. `ok` is None when the paradigm is not given."""
        answers = [split_sentences(it.answer) or [it.answer] for it in items]
        sources = [[gated_sentences(it.answer, s.text, self.gate_words) for s in it.sources] for it in items]
        every = [s for a in answers for s in a] + [s for srcs in sources for ss in srcs for s in ss]
        vecs = self.embed(every)
        return [self._one(it, a, s, vecs) for it, a, s in zip(items, answers, sources, strict=True)]

    def source_scores(
        self, question: str, answer_sents: list[str], source_sents: list[str], source_text: str, vecs: dict
    ) -> dict[str, Any]:
        """attr, peak, words, spans of one source against one answer (and, for a short answer, whether
        a sentence of the source holds it where the question's subject is: `in_context`)."""
        if source_sents:
            a = np.stack([vecs[s] for s in answer_sents])
            best = (a @ np.stack([vecs[s] for s in source_sents]).T).max(axis=1)
        else:  # no sentence shares a word with the answer (gated out): nothing in it is close
            best = np.zeros(len(answer_sents), dtype=np.float32)
        new = novel_words(" ".join(answer_sents), question)
        words = len(new & content_words(source_text)) / len(new) if new else 0.0
        spans = key_spans(question, " ".join(answer_sents), short_answer_words=self.t.short_answer_words)
        covered = sum(span_in(s, source_text) for s in spans) / len(spans) if spans else None
        sc: dict[str, Any] = {"attr": float(best.mean()), "peak": float(best.max()), "words": words, "spans": covered}
        if spans and len(" ".join(answer_sents).split()) <= self.t.short_answer_words:
            asked = content_words(question)
            sc["in_context"] = any(
                all(span_in(p, s) for p in spans) and len(content_words(s) & asked) >= 2
                for s in split_sentences(source_text)
            )
        return sc

    def states(self, sc: dict[str, float | None]) -> bool:
        if "in_context" in sc:
            # a short answer ("Rome", "Gustave Eiffel") is stated by a source with a sentence that holds
            # all of it and speaks of what the question asks (two of its content words): its embedding is
            # too thin to compare with whole sentences, and a bare word match ("red" in a passage on
            # auroras for "Which color is the sky?") is not a statement
            return bool(sc["in_context"] and sc["words"] >= self.t.state_words)  # type: ignore[operator]
        spans_ok = sc["spans"] is None or sc["spans"] >= 0.5
        return bool(sc["words"] >= self.t.state_words and sc["attr"] >= self.t.state_attr and spans_ok)  # type: ignore[operator]

    def contributes(self, sc: dict[str, float | None]) -> bool:
        return bool(sc["words"] >= self.t.support_words or sc["peak"] >= self.t.support_peak)  # type: ignore[operator]

    def _one(self, it: CheckInput, answer_sents: list[str], source_sents: list[list[str]], vecs: dict) -> dict:
        per = [
            self.source_scores(it.question, answer_sents, ss, s.text, vecs)
            for s, ss in zip(it.sources, source_sents, strict=True)
        ]
        union_text = "\n".join(s.text for s in it.sources)
        union = (
            self.source_scores(it.question, answer_sents, [x for ss in source_sents for x in ss], union_text, vecs)
            if per
            else None
        )
        any_states = any(self.states(sc) for sc in per)
        contributing = sum(self.contributes(sc) or self.states(sc) for sc in per)
        if any_states or (union is not None and contributing >= 2 and self.states(union)):
            found = "states"
        elif contributing:
            found = "supports"
        else:
            found = "no_help"
        scores: dict[str, Any] = {
            k: [None if sc[k] is None else round(float(sc[k]), 3) for sc in per]  # type: ignore[arg-type]
            for k in ("attr", "peak", "words", "spans")
        }
        if union is not None:
            scores["union"] = {
                k: None if v is None else round(float(v), 3) for k, v in union.items() if k != "in_context"
            }
        scores["contributing"] = contributing
        return {"found": found, "ok": verdict(it.paradigm, found, any_states, contributing), "scores": scores}
