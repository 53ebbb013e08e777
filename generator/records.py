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
from .layout import order_documents
from .record import Document, Example, ExemplarRef, Generation
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


class RecordBuilder:
    """Searches the accepted questions in one batch, pads each job's sources with distractors from
    its rank band, and builds its `Example`. `counts` tallies the distractor rules used."""

    def __init__(self, cfg: RunConfig, index: Index, templates: Templates, backend_info: dict[str, Any]) -> None:
        self.cfg, self.index, self.templates = cfg, index, templates
        info = {k: v for k, v in backend_info.items() if k != "base_url"}  # where the server was is not data
        self.backend_name, self.model = str(info.pop("backend", "")), str(info.pop("model", ""))
        self.settings = info
        self.counts: Counter[str] = Counter()

    def build(self, items: Sequence[Attempted], vectors: np.ndarray | None = None) -> list[Example]:
        """Search the accepted questions (`vectors`: their embeddings, when already computed), then
        sample each one's distractors from its rank band (the band's passages read in one go for
        the batch) and build its record."""
        if not items:
            return []
        lo, hi = self.cfg.distractors.rank_band
        k = min(hi, len(self.index))
        if vectors is None:
            vectors = self.index.embed_queries([a.pair.question for a in items])
        scores, rows = self.index.search_embeddings(vectors, k)
        bands = self.index.hits_from_rows(scores[:, lo:hi], rows[:, lo:hi], lo)
        return [self._record(*args) for args in zip(items, scores, rows, bands, strict=True)]

    def _random_passage(self, rng: random.Random) -> Passage:
        return self.index.store.get_rows([rng.randrange(len(self.index))])[0]

    def distractors(
        self, job: Job, answer: str, scores: np.ndarray, rows: np.ndarray, band: list[Hit]
    ) -> list[Distractor]:
        """Sample from the band's passages alone (read 50, not 250, per record); only when the band
        runs short are all ranks read and the draw repeated, which gives the same picks the full
        list would have given."""
        lo, hi = self.cfg.distractors.rank_band
        need = max(self.cfg.distractors.total_docs - len(job.sources), 0)
        kw: dict[str, Any] = {"sources": job.sources, "n": need, "band": (lo, hi), "answer": answer}
        picks = sample_distractors(band, rng=job_rng(self.cfg.seed, job.id, "distractors"), **kw)
        if len(picks) < need:
            hits = self.index.hits_from_rows(scores[None, :], rows[None, :])[0]
            rng = job_rng(self.cfg.seed, job.id, "distractors")
            picks = sample_distractors(hits, rng=rng, random_passage=self._random_passage, **kw)
        return picks

    def _record(self, item: Attempted, scores: np.ndarray, rows: np.ndarray, band: list[Hit]) -> Example:
        job, pair = item.job, item.pair
        picks = self.distractors(job, pair.answer, scores, rows, band)
        for d in picks:
            self.counts[f"distractor_rule_{d.rule}"] += 1
        if len(job.sources) + len(picks) < self.cfg.distractors.total_docs:
            self.counts["short_padded"] += 1

        def rank_of(p: Passage) -> int | None:
            row = self.index.store.row_of(p.id)
            where = (rows == row).nonzero()[0] if row is not None else []
            return int(where[0]) if len(where) else None

        docs = [Document(p.id, p.title, p.text, "source", rank_of(p), None) for p in job.sources]
        docs += [Document(d.passage.id, d.passage.title, d.passage.text, "distractor", d.rank, d.rule) for d in picks]
        d = self.cfg.distractors
        docs = order_documents(
            docs, self.cfg.documents.order, seed=self.cfg.seed, job_id=job.id, position=job.position, slots=d.total_docs
        )
        ex = job.exemplar
        return Example(
            id=job.id,
            paradigm=job.paradigm,
            instruction=pair.question,
            answer=pair.answer,
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
        )
