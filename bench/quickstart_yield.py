"""Q2 of bench/quickstart.py: the quickstart's yield, one variant of its config at a time, on the
same plan (seed, jobs, sources) against the same index and llama.cpp server.

For each variant: wall time, time to the first accepted record, jobs planned, accepted, failed and
rejected by reason, LLM requests, tokens, and acceptance per paradigm. The variants differ in one
setting each, so a change is measured against today's config on the same jobs:
- today:     examples/quickstart.yaml with the default templates and no sampling controls
- sampling:  + llama.cpp's loop controls (the quickstart's `backend.extra_body`)
- prompts:   + the small-model template set (`templates: small`), no sampling controls
- quickstart: examples/quickstart.yaml as shipped (both)
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any


def variants(base: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each variant's config, from the shipped quickstart config `base`."""
    loops = dict(base["backend"].get("extra_body") or {})
    small = base.get("templates")

    def cfg(extra: dict[str, Any], templates: str | None) -> dict[str, Any]:
        return {**base, "backend": {**base["backend"], "extra_body": extra}, "templates": templates}

    return {"today": cfg({}, None), "sampling": cfg(loops, None), "prompts": cfg({}, small), "quickstart": dict(base)}


class FirstRecord:
    """The seconds from start until OUT/examples.jsonl holds a line (polled every 0.2 s)."""

    def __init__(self, out: Path) -> None:
        self.path, self.seconds, self._stop = out / "examples.jsonl", None, threading.Event()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            if self.path.exists() and self.path.stat().st_size > 0:
                self.seconds = round(time.perf_counter() - self._t0, 1)
                return

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.seconds


def per_paradigm(out: Path, job_paradigm: dict[str, str]) -> dict[str, str]:
    """'accepted/planned' per paradigm, from the run's files."""
    planned = Counter(job_paradigm.values())
    accepted = Counter()
    path = out / "examples.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        accepted[json.loads(line)["paradigm"]] += 1
    return {p: f"{accepted[p]}/{n}" for p, n in sorted(planned.items())}


def run_variant(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    from ragloom.generator.config import load_config
    from ragloom.generator.run import execute, plan_jobs

    cfg = load_config(None, base=raw)
    jobs, _ = plan_jobs(cfg)
    first = FirstRecord(Path(cfg.output))
    t = time.perf_counter()
    result = execute(cfg, progress=False, report=False)
    wall = time.perf_counter() - t
    st = result.stats
    return {
        "variant": name,
        "templates": cfg.templates or "default",
        "extra_body": cfg.backend.extra_body,
        "attempts": cfg.validation.attempts,
        "wall_s": round(wall, 1),
        "first_accepted_s": first.stop(),
        "planned": st.planned,
        "accepted": st.accepted,
        "failed": dict(st.failed.most_common()),
        "rejected": dict(st.rejected.most_common()),
        "requests": st.accepted + sum(st.rejected.values()),  # rejected counts every refused reply
        "tokens_in": st.usage.prompt_tokens,
        "tokens_out": st.usage.completion_tokens,
        "per_paradigm": per_paradigm(Path(cfg.output), {j.id: j.paradigm for j in jobs}),
    }
