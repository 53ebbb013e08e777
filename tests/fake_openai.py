"""A fault-injecting OpenAI-compatible server for tests and benchmarks (127.0.0.1 only).

Chat completions answer with a (question, answer) pair (with `cited`, its answer cites the documents
with [n]; with `quoted`, RAFT's quoted reasoning; `rate_bad_citation` plants wrong ones); completions with `echo` + `logprobs`
score text. Knobs: latency and jitter; a cap on requests served at once (the rest queue);
rates of 429 (with Retry-After), 500, hangs, invalid JSON content, dropped connections and
200 with an empty body, replies cut off at max_tokens (finish_reason "length"); a fixed status for every request (401, 404); and the first N
requests can be forced to fail in a given way. Every request is counted by outcome.

Built on aiohttp so that one process serves thousands of requests per second. Run it alone
(for benchmarks, so it does not share the client's GIL):

    python tests/fake_openai.py --latency 0.2 --rate-429 0.1 --port-file /tmp/port
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

# a hang or a drop ends its handler with ConnectionResetError on purpose; aiohttp would log each one
logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)


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
    rate_empty: float = 0.0
    rate_length: float = 0.0  # a reply cut off mid-JSON with finish_reason "length"
    rate_length_whole: float = (
        0.0  # a complete, parseable pair that the server still marks "length" (cut at max_tokens)
    )
    max_in_flight: int = 0  # 0: unlimited; else requests beyond it wait their turn (server-side queue)
    fixed_status: int | None = None
    first: list[str] = field(default_factory=list)  # e.g. ["429", "500", "hang", "bad_json", "drop", "empty", "length"]
    reject_json_schema: bool = False
    reject_json_object: bool = False  # with reject_json_schema: a server with no response_format support
    rate_too_long: float = 0.0  # this share of prompts (chosen by the prompt's hash) gets a context-length 400
    rate_empty_content: float = 0.0  # a well-formed 200 whose message content is ""
    context_length: int | None = None  # reported by /v1/models as max_model_len
    grounded: bool = False  # answers restate document 1's first sentence (the paradigm check can pass)
    conforming: bool = False  # pairs that relate to their documents as the prompt's paradigm asks (a good model)
    no_logprobs: bool = False  # completions come back without log-probabilities (a server that cannot score)
    down_after: int | None = None  # every request after the first N answers 500 (a server that dies mid-run)
    judge_reply: str | None = None  # the reply to quality-judge prompts (None: the usual pair, not a verdict)
    rate_off_topic: float = (
        0.0  # this share of prompts (by the prompt's hash) gets a fluent answer that ignores its question
    )
    relevance_judge: bool | None = None  # the reply to a relevance-judge prompt ({"addresses_question": this})
    vary_on_retry: bool = False  # a job asked again (its request seed names attempt > 1) gets a pair of its own
    cited: bool = False  # answers built from the sources with correct [n] citations (answer_style: cited)
    quoted: bool = False  # RAFT answers quoting the sources verbatim, then <ANSWER>: (answer_style: quoted)
    rate_bad_citation: float = (
        0.0  # this share of prompts (by hash) gets a wrong citation / a quote with a word changed
    )
    seed: int = 0


_PARADIGM_TASKS = {  # a phrase of each template's task line (prompts/*.j2) -> its paradigm
    "does NOT help answer it": "useless_doc",
    "does NOT state the answer directly": "single_doc_support",
    "none of them states the answer directly": "multi_doc_support",
    "fully worked out from this one document": "single_doc_answer",
    "combining information from at least two": "multi_doc_answer",
}
_GENERAL = (
    "Careful study, patient observation and clear reasoning are what usually settle a question like this. "
    "Reliable answers come from checking several independent references, comparing their claims and "
    "weighing the evidence before reaching a conclusion, and from saying plainly where doubt remains."
)


def _documents(prompt: str) -> list[tuple[str, list[str]]]:
    """(title, sentences) of each `[Document i] title` block of a rendered prompt."""
    docs = re.findall(r"\[Document \d+\] ([^\n]*)\n([^\n]+)", prompt)
    return [(t.strip(), re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", body.strip())) for t, body in docs]


def conforming_pair(prompt: str) -> dict[str, str]:
    """A pair whose documents state, support or do not help its answer as the paradigm asks, with
    answers of RAG-Instruct's length (about 80 words): what a good model returns, so the quality
    gate's cost can be measured on replies that pass it (bench/generation.py G3). It passes the
    reply checks too: the answer addresses the question (relevance), restates rather than copies its
    document, and a multiple-choice exemplar gets a multiple-choice question."""
    paradigm = next((p for k, p in _PARADIGM_TASKS.items() if k in prompt), "single_doc_answer")
    docs = _documents(prompt) or [("this subject", ["It is a subject."])]
    t = docs[0][0]
    if paradigm == "useless_doc":
        pair = {
            "question": f"How should one judge claims about {t} when sources disagree?",
            "answer": f"Claims about {t} are judged like any disputed claim. {_GENERAL}",
        }
        return _multiple_choice(prompt, pair)
    used = docs[:2] if paradigm.startswith("multi") else docs[:1]
    subject = " and ".join(title for title, _ in used)
    question = f"Explain what is known about {subject} and why it matters, in a few sentences."
    if paradigm.endswith("_answer"):  # the documents state it: their opening sentences, introduced
        facts = " Also, ".join(" ".join(s[:3]) for _, s in used)  # not one run copied from a document
        answer = f"Going by what the record says about it, {facts[0].lower()}{facts[1:]} That is what matters about {subject}."
        return _multiple_choice(prompt, {"question": question, "answer": answer})
    # *_support: a few facts of each document, then reasoning the documents do not state
    hints = " ".join(" ".join(s[0].split()[:8]).rstrip(",;") + "." for _, s in used)
    return _multiple_choice(prompt, {"question": question, "answer": f"Start from the facts: {hints} {_GENERAL}"})


def _multiple_choice(prompt: str, pair: dict[str, str]) -> dict[str, str]:
    """The pair as a multiple-choice one when the prompt's exemplar is (prompts/*/_macros.j2 says so):
    four options in the question, the answer opening with the right letter."""
    if "multiple choice" not in prompt:
        return pair
    options = " A) the first account B) the second account C) the third account D) none of them"
    return {"question": pair["question"] + options, "answer": "A) " + pair["answer"]}


def _paradigm(prompt: str) -> str:
    return next((p for k, p in _PARADIGM_TASKS.items() if k in prompt), "single_doc_answer")


def cited_pair(prompt: str, *, wrong: bool = False) -> dict[str, str]:
    """A conforming pair whose answer cites its documents as the prompt numbers them: each sentence
    taken from document i ends with [i]; reasoning from general knowledge carries none. `wrong`
    plants one bad citation: a number with no document (one source), the other source (two), or a
    citation in a useless_doc answer."""
    paradigm = _paradigm(prompt)
    docs = _documents(prompt) or [("this subject", ["It is a subject."])]
    t = docs[0][0]
    question = f"Explain what is known about {t} and why it matters, in a few sentences."
    if paradigm == "useless_doc":
        general = _GENERAL.replace(" before reaching", " [1] before reaching") if wrong else _GENERAL
        return {"question": f"How should one judge claims about {t} when sources disagree?", "answer": general}
    used = docs[:2] if paradigm.startswith("multi") else docs[:1]
    n_docs = len(used)
    parts = []
    for i, (_, sents) in enumerate(used, 1):
        cite = i
        if wrong and i == 1:
            cite = n_docs + 5 if n_docs == 1 else 2
        if wrong and i == 2:
            cite = 1
        if paradigm.endswith("_answer"):
            parts += [f"{s.rstrip('.!?;')} [{cite}]." for s in sents[:2]]
        else:
            parts.append(" ".join(sents[0].split()[:8]).rstrip(",;.") + f" [{cite}].")
    body = " ".join(parts)
    if paradigm.endswith("_answer"):
        return {"question": question, "answer": f"Going by what the record says about it, {body[0].lower()}{body[1:]}"}
    return {"question": question, "answer": f"Start from the facts: {body} {_GENERAL}"}


def quoted_pair(prompt: str, *, wrong: bool = False) -> dict[str, str]:
    """A RAFT answer: reasoning that quotes each used document's first sentence verbatim between
    ##begin_quote## and ##end_quote##, then <ANSWER>:. `wrong` changes one word of the first quote."""
    paradigm = _paradigm(prompt)
    docs = _documents(prompt) or [("this subject", ["It is a subject."])]
    t = docs[0][0]
    question = f"Explain what is known about {t} and why it matters, in a few sentences."
    if paradigm == "useless_doc":
        return {
            "question": f"How should one judge claims about {t} when sources disagree?",
            "answer": f"##Reason: The document does not settle this. {_GENERAL}\n<ANSWER>: Compare independent sources.",
        }
    used = docs[:2] if paradigm.startswith("multi") else docs[:1]
    quotes = [s[0] for _, s in used]
    if wrong:
        words = quotes[0].split()
        k = min(3, len(words) - 1)
        words[k] = "never" if words[k] != "never" else "always"
        quotes[0] = " ".join(words)
    reason = " ".join(f"Document {i} says ##begin_quote## {q} ##end_quote##." for i, q in enumerate(quotes, 1))
    final = " ".join(" ".join(s[:2]) for _, s in used)
    return {"question": question, "answer": f"##Reason: {reason} Together these give the answer.\n<ANSWER>: {final}"}


def pair_for(prompt: str, *, grounded: bool = False, conforming: bool = False) -> dict[str, str]:
    if conforming:
        return conforming_pair(prompt)
    titles = re.findall(r"\[Document \d+\] (.*)", prompt) or ["this subject"]
    t = titles[0].strip()
    if grounded:  # an answer stated by document 1: its first sentence, introduced in other words
        body = re.search(r"\[Document 1\] [^\n]*\n([^\n]+)", prompt)
        first = re.split(r"(?<=[.!?])\s", body.group(1).strip())[0] if body else t
        return {
            "question": f"What does the passage about {t} say about it first?",
            "answer": f"The passage about {t} explains that {first[0].lower() + first[1:]}",
        }
    return {
        "question": f"What makes {t} significant, and how is it usually described by historians?",
        "answer": f"{t} is significant for its lasting influence; accounts describe its origins and impact.",
    }


def off_topic_pair(prompt: str) -> dict[str, str]:
    """A fluent reply that answers nothing it asks, as the 270M quickstart model writes them."""
    t = (re.findall(r"\[Document \d+\] (.*)", prompt) or ["this subject"])[0].strip()
    return {
        "question": f"What makes {t} significant, and how is it usually described by historians?",
        "answer": "I spent the whole weekend in the garden with my family. The roses made me so happy, "
        "and I have no regrets about it. You are all proud of me!",
    }


_WORDS = [
    "harbours",
    "glaciers",
    "bridges",
    "monasteries",
    "railways",
    "printing",
    "tariffs",
    "vineyards",
    "observatories",
    "canals",
    "coinage",
    "festivals",
    "treaties",
    "universities",
    "lighthouses",
    "orchards",
    "census",
    "mapping",
    "copper",
    "silk",
    "plague",
    "migration",
    "irrigation",
    "guilds",
    "telescopes",
    "libraries",
    "pottery",
    "shipwrecks",
    "drought",
    "sculpture",
]
_ASKS = (
    "How did {a} and {b} shape what is known about {t}?",
    "Which role did {a} play for {t}, compared with {b}?",
    "Why do accounts of {t} mention {a} more often than {b}?",
    "What would change about {t} without {a}, and what about {b}?",
    "In what way are {a} and {b} linked to the story of {t}?",
)


def retry_pair(prompt: str, seed: int) -> dict[str, str]:
    """A pair for a repeated request: a question drawn by the request's seed (the job and the attempt),
    so a job asked again after a duplicate does not repeat itself."""
    t = (re.findall(r"\[Document \d+\] (.*)", prompt) or ["this subject"])[0].strip()
    rng = random.Random(seed)
    a, b = rng.sample(_WORDS, 2)
    question = rng.choice(_ASKS).format(a=a, b=b, t=t)
    return {"question": question, "answer": f"For {t}, {a} mattered through trade and daily life, while {b} did less."}


def completion_for(body: dict, *, bad: bool = False) -> dict:
    """A /v1/completions answer. With echo + logprobs the prompt comes back as whitespace-led
    tokens; a token that appears in the prompt's `Background:` passage (or, for the necessity
    check's prompts, its `Documents:` block) gets log-prob -0.1, any other -3.0, so the context
    that states the answer scores highest. One token is generated."""
    prompt = body["prompt"]
    tokens = [*re.findall(r"\s*\S+|\s+$", prompt), " end"]
    background = prompt.split("\n\n", 1)[0].lower().split() if prompt.startswith("Background:") else []
    if prompt.startswith("Documents:"):
        background = prompt.split("\n\nQuestion:", 1)[0].lower().split()
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
    """Serves on 127.0.0.1 from a background thread; use as a context manager."""

    def __init__(self, faults: Faults | None = None, port: int = 0) -> None:
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.requests: list[dict] = []
        self.headers_seen: list[dict[str, str]] = []
        self.in_flight = 0
        self.served = 0  # requests that reached the fault draw
        self.peak_in_flight = 0
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/v1/chat/completions", self._post)
        app.router.add_post("/v1/completions", self._post)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, backlog=4096)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._sem = asyncio.Semaphore(self.faults.max_in_flight) if self.faults.max_in_flight else None
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> FakeServer:
        self.thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self.thread.join(10)

    # ------------------------------------------------------------------ handling
    def _outcome(self) -> str:
        f = self.faults
        with self.lock:
            self.served += 1
            if f.down_after is not None and self.served > f.down_after:
                return "500"
            if f.first:
                return f.first.pop(0)
            r = self.rng.random()
        for name, rate in (
            ("429", f.rate_429),
            ("500", f.rate_500),
            ("hang", f.rate_hang),
            ("bad_json", f.rate_bad_json),
            ("drop", f.rate_drop),
            ("empty", f.rate_empty),
            ("length", f.rate_length),
            ("length_whole", f.rate_length_whole),
        ):
            if r < rate:
                return name
            r -= rate
        return "ok"

    def _draw(self) -> float:
        with self.lock:
            return self.rng.random()

    async def _stats(self, request: web.Request) -> web.Response:
        with self.lock:
            return web.json_response({"counts": dict(self.counts), "peak_in_flight": self.peak_in_flight})

    async def _models(self, request: web.Request) -> web.Response:
        if self.faults.fixed_status in (401, 403):
            msg = {"error": {"message": f"fixed status {self.faults.fixed_status}", "type": "error"}}
            return web.json_response(msg, status=self.faults.fixed_status)
        entry: dict[str, Any] = {"id": "fake", "object": "model"}
        if self.faults.context_length:
            entry["max_model_len"] = self.faults.context_length
        return web.json_response({"object": "list", "data": [entry]})

    async def _post(self, request: web.Request) -> web.StreamResponse:
        if self._sem is None:
            return await self._handle(request)
        async with self._sem:
            return await self._handle(request)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        f = self.faults
        body = await request.json()
        with self.lock:
            self.requests.append(body)
            self.headers_seen.append(dict(request.headers))
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._respond(request, body, f)
        finally:
            with self.lock:
                self.in_flight -= 1

    async def _respond(self, request: web.Request, body: dict, f: Faults) -> web.StreamResponse:
        if f.fixed_status:
            self.counts[str(f.fixed_status)] += 1
            msg = {"error": {"message": f"fixed status {f.fixed_status}", "type": "error"}}
            return web.json_response(msg, status=f.fixed_status)
        rf = body.get("response_format") or {}
        if f.reject_json_schema and rf.get("type") == "json_schema":
            self.counts["rejected_schema"] += 1
            return web.json_response({"error": {"message": "response_format json_schema is not supported"}}, status=400)
        if f.reject_json_object and rf.get("type") == "json_object":
            self.counts["rejected_json_object"] += 1
            return web.json_response({"error": {"message": "response_format is not supported"}}, status=400)
        if f.rate_too_long and "messages" in body and _share(body["messages"][-1]["content"]) < f.rate_too_long:
            self.counts["too_long"] += 1
            msg = "This model's maximum context length is 4096 tokens. However, you requested 5120 tokens."
            return web.json_response({"error": {"message": msg, "type": "invalid_request_error"}}, status=400)
        outcome = self._outcome()
        self.counts[outcome] += 1
        if outcome == "hang":
            await asyncio.sleep(f.hang_seconds)
            raise ConnectionResetError  # never answer; aiohttp closes the connection
        if outcome == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError
        with self.lock:
            delay = max(0.0, f.latency + self.rng.uniform(-f.jitter, f.jitter))
        if delay:
            await asyncio.sleep(delay)
        if outcome == "429":
            return web.json_response(
                {"error": {"message": "rate limited"}}, status=429, headers={"retry-after": str(f.retry_after)}
            )
        if outcome == "500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if outcome == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        if request.path.endswith("/completions") and "prompt" in body and "messages" not in body:
            return web.json_response(completion_for(body, bad=outcome == "bad_json" or f.no_logprobs))
        prompt = body["messages"][-1]["content"]
        if f.judge_reply is not None and prompt.startswith("Judge how the numbered documents relate"):
            self.counts["judge"] += 1
            return web.json_response(chat_completion(body, f.judge_reply))
        if "Reply with only one word: yes or no." in prompt:  # the knowledge-intensity filter
            creative = re.search(r"\b(poem|joke|haiku|story|rewrite)\b", prompt.split("Instruction:")[-1], re.I)
            return web.json_response(chat_completion(body, "No." if creative else "Yes"))
        if f.relevance_judge is not None and "Does the answer address the question?" in prompt:
            return web.json_response(chat_completion(body, json.dumps({"addresses_question": f.relevance_judge})))
        pair = pair_for(prompt, grounded=f.grounded, conforming=f.conforming)
        if f.cited or f.quoted:
            wrong = bool(f.rate_bad_citation) and _share("bad_citation" + prompt) < f.rate_bad_citation
            self.counts["bad_citation"] += wrong
            pair = (cited_pair if f.cited else quoted_pair)(prompt, wrong=wrong)
        if f.vary_on_retry and int(body.get("seed") or 0) % 101 > 1:
            pair = retry_pair(prompt, int(body["seed"]))
        content = "this is not json {" if outcome == "bad_json" else json.dumps(pair)
        if f.rate_off_topic and _share("off_topic" + prompt) < f.rate_off_topic:
            self.counts["off_topic"] += 1
            content = json.dumps(off_topic_pair(prompt))
        if f.rate_empty_content and self._draw() < f.rate_empty_content:
            self.counts["empty_content"] += 1
            content = ""
        if outcome in ("length", "length_whole"):
            reply = chat_completion(body, content if outcome == "length_whole" else content[: len(content) // 2])
            reply["choices"][0]["finish_reason"] = "length"
            return web.json_response(reply)
        return web.json_response(chat_completion(body, content))


def _share(prompt: str) -> float:
    """A number in [0, 1) fixed by the prompt's text: the same prompt always gets the same fate."""
    return int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) / 16**8


def chat_completion(body: dict[str, Any], content: str) -> dict[str, Any]:
    prompt = body["messages"][-1]["content"]
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "fake"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": 30, "total_tokens": len(prompt) // 4 + 30},
    }


def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in (
        "latency",
        "jitter",
        "rate-429",
        "retry-after",
        "rate-500",
        "rate-hang",
        "hang-seconds",
        "rate-bad-json",
        "rate-drop",
        "rate-empty",
    ):
        ap.add_argument(f"--{name}", type=float)
    ap.add_argument("--grounded", type=int, choices=[0, 1], help="1: answers restate document 1's first sentence")
    ap.add_argument("--conforming", type=int, choices=[0, 1], help="1: pairs that pass the paradigm check")
    ap.add_argument("--cited", type=int, choices=[0, 1], help="1: answers cite their documents with [n]")
    ap.add_argument("--quoted", type=int, choices=[0, 1], help="1: RAFT answers quoting their documents")
    ap.add_argument("--rate-bad-citation", type=float, help="share of prompts with a planted wrong citation or quote")
    ap.add_argument("--max-in-flight", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the port here once serving")
    a = ap.parse_args()
    kw = {k: v for k, v in vars(a).items() if v is not None and k not in ("port", "port_file")}
    for flag in ("grounded", "conforming", "cited", "quoted"):
        if flag in kw:
            kw[flag] = bool(kw[flag])
    with FakeServer(Faults(**kw), port=a.port) as srv:
        if a.port_file:
            Path(a.port_file).write_text(str(srv.port))
        print(srv.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    _main()
