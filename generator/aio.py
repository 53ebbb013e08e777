"""Running a coroutine from sync code: one helper for the library's sync entry points and audit.

A leaf module: it imports nothing from the rest of the package, so every wing may use it."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any


def in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, also when an event loop is already running in
    this thread (Jupyter): then it runs in a worker thread with its own loop."""
    if not in_running_loop():
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ragloom") as pool:
        return pool.submit(asyncio.run, coro).result()
