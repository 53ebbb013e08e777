"""RAFT's `quoted` answers: `##begin_quote## ... ##end_quote##` spans, then `<ANSWER>: ...`.

A quote must appear in a source, and "appear" has to survive what real quotes look like next to
the text they were taken from (PDF and OCR text above all): soft hyphens and words hyphenated at a
line break ("diffi-\\ncult"), straight, curly or single quote marks, spaces before punctuation,
an ellipsis joining two spans (each side must appear), any whitespace, and light OCR noise the
model cleaned up ("tbe" for "the", "rnodern" for "modern", "Eiffe1"). Both sides are folded to
lower-case word tokens with punctuation, quote marks and hyphens dropped; the quote's tokens must
then be a run of the source's tokens (or, spaces aside, a run of its characters), or line up one
to one with a window of them (found with difflib's longest match) where each differing token is
an OCR confusion of its counterpart (rn/m, cl/d, h/b, e/c, l/i, u/n, a digit for a look-alike
letter). A changed word is not: "increased" for "decreased", "1898" for "1889", "south" for
"north", a dropped or added word fail. Known gap: a word changed into its OCR twin ("bat" for
"hat", "com" for "corn") passes.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

_ELLIPSIS = re.compile(r"\[\s*(?:\.\s*){3}\]|\[\s*\u2026\s*\]|(?:\.\s*){3}|\u2026")
_LINE_HYPHEN = re.compile(r"(\w)[\-\u2010\u2011\u00ad]\s*\n\s*(\w)")
_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
_WORD = re.compile(r"\w+")
# characters OCR confuses (either way): what a model quoting a scanned page silently corrects
_OCR = {
    frozenset(p)
    for p in (
        ("rn", "m"), ("cl", "d"), ("vv", "w"), ("h", "b"), ("e", "c"), ("l", "i"), ("u", "n"),
        ("l", "1"), ("i", "1"), ("l", "|"), ("o", "0"), ("s", "5"), ("b", "6"), ("g", "9"), ("z", "2"),
    )
}  # fmt: skip


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of `text`: line-break hyphenation joined, soft hyphens and invisible
    characters dropped, compatibility forms folded (ligatures, full-width), every other
    punctuation mark and quote mark a separator (so "Paris , France" and "Paris, France" agree)."""
    t = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    t = _LINE_HYPHEN.sub(r"\1\2", t)
    t = re.sub(r"(\w)['\u2019\u2018`](\w)", r"\1\2", t)  # Eiffel's, Eiffel’s -> eiffels
    return [w.casefold().replace("_", "") for w in _WORD.findall(t) if w.replace("_", "")]


def ocr_close(a: str, b: str) -> bool:
    """Whether `b` reads as `a` through OCR confusions only (at most two edits, no digit for a digit)."""
    if a == b:
        return True
    if len(a) < 3 or len(b) < 3 or (a.isdigit() and b.isdigit()):
        return False
    ops = [op for op in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not ops or len(ops) > 2:
        return False
    return all(frozenset((a[i1:i2], b[j1:j2])) in _OCR for _, i1, i2, j1, j2 in ops)


@dataclass(frozen=True, slots=True)
class QuoteMatch:
    source: int  # index of the source holding it
    exact: bool  # the folded tokens match as they are (no OCR tolerance needed)


def _in_one(parts: list[list[str]], src: list[str]) -> bool | None:
    """True: every part is a run of `src` as it is; False: with OCR tolerance; None: not there."""
    joined, solid = f" {' '.join(src)} ", "".join(src)
    exact = True
    for q in parts:
        if f" {' '.join(q)} " in joined or "".join(q) in solid:
            continue
        if not _aligned(q, src):
            return None
        exact = False
    return exact


def _aligned(q: list[str], src: list[str]) -> bool:
    """`q` lines up one to one with a window of `src`, each pair equal or OCR-close."""
    sm = difflib.SequenceMatcher(None, src, q, autojunk=False)
    m = sm.find_longest_match(0, len(src), 0, len(q))
    if m.size == 0:
        return False
    start = m.a - m.b
    if start < 0 or start + len(q) > len(src):
        return False
    return all(ocr_close(s, t) for s, t in zip(src[start : start + len(q)], q, strict=True))


def find_quote(quote: str, sources: Sequence[str]) -> QuoteMatch | None:
    """Where `quote` appears (the first source holding it), or None; an ellipsis splits it into
    parts that must each appear in that source."""
    parts = [tokens(p) for p in _ELLIPSIS.split(quote)]
    parts = [p for p in parts if p]
    if not parts:
        return None
    for i, text in enumerate(sources):
        exact = _in_one(parts, tokens(text))
        if exact is not None:
            return QuoteMatch(i, exact)
    return None
