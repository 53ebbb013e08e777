"""A job -> its chat request: render the paradigm template, fit the prompt to the model's context.

`backend.max_prompt_tokens` (from the config, or from the server's `/models` metadata where it
reports a context length) bounds the prompt. Tokens are estimated without the model's tokenizer, on
the safe side (3 characters a token; English averages about 4 on Llama/Gemma/GPT tokenizers). A
prompt over the bound has each source passage cut, at a word boundary, to an equal share of what the
template leaves free, and the cut sources are recorded; a prompt that still does not fit fails the job
as `prompt_too_long` before anything is sent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from ragloom.retrieval import Passage

from .backends import ChatRequest
from .config import RunConfig
from .quality import PAIR_JSON_SCHEMA
from .templates import Templates
from .types import Job

CHARS_PER_TOKEN = 3.0
MIN_SOURCE_TOKENS = 48  # below this a cut passage no longer says anything a pair could be built on


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


@dataclass(frozen=True, slots=True)
class Prompt:
    request: ChatRequest
    hash: str
    truncated_sources: tuple[str, ...] = ()


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    return (head.rsplit(" ", 1)[0] if " " in head else head) + " ..."


def fit_sources(job: Job, templates: Templates, limit: int) -> tuple[tuple[Passage, ...], tuple[str, ...]] | None:
    """The job's sources, cut so the rendered prompt fits `limit` tokens; None when it cannot."""
    prompt = templates.render(job.paradigm, job.exemplar, job.sources)
    if estimate_tokens(prompt) <= limit:
        return job.sources, ()
    bare = [Passage(p.id, p.title, "") for p in job.sources]
    free = limit - estimate_tokens(templates.render(job.paradigm, job.exemplar, bare))
    share = free // max(len(job.sources), 1)
    if share < MIN_SOURCE_TOKENS:
        return None
    max_chars = int(share * CHARS_PER_TOKEN)
    cut = tuple(Passage(p.id, p.title, _cut(p.text, max_chars)) for p in job.sources)
    if estimate_tokens(templates.render(job.paradigm, job.exemplar, cut)) > limit:
        return None
    return cut, tuple(p.id for p, c in zip(job.sources, cut, strict=True) if c.text != p.text)


def build_prompt(job: Job, templates: Templates, cfg: RunConfig, max_prompt_tokens: int | None) -> Prompt | None:
    """The request for `job` (None: it cannot fit `max_prompt_tokens`). The seed differs per attempt,
    so a re-asked job gets a new draw."""
    truncated: tuple[str, ...] = ()
    if max_prompt_tokens is not None:
        fitted = fit_sources(job, templates, max_prompt_tokens)
        if fitted is None:
            return None
        sources, truncated = fitted
        job = replace(job, sources=sources)
    prompt = templates.render(job.paradigm, job.exemplar, job.sources)
    s = cfg.sampling
    seed = (cfg.seed * 1_000_003 + job.position * 101 + job.attempt) % (2**31)
    req = ChatRequest(
        [{"role": "user", "content": prompt}], s.temperature, s.top_p, s.max_tokens, seed, PAIR_JSON_SCHEMA
    )
    return Prompt(req, hashlib.sha256(prompt.encode()).hexdigest()[:16], truncated)
