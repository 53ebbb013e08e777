"""The generation pipeline: sources -> render -> LLM -> validate -> distractors -> checkpoint.

Three stages joined by queues run concurrently: retrieval of source documents runs ahead
of the LLM in batches (in a thread: faiss and torch release the GIL), `backend.parallelism`
workers keep the LLM busy, and accepted pairs are searched and padded in batches.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragloom.retrieval import Hit, Index, Passage, sample_distractors

import ragloom

from .backends import Backend, ChatRequest
from .checkpoint import Checkpoint
from .config import RunConfig
from .parsing import PAIR_JSON_SCHEMA, Thresholds, parse_pair
from .sources import HitCache, job_rng, select_sources
from .templates import Templates
from .types import Attempted, Job, Usage

_DONE = object()


@dataclass
class Stats:
    """Live counters; `rejected` and `failed` are keyed by reason code."""

    planned: int = 0
    skipped_done: int = 0
    accepted: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    backend_errors: Counter[str] = field(default_factory=Counter)
    usage: Usage = field(default_factory=Usage)
    pipeline_seconds: float = 0.0  # from the first job queued to the last record written

    @property
    def finished(self) -> int:
        return self.accepted + sum(self.failed.values())


class Breaker:
    """Stops a run once `max(20, parallelism)` requests in a row (for the openai backend, twice its
    concurrency) fail at the transport: the server is down, not flaky. Finished work is on disk;
    the message says to rerun to resume."""

    def __init__(self, backend: Backend, failed: str = "requests in a row failed") -> None:
        self.backend, self.failed_phrase = backend, failed
        self.limit = max(20, backend.parallelism)
        self.streak = 0

    def ok(self) -> None:
        self.streak = 0

    def failed(self, error: str) -> None:
        self.streak += 1
        if self.streak >= self.limit:
            from ragloom.errors import BackendError

            where = self.backend.describe().get("base_url", self.backend.name)
            raise BackendError(
                f"{self.streak} {self.failed_phrase} ({error}) at {where}; is the server up? Rerun to resume"
            )


def by_exemplar(jobs: Sequence[Job]) -> list[Job]:
    """Jobs that share an exemplar, next to each other (groups in order of first appearance, plan
    order within): a batch of 64 jobs then needs about ten exemplar searches instead of 64, so the
    first requests go out sooner and retrieval keeps ahead of the LLM (bench/generation.py G3)."""
    first: dict[str, int] = {}
    for j in jobs:
        first.setdefault(j.exemplar.text, len(first))
    return sorted(jobs, key=lambda j: first[j.exemplar.text])


class Pipeline:
    def __init__(
        self,
        cfg: RunConfig,
        index: Index,
        backend: Backend,
        templates: Templates,
        checkpoint: Checkpoint,
        stats: Stats,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.cfg, self.index, self.backend, self.templates = cfg, index, backend, templates
        self.checkpoint, self.stats = checkpoint, stats
        self.on_progress = on_progress or (lambda: None)
        self.thresholds = Thresholds(
            cfg.validation.min_question_words,
            cfg.validation.min_answer_words,
            cfg.validation.copy_ngram,
            cfg.validation.echo_similarity,
        )
        self.breaker = Breaker(backend)
        self.hit_cache = HitCache()

    async def run(self, jobs: Sequence[Job]) -> None:
        t0 = time.perf_counter()
        try:
            await self._run(jobs)
        finally:
            self.stats.pipeline_seconds = time.perf_counter() - t0

    async def _run(self, jobs: Sequence[Job]) -> None:
        ready: asyncio.Queue[Any] = asyncio.Queue()
        accepted: asyncio.Queue[Any] = asyncio.Queue(maxsize=4 * self.backend.parallelism * self.backend.batch_size)
        prefetch = asyncio.Semaphore(2 * self.backend.parallelism * self.backend.batch_size + 64)
        self._remaining = len(jobs)
        if not jobs:
            return
        self._ready, self._accepted = ready, accepted
        tasks = [asyncio.create_task(self._produce(jobs, ready, prefetch))]
        tasks += [
            asyncio.create_task(self._llm_worker(ready, accepted, prefetch)) for _ in range(self.backend.parallelism)
        ]
        tasks.append(asyncio.create_task(self._finish(accepted)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _produce(self, jobs: Sequence[Job], ready: asyncio.Queue[Any], prefetch: asyncio.Semaphore) -> None:
        jobs = by_exemplar(jobs)
        # a small first batch so the first requests go out after a few encodes, not 64
        start, batch = 0, 8
        while start < len(jobs):
            chunk = jobs[start : start + batch]
            start, batch = start + len(chunk), min(2 * batch, 64)
            for _ in chunk:
                await prefetch.acquire()
            picked = await asyncio.to_thread(
                select_sources, chunk, self.index, self.cfg.sources, self.cfg.seed, self.hit_cache
            )
            for job in picked:
                ready.put_nowait(job)

    def _request(self, job: Job) -> tuple[ChatRequest, str]:
        prompt = self.templates.render(job.paradigm, job.exemplar, job.sources)
        s = self.cfg.sampling
        seed = (self.cfg.seed * 1_000_003 + job.position * 101 + job.attempt) % (2**31)
        req = ChatRequest(
            [{"role": "user", "content": prompt}], s.temperature, s.top_p, s.max_tokens, seed, PAIR_JSON_SCHEMA
        )
        return req, hashlib.sha256(prompt.encode()).hexdigest()[:16]

    async def _llm_worker(
        self, ready: asyncio.Queue[Any], accepted: asyncio.Queue[Any], prefetch: asyncio.Semaphore
    ) -> None:
        while True:
            first = await ready.get()
            if first is _DONE:
                ready.put_nowait(_DONE)
                return
            batch = [first]
            while len(batch) < self.backend.batch_size and not ready.empty():
                item = ready.get_nowait()
                if item is _DONE:
                    ready.put_nowait(_DONE)
                    break
                batch.append(item)
            for job in batch:
                if job.attempt == 1:
                    prefetch.release()
            reqs = [self._request(j) for j in batch]
            results = await self.backend.chat([r for r, _ in reqs])
            for job, (req, phash), res in zip(batch, reqs, results, strict=True):
                await self._judge(job, req, phash, res, accepted)

    async def _judge(self, job: Job, req: ChatRequest, phash: str, res: Any, accepted: asyncio.Queue[Any]) -> None:
        st = self.stats
        st.usage.add(Usage(res.prompt_tokens, res.completion_tokens))
        for r in res.retry_reasons:
            st.retried[r] += 1
        if res.error:
            st.backend_errors[res.error] += 1
            self.breaker.failed(res.error)
            # Transport failures are not the job's fault: it stays unfinished and is retried on resume.
            self._job_done()
            return
        self.breaker.ok()
        pair, reason = parse_pair(res.text, sources=job.sources, exemplar=job.exemplar, thresholds=self.thresholds)
        if pair is None:
            st.rejected[str(reason)] += 1
            if job.attempt < self.cfg.validation.attempts:
                self._ready.put_nowait(dataclasses.replace(job, attempt=job.attempt + 1))
                return
            self.checkpoint.write_failure(job.id, str(reason), job.attempt)
            st.failed[str(reason)] += 1
            self._job_done()
            return
        sampling = {"temperature": req.temperature, "top_p": req.top_p, "max_tokens": req.max_tokens, "seed": req.seed}
        await accepted.put(Attempted(job, pair, phash, Usage(res.prompt_tokens, res.completion_tokens), sampling))

    def _job_done(self) -> None:
        self._remaining -= 1
        self.on_progress()
        if self._remaining == 0:
            self._ready.put_nowait(_DONE)
            self._accepted.put_nowait(_DONE)

    async def _finish(self, accepted: asyncio.Queue[Any]) -> None:
        while True:
            batch = [await accepted.get()]
            # no waiting to fill the batch: that measured no gain, and Python 3.11's wait_for can
            # swallow the cancellation Ctrl-C sends
            while not accepted.empty() and len(batch) < 64:
                batch.append(accepted.get_nowait())
            items = [b for b in batch if b is not _DONE]
            if items:
                # records are built in the worker thread too: the event loop only writes them
                for record in await asyncio.to_thread(self._records, items):
                    self.checkpoint.write_example(record)
                    self.stats.accepted += 1
                    self._job_done()
            if len(items) < len(batch):
                return

    def _records(self, items: list[Attempted]) -> list[dict[str, Any]]:
        """Search the accepted questions, then sample each one's distractors from its rank band
        (the band's passages read in one go for the batch) and build its record."""
        lo, hi = self.cfg.distractors.rank_band
        scores, rows = self.index.search_rows([a.pair.question for a in items], min(hi, len(self.index)))
        bands = self.index.hits_from_rows(scores[:, lo:hi], rows[:, lo:hi], lo)
        return [self._record(*args) for args in zip(items, scores, rows, bands, strict=True)]

    def _random_passage(self, rng: random.Random) -> Passage:
        return self.index.store.get_rows([rng.randrange(len(self.index))])[0]

    def _distractors(self, job: Job, answer: str, scores: Any, rows: Any, band_hits: list[Hit]) -> list[Any]:
        """Sample from the band's passages alone (read 50, not 250, per record); only when the band
        runs short are all ranks read and the draw repeated, which gives the same picks the full
        list would have given."""
        lo, hi = self.cfg.distractors.rank_band
        need = max(self.cfg.distractors.total_docs - len(job.sources), 0)
        kw: dict[str, Any] = {"sources": job.sources, "n": need, "band": (lo, hi), "answer": answer}
        picks = sample_distractors(band_hits, rng=job_rng(self.cfg.seed, job.id, "distractors"), **kw)
        if len(picks) < need:
            hits = self.index.hits_from_rows(scores[None, :], rows[None, :])[0]
            rng = job_rng(self.cfg.seed, job.id, "distractors")
            picks = sample_distractors(hits, rng=rng, random_passage=self._random_passage, **kw)
        return picks

    def _record(self, item: Attempted, scores: Any, rows: Any, band_hits: list[Hit]) -> dict[str, Any]:
        job, pair = item.job, item.pair
        picks = self._distractors(job, pair.answer, scores, rows, band_hits)
        rng = job_rng(self.cfg.seed, job.id, "distractors-order")

        def rank_of(p: Passage) -> int | None:
            row = self.index.store.row_of(p.id)
            where = (rows == row).nonzero()[0] if row is not None else []
            return int(where[0]) if len(where) else None

        docs = [
            {"id": p.id, "title": p.title, "text": p.text, "role": "source", "rank": rank_of(p), "rule": None}
            for p in job.sources
        ]
        docs += [
            {
                "id": d.passage.id,
                "title": d.passage.title,
                "text": d.passage.text,
                "role": "distractor",
                "rank": d.rank,
                "rule": d.rule,
            }
            for d in picks
        ]
        rng.shuffle(docs)
        ex = job.exemplar
        return {
            "id": job.id,
            "job_id": job.id,
            "paradigm": job.paradigm,
            "instruction": pair.question,
            "answer": pair.answer,
            "documents": docs,
            "exemplar": {
                "id": ex.id,
                "source": ex.source,
                "text": ex.text,
                "task_type": ex.task_type,
                "options": list(ex.options),
            },
            "generation": {
                **{k: v for k, v in self.backend.describe().items() if k != "base_url"},
                "sampling": item.sampling,
                "template": f"{job.paradigm}.j2",
                "template_hash": self.templates.digest(job.paradigm),
                "prompt_hash": item.prompt_hash,
                "usage": {"prompt_tokens": item.usage.prompt_tokens, "completion_tokens": item.usage.completion_tokens},
                "attempts": job.attempt,
            },
            "ragloom_version": ragloom.__version__,
        }
