"""`backend: {type: llama_cpp, model_path: model.gguf}`: a local GGUF model in this process, through
llama-cpp-python, for scoring on CPU (RA-DIT `radit lsr`, source necessity).

Why in process: llama-cpp-python's server builds `top_logprobs` for every echoed prompt token by
sorting the whole vocabulary in Python (about 1 s per token for Gemma 3's 262k vocabulary on two
cores), so one LSR query at k=3 took minutes and ran past client timeouts; upstream llama.cpp's
server returns no prompt log-probabilities with echo at all. Here one forward pass keeps every
position's logits and numpy takes the log-softmax of the target's rows only (bench/lsr.py).

It serves `score` only: generation needs an OpenAI-compatible server or vLLM, and `generate`'s
config does not accept this type.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragloom.errors import ConfigError

from .base import ChatRequest, ChatResult, ScoreRequest, ScoreResult
from .config import LlamaCppBackendConfig


class LocalScorer:
    """log p(target | prefix) from one forward pass over prefix + target with every position's
    logits kept, then a log-softmax over the target's rows in numpy."""

    def __init__(self, model_path: str, *, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        from llama_cpp import Llama

        self.model = str(model_path)
        self._llm = Llama(
            model_path=self.model,
            n_ctx=n_ctx,
            logits_all=True,
            n_threads=n_threads or os.cpu_count() or 1,
            verbose=False,
        )
        self._lock = threading.Lock()

    def n_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode(), add_bos=True, special=False))

    def score_one(self, req: ScoreRequest) -> ScoreResult:
        llm = self._llm
        pre = llm.tokenize(req.prefix.encode(), add_bos=True, special=False)
        full = llm.tokenize((req.prefix + req.target).encode(), add_bos=True, special=False)
        # a target starting with a space may merge with the prefix's last token: then that token is
        # the target's first, as the echoed-logprobs path of the openai backend counts it
        straddles = full[: len(pre)] != pre
        start = len(pre) - 1 if straddles else len(pre)
        # llama.cpp may pad the context it allocates; the token buffer is the size asked for
        limit = min(llm.n_ctx(), len(llm.input_ids))
        if len(full) > limit:
            return ScoreResult(failure="prompt_too_long", detail=f"{len(full)} tokens > n_ctx {limit} (backend.n_ctx)")
        if start >= len(full) or start < 1:
            return ScoreResult(failure="token_alignment", detail="the target has no token of its own")
        with self._lock:
            llm.reset()
            llm.eval(full)
            logits = np.asarray(llm.scores[start - 1 : len(full) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        logz = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        targets = np.asarray(full[start:])
        lps = logits[np.arange(len(targets)), targets] - logz
        toks = [llm.detokenize([t]).decode(errors="replace") for t in full[start:]]
        return ScoreResult(float(lps.sum()), toks, [float(x) for x in lps], straddles)

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return [await asyncio.to_thread(self.score_one, r) for r in requests]

    def close(self) -> None:
        close = getattr(self._llm, "close", None)
        if close is not None:
            close()


class LlamaCppBackend:
    """The Backend protocol over `LocalScorer`: one request at a time (the model is one context)."""

    name = "llama_cpp"
    batch_size = 1
    parallelism = 1

    def __init__(self, cfg: LlamaCppBackendConfig) -> None:
        self.cfg = cfg
        self.model = cfg.model or Path(cfg.model_path).stem
        self.context_length: int | None = cfg.n_ctx
        self._scorer: LocalScorer | None = None
        self._loading = asyncio.Lock()

    async def _load(self) -> LocalScorer:
        async with self._loading:
            if self._scorer is None:
                path = Path(self.cfg.model_path).expanduser()
                if not path.is_file():
                    raise ConfigError(f"backend.model_path: {path} is not a file; give the path of a GGUF model")
                try:
                    import llama_cpp  # noqa: F401
                except ImportError:
                    raise ConfigError(
                        "backend.type llama_cpp needs llama-cpp-python: pip install 'ragloom[llama-cpp]'"
                    ) from None
                try:
                    self._scorer = await asyncio.to_thread(
                        LocalScorer, str(path), n_ctx=self.cfg.n_ctx, n_threads=self.cfg.n_threads
                    )
                except (ValueError, RuntimeError, OSError) as e:
                    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                    raise ConfigError(f"backend.model_path: llama.cpp could not load {path}: {msg}") from None
            return self._scorer

    async def preflight(self) -> None:
        await self._load()

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        scorer = await self._load()
        return await scorer.score(requests)

    async def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        raise ConfigError(
            "backend.type llama_cpp scores only (radit lsr, quality.necessity); "
            "generation needs backend.type openai (a server) or vllm"
        )

    async def aclose(self) -> None:
        if self._scorer is not None:
            await asyncio.to_thread(self._scorer.close)
            self._scorer = None

    def describe(self) -> dict[str, Any]:
        return {"type": "llama_cpp", "model": self.model, "n_ctx": self.cfg.n_ctx}
