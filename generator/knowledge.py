"""The RAG-Instruct knowledge-intensity filter: ask the LLM whether retrieving external information
would help answer an exemplar instruction, keep the ones where it would.

Decisions are cached on disk as JSON lines keyed by (model, instruction text), so a rerun, a resumed
run or another run over the same exemplars asks nothing twice. A reply that is neither yes nor no, or
a request that failed, keeps the exemplar and is cached as undecided (`helps: null`): asked again, it
could be decided otherwise, which would change the plan and make the run refuse to resume.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from ragloom.errors import BackendError, OutputError

from .backends import Backend, ChatRequest
from .types import Exemplar

PROMPT = """\
Would retrieving external documents (for example Wikipedia articles) help answer the instruction \
below accurately? Answer yes if it needs factual, specialised or up-to-date knowledge; answer no if \
it is creative writing, chit-chat, arithmetic or rewriting text that is given.

Instruction:
{text}

Reply with only one word: yes or no."""

_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def parse_decision(reply: str) -> bool | None:
    """yes -> True, no -> False, anything else -> None. JSON like {"answer": "yes"} is read too."""
    m = _YES_NO.search(reply or "")
    return None if m is None else m.group(1).lower() == "yes"


class DecisionCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.decisions: dict[tuple[str, str], bool | None] = {}  # (model, text hash) -> helps (None: undecided)
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rec = json.loads(line)
                    helps = rec["helps"]
                    self.decisions[(rec["model"], rec["text_hash"])] = None if helps is None else bool(helps)
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a torn last line from a kill: asked again

    def has(self, model: str | None, text: str) -> bool:
        """Whether a decision (undecided included) is cached; with model None (a dry run), any model's."""
        h = text_hash(text)
        if model is not None:
            return (model, h) in self.decisions
        return any(th == h for (_, th) in self.decisions)

    def get(self, model: str | None, text: str) -> bool | None:
        """The model's decision (None: undecided or not cached); with model None (a dry run), any model's."""
        h = text_hash(text)
        if model is not None:
            return self.decisions.get((model, h))
        return next((v for (_, th), v in self.decisions.items() if th == h), None)

    def add(self, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None
        for entry in entries:
            self.decisions[(entry["model"], entry["text_hash"])] = entry["helps"]


async def _ask(backend: Backend, texts: list[str]) -> list[str | None]:
    reqs = [
        ChatRequest([{"role": "user", "content": PROMPT.format(text=t)}], temperature=0.0, max_tokens=8, seed=0)
        for t in texts
    ]
    size = max(1, backend.batch_size * backend.parallelism)
    out: list[str | None] = []
    try:
        for start in range(0, len(reqs), size):
            results = await backend.chat(reqs[start : start + size])
            out += [None if r.error else r.text for r in results]
    finally:
        await backend.aclose()
    return out


def knowledge_filter(
    sources: list[list[Exemplar]],
    backend: Backend | None,
    cache_path: Path,
    dropped: dict[str, int],
) -> tuple[list[list[Exemplar]], dict[str, int]]:
    """Drop exemplars the LLM says retrieval would not help. With `backend=None` (a dry run) only
    cached decisions apply. Returns the kept exemplars and counts: asked, cached, undecided, pending."""
    model = backend.model if backend is not None else None
    cache = DecisionCache(cache_path)
    unique = list(dict.fromkeys(ex.text for src in sources for ex in src))
    info = {"asked": 0, "cached": 0, "undecided": 0, "pending": 0}

    def lookup(text: str) -> bool | None:
        return cache.get(model, text)

    todo = [t for t in unique if not cache.has(model, t)]
    info["cached"] = len(unique) - len(todo)
    if todo and backend is not None:
        replies = asyncio.run(_ask(backend, todo))
        if all(r is None for r in replies):
            raise BackendError("knowledge filter: every request to the LLM failed; is the server up? Rerun to resume")
        entries = []
        for text, reply in zip(todo, replies, strict=True):
            decision = parse_decision(reply or "")
            if decision is None:
                info["undecided"] += 1
            entries.append({"model": model, "text_hash": text_hash(text), "helps": decision, "text": text[:200]})
        cache.add(entries)
        info["asked"] = len(todo)
    elif todo:
        info["pending"] = len(todo)
    kept = []
    for src in sources:
        keep = []
        for ex in src:
            decision = lookup(ex.text)
            if decision is False:
                dropped["exemplar_not_knowledge_intensive"] = dropped.get("exemplar_not_knowledge_intensive", 0) + 1
            else:
                keep.append(ex)
        kept.append(keep)
    return kept, info
