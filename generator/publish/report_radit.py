"""The report page's data for RA-DIT runs: lm-ft prompt/completion pairs grouped per source pair,
lsr queries with each chunk's retriever score, LM log-prob and LSR score. Shapes: see report_data."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from .report_data import BAD_RECORD, Table, histogram, quantiles


def lm_ft_view(records: list[dict[str, Any]]) -> dict[str, Any]:
    pairs: dict[str, list[Any]] = {}
    kinds: Counter[str] = Counter()
    scores_by_rank: dict[int, list[float]] = defaultdict(list)
    skipped = 0
    for r in records:
        try:
            pid = str(r["pair_id"])
            chunk = r.get("chunk") or {}
            row = [r["kind"], r["prompt"], chunk.get("title"), chunk.get("rank"), chunk.get("score")]
            pair = pairs.setdefault(pid, [pid, r.get("source"), r["completion"], []])
        except BAD_RECORD:
            skipped += 1
            continue
        pair[3].append(row)
        kinds[row[0]] += 1
        if isinstance(row[3], int) and isinstance(row[4], int | float):
            scores_by_rank[row[3]].append(float(row[4]))
    compact = list(pairs.values())
    return {
        "examples": len(records) - skipped,
        "pairs": len(compact),
        "per_kind": dict(sorted(kinds.items())),
        "sources": dict(Counter(str(p[1]) for p in compact).most_common()),
        "skipped_records": skipped,
        "figures": {
            "lengths": {
                "prompt": quantiles([len(x[1].split()) for p in compact for x in p[3]]),
                "completion": quantiles([len(p[2].split()) for p in compact]),
            },
            "score_by_rank": {str(k): quantiles(v) for k, v in sorted(scores_by_rank.items())},
        },
        "records": compact,
    }


def lsr_view(records: list[dict[str, Any]]) -> dict[str, Any]:
    passages = Table()
    compact: list[list[Any]] = []
    for r in records:
        try:
            ctxs = [
                [
                    passages.add(c["id"], [c["id"], c.get("title") or "", c.get("text") or ""]),
                    int(c["rank"]),
                    float(c["retriever_score"]),
                    float(c["lm_logprob"]),
                    int(c.get("lm_tokens") or 0),
                    float(c["lsr_score"]),
                ]
                for c in r["ctxs"]
            ]
            compact.append([r["id"], r["query"], list(r.get("answers") or []), r.get("source"), ctxs])
        except BAD_RECORD:
            continue
    preferred = [max(q[4], key=lambda c: c[5])[1] for q in compact if q[4]]
    top = [round(max(c[5] for c in q[4]) * 100) for q in compact if q[4]]
    figures: dict[str, Any] = {"preferred_rank": dict(sorted(Counter(preferred).items()))}
    if top:
        edges, width = histogram(top, bins=10)
        counts = [0] * len(edges)
        for t in top:
            counts[(t - edges[0]) // width] += 1
        figures["top_lsr"] = {"edges": edges, "width": width, "counts": counts}
    return {
        "queries": len(compact),
        "chunks": sum(len(q[4]) for q in compact),
        "lm_prefers_retriever_top1": round(preferred.count(0) / len(preferred), 4) if preferred else None,
        "sources": dict(Counter(str(q[3]) for q in compact).most_common()),
        "skipped_records": len(records) - len(compact),
        "figures": figures,
        "passages": passages.rows,
        "records": compact,
    }
