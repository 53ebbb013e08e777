"""`ragloom generate`: config -> plan -> pipeline -> checkpoint, with a live display and a summary."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path
from typing import Any

from ragloom.retrieval import CorpusSpec, EncoderSpec, Index, build_index
from rich.console import Console

from ragloom.errors import OutputError

from .backends import make_backend
from .checkpoint import Checkpoint, check_same_run, write_run_info
from .config import RunConfig
from .display import Display, run_with_display
from .exemplars import filter_exemplars, load_source
from .knowledge import knowledge_filter
from .pipeline import Pipeline, Stats
from .plan import make_plan, plan_hash, summarize
from .sources import select_sources
from .templates import Templates
from .types import Job


def open_index(cfg: RunConfig, console: Console) -> Index:
    corpus = None
    if cfg.corpus is not None:
        c = cfg.corpus
        corpus = CorpusSpec(c.path, c.format, c.id_field, c.title_field, c.text_field)
        if not (Path(cfg.index) / "manifest.json").exists():
            console.print(f"building index {cfg.index} from {c.path} ...")
            build_index(corpus, cfg.index, encoder=EncoderSpec(cfg.encoder) if cfg.encoder else None, limit=c.limit)
    return Index(cfg.index, encoder=cfg.encoder, corpus=corpus)


def knowledge_cache_path(cfg: RunConfig) -> Path:
    return Path(cfg.exemplar_filters.knowledge_cache or Path(cfg.output) / "knowledge_filter.jsonl")


def plan_jobs(
    cfg: RunConfig, knowledge_backend: Any = None, info: dict[str, Any] | None = None
) -> tuple[list[Job], dict[str, int]]:
    """Load and filter the exemplars, then plan. With the knowledge filter on, `knowledge_backend`
    answers the uncached questions (None: cached decisions only, as in a dry run)."""
    dropped: dict[str, int] = {}
    sources = [filter_exemplars(load_source(s), cfg.exemplar_filters, dropped) for s in cfg.exemplars]
    if cfg.exemplar_filters.knowledge_filter:
        sources, kinfo = knowledge_filter(sources, knowledge_backend, knowledge_cache_path(cfg), dropped)
        if info is not None:
            info["knowledge_filter"] = kinfo
    if not any(sources):
        from ragloom.errors import ConfigError

        raise ConfigError(
            "exemplars: no exemplar survived loading and filtering; check the sources and exemplar_filters"
        )
    return make_plan(cfg, sources, [s.weight for s in cfg.exemplars]), dropped


def estimate(cfg: RunConfig, jobs: list[Job], index: Index, templates: Templates) -> dict[str, Any]:
    """Prompt tokens from rendering a sample of jobs (4 characters ~ 1 token); completion from max_tokens/2."""
    sample = select_sources(jobs[:50], index, cfg.sources, cfg.seed)
    chars = [len(templates.render(j.paradigm, j.exemplar, j.sources)) for j in sample]
    prompt = int(sum(chars) / max(len(chars), 1) / 4 * len(jobs) * 1.3)  # 1.3: validation retries
    completion = int(cfg.sampling.max_tokens / 2 * len(jobs) * 1.3)
    p = cfg.pricing
    cost = prompt / 1e6 * p.prompt_per_million + completion / 1e6 * p.completion_per_million
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cost": round(cost, 4)}


def run_generate(
    cfg: RunConfig, *, dry_run: bool = False, overwrite: bool = False, quiet: bool = False, retry_failed: bool = False
) -> int:
    console = Console(stderr=True, quiet=quiet)
    templates = Templates(cfg.templates, [p for p, w in cfg.paradigms.items() if w > 0])
    index = open_index(cfg, console)
    backend = None
    if not dry_run:
        # load the encoder while the backend is made and the server checked; nothing is written
        # before both are fine
        warm = threading.Thread(target=index.embed_queries, args=(["warm-up"],), daemon=True)
        warm.start()
        backend = make_backend(cfg.backend)
        asyncio.run(backend.preflight())
        warm.join()
    knowledge_backend = None
    if backend is not None and cfg.exemplar_filters.knowledge_filter:
        # its own client for its own event loop (an in-process engine is shared: loading it twice would not fit)
        knowledge_backend = backend if cfg.backend.type == "vllm" else make_backend(cfg.backend)
    info: dict[str, Any] = {}
    jobs, dropped = plan_jobs(cfg, knowledge_backend, info)
    phash = plan_hash(cfg, jobs)
    if dry_run:
        est = estimate(cfg, jobs, index, templates)
        print(
            json.dumps(
                {
                    "count": len(jobs),
                    "paradigms": summarize(jobs),
                    "plan_hash": phash,
                    "exemplars_dropped": dropped,
                    **info,
                    "estimate": est,
                },
                indent=2,
            )
        )
        return 0
    out = Path(cfg.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create output directory {out}: {e.strerror}") from None
    check_same_run(out, phash, overwrite)
    assert backend is not None
    write_run_info(
        out,
        {
            "plan_hash": phash,
            "config": cfg.model_dump(mode="json"),
            "count": len(jobs),
            "paradigms": summarize(jobs),
            "index": index.manifest,
            "exemplars_dropped": dropped,
            **info,
        },
    )
    checkpoint = Checkpoint(out)
    if retry_failed:
        checkpoint.done -= {r["job_id"] for r in checkpoint.failed}
    todo = [j for j in jobs if j.id not in checkpoint.done]
    stats = Stats(planned=len(jobs), skipped_done=len(jobs) - len(todo))
    display = Display(stats, console, cfg.pricing, quiet=quiet)
    pipeline = Pipeline(cfg, index, backend, templates, checkpoint, stats, on_progress=display.update)
    if run_with_display(display, checkpoint, out, lambda: asyncio.run(_run(pipeline, backend, todo))):
        return 130
    return 0 if not stats.backend_errors else 3


async def _run(pipeline: Pipeline, backend: Any, todo: list[Job]) -> None:
    try:
        await pipeline.run(todo)
    finally:
        with contextlib.suppress(Exception):
            await backend.aclose()
