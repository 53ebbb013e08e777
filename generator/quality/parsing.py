"""Turn an LLM reply into a validated `Pair`, or a rejection reason code.

Reason codes: truncated (the server stopped at max_tokens: finish_reason "length"), invalid_json, empty, too_short, question_copies_document,
answer_is_document, instruction_echo, refusal, not_multiple_choice, placeholder (the
reply copied the output contract's placeholders), answer_in_question, meta_reply (the reply speaks
of writing the task instead of doing it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from ragloom.retrieval import Passage, normalize_text

from ..types import Exemplar, Pair

REASONS = (
    "truncated",
    "invalid_json",
    "empty",
    "too_short",
    "question_copies_document",
    "answer_is_document",
    "instruction_echo",
    "refusal",
    "not_multiple_choice",
    "placeholder",
    "answer_in_question",
    "meta_reply",
)
# A question that carries its own answer ("Who was ...? Answer: Anna Akhmatova", "Q: ...? A: ..."): a
# small model writes the pair into the question field. The label opens a sentence or a line, and what
# follows it is an answer: some words and no question mark. Instruction wording is not a label:
# "Choose the correct answer: which ...?", "give an example answer: how would ...?", "Answer: what
# year ...?", and multiple-choice prompts that end on an empty "Answer:" (tests/fixtures/validation_legit.jsonl).
_ANSWER_LABEL = re.compile(r"(?:^|[?.!]|\n)\s*(?:the\s+)?(?:correct\s+|final\s+|right\s+)?answer\s*:", re.IGNORECASE)
_QA_LABELS = re.compile(r"^\s*q\s*:.*\sa\s*:\s*\S(?!.*\sb\s*:)", re.IGNORECASE | re.DOTALL)
_WORD = re.compile(r"[^\W_]")
# A reply about the task instead of a pair: the model narrates its writing ("I have already written
# this question:"), announces an answer it never gives ("The answer to this question is..."), or
# comments on its input ("This document is not an instruction"), or grades an answer ("The answer is
# correct. It's not the document itself..."). Small models write these, and a `useless_doc` record
# cannot be caught by the paradigm check: its documents do not help either way. "Here is" is meta only
# with the task's words ("here is the new question"): "Here is a question many historians ask: ..."
# and "Here is the question's short version: ..." are how people write.
_META = re.compile(
    r"\bi(?: have|'ve)(?: already)? (?:written|created|generated|composed|made) (?:this|the|a|my|your) "
    r"(?:new |simulated |rewritten )?(?:question|instruction)s?\b"
    r"|^\W*the answer (?:to (?:this|the|your) question )?is\W*$"
    r"|\bthis (?:document|passage|text) is not an? (?:instruction|question|task)\b"
    r"|\b(?:here is|here's|below is) (?:the|a|my) (?:new|simulated|rewritten|generated) (?:question|instruction)\b"
    r"|^\W*the answer is (?:correct|incorrect|wrong|right)\b",
    re.IGNORECASE,
)
# The output contract's placeholders and its made-up shape example, copied instead of answered.
_PLACEHOLDER = re.compile(
    r"<(?:the new question|its answer)>|^\.\.\.$|^\(?(?:your new question|its answer)\)?$"
    r"|which river flows through vienna|danube flows through vienna",
    re.IGNORECASE,
)


class PairSchema(BaseModel):
    """What the LLM must return. Its JSON schema, from this model, goes into structured-output
    requests; replies are read leniently (extra keys ignored), see `parse_pair`."""

    model_config = ConfigDict(extra="forbid", title="pair")
    question: str
    answer: str


PAIR_JSON_SCHEMA: dict[str, Any] = PairSchema.model_json_schema()

_REFUSAL = re.compile(
    r"\b(i can(?:no|')t (?:help|answer|assist|provide)|i am unable to|i'm unable to|as an ai\b|i'm sorry, but|"
    r"i apologi[sz]e, but|cannot fulfill|can't fulfill)",
    re.IGNORECASE,
)
_OPTION = re.compile(r"(?:^|\s|\()([A-D])[).:]\s", re.MULTILINE)
_LEADING_LETTER = re.compile(r"^\W*(?:answer\W*)?(?:option\W*)?\(?([A-D])\b", re.IGNORECASE)


@dataclass(frozen=True)
class Thresholds:
    min_question_words: int = 4
    min_answer_words: int = 1
    copy_ngram: int = 12
    echo_similarity: float = 0.9
    answer_copy_fraction: float = 0.9


def extract_json(text: str) -> Any:
    """The first JSON object in `text`: tolerates code fences and prose around it."""
    text = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fence:
        text = fence.group(1).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            obj, _ = decoder.raw_decode(text, m.start())
            return obj
        except json.JSONDecodeError:
            continue
    raise ValueError("no JSON object found")


def _carries_answer(question: str) -> bool:
    """An answer label opening a sentence or line with an answer after it, or a "Q: ... A: ..." pair
    (not lettered "A: ... B: ..." options)."""
    for m in _ANSWER_LABEL.finditer(question):
        rest = question[m.end() :]
        if _WORD.search(rest) and "?" not in rest:
            return True
    return _QA_LABELS.search(question) is not None


def _similarity_at_least(a: str, b: str, threshold: float) -> bool:
    """`SequenceMatcher(None, a, b).ratio() >= threshold`, with its cheap upper bounds tried first."""
    m = SequenceMatcher(None, a, b)
    return m.real_quick_ratio() >= threshold and m.quick_ratio() >= threshold and m.ratio() >= threshold


class _CommonRuns:
    """Longest runs of words shared with one document, its words indexed once for several texts."""

    def __init__(self, words: list[str]) -> None:
        self.n = len(words)
        self.matcher: SequenceMatcher[str] = SequenceMatcher(None, autojunk=False)
        self.matcher.set_seq2(words)

    def longest(self, a: list[str]) -> int:
        """Length in words of the longest run of `a` that also occurs in the document."""
        if not a or not self.n:
            return 0
        self.matcher.set_seq1(a)
        return self.matcher.find_longest_match(0, len(a), 0, self.n).size


# invisible characters with no meaning in text a model writes: zero-width space, word joiner, BOM, soft
# hyphen. A small model under DRY sampling slips them into copied phrases ("o\u200br"), which would hide
# an echo from the checks and end up in the training data. ZWJ/ZWNJ are kept: some scripts need them.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad]")


def _visible(text: str) -> str:
    return _INVISIBLE.sub("", text)


def parse_pair(
    text: str,
    *,
    sources: tuple[Passage, ...] | list[Passage],
    exemplar: Exemplar,
    thresholds: Thresholds | None = None,
    finish_reason: str | None = None,
) -> tuple[Pair | None, str | None]:
    """(pair, None) when the reply is acceptable, else (None, reason).

    A reply the server cut off at max_tokens (`finish_reason == "length"`) is `truncated`, whatever
    its text: even when the cut left parseable JSON, the answer in it is incomplete."""
    if finish_reason == "length":
        return None, "truncated"
    t = thresholds or Thresholds()
    try:
        obj = extract_json(text)
        if not isinstance(obj, dict):
            return None, "invalid_json"
        raw = PairSchema.model_validate({k: obj.get(k) for k in PairSchema.model_fields})
    except (ValueError, ValidationError):
        return None, "invalid_json"
    q, a = _visible(raw.question).strip(), _visible(raw.answer).strip()
    if not q or not a:
        return None, "empty"
    if _PLACEHOLDER.search(q) or _PLACEHOLDER.search(a):
        return None, "placeholder"
    if _META.search(q) or _META.search(a):
        return None, "meta_reply"
    nq = normalize_text(q)
    qw, aw = nq.split(), normalize_text(a).split()
    if len(qw) < t.min_question_words or len(aw) < t.min_answer_words:
        return None, "too_short"
    if _REFUSAL.search(q) or _REFUSAL.search(a):
        return None, "refusal"
    if _carries_answer(q):
        return None, "answer_in_question"
    ex = normalize_text(exemplar.text)
    if nq == ex or _similarity_at_least(nq, ex, t.echo_similarity):
        return None, "instruction_echo"
    for doc in sources:
        runs = _CommonRuns(normalize_text(doc.text).split())  # indexed once for the question and the answer
        run = runs.longest(qw)
        if run >= t.copy_ngram or (len(qw) >= 8 and run >= 0.8 * len(qw)):
            return None, "question_copies_document"
        if len(aw) >= 15 and runs.longest(aw) >= t.answer_copy_fraction * len(aw):
            return None, "answer_is_document"
    if exemplar.options:
        letters = set(_OPTION.findall(q))
        if not {"A", "B", "C", "D"} <= letters or not _LEADING_LETTER.match(a):
            return None, "not_multiple_choice"
    return Pair(q, a), None
