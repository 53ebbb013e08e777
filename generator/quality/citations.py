"""Citation verification (`quality.citations`, codes `citation_unsupported`, `citation_missing`,
`citation_to_useless`, `quote_not_in_source`).

`answer_style: cited` answers mark their statements with `[n]` (runs/citations.py reads them). The
verifier is the paradigm check's attribution taken sentence by sentence (`ConformanceChecker.
source_scores` on one answer sentence, through its sentence cache: the answer sentences the paradigm
check embedded cost nothing again):
- a cited document *supports* a sentence (for a marker inside a sentence, the clause before it) when
  it states it (the paradigm check's `states` rule) or holds `support_words` of its new content words,
  has a sentence at least `support_cos` close and half of its key spans (numbers, names); documents
  cited together are judged on their joined text, each relating to it;
- precision: the share of the answer's citations whose document supports what cites it; a citation
  to a distractor, or to a number with no document, fails whatever the threshold;
- recall: the share of the answer sentences that a source states which cite a source supporting them;
- `useless_doc` answers cite nothing: any citation (or quote) fails as `citation_to_useless`;
  `*_answer` and `*_support` answers are held to the same two figures.
A record fails as `citation_unsupported` when precision < `quality.citation_precision`, else as
`citation_missing` when recall < `quality.citation_recall`. `answer_style: quoted` answers (RAFT)
are checked by `quotes.py`: every quote must be in a source (`quote_not_in_source`), and an answer
that a source states quotes at least once (else `citation_missing`). Thresholds calibrated on
tests/fixtures/citations/calibration.jsonl, measured on heldout.jsonl (bench/citation_eval.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..runs import MARKERS_WITH_SPACE, lead_in, marker_numbers, parse_quoted
from .checks import CheckContext, CheckItem, Outcome
from .conformance import ConformanceChecker, gated_sentences
from .quotes import QuoteMatch, find_quote
from .spans import _SENTENCE_END, content_words

if TYPE_CHECKING:
    from .config import Quality

CODES = ("citation_to_useless", "citation_unsupported", "citation_missing", "quote_not_in_source")
STYLES = ("plain", "cited", "quoted")


@dataclass(frozen=True, slots=True)
class CitedSentence:
    """A sentence without its markers (as split_sentences splits the stripped answer), the numbers it
    cites, and its claims: each marker group with the part of the sentence it follows."""

    text: str
    cites: tuple[int, ...]
    claims: tuple[tuple[str, tuple[int, ...]], ...] = ()


def cited_sentences(answer: str, limit: int = 40) -> list[CitedSentence]:
    """The answer's sentences with what each cites. A marker after a sentence's full stop ("Paris.
    [1] It ...") belongs to the sentence before it. A marker inside a sentence ("Elbrus rises 5,642 m
    [2], while Kilimanjaro reaches 5,895 m [1].") cites the clause before it (from the sentence's
    start or the previous marker); a clause of fewer than 3 content words ("According to [1], ...")
    stands for the whole sentence."""
    plain: list[str] = []
    marks: list[tuple[int, tuple[int, ...]]] = []  # (offset in the stripped text, numbers cited there)
    pos = size = 0
    answer = lead_in(answer)
    for m in MARKERS_WITH_SPACE.finditer(answer):
        plain.append(answer[pos : m.start()])
        size += m.start() - pos
        marks.append((size, tuple(marker_numbers(m.group(0)))))
        pos = m.end()
    plain.append(answer[pos:])
    text = "".join(plain)
    segs: list[tuple[int, int]] = []
    start = 0
    for b in _SENTENCE_END.finditer(text):
        segs.append((start, b.start()))
        start = b.end()
    segs.append((start, len(text)))
    kept = [(a + len(text[a:b]) - len(text[a:b].lstrip()), b) for a, b in segs if text[a:b].strip()]
    groups: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in kept]
    for off, nums in marks:
        if kept:
            i = next((k for k, (_, b) in enumerate(kept) if off <= b), len(kept) - 1)
            groups[i].append((max(off - kept[i][0], 0), nums))
    out = [_sentence(text[a:b].strip(), g) for (a, b), g in zip(kept, groups, strict=True)]
    if len(out) > limit:  # split_sentences joins the rest into the last
        rest = out[limit - 1 :]
        cites = tuple(dict.fromkeys(n for c in rest for n in c.cites))
        out = [
            *out[: limit - 1],
            CitedSentence(" ".join(c.text for c in rest), cites, tuple(x for c in rest for x in c.claims)),
        ]
    return out


def _sentence(sent: str, marks: list[tuple[int, tuple[int, ...]]]) -> CitedSentence:
    claims: list[tuple[str, tuple[int, ...]]] = []
    body = len(sent.rstrip(".!?;:\"') "))
    prev = 0
    for off, nums in marks:
        end = len(sent) if off >= body else off
        clause = sent[prev:end].strip(" ,;:")
        if (prev == 0 and end == len(sent)) or len(content_words(clause)) < 3:
            clause = sent
        claims.append((clause, nums))
        prev = end
    return CitedSentence(sent, tuple(dict.fromkeys(n for _, ns in marks for n in ns)), tuple(claims))


@dataclass(frozen=True)
class CitationThresholds:
    """Calibrated on tests/fixtures/citations.jsonl (see the module docstring)."""

    precision: float = 1.0  # quality.citation_precision: share of citations that must be supported
    recall: float = 0.75  # quality.citation_recall: share of source-stated sentences that must be cited
    support_words: float = 0.3  # a supporting document holds this share of the sentence's new words ...
    support_cos: float = 0.5  # ... and has a sentence this close to it
    relate_words: float = 0.1  # one of several documents cited together holds this share (or is that close)


def _role(doc: Any) -> str:
    return str(getattr(doc, "role", None) or "source")


class CitationCheck:
    """Verifies `[n]` citations (`style` cited) or RAFT quotes (`style` quoted); see the module docstring."""

    name = "citations"
    key = "citations"  # the record's quality.citations
    codes: tuple[str, ...] = CODES
    per_paradigm = frozenset(CODES)
    breaker = "judge"  # never unfinished: the encoder always answers
    reads_markers = True

    def __init__(
        self, checker: ConformanceChecker, thresholds: CitationThresholds | None = None, *, style: str = "cited"
    ) -> None:
        if style not in ("cited", "quoted", "auto"):
            raise ValueError(f"answer_style {style!r}: the citation check reads cited or quoted answers")
        self.checker, self.t, self.style = checker, thresholds or CitationThresholds(), style

    @classmethod
    def build(cls, q: Quality, ctx: CheckContext) -> CitationCheck | None:
        """On when `quality.citations` says so, by default when the run's `answer_style` is not plain;
        audit passes the style its dataset's answers show (`auto`: per answer)."""
        style = ctx.answer_style
        on = q.citations if q.citations is not None else style != "plain"
        if not on or style == "plain" or ctx.checker is None:
            return None
        return cls(ctx.checker, q.citation_thresholds(), style=style)

    def applies(self, paradigm: str | None) -> bool:
        return True

    async def averdicts(self, items: Sequence[CheckItem]) -> list[Outcome]:
        return list(await asyncio.to_thread(self.verdicts, items))

    def verdicts(self, items: Sequence[CheckItem]) -> list[Outcome]:
        """One outcome per item, in order; one encoder call for every sentence not cached."""
        parsed = [cited_sentences(self._body(it)) for it in items]
        pairs: set[tuple[str, str]] = set()  # (answer sentence or clause, document text) to score
        for it, sents in zip(items, parsed, strict=True):
            texts = [d.text for d in it.sources if _role(d) == "source"]
            for sent in sents:
                pairs.update((sent.text, t) for t in texts)
                for clause, nums in sent.claims:
                    cited = [it.sources[n - 1].text for n in nums if _role_why(it.sources, n) is None]
                    pairs.update((clause, t) for t in [*cited, "\n".join(cited)] if t)
        gated = {p: gated_sentences(p[0], p[1], self.checker.gate_words) for p in pairs}
        vecs = self.checker.embed(list(dict.fromkeys([p[0] for p in gated] + [x for g in gated.values() for x in g])))
        return [self._one(it, sents, gated, vecs) for it, sents in zip(items, parsed, strict=True)]

    def _quoted(self, it: CheckItem) -> bool:
        return self.style == "quoted" or (self.style == "auto" and "##begin_quote##" in it.answer)

    def _body(self, it: CheckItem) -> str:
        return parse_quoted(it.answer).answer if self._quoted(it) else it.answer

    def _one(self, it: CheckItem, sents: list[CitedSentence], gated: dict, vecs: dict) -> Outcome:
        docs = list(it.sources)

        def score(text: str, doc_text: str) -> dict[str, Any]:
            return self.checker.source_scores(it.question, [text], gated[(text, doc_text)], doc_text, vecs)

        texts = [d.text for d in docs if _role(d) == "source"]
        stated = [i for i, s in enumerate(sents) if any(self.checker.states(score(s.text, t)) for t in texts)]
        fig: dict[str, Any] = {"paradigm": it.paradigm}
        if self._quoted(it):
            return self._quotes(it, len(stated), fig)
        judged: list[tuple[int, int, str | None]] = []  # (sentence, cited number, why it is wrong)
        for i, sent in enumerate(sents):
            for clause, nums in sent.claims:
                valid = [n for n in nums if _role_why(docs, n) is None]
                together = len(valid) > 1 and self._supports(score(clause, "\n".join(docs[n - 1].text for n in valid)))
                for n in nums:
                    why = _role_why(docs, n)
                    if why is None:
                        sc = score(clause, docs[n - 1].text)
                        why = None if self._supports(sc) or (together and self._relates(sc)) else "unsupported"
                    judged.append((i, n, why))
        bad = [{"sentence": i, "cites": n, "why": w} for i, n, w in judged if w]
        cited_ok = [i for i in stated if any(j == i and w is None for j, _, w in judged)]
        fig.update(
            citations=len(judged),
            supported=len(judged) - len(bad),
            stated_sentences=len(stated),
            cited_stated=len(cited_ok),
            precision=None if not judged else round((len(judged) - len(bad)) / len(judged), 3),
            recall=None if not stated else round(len(cited_ok) / len(stated), 3),
            unsupported=bad,
            missing=[i for i in stated if i not in cited_ok],
        )
        return Outcome(*self._decide(it, fig), fig)

    def _supports(self, sc: dict[str, Any]) -> bool:
        """The document states the text, or holds enough of its new words, a sentence close to it
        and (when it has key spans: numbers, names) half of them."""
        spans_ok = sc["spans"] is None or sc["spans"] >= 0.5
        close = sc["words"] >= self.t.support_words and sc["peak"] >= self.t.support_cos and spans_ok
        return bool(self.checker.states(sc) or close)

    def _relates(self, sc: dict[str, Any]) -> bool:
        """One of several documents cited together: it shares some of the text's words or meaning."""
        return bool(sc["words"] >= self.t.relate_words or sc["peak"] >= self.t.support_cos)

    def _decide(self, it: CheckItem, fig: dict[str, Any]) -> tuple[bool, str | None]:
        if it.paradigm == "useless_doc" and fig["citations"]:
            return False, "citation_to_useless"
        if fig["precision"] is not None and (fig["precision"] < self.t.precision or _hard(fig)):
            return False, "citation_unsupported"
        if it.paradigm != "useless_doc" and fig["recall"] is not None and fig["recall"] < self.t.recall:
            return False, "citation_missing"
        return True, None

    def _quotes(self, it: CheckItem, stated: int, fig: dict[str, Any]) -> Outcome:
        parsed = parse_quoted(it.answer)
        sources = [d.text for d in it.sources if _role(d) == "source"]
        found: list[QuoteMatch | None] = [find_quote(q, sources) for q in parsed.quotes]
        fig.update(
            quotes=len(parsed.quotes),
            quotes_found=sum(f is not None for f in found),
            not_found=[q for q, f in zip(parsed.quotes, found, strict=True) if f is None],
            stated_sentences=stated,
        )
        if it.paradigm == "useless_doc" and parsed.quotes:
            return Outcome(False, "citation_to_useless", fig)
        if fig["not_found"]:
            return Outcome(False, "quote_not_in_source", fig)
        if it.paradigm != "useless_doc" and not parsed.quotes and fig["stated_sentences"]:
            return Outcome(False, "citation_missing", fig)
        return Outcome(True, None, fig)

    @staticmethod
    def figures(outcomes: Sequence[Outcome | None]) -> Counter[str]:
        """Counters for run.json, the card and the report, per paradigm: citations and those
        supported (precision), source-stated sentences and those cited (recall), quotes and those
        found, records passed and failed by code."""
        c: Counter[str] = Counter()
        for o in outcomes:
            if o is None:
                continue
            p = o.figures.get("paradigm") or "unknown"
            c["citations_passed" if o.ok else f"{o.code}_{p}"] += 1
            for k in ("citations", "supported", "stated_sentences", "cited_stated", "quotes", "quotes_found"):
                if k in o.figures:
                    c[f"citation_{k}_{p}"] += int(o.figures[k])
        return c


def _role_why(docs: Sequence[Any], n: int) -> str | None:
    """Why citation `n` can support nothing (no such document, a distractor), else None."""
    if not 1 <= n <= len(docs):
        return "no_document"
    return None if _role(docs[n - 1]) == "source" else "distractor"


def _hard(fig: dict[str, Any]) -> bool:
    """A citation to a distractor or to a number with no document fails whatever the threshold."""
    return any(b["why"] != "unsupported" for b in fig["unsupported"])


def precision_recall(figures: Mapping[str, int], paradigm: str) -> tuple[float | None, float | None]:
    """(precision, recall) of one paradigm from `CitationCheck.figures` counters."""
    n, ok = figures.get(f"citation_citations_{paradigm}", 0), figures.get(f"citation_supported_{paradigm}", 0)
    s, cs = figures.get(f"citation_stated_sentences_{paradigm}", 0), figures.get(f"citation_cited_stated_{paradigm}", 0)
    return (ok / n if n else None, cs / s if s else None)
