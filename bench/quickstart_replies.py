"""Q3 of the quickstart bench: the replies themselves, to read. A run keeps only the reason a reply
was refused; this asks the quickstart's first `--attempts` prompts of each job (the same prompts and
seeds a run sends) and writes every reply with what the gate said of it, the paradigm check's and
the relevance check's scores included, so a rejection can be read next to its documents.

    python bench/quickstart_replies.py --index DIR --base-url URL [--count 25] [--attempts 1]
        [--templates small] [--out bench/results/quickstart_replies.jsonl]

One line per reply: job, paradigm, attempt, the source titles, question, answer, `reason` (None:
the gate accepted it) and `quality` (each check's figures). The summary printed at the end counts
reasons per paradigm. No record is written to a run directory: nothing is deduplicated or screened
for distractor leaks, which a run does after these checks.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")


async def ask(cfg: Any, jobs: list[Any], attempts: int) -> list[dict[str, Any]]:
    from ragloom.generator.backends.registry import make_backend
    from ragloom.generator.prompting import build_prompt
    from ragloom.generator.quality.checks import CheckContext, CheckItem, build_checks
    from ragloom.generator.quality.conformance import ConformanceChecker
    from ragloom.generator.quality.parsing import Thresholds, parse_pair
    from ragloom.generator.run import open_index, run_templates

    index = open_index(cfg)
    templates = run_templates(cfg)
    backend = make_backend(cfg.backend)
    v = cfg.validation
    limits = Thresholds(v.min_question_words, v.min_answer_words, v.copy_ngram, v.echo_similarity)
    checks = build_checks(cfg.quality, CheckContext(ConformanceChecker(index.encoder, cfg.quality.thresholds())))
    checks = [c for c in checks if c.name in ("paradigm", "relevance")]
    asked = [dataclasses.replace(j, attempt=a) for a in range(1, attempts + 1) for j in jobs]
    prompts = [build_prompt(j, templates, cfg, None) for j in asked]
    results = await backend.chat([p.request for p in prompts if p is not None])
    await backend.aclose()
    rows = []
    for job, res in zip(asked, results, strict=True):
        pair, reason = None, res.error or res.failure or "empty_response"
        if res.text.strip():
            pair, reason = parse_pair(
                res.text, sources=job.sources, exemplar=job.exemplar, thresholds=limits, finish_reason=res.finish_reason
            )
        rows.append(
            {
                "job": job.id,
                "paradigm": job.paradigm,
                "attempt": job.attempt,
                "exemplar": job.exemplar.text,
                "titles": [s.title for s in job.sources],
                "question": pair.question if pair else None,
                "answer": pair.answer if pair else None,
                "reply": None if pair else res.text,
                "reason": reason,
                "quality": {},
                "completion_tokens": res.completion_tokens,
            }
        )
    for check in checks:  # in the gate's order; a reply the first refuses is not shown to the next
        live = [(r, j) for r, j in zip(rows, asked, strict=True) if r["reason"] is None and check.applies(j.paradigm)]
        outcomes = await check.averdicts(
            [CheckItem(r["question"], r["answer"], j.paradigm, tuple(j.sources)) for r, j in live]
        )
        for (r, _), o in zip(live, outcomes, strict=True):
            r["quality"][check.name] = o.figures
            r["reason"] = None if o.ok else o.code
    return rows


def main() -> None:
    import yaml

    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True, help="an index already built (the quickstart's)")
    ap.add_argument("--base-url", required=True, help="a llama.cpp server serving `gemma`")
    ap.add_argument("--count", type=int, default=25)
    ap.add_argument("--attempts", type=int, default=1, help="ask each job's first N attempts (their seeds)")
    ap.add_argument("--config", default=str(ROOT / "examples" / "quickstart.yaml"))
    ap.add_argument("--templates", default=None, help="override `templates` (default: the config's)")
    ap.add_argument("--paradigms", nargs="+", default=None, help="only jobs of these paradigms")
    ap.add_argument("--out", default="bench/results/quickstart_replies.jsonl")
    args = ap.parse_args()
    from ragloom.generator.config import load_config
    from ragloom.generator.run import open_index, plan_jobs
    from ragloom.generator.sources import select_sources

    raw = yaml.safe_load(Path(args.config).read_text())
    raw.update(index=args.index, count=args.count, output=str(Path(args.out).with_suffix("")) + "-run")
    raw["backend"] = {**raw["backend"], "base_url": args.base_url}
    if args.templates:
        raw["templates"] = None if args.templates == "default" else args.templates
    cfg = load_config(None, base=raw)
    index = open_index(cfg)
    jobs, _ = plan_jobs(cfg, index=index)
    jobs = select_sources(jobs, index, cfg.sources, cfg.seed)
    if args.paradigms:
        jobs = [j for j in jobs if j.paradigm in args.paradigms]
    rows = asyncio.run(ask(cfg, jobs, args.attempts))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        per[r["paradigm"]][r["reason"] or "accepted"] += 1
    for p, c in sorted(per.items()):
        print(f"{p:20s} {dict(c.most_common())}")
    print(f"replies: {out} ({len(rows)})", file=sys.stderr)


if __name__ == "__main__":
    main()
