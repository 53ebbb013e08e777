"""What the report page shows, computed from a run directory's files: counts, reasons, figure
aggregates, and the records in a compact form the page's script renders lazily.

Compact shapes (the page's script reads them by position; keep `report.js` in step):
- passages: [id, title, text], stored once however many records use them;
- exemplars: [id, source, text, task_type, options];
- generate record: [id, paradigm, instruction, answer, docs, exemplar, attempts, quality, curation, issues]
  with docs [[passage, is_source, rank (-1 none), rule (-1 none)], ...] in final order;
- lm-ft pair: [pair_id, source, completion, [[kind, prompt, chunk_title, rank, score], ...]];
- lsr query: [id, query, answers, source, [[passage, rank, retriever_score, lm_logprob, lm_tokens, lsr], ...]].

A record that does not have the expected shape is skipped and counted, never fatal.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from typing import Any

from ..paradigms import paradigm_counts
from .citations import citation_summary
from .coverage import corpus_size, of_records

BAD_RECORD = (KeyError, TypeError, ValueError, AttributeError, IndexError)


class Table:
    """Interns rows by key: each distinct passage or exemplar is embedded once."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.rows: list[list[Any]] = []

    def add(self, key: Any, row: list[Any]) -> int:
        if key not in self.index:
            self.index[key] = len(self.rows)
            self.rows.append(row)
        return self.index[key]


def quantiles(xs: list[float]) -> list[float] | None:
    """[min, p25, median, p75, max] (nearest rank), or None for no values."""
    if not xs:
        return None
    s = sorted(xs)
    return [s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))] for q in (0, 0.25, 0.5, 0.75, 1)]


def histogram(values: list[int], bins: int = 20) -> tuple[list[int], int]:
    """Left edges of integer bins of one width covering the values, and that width."""
    lo, hi = min(values), max(values)
    width = max(1, math.ceil((hi - lo + 1) / bins))
    return list(range(lo, hi + 1, width)), width


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_round(x) for x in v]
    return v


def record_issues(rec: dict[str, Any]) -> list[str]:
    """Quality and curation problems a record carries: explicit `issues` lists, else a failed verdict."""
    issues: list[str] = []
    for name in ("quality", "curation"):
        part = rec.get(name)
        if not isinstance(part, dict):
            continue
        listed = part.get("issues")
        if isinstance(listed, list):
            issues += [str(i) for i in listed]
        elif part.get("ok") is False or str(part.get("verdict", "")).lower() in {"fail", "reject", "rejected"}:
            issues.append(str(part.get("reason") or ("paradigm_mismatch" if name == "quality" else name)))
    return issues


def plan_paradigms(config: dict[str, Any], count: int) -> dict[str, str]:
    """Job id -> paradigm, derived as `plan.make_plan` does (its first seeded draw is the paradigm
    shuffle), so failed jobs, which `failed.jsonl` stores without a paradigm, can be placed."""
    seed = config["seed"]
    counts = paradigm_counts(config["paradigms"], count)
    order = [p for p, n in sorted(counts.items()) for _ in range(n)]
    random.Random(seed).shuffle(order)
    return {f"{seed}-{i:06d}": p for i, p in enumerate(order)}


def failed_paradigms(run: dict[str, Any], records: list[dict[str, Any]], failed: list[dict[str, Any]]) -> list[str]:
    """Each failed job's paradigm: its own field, else the plan's, trusted only when the plan agrees
    with every accepted record; "unknown" otherwise."""
    planned: dict[str, str] = {}
    try:
        planned = plan_paradigms(run["config"], int(run["count"]))
    except BAD_RECORD:
        pass
    if any(planned.get(r.get("job_id", "")) != r.get("paradigm") for r in records):
        planned = {}
    return [str(f.get("paradigm") or planned.get(str(f.get("job_id")), "unknown")) for f in failed]


def _generate_record(r: dict[str, Any], passages: Table, exemplars: Table, rules: Table) -> list[Any]:
    docs = []
    for d in r["documents"]:
        p = passages.add(d["id"], [d["id"], d.get("title") or "", d["text"]])
        rule = rules.add(d["rule"], [d["rule"]]) if d.get("rule") else -1
        rank = d.get("rank")
        docs.append([p, 1 if d["role"] == "source" else 0, -1 if rank is None else int(rank), rule])
    ex = r.get("exemplar") or {}
    e = -1
    if ex:
        key = (ex.get("id"), ex.get("source"), ex.get("text"))
        row = [ex.get("id"), ex.get("source"), ex.get("text"), ex.get("task_type"), ex.get("options") or []]
        e = exemplars.add(key, row)
    attempts = int((r.get("generation") or {}).get("attempts") or 1)
    quality, curation = _round(r.get("quality")), _round(r.get("curation"))
    return [
        r["id"],
        r["paradigm"],
        r["instruction"],
        r["answer"],
        docs,
        e,
        attempts,
        quality,
        curation,
        record_issues(r),
    ]


def generate_view(run: dict[str, Any], records: list[dict[str, Any]], failed: list[dict[str, Any]]) -> dict[str, Any]:
    """Overview counts, figure aggregates and compact records of a `generate` run."""
    passages, exemplars, rules = Table(), Table(), Table()
    compact, good = [], []
    for r in records:
        try:
            compact.append(_generate_record(r, passages, exemplars, rules))
            good.append(r)
        except BAD_RECORD:
            continue
    fparadigms = failed_paradigms(run, good, failed)
    planned = run.get("paradigms") or {}
    names = list(planned) + sorted({c[1] for c in compact} - set(planned)) + sorted(set(fparadigms) - set(planned))
    rows = []
    for p in dict.fromkeys(names):
        mine = [c for c in compact if c[1] == p]
        fails = [f for f, fp in zip(failed, fparadigms) if fp == p]
        rows.append(
            {
                "paradigm": p,
                "planned": planned.get(p),
                "accepted": len(mine),
                "failed": len(fails),
                "retried": sum(c[6] > 1 for c in mine),
                "rejected": sum(c[6] - 1 for c in mine) + sum(int(f.get("attempts") or 1) for f in fails),
            }
        )
    return {
        "per_paradigm": rows,
        "skipped_records": len(records) - len(compact),
        "failure_reasons": dict(Counter(str(f.get("reason")) for f in failed).most_common()),
        "failed_jobs": [[f.get("job_id"), fp, f.get("reason"), f.get("attempts")] for f, fp in zip(failed, fparadigms)],
        "usage_from_records": _usage(good),
        "distractor_rules": dict(
            Counter(d.get("rule") or "none" for r in good for d in r["documents"] if d["role"] != "source")
        ),
        "figures": _generate_figures(compact, rules),
        "citations": citation_summary(good),
        # issue 28: distinct sources, corpus share, reuse (generator/publish/coverage.py), and the plan's figures
        "coverage": {**of_records(good, corpus_size(run)).as_dict(), "planned": run.get("sources")},
        "passages": passages.rows,
        "exemplars": exemplars.rows,
        "rules": [r[0] for r in rules.rows],
        "records": compact,
    }


def _usage(records: list[dict[str, Any]]) -> dict[str, int]:
    u = [(r.get("generation") or {}).get("usage") or {} for r in records]
    return {
        "prompt_tokens": sum(int(x.get("prompt_tokens") or 0) for x in u),
        "completion_tokens": sum(int(x.get("completion_tokens") or 0) for x in u),
    }


def _generate_figures(compact: list[list[Any]], rules: Table) -> dict[str, Any]:
    by_p: dict[str, list[list[Any]]] = defaultdict(list)
    for c in compact:
        by_p[c[1]].append(c)
    lengths = {
        p: {
            "n": len(cs),
            "question": quantiles([len(c[2].split()) for c in cs]),
            "answer": quantiles([len(c[3].split()) for c in cs]),
        }
        for p, cs in by_p.items()
    }
    names = [r[0] for r in rules.rows]
    ranks = [(d[2], d[3]) for c in compact for d in c[4] if not d[1]]
    ranked = [rk for rk, _ in ranks if rk >= 0]
    rank_fig: dict[str, Any] = {"unranked": sum(rk < 0 for rk, _ in ranks)}
    if ranked:
        edges, width = histogram(ranked)
        by_rule: dict[str, list[int]] = {}
        for rk, rule in ranks:
            if rk >= 0:
                counts = by_rule.setdefault(names[rule] if rule >= 0 else "none", [0] * len(edges))
                counts[(rk - edges[0]) // width] += 1
        rank_fig.update(edges=edges, width=width, by_rule=by_rule)
    n_slots = max((len(c[4]) for c in compact), default=0)
    slots = {p: [0] * n_slots for p in by_p}
    for c in compact:
        for i, d in enumerate(c[4]):
            slots[c[1]][i] += d[1]
    return {"lengths": lengths, "ranks": rank_fig, "slots": slots, "quality": _quality_figure(by_p)}


def _quality_figure(by_p: dict[str, list[list[Any]]]) -> dict[str, Any] | None:
    """Per paradigm: records checked, the share that passed, what the check found, mean of each score."""
    out: dict[str, Any] = {}
    for p, cs in by_p.items():
        qs = [c[7] for c in cs if isinstance(c[7], dict)]
        if not qs:
            continue
        scores: dict[str, list[float]] = defaultdict(list)
        for q in qs:
            for k, v in (q.get("scores") or {}).items():
                if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                    scores[k].append(float(v))
        found = Counter(
            str(q.get("found") or q.get("paradigm_found")) for q in qs if "found" in q or "paradigm_found" in q
        )
        out[p] = {
            "n": len(qs),
            "passed": sum(q.get("ok") is not False and not q.get("issues") for q in qs),
            "found": dict(found),
            "scores": {k: round(sum(v) / len(v), 4) for k, v in sorted(scores.items())},
        }
    return out or None
