"""Text pieces the quality checks compare: sentences, content words and an answer's key spans.

Key spans are the parts of an answer that carry its facts: numbers and dates, multi-word proper
names, and the text of the correct multiple-choice option. Spans the question already names are
the subject, not the answer, and are left out.
"""

from __future__ import annotations

import functools
import re

from ragloom.retrieval import normalize_text

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[\"'(\[]?[A-Z0-9])")
_NUMBER = re.compile(r"\d(?:[\d,.]*\d)?")
# A one- or two-digit number a magnitude or a unit carries: "71 million", "1.5 billion", "40%", "40 per
# cent", "72 days", "a 66-year reign", "42 km"; `quantities` writes it as "71 million", "40 percent",
# "72 days", "66 years" or "42 kilometres" (_QUANTITY_SPAN): each unit under one name (_UNITS).
_SMALL_NUMBER = r"\d{1,2}(?:\.\d+)?"
_MAGNITUDES = "million|billion|trillion|percent"
_UNITS = {
    "years": "years?",
    "months": "months?",
    "weeks": "weeks?",
    "days": "days?",
    "hours": "hours?",
    "minutes": "minutes?",
    "metres": "metres?|meters?",
    "kilometres": "kilometres?|kilometers?|km",
    "miles": "miles?",
    "feet": "feet|foot|ft",
    "kilograms": "kilograms?|kg",
    "tonnes": "tonnes?|tons?",
}
_UNIT_OF = [(re.compile(rf"(?:{forms})", re.IGNORECASE), name) for name, forms in _UNITS.items()]
_QUANTITY = re.compile(
    rf"(?<![\d.,])({_SMALL_NUMBER})(?:\s*|-)({_MAGNITUDES}|per\s+cent|%|{'|'.join(_UNITS.values())})(?!\w)",
    re.IGNORECASE,
)
_QUANTITY_SPAN = re.compile(rf"{_SMALL_NUMBER} (?:{_MAGNITUDES}|{'|'.join(_UNITS)})")
# Two or more capitalised words, allowing the lower-case particles inside names
# ("Champ de Mars", "Leonardo da Vinci", "Bank of England").
_PROPER = re.compile(
    r"\b[A-Z][\w'\u2019-]*(?:\s+(?:(?:of|de|da|del|di|du|la|le|van|von|der|the|and)\s+)*[A-Z][\w'\u2019-]*)+"
)
_OPTION = re.compile(r"(?:^|\s|\()([A-D])[).:]\s*(.+?)(?=\s+\(?[A-D][).:]\s|$)", re.DOTALL)
_LEADING_LETTER = re.compile(r"^\W*(?:answer\W*)?(?:option\W*)?\(?([A-D])\b", re.IGNORECASE)

_STOPWORD_TEXT = """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no nor
    not now of off on once only or other our out over own same she should so some such than that the
    their them then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours one many much known called
    including however although though well became become used use first second new"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# the most sentences a text is split into (the rest joined into the last)
SENTENCE_LIMIT = 40


def split_sentences(text: str, limit: int = SENTENCE_LIMIT) -> list[str]:
    """Sentences of `text` (at most `limit`, the rest joined into the last), blank ones dropped."""
    return list(_sentences(text, limit))


@functools.lru_cache(maxsize=16384)
def _sentences(text: str, limit: int) -> tuple[str, ...]:
    # cached: the leak screen and the paradigm check split the same passages for many records
    parts = [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]
    if len(parts) > limit:
        parts = [*parts[: limit - 1], " ".join(parts[limit - 1 :])]
    return tuple(parts)


@functools.lru_cache(maxsize=8192)
def sentence_words(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """Each sentence of `text` (`split_sentences`) with its `content_words`. Cached: a passage comes
    back in the rank bands of many questions, and the leak screen gates its sentences for each."""
    return tuple((s, content_words(s)) for s in _sentences(text, SENTENCE_LIMIT))


@functools.lru_cache(maxsize=16384)
def content_words(text: str) -> frozenset[str]:
    """Lower-cased words that carry meaning: no stopwords, no one- or two-letter words."""
    return frozenset(w for w in normalize_text(text).split() if len(w) > 2 and w not in STOPWORDS)


@functools.lru_cache(maxsize=8192)
def novel_words(answer: str, question: str) -> frozenset[str]:
    """The answer's content words that the question does not already contain."""
    return content_words(answer) - content_words(question)


@functools.lru_cache(maxsize=16384)
def numbers(text: str) -> frozenset[str]:
    """Numbers of three or more digits (years, heights, counts), commas dropped: "8,849" -> "8849".
    Shorter numbers ("3", "12") are too common to identify an answer. Cached: `span_in` reads the
    numbers of every candidate distractor for each record whose answer holds one."""
    out = set()
    for m in _NUMBER.finditer(text):
        digits = m.group(0).rstrip(".,").replace(",", "")
        if sum(c.isdigit() for c in digits) >= 3:
            out.add(digits)
    return frozenset(out)


@functools.lru_cache(maxsize=16384)
def quantities(text: str) -> frozenset[str]:
    """One- or two-digit numbers a magnitude or a unit carries, as "71 million", "40 percent" ("40%" and
    "40 per cent" read the same), "72 days" or "42 kilometres" ("42 km", "a 42-kilometre race").
    `numbers` leaves a number under three digits out; with its magnitude or unit ("75 to 71 million
    years ago", "40% of the vote", "home in 72 days") it can be as specific as a long one (whether it
    is, is the corpus's count to say)."""
    out = set()
    for m in _QUANTITY.finditer(text):
        unit = m.group(2).lower()
        if unit == "%" or unit.startswith("per"):
            unit = "percent"
        elif unit not in ("million", "billion", "trillion"):
            unit = next(name for pattern, name in _UNIT_OF if pattern.fullmatch(unit))
        out.add(f"{m.group(1)} {unit}")
    return frozenset(out)


def is_quantity(span: str) -> bool:
    """`span` is one of `quantities`' spans."""
    return _QUANTITY_SPAN.fullmatch(span) is not None


def proper_names(text: str) -> set[str]:
    """Multi-word proper names, normalised; a leading sentence-start word such as "The" is dropped."""
    out = set()
    for m in _PROPER.finditer(text):
        words = m.group(0).split()
        while words and words[0].lower() in STOPWORDS:
            words = words[1:]
        if len(words) >= 2:
            out.add(normalize_text(" ".join(words)))
    return out


def correct_option(question: str, answer: str) -> str | None:
    """The text of the option the answer's leading letter picks, for a multiple-choice question."""
    m = _LEADING_LETTER.match(answer)
    if not m:
        return None
    options = {letter: body.strip().rstrip(",;") for letter, body in _OPTION.findall(question)}
    text = options.get(m.group(1).upper())
    return text if text and normalize_text(text) else None


def key_spans(question: str, answer: str, *, short_answer_words: int = 4) -> list[str]:
    """The answer's key spans, normalised, minus those the question already names; the whole answer
    is one when it has at most `short_answer_words` words."""
    return list(_key_spans(question, answer, short_answer_words))


@functools.lru_cache(maxsize=8192)
def _key_spans(question: str, answer: str, short_answer_words: int) -> tuple[str, ...]:
    # cached: the paradigm check reads them once per source of a record, and the leak screen again
    q_norm = f" {normalize_text(question)} "
    spans = set(numbers(answer) - numbers(question))
    spans |= {n for n in proper_names(answer) if f" {n} " not in q_norm}
    option = correct_option(question, answer)
    if option:
        spans.add(normalize_text(option))
    whole = normalize_text(answer)
    if whole and len(whole.split()) <= short_answer_words and f" {whole} " not in q_norm:
        spans.add(whole)
    return tuple(sorted(s for s in spans if s))


def span_in(span: str, text: str) -> bool:
    """`span` (from `key_spans` or `quantities`) occurs in the raw `text`: a number as a number ("8849"
    matches "8,849"), a quantity as a quantity ("40 percent" matches "40%"), anything else as whole
    words of the normalised text."""
    if span.replace(".", "").isdigit():
        return span in numbers(text)
    if is_quantity(span):
        return span in quantities(text)
    return f" {span} " in f" {normalize_text(text)} "
