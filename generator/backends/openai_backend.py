"""`openai` backend: any OpenAI-compatible server (OpenAI, vLLM serve, SGLang, TGI, Ollama, llama.cpp).

Errors are classified where they arise (generator/runs/stats.py):
- transport (429, 5xx, timeouts, dropped connections, garbled 200s): retried with backoff; when the
  retries run out the job stays unfinished (`ChatResult.error`) and a rerun resumes it;
- this request refused (any other 4xx, e.g. a prompt over the context length): the job fails with a
  reason code (`ChatResult.failure`: prompt_too_long, request_rejected_400) and the run goes on;
- every request refused (401 key, 403 access, 404 model or endpoint): `BackendError` stops the run.
With `structured_output: auto` a rejected response_format steps down json_schema -> json_object -> off;
each rejection is judged against the mode its request was sent with, so concurrent requests that were
all sent before the first step-down are all re-sent, never fatal.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from typing import Any

from ragloom.errors import BackendError, ConfigError

from .base import ChatRequest, ChatResult, ScoreRequest, ScoreResult
from .config import OpenAIBackendConfig
from .retry import Slots, with_retries
from .scoring import AlignmentError, target_tokens
from .transport import Connection, Garbled, Status, Timeout, Transport, base_url, reason, transient

MODES = ["json_schema", "json_object", "off"]
FATAL = (401, 403, 404)
_TOO_LONG = re.compile(
    r"context length|context window|maximum context|context size|max_model_len|too many tokens|"
    r"prompt is too long|input is too long|reduce the length|exceeds? the (?:available )?context",
    re.IGNORECASE,
)
_CONTEXT_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length", "n_ctx", "n_ctx_train")


def rejection_reason(e: Status) -> str:
    """The job's failure reason for a 4xx about this one request."""
    return "prompt_too_long" if _TOO_LONG.search(f"{e.message} {e.body}") else f"request_rejected_{e.status}"


def context_length(entry: Any) -> int | None:
    """The context length a `/models` entry reports (vLLM max_model_len, llama.cpp meta.n_ctx, ...)."""
    if not isinstance(entry, dict):
        return None
    for where in (entry, entry.get("meta") or {}, entry.get("metadata") or {}):
        for key in _CONTEXT_KEYS:
            v = where.get(key) if isinstance(where, dict) else None
            if isinstance(v, int) and v > 0:
                return v
    return None


def _chat_fields(data: Any) -> tuple[str, str | None, int, int]:
    """(text, finish_reason, prompt_tokens, completion_tokens) of a chat completion body."""
    try:
        choices = data["choices"]
        choice = choices[0] if choices else None
        message = choice.get("message") if choice else None
        text = (message.get("content") or "") if message else ""
        usage = data.get("usage") or {}
        if not isinstance(text, str):
            raise TypeError
        finish = choice.get("finish_reason") if choice else None
        return text, finish, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise Garbled() from None


def _logprob_fields(data: Any) -> tuple[list[Any], list[float | None], list[int] | None] | None:
    """(tokens, token_logprobs, text_offset) of a completions body, None when it has no logprobs."""
    try:
        choices = data["choices"]
        lp = choices[0].get("logprobs") if choices else None
    except (KeyError, TypeError, AttributeError, IndexError):
        raise Garbled() from None
    if not isinstance(lp, dict) or not lp.get("tokens") or lp.get("token_logprobs") is None:
        return None
    return lp["tokens"], lp["token_logprobs"], lp.get("text_offset")


class OpenAIBackend:
    name = "openai"
    batch_size = 1

    def __init__(self, cfg: OpenAIBackendConfig) -> None:
        self.cfg = cfg
        self.model = cfg.model
        # twice as many calls as slots: a call sleeping out a Retry-After or a backoff holds no slot,
        # and a waiting call takes it, so rate limits do not idle the server (G3 with G2's faults:
        # 9.3-9.8 s -> 7.3-7.5 s)
        self.parallelism = 2 * cfg.concurrency
        key = None
        if cfg.api_key_env:
            key = os.environ.get(cfg.api_key_env)
            if not key:
                raise ConfigError(
                    f"backend.api_key_env: environment variable {cfg.api_key_env} is not set; export it, or set "
                    "backend.api_key_env to null for a local server that needs no key"
                )
        self._secret = key
        self._transport = Transport(cfg, key)
        self._slots = Slots(cfg.concurrency)
        self._mode: str = "json_schema" if cfg.structured_output == "auto" else cfg.structured_output
        self.where = base_url(cfg)
        self.context_length: int | None = None

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "model": self.model, "base_url": self.where, "structured_output": self._mode}

    async def aclose(self) -> None:
        await self._transport.close()

    async def preflight(self) -> None:
        """Fail before any work when the server is unreachable, refuses the key, or lacks the model;
        read the model's context length where the server reports one.

        GET /models, once: a server without that endpoint (404) or one that answers oddly is let
        through; generation itself will then report what goes wrong."""
        # its own short-lived transport: preflight runs before the run's event loop exists
        transport = Transport(self.cfg, self._secret)
        try:
            page = await transport.get("/models", timeout=min(self.cfg.timeout, 15.0))
        except (Connection, Timeout) as e:
            cause = self._scrub(str(e).splitlines()[0]) if str(e) else ""
            raise BackendError(
                f"cannot reach {self.where} ({cause or 'connection failed'}); is the server running and "
                "backend.base_url right?"
            ) from None
        except Status as e:
            if e.status in (401, 403):
                raise BackendError(self._fatal_message(e)) from None
            return
        except Garbled:
            return
        finally:
            await transport.close()
        entries = page.get("data") if isinstance(page, dict) else None
        entries = [m for m in entries or [] if isinstance(m, dict)]
        ids = [str(m.get("id")) for m in entries]
        if ids and self.model not in ids:
            shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
            raise BackendError(f"{self.where} has no model {self.model!r} (it serves: {shown}); check backend.model")
        mine = next((m for m in entries if m.get("id") == self.model), None)
        self.context_length = context_length(mine)

    async def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def _body(self, req: ChatRequest, mode: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": req.messages,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
        }
        if req.seed is not None:
            body["seed"] = req.seed
        if req.json_schema is not None and mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "pair", "schema": req.json_schema, "strict": True},
            }
        elif req.json_schema is not None and mode == "json_object":
            # llama.cpp, Ollama and others constrain json_object output to a schema given here.
            body["response_format"] = {"type": "json_object", "schema": req.json_schema}
        body.update(self.cfg.extra_body)
        return body

    async def _one(self, req: ChatRequest) -> ChatResult:
        result = ChatResult()

        async def call() -> tuple[str, str | None, int, int]:
            # the mode is read per attempt (another request may have stepped it down meanwhile) and
            # kept on the error, so a rejection is judged against what this attempt sent
            mode = self._mode
            try:
                return _chat_fields(await self._transport.post("/chat/completions", self._body(req, mode)))
            except Status as e:
                e.mode = mode
                raise

        while True:
            try:
                text, finish, prompt_tokens, completion_tokens = await self._retrying(call, result)
            except (Timeout, Connection, Garbled) as e:
                result.error = reason(e)
                return result
            except Status as e:
                if self._is_format_rejection(e):
                    self._step_down(e.mode or "off")
                    continue
                self._classify(e, result)
                return result
            break
        result.text, result.finish_reason = text, finish
        result.prompt_tokens, result.completion_tokens = prompt_tokens, completion_tokens
        return result

    def _classify(self, e: Status, result: ChatResult | ScoreResult, *, scoring: bool = False) -> None:
        """A status that retries did not fix: transport (5xx, 429), this request's (4xx), or fatal."""
        if transient(e):
            result.error = reason(e)
        elif e.status in FATAL:
            raise BackendError(self._fatal_message(e, scoring=scoring)) from None
        else:
            result.failure = rejection_reason(e)
            result.detail = self._scrub(e.message.splitlines()[0] if e.message else "")[:300]

    async def score(self, requests: Sequence[ScoreRequest]) -> list[ScoreResult]:
        return list(await asyncio.gather(*(self._score_one(r) for r in requests)))

    async def _score_one(self, req: ScoreRequest) -> ScoreResult:
        """log p(target | prefix) from the completions endpoint with `echo` and `logprobs`.

        max_tokens is 1, not 0: llama.cpp's server reads 0 as "until the context is full".
        The one generated token lies after the target and is left out.
        """
        result = ScoreResult()
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": req.prefix + req.target,
            "echo": True,
            "logprobs": 1,
            "max_tokens": 1,
            "temperature": 0.0,
            **self.cfg.extra_body,
        }

        async def call() -> Any:
            return _logprob_fields(await self._transport.post("/completions", body))

        try:
            lp = await self._retrying(call, result)
        except (Timeout, Connection, Garbled) as e:
            result.error = reason(e)
            return result
        except Status as e:
            self._classify(e, result, scoring=True)
            return result
        if lp is None:
            result.failure = "no_logprobs"
            return result
        try:
            tokens, logprobs, offsets = lp
            toks, lps, straddles = target_tokens(tokens, logprobs, offsets, req.prefix, req.target)
        except AlignmentError as e:
            result.failure, result.detail = "token_alignment", str(e)[:300]
            return result
        result.tokens, result.token_logprobs, result.straddles = toks, lps, straddles
        result.logprob = sum(lps)
        return result

    async def _retrying(self, call: Any, result: ChatResult | ScoreResult) -> Any:
        return await with_retries(
            call,
            result,
            slots=self._slots,
            retry_if=lambda e: transient(e) and not self._is_format_rejection(e),
            max_retries=self.cfg.max_retries,
            max_wait=self.cfg.max_retry_wait,
        )

    def _is_format_rejection(self, e: BaseException) -> bool:
        """A rejection of the response_format this request was sent with (auto mode only)."""
        if self.cfg.structured_output != "auto" or not isinstance(e, Status) or e.mode in (None, "off"):
            return False
        text = (e.body or e.message).lower()
        return e.status in (400, 422, 500, 501) and ("response_format" in text or "json_schema" in text)

    def _step_down(self, sent: str) -> None:
        """json_schema -> json_object -> off, once per mode: later rejections of the same mode
        (requests sent before the first step-down) only re-send."""
        if self._mode == sent and sent != "off":
            self._mode = MODES[MODES.index(sent) + 1]

    def _fatal_message(self, e: Status, *, scoring: bool = False) -> str:
        detail = self._scrub(e.message.splitlines()[0] if e.message else "")
        where = self.where
        if scoring and e.status == 404 and "model" not in detail.lower():
            return (
                f"{where} cannot score text ({e.status}: {detail}); LM scoring needs the completions endpoint "
                "with echo and logprobs (vLLM serve and llama.cpp's server have it; OpenAI's chat models do not)"
            )
        if e.status == 401:
            return (
                f"{where} rejected the API key (401); check the key in ${self.cfg.api_key_env}"
                if self.cfg.api_key_env
                else f"{where} needs an API key (401); set backend.api_key_env"
            )
        if e.status == 403:
            return f"{where} refused access to model {self.model!r} (403): {detail}"
        return f"{where} has no model {self.model!r} (404); check backend.model and backend.base_url (see GET /models)"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text
