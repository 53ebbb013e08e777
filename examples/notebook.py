"""ragloom as a library, the way a notebook uses it (run as a script, or paste the cells into Jupyter).

    python examples/notebook.py [--workdir notebook-demo]

It serves the test suite's fake OpenAI-compatible server on 127.0.0.1 (so it needs no model and no
key; point `backend` at a real server for real data), builds a small index of Wikipedia summaries,
then calls `ragloom.generate` and, inside a running event loop as Jupyter cells are,
`await ragloom.agenerate`. Both hand back a `datasets.Dataset`.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the fake server lives with the tests

from fake_openai import FakeServer, Faults  # noqa: E402

import ragloom  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", default="notebook-demo")
    ap.add_argument("--passages", type=int, default=300)
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(exist_ok=True)
    corpus = work / "wiki.jsonl"
    if not corpus.exists():
        subprocess.run(
            [sys.executable, str(HERE / "prepare_wiki.py"), str(corpus), "--limit", str(args.passages)], check=True
        )

    # cell 1: an index (a second call with the same directory just opens it)
    idx = work / "index"
    index = ragloom.Index(idx) if (idx / "manifest.json").exists() else ragloom.build_index(corpus, idx)
    print(
        f"index: {len(index)} passages; top hit for 'Who painted the Mona Lisa?':",
        index.search(["Who painted the Mona Lisa?"], k=1)[0][0].passage.title,
    )

    with FakeServer(Faults(latency=0.01)) as server:
        config = {
            "index": str(idx),
            "count": 10,
            "output": str(work / "out"),
            "backend": {"type": "openai", "base_url": server.base_url, "model": "fake", "api_key_env": None},
        }
        # cell 2: blocking call, from plain code or a notebook
        ds = ragloom.generate(config, progress=False)
        print(f"generate -> {type(ds).__name__} with {len(ds)} rows; columns {ds.column_names}")

        # cell 3: inside a running event loop (what `await` in a Jupyter cell runs in)
        async def cell() -> object:
            return await ragloom.agenerate({**config, "count": 12, "output": str(work / "out-async")}, progress=False)

        more = asyncio.run(cell())
        print(f"agenerate -> {type(more).__name__} with {len(more)} rows")
    print(ds[0]["instruction"], "->", ds[0]["answer"])


if __name__ == "__main__":
    main()
