"""Record building: an accepted pair -> its distractors -> the `Example` with documents in final order.

Pure given the index: the same job, pair and seed give the same record however jobs were batched,
interleaved or resumed (every draw comes from a per-job RNG). The pipeline calls `RecordBuilder.build`
in a worker thread with a batch of accepted pairs.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ragloom.retrieval import Distractor, Hit, Index, Passage, sample_distractors

import ragloom

from .config import RunConfig
from .quality import LeakScreen
from .runs import Document, Example, ExemplarRef, Generation, final_numbers, order_documents, renumber, strip_answer
from .sources import job_rng
from .templates import Templates
from .types import Job, Pair, Usage


@dataclass(slots=True)
class Attempted:
    """What the LLM stage hands on: the job, its accepted pair and how it was made."""

    job: Job
    pair: Pair
    prompt_hash: str
    usage: Usage = field(default_factory=Usage)
    sampling: dict[str, Any] = field(default_factory=dict)
    truncated_sources: list[str] = field(default_factory=list)
    quality: dict[str, Any] | None = None  # the quality gate's verdict, stored in the record


class RecordBuilder:
    """Searches the accepted questions in one batch, pads each job's sources with distractors from
    its rank band (screened for the answer by `screen`), and builds its `Example`. `counts` tallies
    the distractor rules used, the leaks screened out by check, and records left short."""

    def __init__(
        self,
        cfg: RunConfig,
        index: Index,
        templates: Templates,
        backend_info: dict[str, Any],
        screen: LeakScreen | None = None,
    ) -> None:
        self.cfg, self.index, self.templates, self.screen = cfg, index, templates, screen
        info = {k: v for k, v in backend_info.items() if k != "base_url"}  # where the server was is not data
        self.backend_name, self.model = str(info.pop("backend", "")), str(info.pop("model", ""))
        self.settings = info
        self.counts: Counter[str] = Counter()

    def build(self, items: Sequence[Attempted], vectors: np.ndarray | None = None) -> list[Example]:
        """Search the accepted questions (`vectors`: their embeddings, when already computed), then
        sample each one's distractors from its rank band (the band's passages read in one go for
        the batch) and build its record, with the quality gate's verdict the item carries."""
        if not items:
            return []
        lo, hi = self.cfg.distractors.rank_band
        k = min(hi, len(self.index))
        if vectors is None:
            vectors = self.index.embed_queries([a.pair.question for a in items])
        scores, rows = self.index.search_embeddings(vectors, k)
        bands = self.index.hits_from_rows(scores[:, lo:hi], rows[:, lo:hi], lo)
        if self.screen is not None:  # one encoder call for the candidates the whole batch will screen
            self.screen.prefetch(
                [(self._plain(a.pair), h.passage) for a, band in zip(items, bands) for h in self._first(a, band)],
                [(a.pair.question, self._plain(a.pair)) for a in items],
            )
        return [self._record(*args) for args in zip(items, scores, rows, bands, strict=True)]

    def _first(self, item: Attempted, band: list[Hit]) -> list[Hit]:
        """The band candidates the draw will look at first. `sample_distractors` shuffles the band with
        the job's RNG and screens candidates in that order until it has enough, so twice the number
        needed (plus a few) covers the draw unless many are screened out; a candidate beyond these is
        embedded when the draw reaches it. Only the cost depends on this guess, never the picks."""
        order = list(band)
        job_rng(self.cfg.seed, item.job.id, "distractors").shuffle(order)
        need = max(self.cfg.distractors.total_docs - len(item.job.sources), 0)
        return order[: 2 * need + 4]

    def _plain(self, pair: Pair) -> str:
        """The answer as the leak screen reads it: without citation or quote markers."""
        return pair.answer if self.cfg.answer_style == "plain" else strip_answer(pair.answer)

    def _random_passage(self, rng: random.Random) -> Passage:
        return self.index.store.get_rows([rng.randrange(len(self.index))])[0]

    def distractors(
        self, item: Attempted, scores: np.ndarray, rows: np.ndarray, band: list[Hit]
    ) -> tuple[list[Distractor], np.ndarray]:
        """The distractors, and the rows searched (deeper when the band ran short, for source ranks).
        Sample from the band's passages alone (read 50, not 250, per record). Only when the band
        runs short is the question searched down to `distractors.max_rank` and the draw repeated over
        every rank, which gives the same band picks, then deeper windows, then random passages (ranks
        above the band only in a corpus smaller than the band: rule `shallow`)."""
        job, pair = item.job, item.pair
        d = self.cfg.distractors
        need = max(d.total_docs - len(job.sources), 0)
        screen = None
        if self.screen is not None:
            screen = self.screen.screen_for(
                question=pair.question, answer=self._plain(pair), paradigm=job.paradigm, sources=job.sources
            )
        kw: dict[str, Any] = {
            "sources": job.sources,
            "n": need,
            "band": d.rank_band,
            "max_rank": d.max_rank,
            "corpus_size": len(self.index),
            "answer": self._plain(pair),
            "screen": screen,
        }
        leaks: Counter[str] = Counter()
        picks = sample_distractors(band, rng=job_rng(self.cfg.seed, job.id, "distractors"), leaks=leaks, **kw)
        if len(picks) < need:
            deep = min(d.max_rank, len(self.index))
            if deep > scores.shape[0]:
                deeper = self.index.search_rows([pair.question], deep)
                scores, rows = deeper[0][0], deeper[1][0]
            hits = self.index.hits_from_rows(scores[None, :], rows[None, :])[0]
            leaks = Counter()  # the full draw repeats the band's screening: count it once
            rng = job_rng(self.cfg.seed, job.id, "distractors")
            picks = sample_distractors(hits, rng=rng, random_passage=self._random_passage, leaks=leaks, **kw)
        for check, n in leaks.items():
            self.counts[f"distractor_leak_{check}"] += n
        return picks, rows

    def _record(self, item: Attempted, scores: np.ndarray, rows: np.ndarray, band: list[Hit]) -> Example:
        job, pair = item.job, item.pair
        picks, rows = self.distractors(item, scores, rows, band)
        for d in picks:
            self.counts[f"distractor_rule_{d.rule}"] += 1
        if len(job.sources) + len(picks) < self.cfg.distractors.total_docs:
            self.counts["short_padded"] += 1

        def rank_of(p: Passage) -> int | None:
            row = self.index.store.row_of(p.id)
            where = (rows == row).nonzero()[0] if row is not None else []
            return int(where[0]) if len(where) else None

        docs = [Document.of(p, "source", rank_of(p)) for p in job.sources]
        docs += [Document.of(d.passage, "distractor", d.rank, d.rule) for d in picks]
        d = self.cfg.distractors
        docs = order_documents(
            docs, self.cfg.documents.order, seed=self.cfg.seed, job_id=job.id, position=job.position, slots=d.total_docs
        )
        ex = job.exemplar
        answer = pair.answer
        if self.cfg.answer_style == "cited":  # [n] numbered the prompt's sources: now the record's documents
            answer = renumber(answer, final_numbers([p.id for p in job.sources], [x.id for x in docs]))
        return Example(
            id=job.id,
            paradigm=job.paradigm,
            instruction=pair.question,
            answer=answer,
            documents=docs,
            exemplar=ExemplarRef(ex.id, ex.source, ex.text, ex.task_type, list(ex.options)),
            generation=Generation(
                backend=self.backend_name,
                model=self.model,
                sampling=item.sampling,
                template=f"{job.paradigm}.j2",
                template_hash=self.templates.digest(job.paradigm),
                prompt_hash=item.prompt_hash,
                usage={"prompt_tokens": item.usage.prompt_tokens, "completion_tokens": item.usage.completion_tokens},
                attempts=job.attempt,
                settings=dict(self.settings),
                truncated_sources=item.truncated_sources,
            ),
            ragloom_version=ragloom.__version__,
            quality=item.quality,
        )
