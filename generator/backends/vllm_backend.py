"""`vllm` backend: in-process `vllm.LLM` (offline batching), written against vLLM 0.33.0.

- generation: `LLM.chat(list_of_conversations, sampling_params=[SamplingParams, ...], use_tqdm=False)`
  with `SamplingParams(structured_outputs=StructuredOutputsParams(json=schema))` for JSON output;
- scoring (RA-DIT LSR): `LLM.generate(prompts, SamplingParams(max_tokens=1, prompt_logprobs=0))`,
  reading `RequestOutput.prompt_logprobs[i][prompt_token_ids[i]].logprob` for the target's tokens.

vLLM is imported lazily, so ragloom installs and runs without it. The engine runs in a worker
thread so the event loop (checkpoint writes, retrieval) keeps going while it generates.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ragloom.errors import BackendError, MissingDependencyError

from .base import ChatRequest, ChatResult, ScoreRequest, ScoreResult
from .config import VLLMBackendConfig
from .scoring import AlignmentError, target_tokens

T = TypeVar("T")


def _import_vllm() -> Any:
    try:
        import vllm
        from vllm import SamplingParams  # noqa: F401  (fails early when vLLM is half-installed)
    except ImportError as e:
        raise MissingDependencyError(
            f"backend.type vllm needs vLLM ({e.name or e}): pip install 'ragloom[vllm]' on a machine with a CUDA GPU, "
            "or use backend.type openai with a `vllm serve` endpoint"
        ) from None
    return vllm


class VLLMBackend:
    name = "vllm"
    parallelism = 1  # one batch at a time; the engine batches and schedules internally

    def __init__(self, cfg: VLLMBackendConfig) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.batch_size = cfg.batch_size
        self._vllm = _import_vllm()
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        self._SamplingParams = SamplingParams
        self._StructuredOutputsParams = StructuredOutputsParams
        kwargs: dict[str, Any] = {
            "tensor_parallel_size": cfg.tensor_parallel_size,
            "gpu_memory_utilization": cfg.gpu_memory_utilization,
            "dtype": cfg.dtype,
            **cfg.engine_kwargs,
        }
        if cfg.max_model_len is not None:
            kwargs["max_model_len"] = cfg.max_model_len
        try:
            self._llm = self._vllm.LLM(model=cfg.model, **kwargs)
        except (ValueError, OSError, RuntimeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise BackendError(f"vLLM could not load {cfg.model!r}: {first}") from None
        self._tokenizer: Any = None
        self.context_length: int | None = cfg.max_model_len

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "vllm",
            "model": self.model,
            "tensor_parallel_size": self.cfg.tensor_parallel_size,
            "structured_output": self.cfg.structured_output,
        }

    async def aclose(self) -> None:
        return None

    async def preflight(self) -> None:
        return None  # the engine loaded in __init__, or raised there

    def sampling_params(self, req: ChatRequest) -> Any:
        structured = None
        if req.json_schema is not None and self.cfg.structured_output:
            structured = self._StructuredOutputsParams(json=req.json_schema)
        return self._SamplingParams(
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_tokens,
            seed=req.seed,
            structured_outputs=structured,
        )

    async def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        if not requests:
            return []
        return await asyncio.to_thread(self._chat_sync, list(requests))

    def _chat_sync(self, requests: list[ChatRequest]) -> list[ChatResult]:
        def chat(reqs: list[ChatRequest]) -> list[Any]:
            params = [self.sampling_params(r) for r in reqs]
            return self._llm.chat([r.messages for r in reqs], sampling_params=params, use_tqdm=False)

        results = []
        for out in _isolated(chat, requests):
            if out is None:
                detail = "vLLM refused the request (e.g. longer than max_model_len)"
                results.append(ChatResult(failure="request_rejected", detail=detail))
                continue
            comp = out.outputs[0] if out.outputs else None
            res = ChatResult(
                text=comp.text if comp else "",
                prompt_tokens=len(out.prompt_token_ids or ()),
                completion_tokens=len(comp.token_ids) if comp else 0,
                finish_reason=comp.finish_reason if comp else None,
            )
            results.append(res)  # an empty text is rejected and asked again by the pipeline
        return results

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        if not requests:
            return []
        return await asyncio.to_thread(self._score_sync, list(requests))

    def _score_sync(self, requests: list[ScoreRequest]) -> list[ScoreResult]:
        params = self._SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        outputs = _isolated(
            lambda reqs: self._llm.generate([r.prefix + r.target for r in reqs], params, use_tqdm=False), requests
        )
        return [
            ScoreResult(failure="request_rejected") if out is None else self._read_score(req, out)
            for req, out in zip(requests, outputs, strict=True)
        ]

    def _read_score(self, req: ScoreRequest, out: Any) -> ScoreResult:
        res = ScoreResult()
        ids = list(out.prompt_token_ids or ())
        plp = out.prompt_logprobs
        if not ids or plp is None:
            res.failure = "no_logprobs"
            return res
        full = req.prefix + req.target
        texts, offsets = self._token_spans(full, ids)
        lps: list[float | None] = []
        for i, tid in enumerate(ids):
            pos = plp[i]
            lps.append(pos[tid].logprob if pos and tid in pos else None)
        try:
            res.tokens, res.token_logprobs, res.straddles = target_tokens(texts, lps, offsets, req.prefix, req.target)
        except AlignmentError:
            res.failure = "token_alignment"
            return res
        res.logprob = sum(res.token_logprobs)
        return res

    def _token_spans(self, full: str, ids: list[int]) -> tuple[list[str], list[int]]:
        """Each prompt token's text and start offset: from the fast tokenizer's offset mapping
        when it reproduces vLLM's ids, else by decoding growing prefixes."""
        if self._tokenizer is None:
            self._tokenizer = self._llm.get_tokenizer()
        tok = self._tokenizer
        try:
            enc = tok(full, return_offsets_mapping=True)
            if list(enc["input_ids"]) == ids:
                spans: list[tuple[int, int]] = []
                for a, b in enc["offset_mapping"]:
                    if a == b and spans:  # a special token (BOS/EOS/SEP): zero width where it stands
                        a = b = spans[-1][1]
                    spans.append((a, b))
                return [full[a:b] for a, b in spans], [a for a, _ in spans]
        except (TypeError, ValueError, NotImplementedError, KeyError):
            pass
        starts = [len(tok.decode(ids[:i], skip_special_tokens=True)) for i in range(len(ids) + 1)]
        return [full[a:b] for a, b in itertools.pairwise(starts)], starts[:-1]


def _isolated(call: Callable[[list[T]], Sequence[Any]], items: list[T]) -> list[Any]:
    """`call(items)`'s outputs in order. vLLM refuses a whole batch with ValueError when one request
    is bad (a prompt longer than max_model_len): the batch is then split until the bad one stands
    alone, and its place holds None, so it fails by itself and the others are answered."""
    try:
        return list(call(items))
    except ValueError:
        if len(items) == 1:
            return [None]
        return [out for it in items for out in _isolated(call, [it])]
