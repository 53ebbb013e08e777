"""Local servers on 127.0.0.1: a free port, waiting for a URL, and the Gemma 3 270M GGUF behind an
OpenAI-compatible server. The quickstart and the test suite share it, so the tests run the model
exactly as a newcomer does.

Two servers, for two jobs:
- `start_llama_server`: upstream llama.cpp's own server engine (tools/server: continuous batching,
  `parallel` slots, JSON-schema constrained output), from the prebuilt `xllamacpp` wheel. Nothing
  compiles. Used for generation.
- `start_scoring_server`: llama-cpp-python's server, for RA-DIT LSR scoring only. Upstream's
  `/v1/completions` ignores `echo` and returns log-probabilities of generated tokens only, while LSR
  needs those of the prompt; llama-cpp-python returns them (slowly: it sorts the whole vocabulary in
  Python for each echoed token).

    python examples/loopback.py MODEL.gguf --port 8080 [--parallel 2]   # serve upstream llama.cpp in the foreground
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

# Parallel slots of the upstream server. Measured on a 2-core machine (README, "What a run looks
# like"): 2 slots give the most jobs/s; 4 slots only share the same two cores more thinly.
DEFAULT_PARALLEL = 2
CTX_PER_SLOT = 8192


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


def _launch(cmd: list[str], port: int, log: Path, timeout: float, what: str) -> tuple[subprocess.Popen, str]:
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout, proc)
    except (RuntimeError, TimeoutError) as e:
        stop(proc)
        raise RuntimeError(f"{what} did not start ({e}); see {log}") from None
    return proc, f"http://127.0.0.1:{port}/v1"


def start_llama_server(
    model: Path, log: Path, *, parallel: int = DEFAULT_PARALLEL, threads: int | None = None, timeout: float = 180
) -> tuple[subprocess.Popen, str]:
    """Serve `model` as `gemma` with upstream llama.cpp on a free loopback port and `parallel` slots
    (`threads`: CPU threads, default all cores); returns (process, base_url). Output goes to `log`;
    on failure the process is stopped."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), str(model), "--port", str(port), "--parallel", str(parallel)]
    cmd += ["--threads", str(threads)] if threads else []
    return _launch(cmd, port, log, timeout, "llama.cpp server")


def start_scoring_server(model: Path, log: Path, *, timeout: float = 180) -> tuple[subprocess.Popen, str]:
    """Serve `model` as `gemma` with llama-cpp-python's server (one request at a time), whose
    `/v1/completions` returns prompt log-probabilities with `echo`. The GGUF has no chat template,
    hence `--chat_format gemma`."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--n_ctx", str(CTX_PER_SLOT), "--model_alias", "gemma", "--chat_format", "gemma"]
    cmd += ["--n_threads", str(os.cpu_count() or 2), "--seed", "0"]
    return _launch(cmd, port, log, timeout, "llama-cpp-python server")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def serve(model: Path, *, port: int, parallel: int, threads: int | None = None) -> None:
    """Run upstream llama.cpp's server engine in this process until SIGTERM or SIGINT."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.model_alias = {"gemma"}
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_parallel = parallel
    params.n_ctx = CTX_PER_SLOT * parallel  # the context is split evenly between the slots
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads or os.cpu_count() or 2
    params.sampling.seed = 0
    # the GGUF carries no chat template; llama.cpp's built-in `gemma` one is the model's own format
    params.use_jinja = False
    params.chat_template = "gemma"
    server = xllamacpp.Server(params)  # starts serving; installs its own SIGINT/SIGTERM handlers
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"serving {model.name} as `gemma` on {server.listening_address} with {parallel} slots", flush=True)
    done.wait()
    sys.stdout.flush()
    os._exit(0)  # nothing to flush: skip joining the server's threads


def main() -> None:
    ap = argparse.ArgumentParser(description="Serve a GGUF with upstream llama.cpp on 127.0.0.1 as `gemma`.")
    ap.add_argument("model", type=Path)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    args = ap.parse_args()
    serve(args.model, port=args.port, parallel=args.parallel, threads=args.threads)


if __name__ == "__main__":
    main()
