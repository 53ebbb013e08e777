"""`openai` backend: any OpenAI-compatible server.

Two ways to send a request, chosen by `backend.http_client`:
- `direct` (default): the request's JSON is posted to `/chat/completions` (or `/completions`)
  over one aiohttp session. The openai SDK spends about 1 ms of CPU per request building and
  parsing typed objects; at hundreds of requests per second that CPU is what keeps the server
  from being saturated (bench/generation.py G1, G3). The body sent is the same.
- `aiohttp` / `httpx`: through `AsyncOpenAI` with that transport.

Both report errors in one vocabulary (`_Status`, `_Timeout`, `_Connection`, `_Garbled`), so
retries and messages do not depend on the transport. Retries (tenacity, exponential backoff
with jitter, Retry-After honoured) cover 429, 5xx, timeouts, dropped connections and garbled
200s. 400/401/403/404 stop the run with a message that says what to fix. The API key is read
from the environment and never written anywhere.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import openai
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

import ragloom
from ragloom.errors import BackendError, ConfigError

from ..config import OpenAIBackendConfig
from ..scoring import AlignmentError, target_tokens
from .base import ChatRequest, ChatResult, ScoreRequest, ScoreResult

_MODES = ["json_schema", "json_object", "off"]


class _Status(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str, body: str, retry_after: str | None) -> None:
        super().__init__(message)
        self.status, self.message, self.body, self.retry_after = status, message, body, retry_after

    @classmethod
    def from_body(cls, status: int, raw: str, retry_after: str | None) -> _Status:
        """Message as the SDK words it: the server's `error.message` when the body has one."""
        message = f"Error code: {status}"
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        error = body.get("error", body) if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        if isinstance(detail, str) and detail:
            message += f" - {detail}"
        elif raw.strip():
            message += f" - {raw.strip()[:300]}"
        return cls(status, message, raw, retry_after)

    @classmethod
    def from_sdk(cls, e: openai.APIStatusError) -> _Status:
        return cls(e.status_code, str(e.message), e.response.text, e.response.headers.get("retry-after"))


class _Timeout(Exception):
    pass


class _Connection(Exception):
    pass


class _Garbled(Exception):
    """A 200 whose body is empty or not the API's shape: a server glitch, retried like a 5xx."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _Garbled):
        return "invalid_response"
    if isinstance(exc, _Timeout):
        return "timeout"
    if isinstance(exc, _Connection):
        return "connection_error"
    if isinstance(exc, _Status):
        return "rate_limited" if exc.status == 429 else f"http_{exc.status}"
    return type(exc).__name__


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, _Status):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (_Timeout, _Connection, _Garbled))


class _WaitRetryAfter:
    """Wait what the server's Retry-After says; otherwise exponential backoff with jitter."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.fallback = wait_random_exponential(multiplier=0.5, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        header = exc.retry_after if isinstance(exc, _Status) else None
        if header:
            try:
                return min(float(header), self.cap)
            except ValueError:
                pass
        return float(self.fallback(state))


class _Slots:
    """At most `n` requests in flight. A request back from a retry wait takes the next free slot
    before requests not yet sent (first come, first served within each): queued behind every first
    attempt, retries would all land at the end of a run and stretch it by their waits (bench G2)."""

    def __init__(self, n: int) -> None:
        self._free = n
        self._waiting: tuple[collections.deque[asyncio.Future[None]], ...] = (collections.deque(), collections.deque())

    @contextlib.asynccontextmanager
    async def hold(self, *, retry: bool) -> AsyncIterator[None]:
        if self._free and not any(self._waiting):
            self._free -= 1
        else:
            fut = asyncio.get_running_loop().create_future()
            queue = self._waiting[0 if retry else 1]
            queue.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._release()  # handed a slot as it was cancelled: pass it on
                with contextlib.suppress(ValueError):
                    queue.remove(fut)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for queue in self._waiting:
            while queue:
                fut = queue.popleft()
                if not fut.done():  # a cancelled waiter is skipped
                    fut.set_result(None)
                    return
        self._free += 1


def _env_proxy(url: str) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY names for `url` unless NO_PROXY exempts its host, as the SDK
    honours them. Read once: aiohttp's trust_env would look it up (and ~/.netrc) in a thread per request."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class _Direct:
    """POSTs JSON bodies over one aiohttp session, opened in the event loop that first uses it."""

    def __init__(self, client: openai.AsyncOpenAI, key: str | None, cfg: OpenAIBackendConfig) -> None:
        # base URL, organization and project as the SDK resolved them (arguments or OPENAI_* variables)
        self.base = str(client.base_url).rstrip("/")
        self.headers = {"Content-Type": "application/json", "User-Agent": f"ragloom/{ragloom.__version__}"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        if client.organization:
            self.headers["OpenAI-Organization"] = client.organization
        if client.project:
            self.headers["OpenAI-Project"] = client.project
        self.timeout, self.limit = cfg.timeout, cfg.concurrency
        self._session: aiohttp.ClientSession | None = None

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers=self.headers,
                proxy=_env_proxy(self.base),
            )
        try:
            async with self._session.post(self.base + path, data=json.dumps(body).encode()) as r:
                raw = await r.read()
                status, retry_after = r.status, r.headers.get("retry-after")
        except asyncio.TimeoutError:
            raise _Timeout() from None
        except aiohttp.ClientError as e:
            raise _Connection(str(e) or type(e).__name__) from None
        if status >= 400:
            raise _Status.from_body(status, raw.decode("utf-8", "replace"), retry_after)
        try:
            return json.loads(raw)
        except ValueError:
            raise _Garbled() from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _SDK:
    """The same POSTs through `AsyncOpenAI` (its aiohttp or httpx transport); SDK errors are
    translated to this module's."""

    def __init__(self, client: openai.AsyncOpenAI) -> None:
        self.client = client

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            return await self.client.post(path, body=body, cast_to=object)
        except openai.APIStatusError as e:
            raise _Status.from_sdk(e) from None
        except openai.APITimeoutError:
            raise _Timeout() from None
        except openai.APIConnectionError as e:
            raise _Connection(str(e.__cause__ or e)) from None
        except (json.JSONDecodeError, openai.APIResponseValidationError):
            raise _Garbled() from None

    async def close(self) -> None:
        pass


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
        raise _Garbled() from None


def _logprob_fields(data: Any) -> tuple[list[Any], list[float | None], list[int] | None] | None:
    """(tokens, token_logprobs, text_offset) of a completions body, None when it has no logprobs."""
    try:
        choices = data["choices"]
        lp = choices[0].get("logprobs") if choices else None
    except (KeyError, TypeError, AttributeError, IndexError):
        raise _Garbled() from None
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
        self._client = openai.AsyncOpenAI(
            api_key=key or "no-key",
            base_url=cfg.base_url,
            timeout=cfg.timeout,
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(timeout=cfg.timeout) if cfg.http_client == "aiohttp" else None,
        )
        self._transport = _Direct(self._client, key, cfg) if cfg.http_client == "direct" else _SDK(self._client)
        self._slots = _Slots(cfg.concurrency)
        self._mode: str = "json_schema" if cfg.structured_output == "auto" else cfg.structured_output
        self.where = cfg.base_url or "https://api.openai.com/v1"

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "model": self.model, "base_url": self.where, "structured_output": self._mode}

    async def aclose(self) -> None:
        await self._transport.close()
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
        except openai.APIConnectionError as e:  # timeouts included: a server that never answers
            cause = self._scrub(str(e.__cause__ or e).splitlines()[0]) if (e.__cause__ or str(e)) else ""
            raise BackendError(
                f"cannot reach {self.where} ({cause or 'connection failed'}); is the server running and "
                "backend.base_url right?"
            ) from None
        except openai.APIStatusError as e:
            if e.status_code in (401, 403):
                raise BackendError(self._fatal_message(_Status.from_sdk(e))) from None
            return
        except (json.JSONDecodeError, openai.APIResponseValidationError):
            return
        finally:
            await client.close()
        ids = [m.id for m in getattr(page, "data", None) or []]
        if ids and self.model not in ids:
            shown = ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")
            raise BackendError(f"{self.where} has no model {self.model!r} (it serves: {shown}); check backend.model")

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
            # the mode is read per attempt: another request may have stepped it down meanwhile
            return _chat_fields(await self._transport.post("/chat/completions", self._body(req, self._mode)))

        while True:
            mode = self._mode
            try:
                text, finish, prompt_tokens, completion_tokens = await self._with_retries(call, result)
            except (_Timeout, _Connection, _Garbled) as e:
                result.error = _reason(e)
                return result
            except _Status as e:
                if self._rejects_structured_output(e, mode):
                    continue
                if _transient(e):
                    result.error = _reason(e)
                    return result
                raise BackendError(self._fatal_message(e)) from None
            break
        result.text, result.finish_reason = text, finish
        result.prompt_tokens, result.completion_tokens = prompt_tokens, completion_tokens
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
            lp = await self._with_retries(call, result)
        except (_Timeout, _Connection, _Garbled) as e:
            result.error = _reason(e)
            return result
        except _Status as e:
            if _transient(e):
                result.error = _reason(e)
                return result
            raise BackendError(self._fatal_message(e, scoring=True)) from None
        if lp is None:
            result.error = "no_logprobs"
            return result
        try:
            tokens, logprobs, offsets = lp
            toks, lps, straddles = target_tokens(tokens, logprobs, offsets, req.prefix, req.target)
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
            retry=retry_if_exception(lambda e: _transient(e) and not self._is_format_rejection(e)),
            wait=_WaitRetryAfter(self.cfg.max_retry_wait),
            stop=stop_after_attempt(self.cfg.max_retries + 1),
            before_sleep=log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                # the slot is held per attempt, not across the backoff: a request sleeping out a
                # Retry-After does not keep another from using the server
                async with self._slots.hold(retry=attempt.retry_state.attempt_number > 1):
                    return await call()
        raise AssertionError("unreachable")

    def _is_format_rejection(self, e: BaseException) -> bool:
        if self.cfg.structured_output != "auto" or self._mode == "off" or not isinstance(e, _Status):
            return False
        text = (e.body or e.message).lower()
        return e.status in (400, 422, 500, 501) and ("response_format" in text or "json_schema" in text)

    def _rejects_structured_output(self, e: _Status, mode: str) -> bool:
        """In `auto` mode, step down json_schema -> json_object -> off once per rejection."""
        if not self._is_format_rejection(e):
            return False
        if self._mode == mode:
            self._mode = _MODES[_MODES.index(mode) + 1]
        return True

    def _fatal_message(self, e: _Status, *, scoring: bool = False) -> str:
        detail = self._scrub(e.message.splitlines()[0] if e.message else "")
        where = self.where
        if scoring and e.status in (400, 404, 422) and "model" not in detail.lower():
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
        if e.status == 404:
            return (
                f"{where} has no model {self.model!r} (404); check backend.model and backend.base_url (see GET /models)"
            )
        return f"{where} rejected the request ({e.status}): {detail}; check backend and sampling settings"

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text
