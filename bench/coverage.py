"""Coverage of the corpus by source strategy (issue 28), and what planning costs at scale.

    python bench/coverage.py wiki  [--jobs 1000] [--passages 5000] [--work DIR] [--json PATH]
    python bench/coverage.py scale [--jobs 100000] [--passages 1000000] [--work DIR] [--json PATH]

`wiki`: one run of `--jobs` jobs per strategy over a `--passages` Wikipedia index (the summaries the
tests use, built as tests/conftest.py builds them) against tests/fake_openai.py in its `conforming`
mode (pairs that relate to their documents as the paradigm asks), with the paradigm check and
dedup on: today's default (`exemplar`), `exemplar` with `max_reuse: 2`, and `corpus`. Reported per
run: distinct source passages, share of the corpus, max and mean reuse, duplicate-instruction
rejections (the fake server's question is a function of the first source document, so a reused
first source is a duplicate question, as with a real model that sees the same passage), the
paradigm check's pass rate, and wall time against the default in the same process.

`scale`: a synthetic ivf-pq index of `--passages` random clustered unit vectors (dimension 384, the
default encoder's, so the real encoder embeds the exemplars) over short random-word passages,
built through `build_index(embeddings=...)`; then `plan_jobs` for `--jobs` jobs with
`sources.strategy: corpus` in a fresh process: wall time, peak RSS, and RSS before planning.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

STRATEGIES = {
    "exemplar (default)": [],
    "exemplar max_reuse 2": ["sources.max_reuse=2"],
    "corpus": ["sources.strategy=corpus"],
}


def wiki_index(work: Path, n: int) -> Path:
    from conftest import write_wiki_jsonl
    from ragloom.retrieval import CorpusSpec, build_index

    out = work / f"wiki{n}"
    if not (out / "manifest.json").exists():
        write_wiki_jsonl(work / f"wiki{n}.jsonl", n)
        build_index(CorpusSpec(str(work / f"wiki{n}.jsonl")), out)
    return out


def one_run(name: str, index: Path, jobs: int, work: Path, base_url: str, extra: list[str]) -> dict:
    from ragloom.generator.config import load_config
    from ragloom.generator.publish import coverage
    from ragloom.generator.run import execute

    out = work / ("out-" + name.replace(" ", "-").replace("(", "").replace(")", ""))
    cfg = load_config(
        None,
        [
            f"index={index}",
            f"count={jobs}",
            f"output={out}",
            "backend.type=openai",
            f"backend.base_url={base_url}",
            "backend.model=fake",
            "backend.api_key_env=null",
            "backend.concurrency=32",
            "quality.conformance=true",
            "curation.dedup.enabled=true",
            *extra,
        ],
    )
    t = time.perf_counter()
    result = execute(cfg, progress=False, report=False, overwrite=True)
    wall = time.perf_counter() - t
    st = result.stats
    run = json.loads((out / "run.json").read_text())
    cov = coverage.of_file(out / "examples.jsonl", coverage.corpus_size(run))
    failed = (
        [json.loads(x) for x in (out / "failed.jsonl").read_text().splitlines()]
        if (out / "failed.jsonl").exists()
        else []
    )
    records = [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines()]
    checked_ok = sum(bool((r.get("quality") or {}).get("ok")) for r in records)
    mismatch = st.rejected.get("paradigm_mismatch", 0)
    return {
        "strategy": name,
        "records": len(records),
        "failed": len(failed),
        "distinct_sources": cov.distinct,
        "corpus_share": round(cov.share or 0, 4),
        "max_reuse": cov.max_reuse,
        "mean_reuse": round(cov.mean_reuse, 3),
        "duplicate_rejections": sum(v for k, v in st.rejected.items() if "duplicate" in k),
        "duplicate_failed": sum(f["reason"] == "duplicate_instruction" for f in failed),
        "paradigm_check_pass_rate": round(checked_ok / max(checked_ok + mismatch, 1), 4),
        "source_reuse_exceeded": (run.get("sources") or {}).get("source_reuse_exceeded", 0),
        "wall_s": round(wall, 1),
    }


def bench_wiki(args: argparse.Namespace) -> dict:
    from generation import Server

    index = wiki_index(args.work, args.passages)
    rows = []
    with Server(latency=0.05, conforming=1) as srv:
        for name, extra in STRATEGIES.items():
            rows.append(one_run(name, index, args.jobs, args.work, srv.base_url, extra))
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["wall_s"]
    for r in rows:
        r["wall_vs_default"] = round(r["wall_s"] / base, 3)
    return {"jobs": args.jobs, "passages": args.passages, "runs": rows, "load": os.getloadavg()}


def synthetic_index(work: Path, n: int, dim: int = 384) -> Path:
    """n passages of random words and clustered unit vectors, as an ivf-pq ragloom index."""
    import numpy as np
    from ragloom.retrieval import CorpusSpec, IndexParams, build_index

    out = work / f"synth{n}"
    if (out / "manifest.json").exists():
        return out
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(20000)]
    corpus, npy = work / f"synth{n}.jsonl", work / f"synth{n}.npy"
    centers = rng.standard_normal((4096, dim)).astype(np.float32)
    mat = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=(n, dim))
    with open(corpus, "w") as fh, open(work / f"synth{n}.ids.txt", "w") as ids:
        for start in range(0, n, 100_000):
            m = min(100_000, n - start)
            words = rng.integers(0, len(vocab), size=(m, 40))
            for i in range(m):
                pid = f"p{start + i}"
                text = " ".join(vocab[w] for w in words[i])
                fh.write(json.dumps({"id": pid, "title": f"T{start + i}", "text": text}) + "\n")
                ids.write(pid + "\n")
            v = centers[rng.integers(0, len(centers), m)] + 0.6 * rng.standard_normal((m, dim)).astype(np.float32)
            mat[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    mat.flush()
    del mat
    t = time.perf_counter()
    params = IndexParams(nlist=1024, pq_m=48, pq_bits=8, train_size=50_000, nprobe=16)
    build_index(CorpusSpec(str(corpus)), out, index_type="ivf-pq", params=params, embeddings=str(npy))
    print(f"built {out} in {time.perf_counter() - t:.0f}s", flush=True)
    npy.unlink()
    return out


def plan_only(index: str, jobs: int) -> dict:
    """In its own process: open the index, plan, measure."""
    from memory import rss_mb
    from ragloom.generator.config import load_config
    from ragloom.generator.run import plan_jobs
    from ragloom.retrieval import Index

    cfg = load_config(
        None,
        [
            f"index={index}",
            f"count={jobs}",
            "output=unused",
            "backend.type=openai",
            "backend.model=x",
            "backend.base_url=http://127.0.0.1:9/v1",
            "backend.api_key_env=null",
            "sources.strategy=corpus",
        ],
    )
    idx = Index(index)
    idx.embed_queries(["warm up"])
    before, anon_before = rss_mb(), rss_mb("RssAnon")
    t, cpu = time.perf_counter(), time.process_time()
    info: dict = {}
    planned, _ = plan_jobs(cfg, None, info, index=idx)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    return {
        "jobs": len(planned),
        "passages": len(idx),
        "plan_s": round(wall, 1),
        "plan_cpu_s": round(cpu, 1),  # on a shared box, the CPU time is the figure to compare
        "rss_before_plan_mb": round(before),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        # RSS counts the pages of the memory-mapped store and index the plan read; the heap does not
        "anon_rss_before_plan_mb": round(anon_before),
        "anon_rss_after_plan_mb": round(rss_mb("RssAnon")),
        "sources": info["sources"],
        "multi_doc_jobs": sum(j.n_sources > 1 for j in planned),
    }


def bench_scale(args: argparse.Namespace) -> dict:
    index = synthetic_index(args.work, args.passages)
    cmd = [sys.executable, __file__, "plan-only", "--index", str(index), "--jobs", str(args.jobs)]
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    res["load"] = os.getloadavg()
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["wiki", "scale", "plan-only"])
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--passages", type=int)
    ap.add_argument("--index")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ragloom-bench-coverage"))
    ap.add_argument("--json")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.part == "plan-only":
        print(json.dumps(plan_only(args.index, args.jobs)))
        return
    if args.part == "wiki":
        args.jobs, args.passages = args.jobs or 1000, args.passages or 5000
        res = bench_wiki(args)
    else:
        args.jobs, args.passages = args.jobs or 100_000, args.passages or 1_000_000
        res = bench_scale(args)
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
