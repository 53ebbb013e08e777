"""Live display: a rich progress bar and counters on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .config import Pricing
from .runs import Checkpoint, Stats


class Display:
    def __init__(
        self,
        stats: Stats,
        console: Console,
        pricing: Pricing,
        *,
        quiet: bool = False,
        log_every: float = 10.0,
        label: str = "generating",
        summary_console: Console | None = None,
    ) -> None:
        """`summary_console`: where the closing summary goes (default: `console`, silent when quiet)."""
        self.stats, self.console, self.pricing, self.quiet = stats, console, pricing, quiet
        self.summary_console = summary_console or (None if quiet else console)
        self.live = console.is_terminal and not quiet
        self.log_every = log_every
        self._last_log = time.monotonic()
        self._t0 = time.monotonic()
        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
            disable=not self.live,
        )
        self.task = self.progress.add_task("gen", total=stats.planned, completed=stats.skipped_done, counts="")

    def __enter__(self) -> Display:
        self.progress.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.__exit__(et, ev, tb)

    def cost(self) -> float:
        u = self.stats.usage
        return (
            u.prompt_tokens * self.pricing.prompt_per_million
            + u.completion_tokens * self.pricing.completion_per_million
        ) / 1e6

    def line(self) -> str:
        s = self.stats
        rej = sum(s.rejected.values())
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        return (
            f"accepted {s.accepted} | failed {sum(s.failed.values())} | rejected {rej} | "
            f"retried {sum(s.retried.values())} | tokens {s.usage.prompt_tokens:,} in / "
            f"{s.usage.completion_tokens:,} out | ${self.cost():.4f} | {s.finished / elapsed:.2f} jobs/s"
        )

    def update(self) -> None:
        s = self.stats
        if self.live:
            self.progress.update(self.task, completed=s.skipped_done + s.finished, counts=self.line())
        elif not self.quiet and time.monotonic() - self._last_log >= self.log_every:
            self._last_log = time.monotonic()
            self.console.print(
                f"[{s.skipped_done + s.finished}/{s.planned}] {self.line()}", soft_wrap=True, highlight=False
            )

    def summary(self, out: Path, *, interrupted: bool) -> None:
        s = self.stats
        c = self.summary_console
        if c is None:
            return
        heads = {"complete": "done", "finished_with_failures": "finished with failures", "unfinished": "unfinished"}
        head = "interrupted" if interrupted else heads[s.outcome()]
        c.print(
            f"{head}: {s.skipped_done + s.finished}/{s.planned} jobs finished "
            f"({s.skipped_done} from earlier runs); {self.line()}",
            soft_wrap=True,
        )
        if s.rejected:
            c.print(
                "rejected (asked again): " + ", ".join(f"{k} {v}" for k, v in s.rejected.most_common()), soft_wrap=True
            )
        if s.failed:
            c.print("failed (no record): " + ", ".join(f"{k} {v}" for k, v in s.failed.most_common()), soft_wrap=True)
        if s.backend_errors:
            c.print(
                "unfinished (server errors, rerun to resume): "
                + ", ".join(f"{k} {v}" for k, v in s.backend_errors.most_common()),
                soft_wrap=True,
            )
        c.print(f"records: {out / 'examples.jsonl'}", soft_wrap=True, highlight=False)


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    # What is loaded by now (torch, the encoder, the index, the plan) lives for the whole run. A full
    # collection that scans it holds the GIL for ~0.25 s, stalling the event loop and every response
    # in flight (bench/generation.py G3: one or two per 1,000 jobs); frozen, collections scan only
    # what the run itself allocates.
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_with_display(display: Display, checkpoint: Checkpoint, out: Path, body: Callable[[], object]) -> bool:
    """Run `body` under the live display, close the checkpoint whatever happens, print the summary.
    Returns True when Ctrl-C stopped it (finished work is on disk; the summary says how much)."""
    interrupted = False
    try:
        with _frozen_heap(), display:
            body()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        checkpoint.close()
    display.summary(out, interrupted=interrupted)
    return interrupted


async def arun_with_display(display: Display, checkpoint: Checkpoint, out: Path, body: Awaitable[object]) -> bool:
    """`run_with_display` for a coroutine in the running loop; a cancellation (Ctrl-C under
    asyncio.run) counts as an interrupt."""
    interrupted = False
    try:
        with _frozen_heap(), display:
            await body
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    finally:
        checkpoint.close()
    display.summary(out, interrupted=interrupted)
    return interrupted
