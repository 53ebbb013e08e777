"""Sharded generation on Ray: `ragloom generate --ray [ADDRESS] [--workers N]`, or
`execution: {engine: ray, address, workers}` in the config.

The plan is built once on the driver and cut into fixed shards in exemplar-grouped order
(`by_exemplar`); a shard's jobs depend only on the plan. Each worker actor loads the encoder,
the memory-mapped index and the backend once, then runs the ordinary `Pipeline` on each shard
it is given (two at a time) into `OUT/shards/<plan_hash>/part-NNNNN.partial/` (a normal checkpoint: a retried or
resumed shard skips what it holds). A finished shard is renamed to `part-NNNNN/`. The driver
skips shards that exist, merges them in shard order into `OUT/examples.jsonl` and
`failed.jsonl`, and checks that no job id appears twice. Exactly once follows from the fixed
shard membership and those names, not from Ray's own checkpointing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import os
from pathlib import Path
from typing import Any

from ragloom.retrieval import Index
from ragloom.retrieval.ray_embed import connect, import_ray
from rich.console import Console

from ragloom.errors import ConfigError, OutputError, RagloomError

from . import coverage, necessity
from .backends import Backend, make_backend
from .checkpoint import EXAMPLES, Checkpoint
from .config import RunConfig
from .dedup import Deduper
from .display import Display
from .pipeline import Pipeline
from .plan import plan_hash, summarize
from .ray_shards import add_stats, cut_shards, fsync_dir, merge_shards, part_name, reopen_failed, stats_dict
from .run import dry_run as plan_dry_run
from .run import open_index, plan_jobs, run_templates
from .rundir import GENERATE, RunDir, index_identity
from .stats import Stats
from .templates import Templates
from .types import Job

SHARDS_PER_WORKER = 2  # in flight per actor: the next shard starts while the last one's stragglers finish
MAX_RESTARTS = 3


async def run_into(
    directory: Path,
    jobs: list[Job],
    stats: Stats,
    *,
    cfg: RunConfig,
    index: Index,
    backend: Backend,
    templates: Templates,
    scorer: Backend | None = None,
) -> bool:
    """Run `jobs` into the checkpoint in `directory`, resuming what it holds, counting in `stats`
    (`scorer`: the necessity scorer, already checked). Returns whether every job is now on disk
    (accepted or failed)."""
    checkpoint = Checkpoint(directory)
    todo = [j for j in jobs if j.id not in checkpoint.done]
    stats.planned, stats.skipped_done = len(jobs), len(jobs) - len(todo)
    try:
        await Pipeline(cfg, index, backend, templates, checkpoint, stats, scorer=scorer).run(todo)
    finally:
        checkpoint.close()
    return all(j.id in checkpoint.done for j in jobs)


class ShardWorker:
    """A Ray actor (async: `progress` answers while a shard runs). Loads everything once, the
    necessity scorer included: an in-process llama_cpp scorer holds a model and its logits (about
    2 GB), so one per shard would multiply that by the shards in flight."""

    def __init__(self, config: dict[str, Any], shard_dir: str) -> None:
        self.config, self.dir = config, Path(shard_dir)
        self.loaded: tuple[RunConfig, Index, Backend, Templates] | None = None
        self.live: dict[int, Stats] = {}  # the shards running now
        self.scorer: Backend | None = None
        self._scorer_lock = asyncio.Lock()

    def setup(self) -> None:
        if self.loaded is None:
            cfg = RunConfig.model_validate(self.config)
            index = open_index(cfg, Console(stderr=True, quiet=True))
            index.embed_queries(["warm-up"])  # the encoder loads now, not inside the first shard
            templates = run_templates(cfg)
            self.loaded = (cfg, index, make_backend(cfg.backend), templates)
            gc.freeze()  # what is loaded lives as long as the actor (see generator/display.py)

    async def ready(self) -> None:
        """Load, and open and check the necessity scorer when the run scores necessity: a scorer that
        cannot score fails here, before any shard starts (the driver waits on this)."""
        self.setup()
        assert self.loaded is not None
        cfg, _, backend, _ = self.loaded
        if cfg.quality.necessity:
            async with self._scorer_lock:  # two shards start at once on this actor's event loop
                if self.scorer is None:
                    self.scorer, _ = await necessity.open_scorer(cfg.quality, backend)

    async def run_shard(self, shard: int, jobs: list[Job]) -> dict[str, Any]:
        await self.ready()  # a restarted actor runs shards without the driver's call
        assert self.loaded is not None
        cfg, index, backend, templates = self.loaded
        final, partial = self.dir / part_name(shard), self.dir / f"{part_name(shard)}.partial"
        partial.mkdir(exist_ok=True)
        with open(partial / ".lock", "w") as lock:
            # a worker of a killed driver may still be finishing this shard: wait for it to end
            await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
            if final.exists():
                return {"shard": shard, "complete": True, "stats": stats_dict(Stats(skipped_done=len(jobs)))}
            stats = self.live[shard] = Stats()
            try:
                complete = await run_into(
                    partial, jobs, stats, cfg=cfg, index=index, backend=backend, templates=templates, scorer=self.scorer
                )
            finally:
                self.live.pop(shard, None)
            if complete:
                os.replace(partial, final)
                fsync_dir(self.dir)
        return {"shard": shard, "complete": complete, "stats": stats_dict(stats)}

    async def progress(self) -> dict[int, dict[str, Any]]:
        return {shard: stats_dict(s) for shard, s in self.live.items()}


def worker_options(cfg: RunConfig) -> dict[str, Any]:
    """Ray resources per worker: the in-process vLLM engine takes `tensor_parallel_size` GPUs."""
    gpus = cfg.backend.tensor_parallel_size if cfg.backend.type == "vllm" else 0
    return {"num_cpus": 1, "num_gpus": gpus}


def with_flags(cfg: RunConfig, ray: str | None, workers: int | None) -> RunConfig:
    """Apply `--ray [ADDRESS]` and `--workers N` to the config's `execution` section."""
    if ray is None and workers is None:
        return cfg
    if ray is None and cfg.execution.engine != "ray":
        raise ConfigError("--workers needs --ray (or execution.engine: ray in the config)")
    ex = cfg.execution.model_copy(update={"engine": "ray"})
    if ray:
        ex.address = ray
    if workers is not None:
        if workers < 1:
            raise ConfigError(f"--workers {workers}: must be >= 1")
        ex.workers = workers
    return cfg.model_copy(update={"execution": ex})


def _unwrap(ray: Any, ref: Any) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, RagloomError):
            raise e.cause from None
        raise
    except ray.exceptions.RayActorError as e:
        raise RagloomError(
            f"a Ray worker died {MAX_RESTARTS + 1} times ({type(e).__name__}); finished shards are kept, rerun to resume"
        ) from None


class Driver:
    """Feeds shards to the actors, keeps `stats` (and the display) current, and stops them on exit."""

    def __init__(self, ray: Any, actors: list[Any], shards: list[list[Job]], todo: list[int], stats: Stats) -> None:
        self.ray, self.actors, self.shards, self.queue = ray, actors, shards, list(todo)
        self.base = Stats(planned=stats.planned, skipped_done=stats.skipped_done)
        self.stats, self.finals = stats, Stats()
        self.running: dict[Any, int] = {}

    def submit(self, a: int) -> None:
        if self.queue:
            s = self.queue.pop(0)
            self.running[self.actors[a].run_shard.remote(s, self.shards[s])] = a

    def run(self, display: Display) -> None:
        for _ in range(SHARDS_PER_WORKER):
            for a in range(len(self.actors)):
                self.submit(a)
        while self.running:
            ready, _ = self.ray.wait(list(self.running), num_returns=1, timeout=0.5)
            for ref in ready:
                a = self.running.pop(ref)
                add_stats(self.finals, _unwrap(self.ray, ref)["stats"])
                self.submit(a)
            self.refresh()
            display.update()

    def refresh(self) -> None:
        live: dict[int, dict[str, Any]] = {}
        refs = [actor.progress.remote() for actor in self.actors]
        ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=1.0)
        for ref in ready:
            with contextlib.suppress(Exception):  # a worker being restarted answers nothing
                live.update(self.ray.get(ref))
        s, total = self.stats, Stats(planned=self.base.planned, skipped_done=self.base.skipped_done)
        for d in [stats_dict(self.finals), *live.values()]:
            add_stats(total, d)
        s.skipped_done, s.accepted, s.usage = total.skipped_done, total.accepted, total.usage
        s.failed, s.rejected, s.retried, s.backend_errors = (
            total.failed,
            total.rejected,
            total.retried,
            total.backend_errors,
        )

    def stop(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)


def run_ray_generate(
    cfg: RunConfig,
    *,
    dry_run: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    retry_failed: bool = False,
    report: bool = True,
    summary_console: Console | None = None,
    worker_cls: type = ShardWorker,
    num_gpus: float | None = None,
) -> int:
    """`ragloom generate` on Ray; returns the exit code (0, 3: unfinished, 130: interrupted).
    `worker_cls` (a ShardWorker subclass) and `num_gpus` (per worker, instead of the backend's)
    are for a stand-in engine in tests and custom deployments."""
    import_ray()
    if dry_run:
        print(json.dumps(plan_dry_run(cfg), indent=2))
        return 0
    console = Console(stderr=True, quiet=quiet)
    index = open_index(cfg, console)  # builds a missing index on the driver, checks encoder and corpus
    templates = run_templates(cfg)
    knowledge_backend = None
    if cfg.backend.type == "openai":
        backend = make_backend(cfg.backend)
        asyncio.run(_preflight(backend))
        if cfg.exemplar_filters.knowledge_filter:
            knowledge_backend = make_backend(cfg.backend)
    elif cfg.exemplar_filters.knowledge_filter:
        raise ConfigError(
            "exemplar_filters.knowledge_filter with backend vllm cannot run on the Ray driver; "
            "run the filter once without --ray, then rerun with --ray (its decisions are cached)"
        )
    info: dict[str, Any] = {}
    jobs, dropped = plan_jobs(cfg, knowledge_backend, info, index=index)
    phash = plan_hash(cfg, jobs, index=index_identity(index.manifest), templates=templates.digests())
    out, shards, ex = Path(cfg.output), cut_shards(jobs), cfg.execution
    root = out / "shards" / phash
    rundir = RunDir(out)
    run_info = {
        "config": cfg.model_dump(mode="json"),
        "count": len(jobs),
        "paradigms": summarize(jobs),
        "index": index.manifest,
        "exemplars_dropped": dropped,
        **info,
        "execution": {"engine": "ray", "workers": ex.workers, "shards": len(shards), "shard_size": len(shards[0])},
    }
    rundir.open(kind=GENERATE, plan_hash=phash, info=run_info, overwrite=overwrite).close()
    if (out / EXAMPLES).exists() and not root.exists():
        raise OutputError(
            f"{out} holds a single-process run of this plan; finish it without --ray or use another output"
        )
    root.mkdir(parents=True, exist_ok=True)
    if retry_failed:
        reopen_failed(root, len(shards))
    todo = [i for i in range(len(shards)) if not (root / part_name(i)).exists()]
    stats = Stats(planned=len(jobs), skipped_done=len(jobs) - sum(len(shards[i]) for i in todo))
    display = Display(stats, console, cfg.pricing, quiet=quiet, summary_console=summary_console)
    ray = connect(ex.address)
    opts = worker_options(cfg) | ({} if num_gpus is None else {"num_gpus": num_gpus})
    remote = ray.remote(worker_cls).options(**opts, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)
    actors = [remote.remote(cfg.model_dump(mode="json"), str(root)) for _ in range(min(ex.workers, len(todo)))]
    driver = Driver(ray, actors, shards, todo, stats)
    interrupted = False
    try:
        for ref in [a.ready.remote() for a in actors]:  # a bad model, index or scorer fails here, once
            _unwrap(ray, ref)
        with display:
            driver.run(display)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        driver.stop()
        across = cross_shard_duplicates(cfg, index)
        merge_shards(out, root, len(shards), drop=across)
        # the summary counts this session's shards: move their records merged away to the failures
        mine = {j.id for i in todo for j in shards[i]}
        moved = sum(job_id in mine for job_id in across.dropped)
        if moved:
            stats.accepted -= moved
            stats.failed["duplicate_instruction"] += moved
            stats.counts["duplicate_across_shards"] += moved
    display.summary(out, interrupted=interrupted)
    rundir.write_info(stats=stats.as_dict(), coverage=coverage.of_file(out / EXAMPLES, len(index)).as_dict())
    if report and not interrupted:
        from .report import write_report

        page = write_report(out)
        if summary_console is not None:
            summary_console.print(f"report: {page}", soft_wrap=True, highlight=False)
    if interrupted:
        return 130
    return 3 if stats.outcome() == "unfinished" else 0


class cross_shard_duplicates:
    """`merge_shards`'s `drop`: each worker dedups its own shard, so the merged records are checked
    once more, in plan order, against the questions accepted before them in other shards; a repeat
    is moved to failed.jsonl as `duplicate_instruction` (it cannot be asked again: its worker is done)."""

    def __init__(self, cfg: RunConfig, index: Index) -> None:
        self.cfg, self.index = cfg, index
        self.dropped: dict[str, dict[str, Any]] = {}

    def __call__(self, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        dd = self.cfg.curation.dedup
        if not dd.enabled:
            return {}
        questions = [r["instruction"] for r in records]
        vecs = self.index.embed_queries(questions) if dd.cosine_threshold is not None else None
        deduper = Deduper(dd)
        for i, r in enumerate(records):
            v = None if vecs is None else vecs[i]
            dup = deduper.check(r["instruction"], v)
            if dup is None:
                deduper.add(r["job_id"], r["instruction"], v)
            else:
                self.dropped[r["job_id"]] = {"duplicate": dup.as_dict(), "across_shards": True}
        return self.dropped


async def _preflight(backend: Backend) -> None:
    try:
        await backend.preflight()
    finally:
        with contextlib.suppress(Exception):
            await backend.aclose()
