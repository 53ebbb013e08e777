"""Retries with slots: tenacity's exponential backoff with jitter, Retry-After honoured, and a
concurrency limit held per attempt (never across a backoff) that serves returning retries first."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from .base import ChatResult, ScoreResult
from .transport import Status, reason


class WaitRetryAfter:
    """Wait what the server's Retry-After says; otherwise exponential backoff with jitter."""

    def __init__(self, cap: float) -> None:
        self.cap = cap
        self.fallback = wait_random_exponential(multiplier=0.5, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        header = exc.retry_after if isinstance(exc, Status) else None
        if header:
            try:
                return min(float(header), self.cap)
            except ValueError:
                pass
        return float(self.fallback(state))


class Slots:
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


async def with_retries(
    call: Callable[[], Awaitable[Any]],
    result: ChatResult | ScoreResult,
    *,
    slots: Slots,
    retry_if: Callable[[BaseException], bool],
    max_retries: int,
    max_wait: float,
) -> Any:
    """Run `call` under a slot until it succeeds, raises what `retry_if` refuses, or runs out of
    attempts (the last exception is raised). Retries and their reasons are counted on `result`."""

    def log_retry(state: RetryCallState) -> None:
        result.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            result.retry_reasons.append(reason(exc))

    retrying = AsyncRetrying(
        retry=retry_if_exception(retry_if),
        wait=WaitRetryAfter(max_wait),
        stop=stop_after_attempt(max_retries + 1),
        before_sleep=log_retry,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            # the slot is held per attempt, not across the backoff: a request sleeping out a
            # Retry-After does not keep another from using the server
            async with slots.hold(retry=attempt.retry_state.attempt_number > 1):
                return await call()
    raise AssertionError("unreachable")
