"""Source necessity (optional, `quality.necessity: true`): are the sources needed for the answer?

Scored by the language model through the Backend protocol's `score` (log p(target | prefix), as
RA-DIT's LSR scoring in `scoring.py` does), with the answer a* as the target and the mean token
log-probability as the score:
- `*_answer`: mean log p(a | q, D*) - mean log p(a | q) must exceed `margin`, else the job fails
  as `answerable_closed_book` (the model gives the answer as readily without the sources);
- `multi_doc_answer`, also leave-one-out: dropping any one source must lower the score by more
  than `loo_margin`, else `source_unused` (that source adds nothing the others do not give);
- `useless_doc`: the source must not raise the score by more than `margin`, else
  `paradigm_mismatch` (the quality gate's code: the "useless" document helps);
- the `*_support` paradigms are not checked (a supporting document may or may not raise the
  likelihood of an answer it does not state).
The scores go into the record (`curation.necessity`), so a user can re-threshold later.

The fast CPU path for a local GGUF model is the `llama_cpp` backend (backends/llama_cpp_backend.py:
llama-cpp-python in process with all logits kept and a numpy log-softmax over the target's rows).
llama.cpp's server computes echoed logprobs by sorting the whole vocabulary for every prompt token
(about 0.3 s per token for Gemma 3's 262k vocabulary on CPU); see bench/necessity.py for both.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends import Backend, ScoreRequest, ScoreResult
from ..paradigms import get as get_paradigm
from .checks import CheckContext, CheckItem, Outcome
from .config import Quality


def checked(paradigm: str) -> bool:
    """Whether the paradigm's registry entry has a necessity rule (the `*_support` paradigms do not)."""
    return get_paradigm(paradigm).necessity is not None


@dataclass(frozen=True, slots=True)
class NecessityConfig:
    margin: float = 0.1  # nats per answer token
    loo_margin: float = 0.05  # noise floor: an unrelated source moved the score by +0.004 on Gemma 270M


@dataclass(slots=True)
class Verdict:
    reason: str | None  # None: passes
    scores: dict[str, Any] = field(default_factory=dict)


def _docs_block(sources: Sequence[Any]) -> str:
    return "\n".join(f"[{i}] {d.title or ''}\n{d.text}".replace("] \n", "] ") for i, d in enumerate(sources, 1))


def prefix(question: str, sources: Sequence[Any]) -> str:
    """The scoring prompt: the documents (if any), the question, then `Answer:`."""
    head = f"Documents:\n{_docs_block(sources)}\n\n" if sources else ""
    return f"{head}Question: {question}\nAnswer:"


def requests_for(paradigm: str, question: str, answer: str, sources: Sequence[Any]) -> list[ScoreRequest]:
    """With all sources, without any, and (multi_doc_answer) without each one in turn."""
    target = " " + answer.strip()
    reqs = [ScoreRequest(prefix(question, sources), target), ScoreRequest(prefix(question, []), target)]
    if get_paradigm(paradigm).necessity == "each_needed":
        reqs += [
            ScoreRequest(prefix(question, [s for j, s in enumerate(sources) if j != i]), target)
            for i in range(len(sources))
        ]
    return reqs


def _mean(r: ScoreResult) -> float:
    return r.logprob / max(len(r.token_logprobs), 1)


def judge(paradigm: str, results: Sequence[ScoreResult], cfg: NecessityConfig) -> Verdict:
    """The verdict from the scores of `requests_for`'s requests, in that order."""
    down = next((r for r in results if r.error), None)
    if down is not None:  # the scorer could not be reached: not this record's doing (the job stays unfinished)
        return Verdict(None, {"error": down.error, "transport": True})
    bad = next((r for r in results if r.failure), None)
    if bad is not None:  # this record cannot be scored: it is kept and counted as unscored, never failed for it
        return Verdict(None, {"error": bad.failure})
    with_docs, closed = _mean(results[0]), _mean(results[1])
    gain = with_docs - closed
    scores: dict[str, Any] = {
        "with_sources": round(with_docs, 4),
        "closed_book": round(closed, 4),
        "gain": round(gain, 4),
    }
    rule = get_paradigm(paradigm).necessity
    if rule == "unhelpful":
        return Verdict("paradigm_mismatch" if gain > cfg.margin else None, scores)
    if gain <= cfg.margin:
        return Verdict("answerable_closed_book", scores)
    if rule == "each_needed":
        drops = [round(with_docs - _mean(r), 4) for r in results[2:]]
        scores["leave_one_out_drop"] = drops
        if any(d <= cfg.loo_margin for d in drops):
            return Verdict("source_unused", scores)
    return Verdict(None, scores)


async def check(
    backend: Any, paradigm: str, question: str, answer: str, sources: Sequence[Any], cfg: NecessityConfig
) -> Verdict:
    """Score and judge one record (a paradigm without a necessity rule passes unscored)."""
    if not checked(paradigm):
        return Verdict(None, {})
    results = await backend.score(requests_for(paradigm, question, answer, sources))
    return judge(paradigm, results, cfg)


def config_of(quality: Quality) -> NecessityConfig:
    """The thresholds of the `quality:` config section."""
    return NecessityConfig(margin=quality.necessity_margin, loo_margin=quality.necessity_loo_margin)


async def open_scorer(quality: Quality, backend: Backend) -> tuple[Backend, bool]:
    """The backend that scores necessity (`quality.necessity_backend`, else the run's own), checked
    with one tiny request before any work: a backend that cannot score at all is a settings problem
    that holds for every record, so it stops the run with one line. Returns (scorer, owned): an
    owned scorer is the caller's to close."""
    from ragloom.errors import ConfigError

    from ..backends import make_backend

    owned = quality.necessity_backend is not None
    scorer = make_backend(quality.necessity_backend) if owned else backend
    try:
        if owned:
            await scorer.preflight()
        (probe,) = await scorer.score([ScoreRequest(prefix("Is the sky blue on a clear day?", []), " Yes, it is.")])
    except BaseException:
        if owned:
            await scorer.aclose()
        raise
    if probe.error or probe.failure:
        if owned:
            await scorer.aclose()
        why = probe.failure or probe.error
        raise ConfigError(
            f"quality.necessity: the scorer ({scorer.describe().get('type')} {scorer.model}) cannot score prompts "
            f"({why}{': ' + probe.detail[:120] if probe.detail else ''}); set quality.necessity_backend to "
            "{type: llama_cpp, model_path: FILE.gguf} or a server that returns prompt log-probabilities (vLLM)"
        )
    return scorer, owned


class NecessityCheck:
    """`quality.necessity` as one object of the check protocol (checks.py): the scores go in the record's
    `quality.necessity`. A record the scorer could not score is kept and counted `necessity_unscored`;
    a scorer that could not be reached leaves the job unfinished (the run's scorer breaker counts it)."""

    name = "necessity"
    key = "necessity"
    codes = ("answerable_closed_book", "source_unused", "paradigm_mismatch")
    per_paradigm = frozenset({"paradigm_mismatch"})
    breaker = "scorer"
    reads_markers = False

    def __init__(self, q: Quality, scorer: Backend) -> None:
        self.scorer, self.cfg = scorer, config_of(q)

    @classmethod
    def build(cls, q: Quality, ctx: CheckContext) -> NecessityCheck | None:
        """Needs the scorer the caller opened and checked (`open_scorer`) before anything was written."""
        if not q.necessity:
            return None
        if ctx.scorer is None:
            raise ValueError("quality.necessity is on: pass the scorer from necessity.open_scorer")
        return cls(q, ctx.scorer)

    def applies(self, paradigm: str | None) -> bool:
        return paradigm is not None and checked(paradigm)

    async def averdicts(self, items: Sequence[CheckItem]) -> list[Outcome]:
        checks = [
            check(
                self.scorer,
                str(i.paradigm),
                i.question,
                i.answer,
                i.sources,
                self.cfg,
            )
            for i in items
        ]
        return [self._outcome(v) for v in await asyncio.gather(*checks)]

    @staticmethod
    def _outcome(v: Verdict) -> Outcome:
        if v.scores.get("transport"):  # the scorer's server failed: never written unscored
            return Outcome(False, unfinished=str(v.scores["error"]))
        return Outcome(v.reason is None, v.reason, v.scores)

    def figures(self, outcomes: Sequence[Outcome]) -> Counter[str]:
        """necessity_passed, necessity_unscored, necessity_<reason>."""
        return Counter(
            "necessity_unscored" if "error" in o.figures else ("necessity_passed" if o.ok else f"necessity_{o.code}")
            for o in outcomes
        )
