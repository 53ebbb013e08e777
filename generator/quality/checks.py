"""The check protocol: every record-level check is one object with one small interface.

A check says what it needs (the question, the answer, the paradigm and the sources of each item:
`CheckItem`), gives one `Outcome` per item (`ok`, the reason code when not, the figures stored in
the record's `quality`, or `unfinished` when it could give no verdict: a judge or scorer that did not
answer is not the record's fault), names its reason codes, and counts its figures for run.json, the
card and the report. The pipeline (`Pipeline._check`) and `ragloom audit` loop over the same objects,
built here from the `quality:` section by the registry `CHECKS`, in order.

Adding a check: its module with a class of this shape and one `CHECKS` line below (README "Add a
check"). What the pipeline does with an outcome is the same for every check: a rejection is asked
again with the next attempt's seed, then fails with the code; an unfinished one stays for resume.
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .config import Quality


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One record to check. `sources`: objects with `.title` and `.text`, numbered as the prompt showed
    them; `paradigm` None checks what the sources do without judging a paradigm (audit, no roles)."""

    question: str
    answer: str
    paradigm: str | None
    sources: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool  # False: rejected with `code`
    code: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)  # the record's quality[<check.key>]
    unfinished: str | None = None  # no verdict: the job stays unfinished with this error (ok is ignored)


class RecordCheck(Protocol):
    name: str  # its switch: quality.<name>
    key: str | None  # where its figures go in the record's `quality` (None: at the top, the paradigm verdict)
    codes: tuple[str, ...]  # the reason codes it gives
    per_paradigm: frozenset[str]  # codes also counted per paradigm (`<code>_<paradigm>` in run.json)
    breaker: str  # which breaker counts its unfinished outcomes: "judge" or "scorer"
    # True: it reads the answer as written, with its [n] citation / RAFT quote markers, and its sources
    # numbered as the answer cites them; False: the answer's plain text (markers stripped)
    reads_markers: bool

    def applies(self, paradigm: str | None) -> bool: ...

    async def averdicts(self, items: Sequence[CheckItem]) -> list[Outcome]: ...

    def figures(self, outcomes: Sequence[Outcome]) -> Counter[str]: ...


@dataclass
class CheckContext:
    """What checks share in one run: the encoder's sentence cache (`checker`, a ConformanceChecker), the
    run's backend and judge cache (None: no judge), the necessity scorer (None: not opened), the run's
    `answer_style` (audit: `auto`, what each answer shows)."""

    checker: Any = None
    backend: Any = None
    judge_cache: Any = None
    scorer: Any = None
    answer_style: str = "plain"


# the registry, in the order the gate runs them: (name, "module:Class"); the class's `build(q, ctx)` gives
# the check, or None when the `quality:` section turns it off. Imported when checks are built.
CHECKS: list[tuple[str, str]] = [
    ("paradigm", ".gate:ParadigmCheck"),
    ("relevance", ".relevance:RelevanceCheck"),
    ("necessity", ".necessity:NecessityCheck"),
    ("citations", ".citations:CitationCheck"),
]


def build_checks(q: Quality, ctx: CheckContext, only: Sequence[str] | None = None) -> list[RecordCheck]:
    """The enabled checks, in registry order (`only`: just these names, e.g. the encoder checks audit runs)."""
    made = []
    for name, where in CHECKS:
        if only is not None and name not in only:
            continue
        check = check_class(where).build(q, ctx)
        if check is not None:
            made.append(check)
    return made


def check_class(where: str) -> Any:
    module, _, cls = where.partition(":")
    return getattr(importlib.import_module(module, __package__), cls)


def registered_codes() -> tuple[str, ...]:
    """Every reason code the registered checks can give (audit's `--fail-on` accepts them)."""
    return tuple(dict.fromkeys(code for _, where in CHECKS for code in check_class(where).codes))
