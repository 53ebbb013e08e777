"""Process memory for the benchmarks, read from /proc/self/status."""

from __future__ import annotations

import threading
import time


def rss_mb(field: str = "VmRSS") -> float:
    """A /proc/self/status size in MB: VmRSS (all resident) or RssAnon (heap, not mapped files)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


class MemorySampler:
    """Samples `field` every `every` seconds in a thread while the block runs: `samples` holds
    (seconds since start, MB), `peak` the largest value seen, the starting one included."""

    def __init__(self, field: str = "VmRSS", every: float = 0.25) -> None:
        self.field, self.every = field, every

    def __enter__(self) -> MemorySampler:
        self.samples: list[tuple[float, float]] = []
        self.peak = rss_mb(self.field)
        self._stop = threading.Event()
        t0 = time.perf_counter()

        def run() -> None:
            while not self._stop.wait(self.every):
                mb = rss_mb(self.field)
                self.samples.append((time.perf_counter() - t0, mb))
                self.peak = max(self.peak, mb)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
