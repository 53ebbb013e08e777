"""HTTP transport for OpenAI-compatible servers: JSON over one aiohttp session, and one error vocabulary.

The body posted is the one the openai SDK would send; the SDK itself is not used on the request path:
its typed request building and response parsing cost 1-2 ms of CPU per request (bench/generation.py
G1), which at hundreds of requests a second is what keeps a server from being saturated. What the SDK
resolves from the environment is honoured here too: OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID,
HTTPS_PROXY / NO_PROXY. Azure OpenAI and other gateways are served with `backend.extra_headers`,
`backend.default_query` (e.g. `api-version`) and `backend.auth_header: api-key`.
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
import urllib.request
from typing import Any

import aiohttp

import ragloom

from .config import OpenAIBackendConfig

OPENAI_URL = "https://api.openai.com/v1"


class Status(Exception):
    """The server answered with an error status. `mode` is the structured-output mode the request
    was sent with (set by the backend), so a rejection is judged against what was sent."""

    def __init__(self, status: int, message: str, body: str, retry_after: str | None) -> None:
        super().__init__(message)
        self.status, self.message, self.body, self.retry_after = status, message, body, retry_after
        self.mode: str | None = None

    @classmethod
    def from_body(cls, status: int, raw: str, retry_after: str | None) -> Status:
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


class Timeout(Exception):
    pass


class Connection(Exception):
    pass


class Garbled(Exception):
    """A 200 whose body is not JSON or not the API's shape: a server glitch, retried like a 5xx."""


def reason(exc: BaseException) -> str:
    """The reason code of a transport failure, as counted and reported."""
    if isinstance(exc, Garbled):
        return "invalid_response"
    if isinstance(exc, Timeout):
        return "timeout"
    if isinstance(exc, Connection):
        return "connection_error"
    if isinstance(exc, Status):
        return "rate_limited" if exc.status == 429 else f"http_{exc.status}"
    return type(exc).__name__


def transient(exc: BaseException) -> bool:
    """Worth another attempt: 429, 5xx, timeouts, dropped connections, garbled 200s."""
    if isinstance(exc, Status):
        return exc.status == 429 or exc.status >= 500
    return isinstance(exc, (Timeout, Connection, Garbled))


def env_proxy(url: str) -> str | None:
    """The proxy HTTPS_PROXY / HTTP_PROXY names for `url` unless NO_PROXY exempts its host. Read once:
    aiohttp's trust_env would look it up (and ~/.netrc) in a thread per request."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def base_url(cfg: OpenAIBackendConfig) -> str:
    return (cfg.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")


class Transport:
    """POSTs (and GETs) JSON over one aiohttp session, opened in the event loop that first uses it."""

    def __init__(self, cfg: OpenAIBackendConfig, key: str | None) -> None:
        self.base = base_url(cfg)
        self.headers = {"Content-Type": "application/json", "User-Agent": f"ragloom/{ragloom.__version__}"}
        if key:
            if cfg.auth_header == "api-key":
                self.headers["api-key"] = key
            else:
                self.headers["Authorization"] = f"Bearer {key}"
        for header, env in (("OpenAI-Organization", "OPENAI_ORG_ID"), ("OpenAI-Project", "OPENAI_PROJECT_ID")):
            if os.environ.get(env):
                self.headers[header] = os.environ[env]
        self.headers.update(cfg.extra_headers)
        self.query = dict(cfg.default_query)
        self.timeout, self.limit = cfg.timeout, cfg.concurrency
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers=self.headers,
                proxy=env_proxy(self.base),
            )
        return self._session

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._send("POST", path, json.dumps(body).encode())

    async def get(self, path: str, *, timeout: float | None = None) -> Any:
        return await self._send("GET", path, None, timeout=timeout)

    async def _send(self, method: str, path: str, data: bytes | None, *, timeout: float | None = None) -> Any:
        session = self._open()
        kw: dict[str, Any] = {"data": data, "params": self.query or None}
        if timeout is not None:
            kw["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.request(method, self.base + path, **kw) as r:
                raw = await r.read()
                status, retry_after = r.status, r.headers.get("retry-after")
        except asyncio.TimeoutError:
            raise Timeout() from None
        except aiohttp.ClientError as e:
            raise Connection(str(e) or type(e).__name__) from None
        if status >= 400:
            raise Status.from_body(status, raw.decode("utf-8", "replace"), retry_after)
        try:
            return json.loads(raw)
        except ValueError:
            raise Garbled() from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
