"""Decontamination cost: a 100,000-question eval set against a whole `ragloom generate` run.

    python bench/decontam.py [--eval-size 100000] [--pairs 3] [--json bench/results/decontam.json]

D1  one-time cost: building the n-gram index of the eval set (13- and 8-grams, short texts),
    its size on disk, and loading it from the cache (what every later run pays).
D2  cost inside a run: bench/generation.py's G3 (1,000 jobs, 64 in flight, 200 ms) with and
    without `curation.decontaminate` naming the eval set (its index cached by D1, as every run
    after the first finds it), alternating `--pairs` times; walls, client CPU and their medians.
The eval questions are made from Wikipedia summary sentences (each sentence, and each clause of
it split at commas, as a question), so word statistics are those of real text.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generation
from generation import bench_generate, build_wiki_index


def eval_questions(n: int) -> list[dict]:
    from conftest import wiki_summaries

    out: list[dict] = []
    for k, v in sorted(wiki_summaries().items()):
        for sent in re.split(r"(?<=[.!?])\s+", v["extract"]):
            for part in [sent, *sent.split(", ")]:
                words = part.strip(" .").split()
                if len(words) >= 4:
                    out.append({"id": f"{k}:{len(out)}", "question": " ".join(words) + "?"})
                if len(out) >= n:
                    return out
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval-size", type=int, default=100_000)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--json", default="bench/results/decontam.json")
    args = ap.parse_args()
    from ragloom.generator.curation.decontam import Decontaminator, EvalIndex, EvalSet

    report: dict = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        qs = eval_questions(args.eval_size)
        (tmp / "eval.jsonl").write_text("".join(json.dumps(q) + "\n" for q in qs))
        s = EvalSet(name="synthetic", path=str(tmp / "eval.jsonl"), id_field="id")
        t = time.perf_counter()
        _, loaded = EvalIndex.load_or_build(s, tmp / "cache")
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        Decontaminator.open([s], tmp / "cache")
        load_s = time.perf_counter() - t
        cache_mb = sum(f.stat().st_size for f in (tmp / "cache").iterdir()) / 2**20
        report["D1_index"] = {
            "eval_questions": len(qs),
            "build_s": round(build_s, 2),
            "cache_mb": round(cache_mb, 1),
            "load_from_cache_s": round(load_s, 3),
            "built_fresh": not loaded,
        }
        print("D1", json.dumps(report["D1_index"]), flush=True)

        index_dir = build_wiki_index(tmp, 1000)
        # G3's raw-retrieval bound is not needed here (both arms would pay it): skip it
        generation.raw_retrieval_seconds = lambda *a: 0.0
        evalset = f"curation.decontaminate=[{{name: synthetic, path: {tmp / 'eval.jsonl'}, id_field: id}}]"
        extra = {"without": (), "with": (evalset, f"curation.cache_dir={tmp / 'cache'}")}
        runs: dict[str, list[dict]] = {"without": [], "with": []}
        for i in range(args.pairs):
            for mode in ("without", "with") if i % 2 == 0 else ("with", "without"):
                runs[mode].append(bench_generate(f"G3-{mode}-{i}", tmp, index_dir, 1000, 64, 0.2, extra[mode]))
                for f in tmp.glob("out-G3-*"):
                    import shutil

                    shutil.rmtree(f)
        med = {m: statistics.median(r["wall_s"] for r in rs) for m, rs in runs.items()}
        cpu = {m: statistics.median(r["client_cpu_s"] for r in rs) for m, rs in runs.items()}
        report["D2_generate"] = {
            "walls_s": {m: [r["wall_s"] for r in rs] for m, rs in runs.items()},
            "pipeline_s": {m: [r["pipeline_s"] for r in rs] for m, rs in runs.items()},
            "median_wall_s": med,
            "median_slowdown": round(med["with"] / med["without"] - 1, 4),
            "client_cpu_s": {m: [r["client_cpu_s"] for r in rs] for m, rs in runs.items()},
            "median_client_cpu_growth": round(cpu["with"] / cpu["without"] - 1, 4),
            "accepted": {m: [r["accepted"] for r in rs] for m, rs in runs.items()},
            "load_avg_1m_end": {m: [r["load_avg_1m_end"] for r in rs] for m, rs in runs.items()},
        }
        print("D2", json.dumps(report["D2_generate"]), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"report: {args.json}")


if __name__ == "__main__":
    main()
