"""CPU cost of the quality gate per 1,000 records, against the raw encoder in the same run.

    python bench/quality.py [--records 300] [--json bench/results/quality.json]

Records are built from the Wikipedia summaries the tests use: a source summary, a two-sentence
answer, and nine distractor candidates from other summaries (the pipeline's batch of 64 records
at a time). Measured: the conformance check (`ConformanceChecker.check`), the leak screen
(`LeakScreen.prefetch` + one screen call per candidate), and the raw encoder embedding every
sentence of the same records, which is what a check without gating or caching would cost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300)
    ap.add_argument("--json")
    args = ap.parse_args()
    from conftest import wiki_summaries
    from ragloom.generator.quality.conformance import CheckInput, ConformanceChecker
    from ragloom.generator.quality.leaks import LeakScreen
    from ragloom.generator.quality.spans import split_sentences
    from ragloom.retrieval import Encoder, Passage

    rng = random.Random(0)
    data = [v for v in wiki_summaries().values() if v["extract"]]
    rng.shuffle(data)
    passages = [Passage(f"w{i}", d["title"], d["extract"]) for i, d in enumerate(data)]
    records = []
    for i in range(args.records):
        src = passages[i]
        answer = " ".join(split_sentences(passages[i + args.records].text)[:2])
        cands = rng.sample(passages[2 * args.records :], 9)
        records.append((CheckInput(f"Tell me about {src.title}.", answer, [src], "single_doc_answer"), cands))

    enc = Encoder()
    enc.encode_passages(["warm up"])
    every = [s for it, cands in records for p in [*it.sources, *cands] for s in split_sentences(p.text)]
    every += [s for it, _ in records for s in split_sentences(it.answer)]
    t = time.process_time()
    enc.encode_passages(list(dict.fromkeys(every)))
    raw = time.process_time() - t

    checker = ConformanceChecker(enc)
    screen = LeakScreen(checker)
    conf = leak = 0.0
    fired = 0
    for start in range(0, len(records), 64):
        batch = records[start : start + 64]
        t = time.process_time()
        checker.check([it for it, _ in batch])
        conf += time.process_time() - t
        t = time.process_time()
        screen.prefetch(
            [(it.answer, p) for it, cands in batch for p in cands], [(it.question, it.answer) for it, _ in batch]
        )
        for it, cands in batch:
            s = screen.screen_for(question=it.question, answer=it.answer, paradigm=it.paradigm, sources=it.sources)
            fired += sum(s(p) is not None for p in cands)
        leak += time.process_time() - t
    per = 1000 / len(records)
    out = {
        "records": len(records),
        "cpu_s_per_1000": {"conformance": conf * per, "leak_screen": leak * per, "raw_encode_all_sentences": raw * per},
        "sentences_per_record_raw": len(set(every)) / len(records),
        "candidates_screened_out": fired,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
