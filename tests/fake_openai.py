"""A fault-injecting OpenAI-compatible chat server for tests and benchmarks (127.0.0.1 only).

Knobs: latency and jitter; rates of 429 (with Retry-After), 500, hangs, invalid JSON
content, dropped connections; a fixed status for every request (401, 404); and the first
N requests can be forced to fail in a given way. Every request is counted by outcome.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Faults:
    latency: float = 0.0
    jitter: float = 0.0
    rate_429: float = 0.0
    retry_after: float = 1.0
    rate_500: float = 0.0
    rate_hang: float = 0.0
    hang_seconds: float = 30.0
    rate_bad_json: float = 0.0
    rate_drop: float = 0.0
    fixed_status: int | None = None
    first: list[str] = field(default_factory=list)  # e.g. ["429", "500", "hang", "bad_json", "drop"]
    reject_json_schema: bool = False
    seed: int = 0


def pair_for(prompt: str) -> dict[str, str]:
    titles = re.findall(r"\[Document \d+\] (.*)", prompt) or ["this subject"]
    t = titles[0].strip()
    return {
        "question": f"What makes {t} significant, and how is it usually described by historians?",
        "answer": f"{t} is significant for its lasting influence; accounts describe its origins and impact.",
    }


def completion_for(body: dict, *, bad: bool = False) -> dict:
    """A /v1/completions answer. With echo + logprobs the prompt comes back as whitespace-led
    tokens; a token that appears in the prompt's `Background:` passage gets log-prob -0.1,
    any other -3.0, so the chunk that states the answer scores highest. One token is generated."""
    prompt = body["prompt"]
    tokens = [*re.findall(r"\s*\S+|\s+$", prompt), " end"]
    background = prompt.split("\n\n", 1)[0].lower().split() if prompt.startswith("Background:") else []
    logprobs = [None] + [-0.1 if t.strip().lower() in background else -3.0 for t in tokens[1:]]
    offsets = [0]
    for t in tokens[:-1]:
        offsets.append(offsets[-1] + len(t))
    choice: dict = {"index": 0, "text": (prompt if body.get("echo") else "") + " end", "finish_reason": "length"}
    if body.get("logprobs") is not None and not bad:
        choice["logprobs"] = {
            "tokens": tokens,
            "token_logprobs": logprobs,
            "text_offset": offsets,
            "top_logprobs": None,
        }
    else:
        choice["logprobs"] = None
    n = len(tokens)
    return {
        "id": "c",
        "object": "text_completion",
        "created": 0,
        "model": body.get("model", "fake"),
        "choices": [choice],
        "usage": {"prompt_tokens": n - 1, "completion_tokens": 1, "total_tokens": n},
    }


class FakeServer:
    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.requests: list[dict] = []
        self.headers_seen: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                server._handle(self, body)

            def _send(
                self, status: int, obj: object, headers: dict[str, str] | None = None, raw: bytes | None = None
            ) -> None:
                data = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _outcome(self) -> str:
        f = self.faults
        with self.lock:
            if f.first:
                return f.first.pop(0)
            r = self.rng.random()
        for name, rate in (
            ("429", f.rate_429),
            ("500", f.rate_500),
            ("hang", f.rate_hang),
            ("bad_json", f.rate_bad_json),
            ("drop", f.rate_drop),
        ):
            if r < rate:
                return name
            r -= rate
        return "ok"

    def _handle(self, h: BaseHTTPRequestHandler, body: dict) -> None:
        f = self.faults
        with self.lock:
            self.requests.append(body)
            self.headers_seen.append(dict(h.headers))
        if f.fixed_status:
            self.counts[str(f.fixed_status)] += 1
            h._send(f.fixed_status, {"error": {"message": f"fixed status {f.fixed_status}", "type": "error"}})  # type: ignore[attr-defined]
            return
        rf = body.get("response_format") or {}
        if f.reject_json_schema and rf.get("type") == "json_schema":
            self.counts["rejected_schema"] += 1
            h._send(400, {"error": {"message": "response_format json_schema is not supported"}})  # type: ignore[attr-defined]
            return
        outcome = self._outcome()
        self.counts[outcome] += 1
        if outcome == "hang":
            time.sleep(f.hang_seconds)
            return
        if outcome == "drop":
            h.connection.close()  # type: ignore[attr-defined]
            h.close_connection = True
            return
        time.sleep(max(0.0, f.latency + self.rng.uniform(-f.jitter, f.jitter)))
        if outcome == "429":
            h._send(429, {"error": {"message": "rate limited"}}, {"retry-after": str(f.retry_after)})  # type: ignore[attr-defined]
            return
        if outcome == "500":
            h._send(500, {"error": {"message": "internal error"}})  # type: ignore[attr-defined]
            return
        if h.path.endswith("/completions") and "prompt" in body and "messages" not in body:
            h._send(200, completion_for(body, bad=outcome == "bad_json"))  # type: ignore[attr-defined]
            return
        prompt = body["messages"][-1]["content"]
        content = "this is not json {" if outcome == "bad_json" else json.dumps(pair_for(prompt))
        h._send(
            200,
            {  # type: ignore[attr-defined]
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "fake"),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": len(prompt) // 4,
                    "completion_tokens": 30,
                    "total_tokens": len(prompt) // 4 + 30,
                },
            },
        )
