"""Share of rank-band candidates the leak screen removes in a `generate` run.

    python bench/leak_share.py [--count 200] [--json bench/results/leak_share.json] [--label after]
    python bench/leak_share.py --set quality.leak_tie_spans=0 --label no-span-tie   # a rule off

A real `ragloom generate` against tests/fake_openai.py (`--conforming 1`: pairs grounded in their
documents, answers of RAG-Instruct's length, all five paradigms) over the index of
bench/leak_fixture.py (3,345 Wikipedia summaries, default rank band [200, 250), 10 documents per
record). From run.json: the candidates screened out (`distractor_leak_<check>`) against those the
draw kept (`distractor_rule_*`). Run it once on the code before issue 25 and once after (`--label`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from generation import Server  # noqa: E402
from leak_fixture import open_index  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--label", default="run")
    ap.add_argument("--index-dir", default=os.path.expanduser("~/.cache/ragloom/leak-fixture-index"))
    ap.add_argument("--json")
    ap.add_argument("--set", action="append", default=[], help="a config override, e.g. quality.leak_tie_spans=0")
    args = ap.parse_args()
    from ragloom.generator.config import load_config
    from ragloom.generator.run import execute

    index_dir = Path(args.index_dir)
    open_index(index_dir)  # built once
    with tempfile.TemporaryDirectory() as tmp, Server(conforming=1) as srv:
        cfg = load_config(
            None,
            [
                f"index={index_dir}",
                f"count={args.count}",
                f"output={Path(tmp) / 'out'}",
                "backend.type=openai",
                f"backend.base_url={srv.base_url}",
                "backend.model=fake",
                "backend.api_key_env=null",
                "quality.conformance=false",
                "curation.dedup.enabled=false",
                *args.set,
            ],
        )
        execute(cfg, progress=False, report=False)
        counts = json.loads((Path(tmp) / "out" / "run.json").read_text())["stats"]["counts"]
    removed = {k.removeprefix("distractor_leak_"): v for k, v in counts.items() if k.startswith("distractor_leak_")}
    kept = sum(v for k, v in counts.items() if k.startswith("distractor_rule_"))
    total = kept + sum(removed.values())
    out = {
        "label": args.label,
        "jobs": args.count,
        "distractors_kept": kept,
        "removed_by_check": removed,
        "share_removed": round(sum(removed.values()) / total, 4) if total else None,
        "loadavg": os.getloadavg(),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        path = Path(args.json)
        prior = json.loads(path.read_text()) if path.exists() else {}
        prior[args.label] = out
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(prior, indent=2) + "\n")


if __name__ == "__main__":
    main()
