"""Where documents sit in a record (`documents.order`), and the prompt layouts of the export.

Order (section 4 of the curation issue), seeded per job so a resumed run orders the same way:
- `shuffle`: a uniform random permutation of sources and distractors;
- `balanced` (default): the first source's slot is drawn from a seeded permutation of the slots
  for each block of `total_docs` consecutive plan positions, so over the dataset every slot
  holds a first source equally often (not only in expectation); the other sources take random
  free slots and the distractors the rest. Every slot then holds a source with the same rate;
- `sources_first` / `sources_last`: sources together at the front / at the end, distractors
  shuffled in the other slots (for ablations; they teach a position shortcut).

Layouts (section 5): `ragloom export --layout fixed` writes the one RAG-Instruct prompt
(`### Paragraph:` / `### Instruction:`, `[i]` numbering, titles). `mixed` draws per record,
seeded by the record id, one of the prompt layouts below (written for ragloom, in the spirit of
RAG-Instruct's training script, which mixes seven), a numbering style (`[i]`, `i.`, none) and
titles on or off; `plain_share` turns that share of eligible records into plain instruction
examples without documents. Only records whose answer does not rest on the documents
(`useless_doc`, the `*_support` paradigms) are eligible: a closed-book copy of a
`*_answer` record would teach the model to answer without the facts it needs.
Cited answers (`[n]`, the record's n-th document): every layout keeps the record's document order, so
no renumbering is needed, but a cited record is numbered `[i]` or `i.` (never left unnumbered, where
`[n]` would point at nothing), and a record whose answer cites or quotes is never made plain.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from ..paradigms import PARADIGMS
from .citations import has_citations, has_quotes

D = TypeVar("D")
Order = Literal["shuffle", "balanced", "sources_first", "sources_last"]
ORDERS: tuple[str, ...] = ("shuffle", "balanced", "sources_first", "sources_last")


class DocumentsConfig(BaseModel):
    """`documents:` where the source documents sit among the distractors."""

    model_config = ConfigDict(extra="forbid")
    order: Order = "balanced"


def _rng(seed: int, key: str, purpose: str) -> random.Random:
    return random.Random(f"{seed}:{key}:{purpose}")


def _role(d: Any) -> str:
    return str(d["role"] if isinstance(d, dict) else d.role)


def order_documents(docs: Sequence[D], order: str, *, seed: int, job_id: str, position: int, slots: int) -> list[D]:
    """`docs` (dicts or `Document`s with `role`: source | distractor) in their final order; pure
    and seeded. `position` is the job's plan position and `slots` the configured documents per record."""
    if order not in ORDERS:
        raise ValueError(f"documents.order {order!r}: use one of {', '.join(ORDERS)}")
    docs = list(docs)
    if order == "shuffle":
        # the purpose string runs before this option existed used: their records keep their order
        _rng(seed, job_id, "distractors-order").shuffle(docs)
        return docs
    rng = _rng(seed, job_id, "documents-order")
    sources = [d for d in docs if _role(d) == "source"]
    others = [d for d in docs if _role(d) != "source"]
    rng.shuffle(others)
    if order == "sources_first":
        return sources + others
    if order == "sources_last":
        return others + sources
    n = len(docs)
    if not sources or n == 0:
        return others
    block = position // max(slots, 1)
    perm = _rng(seed, str(block), "source-slots").sample(range(max(slots, 1)), max(slots, 1))
    first = perm[position % max(slots, 1)] % n
    free = [i for i in range(n) if i != first]
    rest = rng.sample(free, len(sources) - 1)
    out: list[D | None] = [None] * n
    for slot, doc in zip([first, *rest], sources, strict=True):
        out[slot] = doc
    fill = iter(others)
    return [d if d is not None else next(fill) for d in out]


def source_slots(records: Iterable[dict[str, Any]]) -> Counter[int]:
    """How often each 0-based slot holds a source document, over `records`."""
    c: Counter[int] = Counter()
    for r in records:
        c.update(i for i, d in enumerate(r["documents"]) if d.get("role") == "source")
    return c


# -- export layouts ------------------------------------------------------------------------

FIXED_LAYOUT = "### Paragraph:\n{paragraphs}\n\n### Instruction:\n{instruction}"
LAYOUTS: dict[str, str] = {
    "rag-instruct": FIXED_LAYOUT,
    "sources-then-task": "Sources:\n{paragraphs}\n\nTask: {instruction}",
    "read-and-answer": "Read the passages below, then respond to the request that follows them.\n\n"
    "{paragraphs}\n\nRequest:\n{instruction}",
    "context-block": "Context\n-------\n{paragraphs}\n\nUsing the context where it helps, answer:\n{instruction}",
    "question-first": "{instruction}\n\nSome passages that may or may not be relevant:\n{paragraphs}",
    "reference-notes": "You have these reference notes.\n\n{paragraphs}\n\nWith them at hand, respond to this:\n{instruction}",
    "markdown": "## Documents\n{paragraphs}\n\n## Question\n{instruction}",
}
PLAIN_LAYOUT = "{instruction}"
NUMBERINGS = ("brackets", "dotted", "none")
CITED_NUMBERINGS = ("brackets", "dotted")  # [n] must keep pointing at the record's n-th document


def _plain_ok(paradigm: Any) -> bool:
    """Only a paradigm whose sources do not state a* may be shown without them (its registry entry)."""
    p = PARADIGMS.get(paradigm) if isinstance(paradigm, str) else None
    return p is not None and p.plain_layout


@dataclass(frozen=True, slots=True)
class Choice:
    layout: str  # a LAYOUTS key, or "plain"
    numbering: str
    titles: bool


def paragraphs(documents: Sequence[dict[str, Any]], numbering: str = "brackets", titles: bool = True) -> str:
    def mark(i: int) -> str:
        return {"brackets": f"[{i}] ", "dotted": f"{i}. ", "none": ""}[numbering]

    parts = []
    for i, d in enumerate(documents, 1):
        body = f"{d['title']}\n{d['text']}" if titles and d.get("title") else d["text"]
        parts.append(mark(i) + body)
    return "\n".join(parts) if numbering != "none" else "\n\n".join(parts)


def render(rec: dict[str, Any], choice: Choice) -> str:
    """The user turn of `rec` in the chosen layout."""
    q = rec["instruction"]
    if choice.layout == "plain":
        return PLAIN_LAYOUT.format(instruction=q)
    return LAYOUTS[choice.layout].format(
        paragraphs=paragraphs(rec["documents"], choice.numbering, choice.titles), instruction=q
    )


FIXED = Choice("rag-instruct", "brackets", True)


class Layouter:
    """Picks each record's layout: always `FIXED`, or (mixed) a per-record seeded draw."""

    def __init__(self, mode: str = "fixed", *, seed: int = 0, plain_share: float = 0.0) -> None:
        if mode not in ("fixed", "mixed"):
            raise ValueError(f"--layout {mode!r}: use fixed or mixed")
        if not 0 <= plain_share < 1:
            raise ValueError(f"--plain-share {plain_share}: use a fraction in [0, 1)")
        self.mode, self.seed, self.plain_share = mode, seed, plain_share
        self.used: Counter[str] = Counter()

    def choose(self, rec: dict[str, Any]) -> Choice:
        if self.mode == "fixed":
            return FIXED
        rng = _rng(self.seed, str(rec["id"]), "export-layout")
        # an answer that refers to its documents ([n], quotes) is never shown without them, and [n] keeps a
        # number to point at: a cited record is numbered [i] or i., never left unnumbered
        refers = has_citations(rec.get("answer", "")) or has_quotes(rec.get("answer", ""))
        plain = rng.random() < self.plain_share and _plain_ok(rec.get("paradigm")) and not refers
        layout = rng.choice(sorted(LAYOUTS))
        numbering = rng.choice(CITED_NUMBERINGS if has_citations(rec.get("answer", "")) else NUMBERINGS)
        titles = rng.random() < 0.5
        return Choice("plain", "none", False) if plain else Choice(layout, numbering, titles)

    def user_turn(self, rec: dict[str, Any]) -> str:
        c = self.choose(rec)
        self.used[f"layout:{c.layout}"] += 1
        if c.layout != "plain":
            self.used[f"numbering:{c.numbering}"] += 1
            self.used[f"titles:{'on' if c.titles else 'off'}"] += 1
        return render(rec, c)

    def summary(self) -> dict[str, Any]:
        """What the card records: the mode, seed, plain share and the counts of each draw."""
        return {
            "mode": self.mode,
            "seed": self.seed,
            "plain_share": self.plain_share,
            "used": dict(sorted(self.used.items())),
        }
