"""Progress of an index build: a rich bar on a terminal (passages done, rate, time left), and one
plain line every few seconds otherwise (a log file, CI, a pipe), so a long build is never silent."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second, e.g. "812 passages/s"."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"- {self.unit}/s", style="progress.data.speed")


class BuildProgress:
    """`update(stage, done, total)` as passages are embedded. On a terminal a rich bar; otherwise a
    line such as "embedding 800/2,000 passages | 55 passages/s | 22 s left" at most every `every`
    seconds, and a last one when the count reaches the total."""

    def __init__(self, console: Console, *, label: str = "embedding", unit: str = "passages", every: float = 5.0):
        self.console, self.label, self.unit, self.every = console, label, unit, every
        self.live = console.is_terminal
        self.bar = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(unit),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self.live,
        )
        self.task = self.bar.add_task(label, total=None)
        self._t0 = self._last = time.monotonic()
        self._done_logged = -1

    def __enter__(self) -> BuildProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.bar.__exit__(et, ev, tb)

    def update(self, stage: str, done: int, total: int) -> None:
        if self.live:
            self.bar.update(self.task, completed=done, total=total)
            return
        now = time.monotonic()
        last = done >= total > 0
        if done == self._done_logged or not (last or now - self._last >= self.every):
            return
        self._last, self._done_logged = now, done
        self.console.print(self.line(done, total, now - self._t0), soft_wrap=True)

    def line(self, done: int, total: int, elapsed: float) -> str:
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label} {done:,}/{total:,} {self.unit} | {rate:,.0f} {self.unit}/s"
        if rate > 0 and done < total:
            text += f" | {(total - done) / rate:,.0f} s left"
        return text
