"""Ray overhead: `ragloom generate` single-process against Ray with 1 and 2 workers, same run.

    python bench/ray.py [--jobs 1000] [--json bench/results/ray.json]

1,000 jobs (five paradigms, real MiniLM encoder, prebuilt flat index of 2,000 Wikipedia
summaries) against tests/fake_openai.py in its own process at 200 ms latency, 64 requests in
flight in total (Ray: backend.concurrency = 64 / workers per worker). Reported per run:
wall / ideal, where ideal = requests the server counted x latency / 64, for the whole command
and for the generation alone (single process: the pipeline; Ray: the driver's shard loop,
without Ray's start-up); Ray's start-up seconds (ray.init, then actors loading encoder,
index and backend). On a 2-core box the goal is overhead, not speed-up: Ray with 2 workers
within 1.25 x the single-process wall, start-up excluded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# this file is named ray.py: its folder must not shadow the `ray` package (nor reach Ray's workers)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]


def _load(name: str, as_name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(as_name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules[as_name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_load("memory", "memory")  # what bench/generation.py imports
_generation = _load("generation", "bench_generation")
Server, build_wiki_index = _generation.Server, _generation.build_wiki_index

LATENCY, IN_FLIGHT = 0.2, 64


def _config(index_dir: Path, out: Path, base_url: str, jobs: int, workers: int | None):  # type: ignore[no-untyped-def]
    from ragloom.generator.config import load_config

    sets = [
        f"index={index_dir}",
        f"count={jobs}",
        f"output={out}",
        "backend.type=openai",
        f"backend.base_url={base_url}",
        "backend.model=fake",
        "backend.api_key_env=null",
        f"backend.concurrency={IN_FLIGHT // (workers or 1)}",
        "quality.conformance=false",  # as bench/generation.py: this measures scheduling, not the gate
    ]
    if workers:
        sets += ["execution.engine=ray", f"execution.workers={workers}"]
    return load_config(None, sets)


def run_once(name: str, tmp: Path, index_dir: Path, jobs: int, workers: int | None) -> dict:
    import ragloom.generator.ray_exec as rx
    import ragloom.generator.run as run_mod

    seen: dict = {}
    real_pipeline, real_drive = run_mod.Pipeline, rx.Driver.run

    class Spy(real_pipeline):  # type: ignore[valid-type,misc]
        def __init__(self, *a, **kw) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*a, **kw)
            seen["stats"] = self.stats

    def timed_drive(self, display) -> None:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            real_drive(self, display)
        finally:
            seen["generation_s"] = time.perf_counter() - t

    run_mod.Pipeline = Spy  # type: ignore[misc]
    rx.Driver.run = timed_drive  # type: ignore[method-assign]
    try:
        with Server(latency=LATENCY) as srv:
            cfg = _config(index_dir, tmp / f"out-{name}", srv.base_url, jobs, workers)
            t = time.perf_counter()
            rc = rx.run_ray_generate(cfg, quiet=True) if workers else run_mod.run_generate(cfg, quiet=True)
            wall = time.perf_counter() - t
            requests = sum(srv.stats()["counts"].values())
    finally:
        run_mod.Pipeline, rx.Driver.run = real_pipeline, real_drive  # type: ignore[misc,method-assign]
    gen = seen["generation_s"] if workers else seen["stats"].pipeline_seconds
    ideal = requests * LATENCY / IN_FLIGHT
    out = tmp / f"out-{name}"
    lines = sum(
        len((out / f).read_text().splitlines()) for f in ("examples.jsonl", "failed.jsonl") if (out / f).exists()
    )
    res = {
        "workers": workers or 0,
        "exit_code": rc,
        "jobs_written": lines,
        "llm_requests": requests,
        "ideal_s": round(ideal, 2),
        "wall_s": round(wall, 2),
        "generation_s": round(gen, 2),
        "wall_over_ideal": round(wall / ideal, 3),
        "generation_over_ideal": round(gen / ideal, 3),
        "startup_and_merge_s": round(wall - gen, 2),
    }
    print(name, json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        index_dir = build_wiki_index(tmp, 2000)
        report: dict = {"cores": os.cpu_count(), "latency_s": LATENCY, "in_flight_total": IN_FLIGHT}
        report["single_process"] = run_once("single", tmp, index_dir, a.jobs, None)
        import ray

        t = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        report["ray_init_s"] = round(time.perf_counter() - t, 2)
        print("ray.init", report["ray_init_s"], "s", flush=True)
        for w in (1, 2):
            report[f"ray_{w}_workers"] = run_once(f"ray-{w}", tmp, index_dir, a.jobs, w)
        ray.shutdown()
        single = report["single_process"]["generation_s"]
        report["ray_2_over_single_generation"] = round(report["ray_2_workers"]["generation_s"] / single, 3)
        print("ray 2 workers / single process (start-up excluded):", report["ray_2_over_single_generation"])
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
