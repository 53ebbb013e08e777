"""Local servers on 127.0.0.1: a free port, waiting for a URL, and llama-cpp-python's
OpenAI-compatible server with the Gemma 3 270M GGUF. The quickstart and the test suite share it,
so the tests run the model exactly as a newcomer does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Return once `url` answers; RuntimeError if `proc` exits first, TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def start_llama_server(model: Path, log: Path, *, timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """Serve `model` as `gemma` on a free loopback port; returns (process, base_url). The GGUF has no
    chat template, hence `--chat_format gemma`. Output goes to `log`; on failure the process is stopped."""
    port = free_port()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "8192",
                "--model_alias",
                "gemma",
                "--chat_format",
                "gemma",
                "--n_threads",
                str(os.cpu_count() or 2),
                "--seed",
                "0",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout, proc)
    except (RuntimeError, TimeoutError) as e:
        stop(proc)
        raise RuntimeError(f"llama.cpp server did not start ({e}); see {log}") from None
    return proc, f"http://127.0.0.1:{port}/v1"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
