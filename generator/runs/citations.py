"""How a record's answer refers to its documents: `[n]` citation markers and RAFT quote markers.

`[n]` is the record's n-th document counting from 1, in the order the record holds them
(`documents.order`); the prompt numbered the sources alone, so the record is renumbered when it is
built (`final_numbers`, `renumber`). The forms read: `[1]`, `[1][2]`, `[1, 3]`, `[1;3]`, `[2-4]`.
RAFT's `quoted` answers: reasoning with `##begin_quote## ... ##end_quote##`, then `<ANSWER>: ...`.
Pure text functions: the quality wing verifies them, publish strips them, the core renumbers them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# one marker: [3], [1, 3], [1;3], [2-4]; adjacent markers ([1][2]) are matched one by one
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;\-\u2013]\s*\d{1,3})*)\]")
MARKERS_WITH_SPACE = re.compile(r"[ \t]*(?:" + _MARKER.pattern + r")+")
_LEAD_IN = re.compile(
    r"\b(?:[Aa]ccording to|[Aa]s (?:stated|noted|described|reported|shown) (?:in|by)|[Pp]er|[Ss]ee)\s*"
    r"((?:" + _MARKER.pattern.replace("(\\d", "(?:\\d") + r")+)\s*,?\s*(\w+)"
)
_RANGE = re.compile(r"(\d+)\s*[\-\u2013]\s*(\d+)")


def _numbers(inside: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", inside):
        m = _RANGE.fullmatch(part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            out.extend(range(a, b + 1) if a <= b and b - a < 20 else (a, b))
        elif part.strip().isdigit():
            out.append(int(part))
    return out


def has_citations(text: str) -> bool:
    return bool(_MARKER.search(text))


def lead_in(text: str) -> str:
    """ "According to [1], the Nile ..." -> "The [1] Nile ...": a phrase that only introduces the
    citation goes, the citation stays with the sentence it introduces."""

    def one(m: re.Match[str]) -> str:
        word = m.group(2)[0].upper() + m.group(2)[1:] if m.group(0)[0].isupper() else m.group(2)
        return f"{word} {m.group(1)}"

    return _LEAD_IN.sub(one, text)


def strip_citations(text: str) -> str:
    """The plain text of a cited answer: every marker gone with the space before it
    ("Paris [1]." -> "Paris.", "Paris [1][2] and" -> "Paris and", "According to [1], the Nile" ->
    "The Nile"), lines' edges trimmed."""
    out = MARKERS_WITH_SPACE.sub("", lead_in(text))
    return "\n".join(line.strip() for line in out.split("\n")).strip()


def renumber(text: str, mapping: Mapping[int, int]) -> str:
    """`text` with each cited number n written as `mapping[n]` (a number not in `mapping` kept as
    it is); one marker stays one marker ("[1, 3]" -> "[4, 9]", "[2-3]" -> "[7, 2]")."""

    def one(m: re.Match[str]) -> str:
        nums = _numbers(m.group(1))
        return "[" + ", ".join(str(mapping.get(n, n)) for n in nums) + "]"

    return _MARKER.sub(one, text)


def final_numbers(prompt_ids: Sequence[str], final_ids: Sequence[str]) -> dict[int, int]:
    """{number in the prompt -> number in the record}: the prompt's i-th document (`prompt_ids`, the
    sources in the order the prompt showed them) is the record's document with its id (`final_ids`,
    the record's documents in their final order, `documents.order`)."""
    where = {d: i for i, d in enumerate(final_ids, 1)}
    return {i: where[d] for i, d in enumerate(prompt_ids, 1) if d in where}


def marker_numbers(markers: str) -> list[int]:
    return [n for m in _MARKER.finditer(markers) for n in _numbers(m.group(1))]


_QUOTE = re.compile(r"##begin_quote##(.*?)##end_quote##", re.DOTALL)
_ANSWER = re.compile(r"<ANSWER>\s*:?\s*(.*)\Z", re.DOTALL)


def has_quotes(text: str) -> bool:
    return "##begin_quote##" in text


@dataclass(frozen=True, slots=True)
class Quoted:
    quotes: list[str]
    answer: str  # the text after `<ANSWER>:` (the whole reply without its quote markers when absent)
    reasoning: str


def parse_quoted(text: str) -> Quoted:
    """The quotes, the final answer and the reasoning of a RAFT-style reply."""
    quotes = [q.strip() for q in _QUOTE.findall(text) if q.strip()]
    m = _ANSWER.search(text)
    reasoning = text[: m.start()] if m else text
    answer = m.group(1).strip() if m else _QUOTE.sub(lambda q: q.group(1), text).strip()
    return Quoted(quotes, answer, reasoning.strip())


def strip_quote_marks(text: str) -> str:
    """The reply with its `##begin_quote##` / `##end_quote##` markers removed (the quoted words kept)."""
    return re.sub(r"[ \t]*##(?:begin|end)_quote##[ \t]*", " ", text).replace("  ", " ").strip()


def strip_answer(text: str) -> str:
    """The plain text of a cited or quoted answer (`--strip-citations`): markers of both kinds removed."""
    return strip_quote_marks(strip_citations(text)) if has_quotes(text) else strip_citations(text)
