"""The generation pipeline: sources -> render -> LLM -> validate -> distractors -> checkpoint.

Three stages joined by queues run concurrently: retrieval of source documents runs ahead
of the LLM in batches (in a thread: faiss and torch release the GIL), `backend.parallelism`
workers keep the LLM busy, and accepted pairs are searched and padded in batches.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from ragloom.retrieval import Index

from .backends import Backend, ChatResult
from .config import RunConfig
from .curate import Curator
from .curation import Decontaminator
from .prompting import Prompt, build_prompt
from .quality import (
    CheckContext,
    CheckItem,
    ConformanceChecker,
    LeakScreen,
    RecordCheck,
    SpanFrequency,
    Thresholds,
    build_checks,
    judge_cache,
    parse_pair,
)
from .records import Attempted, RecordBuilder
from .runs import Breaker, Checkpoint, Stats, strip_answer
from .sources import HitCache, select_sources
from .templates import Templates
from .types import Job, Usage

_DONE = object()
# put on the accepted queue when a job is decided outside the record stage (failed, abandoned): pairs
# held in plan order behind it may now be released, and only the record stage releases them
_NUDGE = object()


class _Ready(asyncio.Queue[Any]):
    """Jobs to ask. A job asked again (its answer was rejected, or was a duplicate) goes before the
    new jobs prefetched behind it: decisions are made in plan order (dedup.py), so later jobs may
    be waiting on it, and a job already started should finish before new ones start. Extends
    asyncio.Queue the way the standard library's PriorityQueue does (`_init`, `_put`, `_get`)."""

    def _init(self, maxsize: int) -> None:
        self._queue: collections.deque[Any] = collections.deque()
        self._again: collections.deque[Any] = collections.deque()

    def _put(self, item: Any) -> None:
        (self._again if isinstance(item, Job) and item.attempt > 1 else self._queue).append(item)

    def _get(self) -> Any:
        return self._again.popleft() if self._again else self._queue.popleft()

    def qsize(self) -> int:
        return len(self._queue) + len(self._again)

    def empty(self) -> bool:
        return not (self._queue or self._again)


def by_exemplar(jobs: Sequence[Job]) -> list[Job]:
    """Jobs that share an exemplar, next to each other (groups in order of first appearance, plan
    order within): a batch of 64 jobs then needs about ten exemplar searches instead of 64, so the
    first requests go out sooner and retrieval keeps ahead of the LLM (bench/generation.py G3)."""
    first: dict[str, int] = {}
    for j in jobs:
        first.setdefault(j.exemplar.text, len(first))
    return sorted(jobs, key=lambda j: first[j.exemplar.text])


# the most accepted pairs one check call takes: the encoder embeds a batch's sentences in one call, and a
# call over more texts pads less and keeps every OpenVINO stream busy (bench G3 with the checks on, 2
# cores, bf16: at most 64 gave 1.32x its floor; all that waits, 1.18-1.25x)
CHECK_BATCH = 1024
CHECK_BATCH_LAST = 64


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
        scorer: Backend | None = None,
        decon: Decontaminator | None = None,
        frequency: SpanFrequency | None = None,
    ) -> None:
        """`scorer`: the necessity scorer, opened and checked by the caller before anything is written
        (`necessity.open_scorer`: once per run in run.py, once per Ray worker), and closed by it.
        `decon`: the run's eval sets, opened by the caller (`curation.open_decontaminator`).
        `frequency`: the index's span counts for the leak screen when the caller has them (run.py reads
        them while the encoder loads); else read here."""
        self.decon = decon
        if cfg.quality.necessity and scorer is None:
            raise ValueError("quality.necessity is on: pass the scorer from necessity.open_scorer")
        self.cfg, self.index, self.backend, self.templates = cfg, index, backend, templates
        self.scorer = scorer
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
        q = cfg.quality
        checker = None
        if q.conformance or q.leak_screen or q.relevance:
            checker = ConformanceChecker(index.encoder, q.thresholds())
        screen = None
        if q.leak_screen and checker is not None:
            screen = LeakScreen(
                checker,
                similarity=q.leak_similarity,
                gate_words=q.leak_gate_words,
                frequency=frequency or SpanFrequency.for_index_dir(index.dir, store=index.store),
                rule=q.leak_rule(),
            )
        self.builder = RecordBuilder(cfg, index, templates, backend.describe(), screen)
        cache = judge_cache(q.judge_cache, cfg.output) if q.judge else None  # one per run, both judges
        # the record-level checks the `quality:` section turns on, in the registry's order (quality/checks.py)
        self.checks: list[RecordCheck] = build_checks(
            q, CheckContext(checker, backend, cache, scorer, answer_style=self.cfg.answer_style)
        )
        self.judge_breaker = Breaker(backend, "judge requests in a row gave no verdict")
        limit = cfg.backend.max_prompt_tokens
        if limit is None and backend.context_length:
            limit = backend.context_length - cfg.sampling.max_tokens
        self.max_prompt_tokens = limit

    async def run(self, jobs: Sequence[Job], order: Sequence[str] | None = None) -> None:
        """Generate `jobs`. `order`: the job ids of the whole plan in decision order (default:
        `by_exemplar(jobs)`); pass the full plan's so a resumed run decides duplicates as an
        uninterrupted one would (see dedup.py)."""
        ids = {j.id for j in jobs}
        order = [i for i in (order or [j.id for j in by_exemplar(jobs)]) if i in ids]
        rank = {i: n for n, i in enumerate(order)}
        jobs = sorted(jobs, key=lambda j: rank[j.id])
        self.curator = Curator(self.cfg, self.index, self.checkpoint.examples, order, self.decon)
        self.breakers = {"judge": self.judge_breaker}
        if self.scorer is not None:
            self.breakers["scorer"] = Breaker(self.scorer, "scoring requests in a row failed")
        t0 = time.perf_counter()
        try:
            await self._run(jobs)
        finally:
            self.stats.pipeline_seconds = time.perf_counter() - t0

    async def _run(self, jobs: Sequence[Job]) -> None:
        ready: asyncio.Queue[Any] = _Ready()
        accepted: asyncio.Queue[Any] = asyncio.Queue(maxsize=4 * self.backend.parallelism * self.backend.batch_size)
        prefetch = asyncio.Semaphore(2 * self.backend.parallelism * self.backend.batch_size + 64)
        self._remaining, self._nudged, self._asking = len(jobs), False, 0
        if not jobs:
            return
        self._ready, self._accepted = ready, accepted
        tasks = [asyncio.create_task(self._produce(jobs, ready, prefetch))]
        tasks += [
            asyncio.create_task(self._llm_worker(ready, accepted, prefetch)) for _ in range(self.backend.parallelism)
        ]
        # one stage per check, then the record stage, each a batch behind the one before (a queue of one
        # batch between them): one batch's relevance check embeds while the next batch's paradigm check
        # embeds its sentences, and the encoder does not wait on any stage's Python work
        inbox: asyncio.Queue[Any] = accepted
        for n, check in enumerate(self.checks or [None]):
            outbox: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)
            tasks.append(asyncio.create_task(self._check_stage(check, inbox, outbox, first=n == 0)))
            inbox = outbox
        tasks.append(asyncio.create_task(self._record_stage(inbox)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _produce(self, jobs: Sequence[Job], ready: asyncio.Queue[Any], prefetch: asyncio.Semaphore) -> None:
        # `jobs` come in decision order, which groups jobs of one exemplar (see `run`)
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
                if job.attempt > 1:  # resumed at a later attempt (a repeat found at a Ray merge): no slot held
                    prefetch.release()

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
            prompts: list[tuple[Job, Prompt]] = []
            for job in batch:
                prompt = build_prompt(job, self.templates, self.cfg, self.max_prompt_tokens)
                if prompt is None:
                    self._fail(job, "prompt_too_long")
                else:
                    prompts.append((job, prompt))
            if not prompts:
                continue
            self._asking += len(prompts)
            try:
                results = await self.backend.chat([p.request for _, p in prompts])
            finally:
                self._asking -= len(prompts)
            for (job, prompt), res in zip(prompts, results, strict=True):
                await self._judge(job, prompt, res, accepted)

    async def _judge(self, job: Job, prompt: Prompt, res: ChatResult, accepted: asyncio.Queue[Any]) -> None:
        st = self.stats
        st.usage.add(Usage(res.prompt_tokens, res.completion_tokens))
        for r in res.retry_reasons:
            st.retried[r] += 1
        if res.error:
            self._unfinished(job, res.error, self.breaker)
            return
        if res.failure:
            # the server refused this request (not every request): the job fails, the run goes on
            self.breaker.rejected(res.failure, res.detail)
            self._fail(job, res.failure, res.detail)
            return
        self.breaker.ok()
        pair = None
        reason: str | None = "empty_response"
        if res.text.strip():
            # cut off at max_tokens (finish_reason "length") is `truncated`, even when the cut left parseable JSON
            pair, reason = parse_pair(
                res.text,
                sources=job.sources,
                exemplar=job.exemplar,
                thresholds=self.thresholds,
                finish_reason=res.finish_reason,
            )
        if pair is None:
            st.rejected[str(reason)] += 1
            if job.attempt < self.cfg.validation.attempts:
                self._ready.put_nowait(dataclasses.replace(job, attempt=job.attempt + 1))
                return
            self._fail(job, str(reason))
            return
        req = prompt.request
        sampling = {"temperature": req.temperature, "top_p": req.top_p, "max_tokens": req.max_tokens, "seed": req.seed}
        usage = Usage(res.prompt_tokens, res.completion_tokens)
        await accepted.put(Attempted(job, pair, prompt.hash, usage, sampling, list(prompt.truncated_sources)))

    async def _check(self, check: RecordCheck, items: list[Attempted]) -> list[Attempted]:
        """One check over a batch (quality/checks.py): its figures go in each record's `quality`; a rejected
        pair is asked again, then fails with the check's code; no verdict leaves the job unfinished
        (resumable; the check's breaker stops a run whose judge or scorer never answers)."""
        todo = [i for i in items if check.applies(i.job.paradigm)]
        plain = self.cfg.answer_style != "plain" and not check.reads_markers
        outcomes = await check.averdicts(
            [
                CheckItem(
                    i.pair.question,
                    strip_answer(i.pair.answer) if plain else i.pair.answer,
                    i.job.paradigm,
                    i.job.sources,
                )
                for i in todo
            ]
        )
        self.stats.counts.update(check.figures([o for o in outcomes if o.unfinished is None]))
        verdict = {id(i): o for i, o in zip(todo, outcomes, strict=True)}
        breaker = self.breakers[check.breaker]
        kept = []
        for item in items:
            o = verdict.get(id(item))
            if o is None:  # the check does not apply to this paradigm
                kept.append(item)
                continue
            if o.unfinished is not None:
                self._unfinished(item.job, o.unfinished, breaker)
                continue
            breaker.ok()
            item.quality = {**(item.quality or {}), **({check.key: o.figures} if check.key else o.figures)}
            if o.ok:
                kept.append(item)
                continue
            assert o.code is not None
            if o.code in check.per_paradigm:
                self.stats.counts[f"{o.code}_{item.job.paradigm}"] += 1
            self._reject(item.job, o.code)
        return kept

    def _reject(self, job: Job, reason: str) -> None:
        """Ask again with the next attempt's seed, or fail the job when its attempts are spent."""
        self.stats.rejected[reason] += 1
        if job.attempt < self.cfg.validation.attempts:
            self._ready.put_nowait(dataclasses.replace(job, attempt=job.attempt + 1))
        else:
            self._fail(job, reason)

    def _unfinished(self, job: Job, error: str, breaker: Breaker) -> None:
        """A transport failure (of the LLM or of the scorer) is not the job's fault: it stays
        unfinished and is retried on resume; `breaker` stops the run when the server is down."""
        self.stats.backend_errors[error] += 1
        breaker.failed(error)
        self._decided_elsewhere(job.id)
        self._job_done()

    def _decided_elsewhere(self, job_id: str) -> None:
        self.curator.gate.done(job_id)
        # pairs wait behind it: have the record stage look again. One nudge queued at a time: a queue
        # of nudges could fill the bounded queue and leave no room for the final _DONE
        if len(self.curator.gate) and not self._nudged:
            try:
                self._accepted.put_nowait(_NUDGE)
                self._nudged = True
            except asyncio.QueueFull:
                pass  # the record stage has work queued and will look when it takes it

    def _fail(self, job: Job, reason: str, detail: str = "", curation: dict[str, Any] | None = None) -> None:
        self._decided_elsewhere(job.id)
        self.checkpoint.write_failure(job.id, reason, job.attempt, detail, curation)
        self.stats.failed[reason] += 1
        self._job_done()

    def _job_done(self) -> None:
        self._remaining -= 1
        self.on_progress()
        if self._remaining == 0:
            self._ready.put_nowait(_DONE)
            self._accepted.put_nowait(_DONE)

    async def _check_stage(
        self, check: RecordCheck | None, inbox: asyncio.Queue[Any], outbox: asyncio.Queue[Any], *, first: bool
    ) -> None:
        """Run `check` (None: none is on) over each batch and pass the survivors on. The `first` stage
        makes the batches: the accepted pairs that wait when it is ready for one (up to CHECK_BATCH)."""
        while True:
            items, nudged, done = await (self._take(inbox) if first else inbox.get())
            if check is not None and items:
                items = await self._check(check, items)
            await outbox.put((items, nudged, done))
            if done:
                return

    async def _take(self, accepted: asyncio.Queue[Any]) -> tuple[list[Attempted], bool, bool]:
        """(pairs, nudged, done): what waits in `accepted`, up to CHECK_BATCH, at least one item."""
        batch = [await accepted.get()]
        # once nothing is being asked, what waits is the run's last: in small batches, so that the first
        # ones' rejected pairs are asked again while the rest are checked, not after all of them
        limit = CHECK_BATCH if self._asking or not self._ready.empty() else CHECK_BATCH_LAST
        # no waiting to fill the batch: that measured no gain, and Python 3.11's wait_for can swallow the
        # cancellation Ctrl-C sends
        while not accepted.empty() and len(batch) < limit:
            batch.append(accepted.get_nowait())
        nudged = any(b is _NUDGE for b in batch)
        if nudged:
            self._nudged = False  # taken: the next decision elsewhere may nudge again
        items = [b for b in batch if b is not _DONE and b is not _NUDGE]
        return items, nudged, any(b is _DONE for b in batch)

    async def _record_stage(self, checked: asyncio.Queue[Any]) -> None:
        """Decide (curation), build (distractors, leak screen) and write the checked pairs, batch by
        batch in the order the check stages passed them on."""
        while True:
            items, nudged, done = await checked.get()
            if items or (nudged and len(self.curator.gate)):
                # records are built in the worker thread too: the event loop only writes them
                decided = await asyncio.to_thread(self.curator.decide, items)
                for job, reason, info in decided.failed:
                    self._fail(job, reason, curation=info)
                for job in decided.reask:
                    self._ready.put_nowait(job)
                self.stats.rejected.update(decided.rejected)
                self.stats.counts.update(decided.counts)
                built = await asyncio.to_thread(self.builder.build, decided.accepted, decided.vectors)
                for record in built:
                    self.checkpoint.write_example(record)
                    self.stats.accepted += 1
                    self._job_done()
                    if record.generation.truncated_sources:
                        self.stats.counts["truncated_sources"] += 1
                self.stats.counts.update(self.builder.counts)
                self.builder.counts.clear()
            if self.checkpoint.sync_due():
                await asyncio.to_thread(self.checkpoint.sync)  # fsync off the event loop
            if done:
                return
