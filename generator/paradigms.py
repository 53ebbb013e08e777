"""The paradigm registry: one entry per RAG paradigm, read by everything that depends on the paradigm.

An entry says what the paradigm is (its definition, for prompts, cards and the judge), how many
source documents it takes, what the paradigm check requires of its sources (`conformance`, on the
encoder's finding), what the LM necessity check requires (`necessity`), whether the export may show
its instruction without documents (`plain_layout`), and its template (`prompts/<name>.j2` unless
`template` names another file). Adding a paradigm is a template plus one `register` call; see
README "Add a paradigm".

A leaf module: it imports nothing from the rest of the package, so every wing may read it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# what the paradigm check found for a record's sources (quality/conformance.py):
# "states" | "supports" | "no_help", whether one source alone states the answer, how many contribute
Rule = Callable[[str, bool, int], bool]
# the LM necessity rule (quality/necessity.py): None, not checked; "unhelpful": the sources must not
# raise the answer's likelihood; "needed": they must; "each_needed": and dropping any one must lower it
Necessity = Literal["unhelpful", "needed", "each_needed"] | None


@dataclass(frozen=True, slots=True)
class Paradigm:
    name: str
    definition: str
    sources: tuple[int, int]  # min, max source documents
    conformance: Rule
    necessity: Necessity = None
    plain_layout: bool = False  # the export may show q* without its documents (the sources do not state a*)
    template: str | None = None  # default: f"{name}.j2"

    @property
    def template_file(self) -> str:
        return self.template or f"{self.name}.j2"


PARADIGMS: dict[str, Paradigm] = {}


def register(p: Paradigm) -> Paradigm:
    if p.sources[0] < 1 or p.sources[0] > p.sources[1]:
        raise ValueError(f"paradigm {p.name!r}: sources {p.sources} must be (min >= 1, max >= min)")
    PARADIGMS[p.name] = p
    return p


def get(name: str) -> Paradigm:
    try:
        return PARADIGMS[name]
    except KeyError:
        raise ValueError(f"unknown paradigm {name!r}; registered: {', '.join(PARADIGMS)}") from None


def paradigm_counts(weights: dict[str, float], count: int) -> dict[str, int]:
    """Split `count` over paradigms in proportion to the weights (largest remainder)."""
    total = sum(weights.values())
    exact = {p: count * w / total for p, w in weights.items() if w > 0}
    counts = {p: int(v) for p, v in exact.items()}
    for p in sorted(exact, key=lambda p: (-(exact[p] - counts[p]), p))[: count - sum(counts.values())]:
        counts[p] += 1
    return counts


# RAG-Instruct's five paradigms (arXiv 2501.00353, section 3)
register(
    Paradigm(
        "useless_doc",
        "q* is related to the document, but the document gives no useful information; a* answers from general knowledge",
        (1, 1),
        conformance=lambda found, single, contributing: found == "no_help",
        necessity="unhelpful",
        plain_layout=True,
    )
)
register(
    Paradigm(
        "single_doc_support",
        "the document helps (hints, facts) but does not state the answer",
        (1, 1),
        conformance=lambda found, single, contributing: found == "supports",
        plain_layout=True,
    )
)
register(
    Paradigm(
        "multi_doc_support",
        "several documents help together, none states the answer",
        (2, 4),
        conformance=lambda found, single, contributing: not single and contributing >= 2,
        plain_layout=True,
    )
)
register(
    Paradigm(
        "single_doc_answer",
        "the answer is fully derivable from the one document",
        (1, 1),
        conformance=lambda found, single, contributing: found == "states",
        necessity="needed",
    )
)
register(
    Paradigm(
        "multi_doc_answer",
        "the answer needs several documents (multi-hop or integration)",
        (2, 4),
        conformance=lambda found, single, contributing: found == "states" and contributing >= 2,
        necessity="each_needed",
    )
)
