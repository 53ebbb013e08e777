"""Crash safety and misbehaving servers: SIGKILL at random moments, a full disk, hangs, a dead
server, empty 200s, dropped connections, Ctrl-C. Nothing finished is lost; nothing is written twice."""

from __future__ import annotations

import asyncio
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeServer, Faults
from loopback import free_port
from runs import jsonl, run_config

from ragloom.cli import main

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _generate_cmd(cfg: Path) -> list[str]:
    return [sys.executable, "-m", "ragloom", "generate", "--config", str(cfg), "--quiet"]


def _accounted(out: Path) -> list[str]:
    """Job ids on disk, read the way resume reads them: a line torn by a kill mid-write is not a record."""
    from ragloom.generator.runs.checkpoint import read_jsonl

    return [r["job_id"] for name in ("examples.jsonl", "failed.jsonl") for r in read_jsonl(out / name, repair=False)]


def _backend(base_url: str, **cfg: Any) -> Any:
    """An openai backend aimed at the fake server; `cfg` sets other backend keys."""
    from ragloom.generator.backends import make_backend
    from ragloom.generator.config import OpenAIBackendConfig

    return make_backend(OpenAIBackendConfig(type="openai", base_url=base_url, model="fake", api_key_env=None, **cfg))


def _ask(title: str) -> Any:
    """A chat request the fake server answers with a pair naming `title`."""
    from ragloom.generator.backends import ChatRequest

    return ChatRequest([{"role": "user", "content": f"[Document 1] {title}\nq"}])


def _chat_and_close(backend: Any, requests: list[Any]) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await backend.chat(requests)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_sigkill_at_five_random_moments_then_resume(wiki_index: Path, tmp_path: Path) -> None:
    n = 1000
    rng = random.Random(7)
    marks = sorted(rng.sample(range(40, n - 60), 5))
    out = tmp_path / "out"
    with FakeServer(Faults(latency=0.01, jitter=0.005)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, n)
        seen = []
        for mark in marks:
            proc = subprocess.Popen(_generate_cmd(cfg), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and proc.poll() is None:
                if _count(out / "examples.jsonl") + _count(out / "failed.jsonl") >= mark:
                    break
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            ids = _accounted(out)  # parses every whole line; a torn tail is dropped on resume
            assert len(ids) == len(set(ids))
            seen.append(len(ids))
        assert seen == sorted(seen) and seen[-1] < n  # each kill landed mid-run and nothing went back
        done = subprocess.run(_generate_cmd(cfg), env=ENV, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    ids = _accounted(out)
    assert sorted(ids) == [f"0-{i:06d}" for i in range(n)]  # every planned job exactly once
    assert len(ids) == len(set(ids))


def test_disk_full_stops_with_one_line_and_resumes(wiki_index: Path, tmp_path: Path) -> None:
    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 120)
        full = subprocess.run(_generate_cmd(cfg), env=ENV, capture_output=True, text=True, preexec_fn=limit_files)
        err = full.stderr.strip().splitlines()
        assert full.returncode == 2, full.stderr[-2000:]
        assert err[-1].startswith("ragloom: error: cannot write") and "rerun to resume" in err[-1]
        assert "Traceback" not in full.stderr
        before = _count(tmp_path / "out" / "examples.jsonl")
        assert 0 < before < 120
        again = subprocess.run(_generate_cmd(cfg), env=ENV, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr[-2000:]
    ids = _accounted(tmp_path / "out")
    assert sorted(ids) == [f"0-{i:06d}" for i in range(120)]


def test_hanging_server_is_bounded_and_resumable(wiki_index: Path, tmp_path: Path, capsys) -> None:
    with FakeServer(Faults(rate_hang=1.0, hang_seconds=30)) as srv:
        cfg = run_config(
            tmp_path, wiki_index, srv.base_url, 30, backend={"timeout": 0.5, "max_retries": 1, "concurrency": 4}
        )
        t = time.monotonic()
        rc = main(["generate", "--config", str(cfg), "--quiet"])
        took = time.monotonic() - t
    err = capsys.readouterr().err
    # every request times out: 30 jobs x 2 tries x 0.5 s / 4 in flight, plus backoff, not 30 s hangs
    assert took < 25
    assert rc in (2, 3)
    assert "timeout" in err
    assert jsonl(tmp_path / "out" / "examples.jsonl") == []
    with FakeServer() as srv:  # the server recovers: the same command finishes the run
        assert main(["generate", "--config", str(cfg), "--set", f"backend.base_url={srv.base_url}", "--quiet"]) == 0
    assert sorted(_accounted(tmp_path / "out")) == [f"0-{i:06d}" for i in range(30)]


def test_dead_server_fails_fast_with_one_line(wiki_index: Path, tmp_path: Path, capsys) -> None:
    port = free_port()  # nothing listens here
    cfg = run_config(tmp_path, wiki_index, f"http://127.0.0.1:{port}/v1", 10)
    t = time.monotonic()
    assert main(["generate", "--config", str(cfg), "--quiet"]) == 2
    assert time.monotonic() - t < 30
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"cannot reach http://127.0.0.1:{port}/v1" in err and "base_url" in err


def test_server_dying_mid_run_trips_the_breaker(wiki_index: Path, tmp_path: Path, capsys) -> None:
    srv = FakeServer(Faults(latency=0.02))
    srv.__enter__()
    cfg = run_config(tmp_path, wiki_index, srv.base_url, 400, backend={"max_retries": 1, "concurrency": 4})
    proc_out = tmp_path / "out" / "examples.jsonl"

    import threading

    def kill_later() -> None:
        while _count(proc_out) < 20:
            time.sleep(0.01)
        srv.__exit__()

    threading.Thread(target=kill_later, daemon=True).start()
    t = time.monotonic()
    rc = main(["generate", "--config", str(cfg), "--quiet"])
    assert time.monotonic() - t < 60
    err = capsys.readouterr().err.strip().splitlines()
    # in-flight requests time out, new ones are refused: either way the run stops with one line
    assert rc == 2 and "in a row failed (" in err[-1] and "Rerun to resume" in err[-1]
    assert "(connection_error)" in err[-1] or "(timeout)" in err[-1]
    ids = _accounted(tmp_path / "out")
    assert 20 <= len(ids) < 400 and len(ids) == len(set(ids))


@pytest.mark.parametrize("fault", ["empty", "drop", "hang", "bad_json", "429", "500"])
def test_backend_retries_each_fault_and_succeeds(fault: str) -> None:
    with FakeServer(Faults(first=[fault, fault], hang_seconds=5, retry_after=0.05)) as srv:
        backend = _backend(srv.base_url, timeout=0.5, max_retry_wait=0.1)
        (res,) = _chat_and_close(backend, [_ask("Nile")])
    if fault == "bad_json":
        # the transport was fine; the content is the model's mistake, left to validation (invalid_json)
        assert res.error is None and res.text == "this is not json {"
        return
    assert res.error is None and "Nile" in res.text
    # every transport names each fault the same way
    reason = {"empty": "invalid_response", "drop": "connection_error", "hang": "timeout"}.get(fault)
    reason = reason or {"429": "rate_limited", "500": "http_500"}[fault]
    assert res.retries == 2 and res.retry_reasons == [reason, reason]


def _retry_position(requests: list[dict]) -> int:
    """Where, among the requests the server received, the first request was sent again."""
    first = requests[0]["messages"]
    return next(i for i, r in enumerate(requests[1:], 1) if r["messages"] == first)


def test_a_rate_limited_request_goes_before_requests_not_yet_sent() -> None:
    """One slot, 20 requests queued, the first answered 429 (Retry-After 0.3 s): the slot serves the
    queue during the wait, and the retry takes it next instead of queueing behind every first ask
    (where all of a run's rate-limited requests would pile up at its end, each adding its wait)."""
    with FakeServer(Faults(latency=0.05, first=["429"], retry_after=0.3)) as srv:
        backend = _backend(srv.base_url, concurrency=1, max_retry_wait=1)
        results = _chat_and_close(backend, [_ask(f"Title {i}") for i in range(20)])
        requests = srv.requests
    assert all(r.error is None for r in results) and results[0].retry_reasons == ["rate_limited"]
    assert [f"Title {i}" in r.text for i, r in enumerate(results)] == [True] * 20
    assert len(requests) == 21
    # about six requests fit in the wait; without priority the retry would be the 21st request
    assert 2 <= _retry_position(requests) <= 10


def test_cancelled_requests_give_their_slots_back() -> None:
    """Ctrl-C cancels requests in flight and requests queued for a slot; neither may keep a slot,
    or the next call on the same backend would wait forever."""
    with FakeServer(Faults(latency=0.2)) as srv:
        backend = _backend(srv.base_url, concurrency=2)

        async def go() -> list[Any]:
            try:
                first = asyncio.create_task(backend.chat([_ask(f"Title {i}") for i in range(6)]))  # 2 sent, 4 queued
                await asyncio.sleep(0.05)
                first.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await first
                return await asyncio.wait_for(backend.chat([_ask("Title 10"), _ask("Title 11")]), 5)
            finally:
                await backend.aclose()

        results = asyncio.run(go())
    assert [r.error for r in results] == [None, None] and "Title 10" in results[0].text


def test_a_job_sleeping_out_a_retry_after_does_not_idle_the_server(wiki_index: Path, tmp_path: Path) -> None:
    """With one slot, a job waiting 1 s on a 429 must not hold the run up: other jobs use the slot."""
    with FakeServer(Faults(latency=0.01, first=["429"], retry_after=1.0)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 30, backend={"concurrency": 1, "max_retry_wait": 2})
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        requests = srv.requests
    assert sorted(_accounted(tmp_path / "out")) == [f"0-{i:06d}" for i in range(30)]
    assert srv.peak_in_flight == 1
    # 10 ms per request: other jobs' requests went out during the 1 s wait
    assert _retry_position(requests) >= 5


def test_sigint_stops_gracefully(wiki_index: Path, tmp_path: Path) -> None:
    with FakeServer(Faults(latency=0.05)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 600, backend={"concurrency": 4})
        proc = subprocess.Popen(
            [sys.executable, "-m", "ragloom", "generate", "--config", str(cfg)],
            env=ENV,
            # as from a terminal: a shell's background job (how CI may run) starts with SIGINT
            # ignored, and Python then installs no KeyboardInterrupt handler
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out = tmp_path / "out" / "examples.jsonl"
        deadline = time.monotonic() + 120
        while _count(out) < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err[-2000:]
        assert "interrupted:" in err and "Traceback" not in err
        ids = _accounted(tmp_path / "out")
        assert 15 <= len(ids) < 600 and len(ids) == len(set(ids))
        done = subprocess.run(_generate_cmd(cfg), env=ENV, capture_output=True, text=True)
        assert done.returncode == 0
    assert sorted(_accounted(tmp_path / "out")) == [f"0-{i:06d}" for i in range(600)]
