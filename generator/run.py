"""`generate` as a library: config -> plan -> pipeline -> run directory, in the caller's event loop.

`agenerate` is the one implementation (it awaits; blocking setup runs in worker threads), `generate`
runs it to completion from plain code or from inside a running loop (Jupyter). Both return a
`datasets.Dataset` of the run's records; `execute` returns the `RunResult` the CLI turns into an exit
code. Nothing here prints except the progress display the caller asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragloom.retrieval import CorpusSpec, EncoderSpec, Index, build_index
from rich.console import Console

from ragloom.errors import ConfigError

from .aio import in_running_loop, run_sync
from .backends import Backend, make_backend, spec_of
from .config import RunConfig, load_config
from .curation import open_decontaminator
from .display import Display, arun_with_display
from .exemplars import filter_exemplars, load_source
from .knowledge import knowledge_filter
from .pipeline import Pipeline, by_exemplar
from .plan import hash_identity, make_plan, plan_hash, plan_identity, summarize
from .publish import coverage_of_file
from .quality import SpanFrequency, open_scorer
from .ray_shards import Absorb, asked_again, cut_shards, drop_shard_failures, wait_for_redo
from .runs import EXAMPLES, GENERATE, RunDir, Stats, index_identity
from .source_plan import plan_sources
from .sources import select_sources
from .templates import Templates
from .types import Job

if TYPE_CHECKING:
    import datasets


def as_config(config: RunConfig | dict[str, Any] | str | Path, overrides: list[str] | None = None) -> RunConfig:
    """A `RunConfig` from itself, a dict (validated like YAML), or a YAML path."""
    if isinstance(config, RunConfig):
        return config if not overrides else load_config(None, overrides, base=config.model_dump(mode="json"))
    if isinstance(config, dict):
        return load_config(None, overrides, base=config)
    return load_config(config, overrides)


def open_index(cfg: RunConfig, console: Console | None = None) -> Index:
    corpus = None
    if cfg.corpus is not None:
        c = cfg.corpus
        corpus = CorpusSpec(c.path, c.format, c.id_field, c.title_field, c.text_field)
        if not (Path(cfg.index) / "manifest.json").exists():
            if console is not None:
                console.print(f"building index {cfg.index} from {c.path} ...")
            spec = None
            if cfg.encoder or cfg.encoder_backend or cfg.quantize or cfg.precision:
                kw = {"backend": cfg.encoder_backend or "torch", "quantize": cfg.quantize}
                spec = EncoderSpec(cfg.encoder, **kw) if cfg.encoder else EncoderSpec(**kw)
                spec.precision = cfg.precision or "f32"
            build_index(corpus, cfg.index, encoder=spec, limit=c.limit)
    return Index(
        cfg.index,
        encoder=cfg.encoder,
        corpus=corpus,
        encoder_backend=cfg.encoder_backend,
        quantize=cfg.quantize,
        precision=cfg.precision,
    )


def knowledge_cache_path(cfg: RunConfig) -> Path:
    return Path(cfg.exemplar_filters.knowledge_cache or Path(cfg.output) / "knowledge_filter.jsonl")


def plan_jobs(
    cfg: RunConfig, knowledge_backend: Any = None, info: dict[str, Any] | None = None, *, index: Index | None = None
) -> tuple[list[Job], dict[str, int]]:
    """Load and filter the exemplars, then plan. With the knowledge filter on, `knowledge_backend`
    answers the uncached questions (None: cached decisions only, as in a dry run). `index`: needed
    when the plan decides the sources (sources.strategy corpus, or max_reuse: source_plan.py);
    their figures go in `info["sources"]`."""
    dropped: dict[str, int] = {}
    sources = [filter_exemplars(load_source(s), cfg.exemplar_filters, dropped) for s in cfg.exemplars]
    if cfg.exemplar_filters.knowledge_filter:
        sources, kinfo = knowledge_filter(sources, knowledge_backend, knowledge_cache_path(cfg), dropped)
        if info is not None:
            info["knowledge_filter"] = kinfo
    if not any(sources):
        raise ConfigError(
            "exemplars: no exemplar survived loading and filtering; check the sources and exemplar_filters"
        )
    picks: list[int] = []
    jobs = make_plan(cfg, sources, [s.weight for s in cfg.exemplars], picks)
    if cfg.sources.strategy == "corpus" or cfg.sources.max_reuse is not None:
        if index is None:
            raise ValueError("plan_jobs: sources decided in the plan need the index")
        jobs, figures = plan_sources(jobs, picks, sources, index, cfg.sources, cfg.seed)
        if info is not None and figures is not None:
            info["sources"] = figures
    return jobs, dropped


def estimate(cfg: RunConfig, jobs: list[Job], index: Index, templates: Templates) -> dict[str, Any]:
    """Prompt tokens from rendering a sample of jobs (4 characters ~ 1 token); completion from max_tokens/2."""
    sample = select_sources(jobs[:50], index, cfg.sources, cfg.seed)
    chars = [len(templates.render(j.paradigm, j.exemplar, j.sources)) for j in sample]
    prompt = int(sum(chars) / max(len(chars), 1) / 4 * len(jobs) * 1.3)  # 1.3: validation retries
    completion = int(cfg.sampling.max_tokens / 2 * len(jobs) * 1.3)
    p = cfg.pricing
    cost = prompt / 1e6 * p.prompt_per_million + completion / 1e6 * p.completion_per_million
    return {"prompt_tokens": prompt, "completion_tokens": completion, "cost": round(cost, 4)}


def run_templates(cfg: RunConfig) -> Templates:
    """The templates of the run's paradigms, in its language."""
    paradigms = [p for p, w in cfg.paradigms.items() if w > 0]
    return Templates(cfg.templates, paradigms, language=cfg.language, answer_style=cfg.answer_style)


def dry_run(config: RunConfig | dict[str, Any] | str | Path) -> dict[str, Any]:
    """The plan's counts, hash and a token / cost estimate; no LLM call, nothing written."""
    cfg = as_config(config)
    templates = run_templates(cfg)
    index = open_index(cfg)
    info: dict[str, Any] = {}
    jobs, dropped = plan_jobs(cfg, None, info, index=index)
    phash = plan_hash(cfg, jobs, index=index_identity(index.manifest), templates=templates.digests())
    return {
        "count": len(jobs),
        "paradigms": summarize(jobs),
        "plan_hash": phash,
        "exemplars_dropped": dropped,
        **info,
        "estimate": estimate(cfg, jobs, index, templates),
    }


@dataclass
class RunResult:
    out: Path
    stats: Stats
    interrupted: bool = False

    def dataset(self) -> datasets.Dataset:
        """The run's records (this and earlier sessions) as a `datasets.Dataset`, in id order."""
        import datasets

        from .publish import load_run

        records, _, _ = load_run(self.out)
        return datasets.Dataset.from_list(records)


def absorb_shards_here(cfg: RunConfig, index: Index, jobs: list[Job], root: Path, retry: bool) -> dict[str, int]:
    """Merge an earlier Ray session's shards (finished or partial) into OUT; returns the jobs whose
    records repeat a question accepted in another shard, to ask again (job id -> attempts used)."""
    wait_for_redo(root)
    shards = cut_shards(jobs)
    if retry:
        drop_shard_failures(root, len(shards))
    return Absorb(cfg, index, Path(cfg.output), root, shards, retry)()


def _load_encoder(index: Index) -> None:
    index.embed_queries(["warm-up"])


@dataclass
class PlannedRun:
    """What a session (local or Ray) needs before it writes anything: the plan, its identity and hash,
    and run.json's info."""

    jobs: list[Job]
    identity: dict[str, Any]
    plan_hash: str
    info: dict[str, Any]


def plan_run(
    cfg: RunConfig, index: Index, templates: Templates, knowledge_backend: Backend | None, **extra: Any
) -> PlannedRun:
    """The one set-up both executions share, after the backend's preflight: plan the jobs, take the
    run's identity and plan hash, check the eval sets (a bad one fails here, before any write), and
    make run.json's info (`extra`: what the execution adds, e.g. Ray's shards)."""
    info: dict[str, Any] = {}
    jobs, dropped = plan_jobs(cfg, knowledge_backend, info, index=index)
    ident = plan_identity(cfg, index=index_identity(index.manifest), templates=templates.digests())
    run_info = {
        "identity": ident,
        "config": cfg.model_dump(mode="json"),
        "count": len(jobs),
        "paradigms": summarize(jobs),
        "index": index.manifest,
        "exemplars_dropped": dropped,
        **info,
        **extra,
    }
    return PlannedRun(jobs, ident, hash_identity(ident, jobs), run_info)


def close_run(
    out: Path,
    index: Index,
    rundir: RunDir,
    stats: Stats,
    *,
    report: bool,
    interrupted: bool,
    summary_console: Console | None,
) -> RunResult:
    """The end both executions share: the stats and the whole run's coverage into run.json, then the
    report page (not after an interruption), named on the summary console."""
    rundir.write_info(stats=stats.as_dict(), coverage=coverage_of_file(out / EXAMPLES, len(index)).as_dict())
    if report and not interrupted:
        from .publish import write_report

        page = write_report(out)
        if summary_console is not None:
            summary_console.print(f"report: {page}", soft_wrap=True, highlight=False)
    return RunResult(out, stats, interrupted)


async def _prepare(cfg: RunConfig, console: Console | None) -> tuple[Templates, Index, Backend, SpanFrequency | None]:
    """Templates, index, backend: checked before anything is written. The encoder loads, and the leak
    screen's span counts are read, in threads while the backend is made and the server checked."""
    templates = run_templates(cfg)
    index = await asyncio.to_thread(open_index, cfg, console)
    loop = asyncio.get_running_loop()
    # run_in_executor starts the thread now; a to_thread task would wait for the loop's next turn,
    # after make_backend's imports
    encoder = loop.run_in_executor(None, _load_encoder, index)
    stop = threading.Event()
    counts = None
    if cfg.quality.leak_screen:
        counts = loop.run_in_executor(None, SpanFrequency.for_index_dir, index.dir, stop, index.store)
    warm = [encoder] if counts is None else [encoder, counts]
    backend: Backend | None = None
    try:
        backend = make_backend(cfg.backend)
        await backend.preflight()
        await encoder  # an encoder that cannot load raises here, in the caller's task, as a one-line error
        frequency = None if counts is None else await counts
    except BaseException:
        # a refused key or a bad encoder is reported at once: the first count of a large corpus stops
        # (it is made again, and kept on disk, by the next run that starts)
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*warm, return_exceptions=True)
        if backend is not None:  # what it holds (a session, an engine) is not left to the garbage collector
            with contextlib.suppress(Exception):
                await backend.aclose()
        raise
    return templates, index, backend, frequency


async def aexecute(
    config: RunConfig | dict[str, Any] | str | Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    retry_failed: bool = False,
    report: bool = True,
    console: Console | None = None,
    summary_console: Console | None = None,
) -> RunResult:
    """Run (or resume) the generation in the running event loop; see `agenerate`. The CLI passes
    `summary_console` to print the closing summary even when the progress display is off."""
    cfg = as_config(config)
    console = console or Console(stderr=True, quiet=not progress)
    if cfg.execution.engine == "ray":  # as `ragloom generate` does: the driver blocks, so it runs in a thread
        from .ray_exec import ray_execute

        return await asyncio.to_thread(
            ray_execute,
            cfg,
            progress=progress,
            overwrite=overwrite,
            retry_failed=retry_failed,
            report=report,
            console=console,
            summary_console=summary_console,
        )
    templates, index, backend, frequency = await _prepare(cfg, console)
    scorer, own_scorer = None, False
    rundir = RunDir(cfg.output)
    try:
        if cfg.quality.necessity:  # a scorer that cannot score stops the run before anything is written
            scorer, own_scorer = await open_scorer(cfg.quality, backend)
        knowledge_backend = None
        if cfg.exemplar_filters.knowledge_filter:
            # its own client for its own event loop (an in-process engine is shared: loading it twice would not fit)
            knowledge_backend = backend if spec_of(cfg.backend).in_process else make_backend(cfg.backend)
        planned = await asyncio.to_thread(plan_run, cfg, index, templates, knowledge_backend)
        jobs, phash = planned.jobs, planned.plan_hash
        decon = await asyncio.to_thread(open_decontaminator, cfg.curation, index)  # a bad eval set: before any write
        checkpoint = rundir.open(
            kind=GENERATE,
            plan_hash=phash,
            info=planned.info,
            overwrite=overwrite,
            retry_failed=retry_failed,
            sync_inline=False,
        )
        again: dict[str, int] = {}
        root = Path(cfg.output) / "shards" / phash
        if root.is_dir():  # a Ray session's shards: their records join OUT before anything is asked
            again = await asyncio.to_thread(absorb_shards_here, cfg, index, jobs, root, retry_failed)
            checkpoint.reload()
        todo = [j for j in jobs if j.id not in checkpoint.done and j.id not in again] + asked_again(jobs, again)
        stats = Stats(planned=len(jobs), skipped_done=len(jobs) - len(todo))
        display = Display(stats, console, cfg.pricing, quiet=not progress, summary_console=summary_console)
        pipeline = Pipeline(
            cfg,
            index,
            backend,
            templates,
            checkpoint,
            stats,
            on_progress=display.update,
            scorer=scorer,
            decon=decon,
            frequency=frequency,
        )
        order = [j.id for j in by_exemplar(jobs)]  # the whole plan's: a resumed run decides in the same order
        interrupted = await arun_with_display(display, checkpoint, Path(cfg.output), pipeline.run(todo, order))
        return close_run(
            Path(cfg.output),
            index,
            rundir,
            stats,
            report=report,
            interrupted=interrupted,
            summary_console=summary_console,
        )
    finally:
        rundir.close()
        with contextlib.suppress(Exception):
            if own_scorer and scorer is not None:
                await scorer.aclose()
        with contextlib.suppress(Exception):
            await backend.aclose()


async def agenerate(
    config: RunConfig | dict[str, Any] | str | Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    retry_failed: bool = False,
    report: bool = True,
) -> datasets.Dataset:
    """Generate (or resume) the run `config` describes, inside the running event loop; return its
    records as a `datasets.Dataset`. `config`: a `RunConfig`, a dict, or a YAML path. `report`: also
    write `OUTPUT/report.html`."""
    result = await aexecute(config, progress=progress, overwrite=overwrite, retry_failed=retry_failed, report=report)
    return _records(result)


def _records(result: RunResult) -> datasets.Dataset:
    if result.interrupted:  # finished records are on disk; calling again resumes
        raise asyncio.CancelledError(f"interrupted; finished records are in {result.out / EXAMPLES}")
    return result.dataset()


def generate(
    config: RunConfig | dict[str, Any] | str | Path,
    *,
    progress: bool = True,
    overwrite: bool = False,
    retry_failed: bool = False,
    report: bool = True,
) -> datasets.Dataset:
    """`agenerate` for plain code and notebooks: blocks until the run is done."""
    kw = {"progress": progress, "overwrite": overwrite, "retry_failed": retry_failed, "report": report}
    cfg = as_config(config)
    if cfg.execution.engine == "ray" and not in_running_loop():
        return _records(execute(cfg, **kw))
    return run_sync(agenerate(cfg, **kw))


def execute(config: RunConfig | dict[str, Any] | str | Path, **kw: Any) -> RunResult:
    cfg = as_config(config)
    if cfg.execution.engine == "ray" and not in_running_loop():  # in this thread: Ctrl-C reaches the driver
        from .ray_exec import ray_execute

        return ray_execute(cfg, **kw)
    return run_sync(aexecute(cfg, **kw))
