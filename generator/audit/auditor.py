"""`ragloom audit`: the pipeline's record checks on any RAG instruction dataset.

Per record: the lexical validation (parse_pair's reason codes), paradigm conformance
(`paradigm_mismatch`), distractor leak screening (`distractor_leak`), the rank rule
(`distractor_rank`: a distractor ranked above the band without rule `shallow`), relevance
(`off_topic`: the answer does not address the question; every record, whatever its roles) and, for
a ragloom run, `short_padded` (fewer documents than distractors.total_docs). A check that needs what a record
lacks (roles, paradigm, exemplar) is skipped and named in `skipped`. Records are checked in
batches: one encoder call per batch for answers and sources, one for the distractors.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..aio import run_sync
from ..quality import (
    CheckContext,
    CheckItem,
    ConformanceChecker,
    LeakRule,
    LeakScreen,
    Outcome,
    Quality,
    RecordCheck,
    SpanFrequency,
    build_checks,
    parse_pair,
)
from ..runs import has_citations, has_quotes, strip_answer
from ..types import Exemplar
from .reader import AuditRecord

CITATION_COUNTS = ("citations", "supported", "stated_sentences", "cited_stated", "quotes", "quotes_found")
AUDIT_CODES = ("paradigm_mismatch", "distractor_leak", "distractor_rank", "short_padded", "off_topic")


def audit_checks(quality: Quality, checker: ConformanceChecker, answer_style: str = "plain") -> list[RecordCheck]:
    """The record checks `generate` runs, built from the run's `quality:` section by the same registry
    (quality/checks.py), less what needs a model to answer (the LLM judge, necessity scoring). The
    paradigm check always runs: audit reports what the sources do even where the run turned it off.
    `answer_style`: `auto` when the dataset's answers carry [n] citations or RAFT quotes (`citations`)."""
    q = quality.model_copy(update={"conformance": True, "judge": False, "necessity": False})
    return build_checks(q, CheckContext(checker=checker, answer_style=answer_style))


def answer_style(records: Sequence[AuditRecord]) -> str:
    """`auto` when any answer carries [n] citations or RAFT quote markers (each is then checked as its
    markers say, and an answer with none where its sources state it is `citation_missing`), else plain."""
    return "auto" if any(has_citations(r.answer) or has_quotes(r.answer) for r in records) else "plain"


@dataclass
class AuditSummary:
    records: int = 0
    issues: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    by_paradigm: dict[str, Counter[str]] = field(default_factory=dict)  # paradigm -> {records, clean, <code>...}
    leaks: Counter[str] = field(default_factory=Counter)  # by leak check
    curation: Counter[str] = field(default_factory=Counter)  # duplicate_<check>, contaminated_<eval set>
    citations: Counter[str] = field(default_factory=Counter)  # citations, supported, stated sentences, quotes...
    coverage: dict[str, Any] | None = None  # with --index: coverage of its corpus (generator/publish/coverage.py)

    def add(self, rec: AuditRecord, result: dict[str, Any]) -> None:
        self.records += 1
        self.issues.update(result["issues"])
        self.skipped.update(result["skipped"])
        row = self.by_paradigm.setdefault(rec.paradigm or "(unknown)", Counter())
        row["records"] += 1
        row["clean"] += not result["issues"]
        row.update(result["issues"])
        self.leaks.update((result["scores"].get("leaks") or {}).values())
        cited = result["scores"].get("citations") or {}
        self.citations.update({k: int(cited[k]) for k in CITATION_COUNTS if cited.get(k) is not None})

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "issues": dict(self.issues),
            "skipped": dict(self.skipped),
            "by_paradigm": {k: dict(v) for k, v in sorted(self.by_paradigm.items())},
            "distractor_leaks_by_check": dict(self.leaks),
            "curation_by_check": dict(self.curation),
            **({"citations": self.citation_summary()} if self.citations else {}),
            **({"coverage": self.coverage} if self.coverage is not None else {}),
        }

    def citation_summary(self) -> dict[str, Any]:
        """The dataset's citation precision (supported / citations) and recall (source-stated sentences
        citing a supporting source / those sentences), and quotes found in a source / quotes."""
        c = self.citations

        def share(a: str, b: str) -> float | None:
            return round(c[a] / c[b], 3) if c[b] else None

        return {
            **dict(c),
            "precision": share("supported", "citations"),
            "recall": share("cited_stated", "stated_sentences"),
            "quotes_verbatim": share("quotes_found", "quotes"),
        }


class Auditor:
    """Checks records in batches; `band_start` and `total_docs` come from the run when known."""

    def __init__(
        self,
        checker: ConformanceChecker,
        *,
        leak_similarity: float,
        leak_gate_words: int,
        band_start: int,
        frequency: SpanFrequency | None = None,
        leak_rule: LeakRule | None = None,
        total_docs: int | None = None,
        batch_size: int = 256,
        checks: Sequence[RecordCheck] | None = None,
    ) -> None:
        """The settings come from the run's config models (`command.run_sections`), as generate uses them.
        `checks`: the record checks (`audit_checks`; None: the paradigm check alone); `frequency`: the
        span counts of the key-span rule (None: every span counts as specific)."""
        self.checker = checker
        if checks is None:
            checks = audit_checks(Quality(relevance=False), checker)
        self.paradigm = next(c for c in checks if c.name == "paradigm")
        self.others = [c for c in checks if c.name != "paradigm"]
        self.screen = LeakScreen(
            checker, similarity=leak_similarity, gate_words=leak_gate_words, frequency=frequency, rule=leak_rule
        )
        self.band_start, self.total_docs, self.batch_size = band_start, total_docs, batch_size

    def run(
        self, records: Sequence[AuditRecord], progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[AuditRecord, dict[str, Any]]]:
        for start in range(0, len(records), self.batch_size):
            batch = records[start : start + self.batch_size]
            yield from zip(batch, self._batch(batch), strict=True)
            if progress:
                progress(len(batch))

    def _batch(self, batch: Sequence[AuditRecord]) -> list[dict[str, Any]]:
        items = []
        for r in batch:
            docs = r.with_role("source") if r.has_roles else [d for d in r.documents]
            # the checks read the answer's plain text; the citation check reads its markers and every
            # document in the record's order ([n] is the record's n-th document)
            items.append(
                CheckItem(r.question, strip_answer(r.answer), r.paradigm if r.has_roles else None, tuple(docs))
            )
        cited = [
            CheckItem(r.question, r.answer, r.paradigm if r.has_roles else None, tuple(r.documents)) for r in batch
        ]
        verdicts = iter(run_sync(self.paradigm.averdicts([i for i in items if i.sources])))
        found = [next(verdicts).figures if i.sources else None for i in items]
        self.screen.prefetch(
            [(r.answer, d) for r in batch if r.has_roles for d in r.with_role("distractor")],
            [(r.question, r.answer) for r in batch if r.has_roles],
        )
        out = [self._one(r, v) for r, v in zip(batch, found, strict=True)]
        for check in self.others:  # relevance and any later check: the same objects `generate` runs
            its = cited if check.reads_markers else items
            applies = [k for k, i in enumerate(its) if check.applies(i.paradigm)]
            outcomes: list[Outcome] = run_sync(check.averdicts([its[k] for k in applies]))
            for k, o in zip(applies, outcomes, strict=True):
                out[k]["scores"][check.key or check.name] = o.figures
                if not o.ok and o.code:
                    out[k]["issues"].append(o.code)
        return out

    def _one(self, r: AuditRecord, verdict: dict[str, Any] | None) -> dict[str, Any]:
        issues: list[str] = []
        skipped: list[str] = []
        scores: dict[str, Any] = {}
        sources = r.with_role("source")
        exemplar = Exemplar("audit", r.exemplar_text or "", "audit", None, r.options)
        if r.exemplar_text is None:
            skipped.append("instruction_echo")
        reply = json.dumps({"question": r.question, "answer": r.answer})
        _, reason = parse_pair(reply, sources=sources if r.has_roles else [], exemplar=exemplar)
        if reason:
            issues.append(reason)
        if verdict is None:
            skipped += ["paradigm_mismatch", "distractor_leak"]
        else:
            scores.update(verdict["scores"])
            if not r.has_roles:
                skipped += ["paradigm_mismatch", "distractor_leak", "distractor_rank"]
            elif r.paradigm is None:
                skipped.append("paradigm_mismatch")
            elif verdict["ok"] is False:
                issues.append("paradigm_mismatch")
        if r.has_roles:
            self._distractors(r, sources, issues, scores)
            if self.total_docs is not None and len(r.documents) < self.total_docs:
                issues.append("short_padded")
        elif r.documents and "distractor_rank" not in skipped:
            skipped.append("distractor_rank")
        return {
            "id": r.id,
            "issues": issues,
            "paradigm_found": verdict["found"] if verdict else None,
            "scores": scores,
            "skipped": skipped,
        }

    def _distractors(self, r: AuditRecord, sources: list[Any], issues: list[str], scores: dict[str, Any]) -> None:
        distractors = r.with_role("distractor")
        if not distractors:
            return
        screen = self.screen.screen_for(question=r.question, answer=r.answer, paradigm=r.paradigm, sources=sources)
        leaks = {d.id: fired for d in distractors if (fired := screen(d)) is not None}
        if leaks:
            issues.append("distractor_leak")
            scores["leaks"] = leaks
        if any(d.rank is not None and d.rank < self.band_start and d.rule != "shallow" for d in distractors):
            issues.append("distractor_rank")
