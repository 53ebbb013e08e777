"""`openai` backend: any OpenAI-compatible server through AsyncOpenAI.

Retries (tenacity, exponential backoff with jitter, Retry-After honoured) cover 429, 5xx,
timeouts and dropped connections only. 400/401/403/404 stop the run with a message that
says what to fix. The API key is read from the environment and never written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from ragloom.errors import BackendError, ConfigError

from ..config import OpenAIBackendConfig
from ..scoring import AlignmentError, target_tokens
from .base import ChatRequest, ChatResult, ScoreRequest, ScoreResult

_RETRYABLE = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)
# a 200 whose body is empty or not the API's shape: a server glitch, retried like a 5xx
_GARBLED = (json.JSONDecodeError, openai.APIResponseValidationError)
_MODES = ["json_schema", "json_object", "off"]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _GARBLED):
        return "invalid_response"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error"
    if isinstance(exc, openai.APIStatusError):
        return f"http_{exc.status_code}"
    return type(exc).__name__


class _WaitRetryAfter:
    """Wait what the server's Retry-After says; otherwise exponential backoff with jitter."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.fallback = wait_random_exponential(multiplier=0.5, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        if header:
            try:
                return min(float(header), self.cap)
            except ValueError:
                pass
        return float(self.fallback(state))


class OpenAIBackend:
    name = "openai"
    batch_size = 1

    def __init__(self, cfg: OpenAIBackendConfig) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.parallelism = cfg.concurrency
        key = None
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise ConfigError(
                    f"backend.api_key_env: environment variable {cfg.api_key_env} is not set; export it, or set "
                    "backend.api_key_env to null for a local server that needs no key"
                )
        self._secret = key
        # the SDK's aiohttp transport keeps up at hundreds of requests in flight where the
        # default httpx pool spends its time reassigning connections (bench/generation.py G1)
        http_client = openai.DefaultAioHttpClient(timeout=cfg.timeout) if cfg.http_client == "aiohttp" else None
        self._client = openai.AsyncOpenAI(
            api_key=key or "no-key",
            base_url=cfg.base_url,
            timeout=cfg.timeout,
            max_retries=0,
            http_client=http_client,
        )
        self._semaphore = asyncio.Semaphore(cfg.concurrency)
        self._mode: str = "json_schema" if cfg.structured_output == "auto" else cfg.structured_output
        self.where = cfg.base_url or "https://api.openai.com/v1"

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "model": self.model, "base_url": self.where, "structured_output": self._mode}

    async def aclose(self) -> None:
        await self._client.close()

    async def preflight(self) -> None:
        """Fail before any work when the server is unreachable, refuses the key, or lacks the model.

        GET /models, once: a server without that endpoint (404) or one that answers oddly is let
        through; generation itself will then report what goes wrong."""
        # its own short-lived client: preflight runs before the run's event loop exists
        client = openai.AsyncOpenAI(
            api_key=self._secret or "no-key",
            base_url=self.cfg.base_url,
            timeout=min(self.cfg.timeout, 15.0),
            max_retries=0,
        )
        try:
            page = await client.models.list()
        except openai.APIConnectionError as e:
            cause = self._scrub(str(e.__cause__ or e).splitlines()[0]) if (e.__cause__ or str(e)) else ""
            raise BackendError(
                f"cannot reach {self.where} ({cause or 'connection failed'}); is the server running and "
                "backend.base_url right?"
            ) from None
        except openai.APIStatusError as e:
            if e.status_code in (401, 403):
                raise BackendError(self._fatal_message(e)) from None
            return
        except (openai.APITimeoutError, *_GARBLED):
            return
        finally:
            await client.close()
        ids = [m.id for m in getattr(page, "data", None) or []]
        if ids and self.model not in ids:
            shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
            raise BackendError(f"{self.where} has no model {self.model!r} (it serves: {shown}); check backend.model")

    async def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def _kwargs(self, req: ChatRequest) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "model": self.model,
            "messages": req.messages,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
        }
        if req.seed is not None:
            kw["seed"] = req.seed
        if req.json_schema is not None and self._mode == "json_schema":
            kw["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "pair", "schema": req.json_schema, "strict": True},
            }
        elif req.json_schema is not None and self._mode == "json_object":
            # llama.cpp, Ollama and others constrain json_object output to a schema given here.
            kw["response_format"] = {"type": "json_object", "schema": req.json_schema}
        if self.cfg.extra_body:
            kw["extra_body"] = self.cfg.extra_body
        return kw

    async def _one(self, req: ChatRequest) -> ChatResult:
        result = ChatResult()
        while True:
            mode = self._mode
            try:
                resp = await self._with_retries(
                    lambda: self._client.chat.completions.create(**self._kwargs(req)), result
                )
            except openai.APIStatusError as e:
                if self._rejects_structured_output(e, mode):
                    continue
                if isinstance(e, _RETRYABLE):
                    result.error = _reason(e)
                    return result
                raise BackendError(self._fatal_message(e)) from None
            except (openai.APITimeoutError, openai.APIConnectionError, *_GARBLED) as e:
                result.error = _reason(e)
                return result
            break
        choice = resp.choices[0] if resp.choices else None
        result.text = (choice.message.content or "") if choice and choice.message else ""
        result.finish_reason = choice.finish_reason if choice else None
        if resp.usage:
            result.prompt_tokens = resp.usage.prompt_tokens or 0
            result.completion_tokens = resp.usage.completion_tokens or 0
        if not result.text:
            result.error = "empty_response"
        return result

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return list(await asyncio.gather(*(self._score_one(r) for r in requests)))

    async def _score_one(self, req: ScoreRequest) -> ScoreResult:
        """log p(target | prefix) from the completions endpoint with `echo` and `logprobs`.

        max_tokens is 1, not 0: llama.cpp's server reads 0 as "until the context is full".
        The one generated token lies after the target and is left out.
        """
        result = ScoreResult()
        kw: dict[str, Any] = {
            "model": self.model,
            "prompt": req.prefix + req.target,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 1,
            "temperature": 0.0,
        }
        if self.cfg.extra_body:
            kw["extra_body"] = self.cfg.extra_body
        try:
            resp = await self._with_retries(lambda: self._client.completions.create(**kw), result)
        except openai.APIStatusError as e:
            if isinstance(e, _RETRYABLE):
                result.error = _reason(e)
                return result
            raise BackendError(self._fatal_message(e, scoring=True)) from None
        except (openai.APITimeoutError, openai.APIConnectionError, *_GARBLED) as e:
            result.error = _reason(e)
            return result
        choice = resp.choices[0] if resp.choices else None
        lp = choice.logprobs if choice else None
        if lp is None or not lp.tokens or lp.token_logprobs is None:
            result.error = "no_logprobs"
            return result
        try:
            toks, lps, straddles = target_tokens(lp.tokens, lp.token_logprobs, lp.text_offset, req.prefix, req.target)
        except AlignmentError:
            result.error = "token_alignment"
            return result
        result.tokens, result.token_logprobs, result.straddles = toks, lps, straddles
        result.logprob = sum(lps)
        return result

    async def _with_retries(self, call: Callable[[], Awaitable[Any]], result: ChatResult | ScoreResult) -> Any:
        def log_retry(state: RetryCallState) -> None:
            result.retries += 1
            if state.outcome and state.outcome.exception():
                result.retry_reasons.append(_reason(state.outcome.exception()))  # type: ignore[arg-type]

        retrying = AsyncRetrying(
            retry=retry_if_exception(
                lambda e: isinstance(e, _GARBLED) or (isinstance(e, _RETRYABLE) and not self._is_format_rejection(e))
            ),
            wait=_WaitRetryAfter(self.cfg.max_retry_wait),
            stop=stop_after_attempt(self.cfg.max_retries + 1),
            before_sleep=log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                # the slot is held per attempt, not across the backoff: a request sleeping out a
                # Retry-After does not keep another from using the server
                async with self._semaphore:
                    return await call()
        raise AssertionError("unreachable")

    def _is_format_rejection(self, e: BaseException) -> bool:
        if self.cfg.structured_output != "auto" or self._mode == "off" or not isinstance(e, openai.APIStatusError):
            return False
        text = str(getattr(e, "body", None) or e.message).lower()
        return e.status_code in (400, 422, 500, 501) and ("response_format" in text or "json_schema" in text)

    def _rejects_structured_output(self, e: openai.APIStatusError, mode: str) -> bool:
        """In `auto` mode, step down json_schema -> json_object -> off once per rejection."""
        if not self._is_format_rejection(e):
            return False
        if self._mode == mode:
            self._mode = _MODES[_MODES.index(mode) + 1]
        return True

    def _fatal_message(self, e: openai.APIStatusError, *, scoring: bool = False) -> str:
        detail = self._scrub(str(e.message).splitlines()[0] if e.message else "")
        where = self.where
        if scoring and e.status_code in (400, 404, 422) and "model" not in detail.lower():
            return (
                f"{where} cannot score text ({e.status_code}: {detail}); LM scoring needs the completions endpoint "
                "with echo and logprobs (vLLM serve and llama.cpp's server have it; OpenAI's chat models do not)"
            )
        if e.status_code == 401:
            return (
                f"{where} rejected the API key (401); check the key in ${self.cfg.api_key_env}"
                if self.cfg.api_key_env
                else f"{where} needs an API key (401); set backend.api_key_env"
            )
        if e.status_code == 403:
            return f"{where} refused access to model {self.model!r} (403): {detail}"
        if e.status_code == 404:
            return (
                f"{where} has no model {self.model!r} (404); check backend.model and backend.base_url (see GET /models)"
            )
        return f"{where} rejected the request ({e.status_code}): {detail}; check backend and sampling settings"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text
