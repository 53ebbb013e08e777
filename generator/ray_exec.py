"""Sharded generation on Ray: `ragloom generate --ray [ADDRESS] [--workers N]`, or
`execution: {engine: ray, address, workers}` in the config.

The plan is built once on the driver and cut into fixed shards in exemplar-grouped order
(`by_exemplar`); a shard's jobs depend only on the plan. Each worker actor loads the encoder,
the memory-mapped index and the backend once, then runs the ordinary `Pipeline` on each shard
it is given (two at a time) into `OUT/shards/<plan_hash>/part-NNNNN.partial/` (a normal checkpoint: a retried or
resumed shard skips what it holds). A finished shard is renamed to `part-NNNNN/`. The driver
appends the shard records OUT lacks to `OUT/examples.jsonl` and `failed.jsonl` (ray_shards.py:
OUT is the run's record, whichever sessions wrote it, local or Ray), sends each shard only the
jobs OUT does not hold, and asks again, into OUT, the repeats found across shards. Exactly once
follows from the fixed shard membership, those names and OUT's job ids, not from Ray's own
checkpointing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ragloom.retrieval import Index
from ragloom.retrieval.ray_embed import connect, import_ray
from rich.console import Console

from ragloom.errors import ConfigError, RagloomError

from .backends import Backend, make_backend, spec_of
from .config import RunConfig
from .curation import open_decontaminator
from .display import Display
from .pipeline import Pipeline
from .quality import open_scorer
from .ray_shards import (
    REDO_LOCK,
    Absorb,
    add_stats,
    asked_again,
    cut_shards,
    drop_shard_failures,
    fsync_dir,
    part_name,
    reopen,
    stats_dict,
    wait_for_redo,
)
from .run import RunResult, close_run, open_index, plan_run, run_templates
from .run import dry_run as plan_dry_run
from .runs import GENERATE, Checkpoint, RunDir, Stats
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
                    self.scorer, _ = await open_scorer(cfg.quality, backend)

    async def run_shard(self, shard: int, jobs: list[Job]) -> dict[str, Any]:
        await self.ready()  # a restarted actor runs shards without the driver's call
        assert self.loaded is not None
        cfg, index, backend, templates = self.loaded
        final, partial = self.dir / part_name(shard), self.dir / f"{part_name(shard)}.partial"
        finished = {"shard": shard, "complete": True, "stats": stats_dict(Stats(skipped_done=len(jobs)))}
        if final.exists():  # a retry of a task that had finished: make no folder beside it
            return finished
        partial.mkdir(exist_ok=True)
        with open(partial / ".lock", "a") as lock:
            # a worker of a killed driver may still be finishing this shard: wait for it to end
            await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
            if final.exists():  # it finished while this one waited: what this one made holds only the lock
                shutil.rmtree(partial, ignore_errors=True)
                return finished
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

    async def ask_again(self, out: str, jobs: list[Job], order: list[str]) -> dict[str, Any]:
        """Ask again, into OUT itself, the jobs whose records repeat a question accepted in another
        shard (at their next attempt): OUT's checkpoint seeds the dedup with every accepted record,
        and a new repeat is asked again as in one process. Holds `REDO_LOCK` while it writes."""
        await self.ready()
        assert self.loaded is not None
        cfg, index, backend, templates = self.loaded
        with open(self.dir / REDO_LOCK, "a") as lock:
            await asyncio.to_thread(fcntl.flock, lock.fileno(), fcntl.LOCK_EX)
            checkpoint = Checkpoint(Path(out))
            stats = self.live[-1] = Stats()
            try:
                todo = [j for j in jobs if j.id not in checkpoint.done]
                await Pipeline(cfg, index, backend, templates, checkpoint, stats, scorer=self.scorer).run(todo, order)
            finally:
                self.live.pop(-1, None)
                checkpoint.close()
        return {"stats": stats_dict(stats)}

    async def progress(self) -> dict[int, dict[str, Any]]:
        return {shard: stats_dict(s) for shard, s in self.live.items()}


def worker_options(cfg: RunConfig) -> dict[str, Any]:
    """Ray resources per worker: the in-process vLLM engine takes `tensor_parallel_size` GPUs."""
    gpus = spec_of(cfg.backend).gpus(cfg.backend)
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
        s.skipped_done, s.accepted, s.usage, s.counts = total.skipped_done, total.accepted, total.usage, total.counts
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
    result = ray_execute(
        cfg,
        progress=not quiet,
        overwrite=overwrite,
        retry_failed=retry_failed,
        report=report,
        summary_console=summary_console,
        worker_cls=worker_cls,
        num_gpus=num_gpus,
    )
    if result.interrupted:
        return 130
    return 3 if result.stats.outcome() == "unfinished" else 0


def ray_execute(
    cfg: RunConfig,
    *,
    progress: bool = True,
    overwrite: bool = False,
    retry_failed: bool = False,
    report: bool = True,
    console: Console | None = None,
    summary_console: Console | None = None,
    worker_cls: type = ShardWorker,
    num_gpus: float | None = None,
) -> RunResult:
    """Run (or resume) the generation on Ray (`execute`'s counterpart; `ragloom.generate` calls it
    when `execution.engine` is ray). Resumes from whatever earlier sessions wrote, local or Ray. The
    run directory's session lock is held from its opening to the end, however the session ends."""
    import_ray()
    rundir = RunDir(cfg.output)
    try:
        return _ray_session(
            cfg,
            rundir,
            progress=progress,
            overwrite=overwrite,
            retry_failed=retry_failed,
            report=report,
            console=console,
            summary_console=summary_console,
            worker_cls=worker_cls,
            num_gpus=num_gpus,
        )
    finally:
        rundir.close()


def _ray_session(
    cfg: RunConfig,
    rundir: RunDir,
    *,
    progress: bool,
    overwrite: bool,
    retry_failed: bool,
    report: bool,
    console: Console | None,
    summary_console: Console | None,
    worker_cls: type,
    num_gpus: float | None,
) -> RunResult:
    console = console or Console(stderr=True, quiet=not progress)
    index = open_index(cfg, console)  # builds a missing index on the driver, checks encoder and corpus
    templates = run_templates(cfg)
    knowledge_backend = None
    if not spec_of(cfg.backend).in_process:  # a server: checked once here, before the workers start
        backend = make_backend(cfg.backend)
        asyncio.run(_preflight(backend))
        if cfg.exemplar_filters.knowledge_filter:
            knowledge_backend = make_backend(cfg.backend)
    elif cfg.exemplar_filters.knowledge_filter:
        raise ConfigError(
            "exemplar_filters.knowledge_filter with backend vllm cannot run on the Ray driver; "
            "run the filter once without --ray, then rerun with --ray (its decisions are cached)"
        )
    ex = cfg.execution
    planned = plan_run(cfg, index, templates, knowledge_backend)
    jobs, phash, out = planned.jobs, planned.plan_hash, Path(cfg.output)
    shards = cut_shards(jobs)
    run_info = {
        **planned.info,
        "execution": {"engine": "ray", "workers": ex.workers, "shards": len(shards), "shard_size": len(shards[0])},
    }
    root = out / "shards" / phash
    open_decontaminator(cfg.curation, index)  # a bad eval set fails here, before any write; workers load the cache
    # held to the end of the session (the driver writes OUT only through the merge), as a local session holds it
    session = rundir.open(kind=GENERATE, plan_hash=phash, info=run_info, overwrite=overwrite, retry_failed=retry_failed)
    root.mkdir(parents=True, exist_ok=True)
    wait_for_redo(root)
    if retry_failed:
        drop_shard_failures(root, len(shards))
    absorb = Absorb(cfg, index, out, root, shards, retry_failed)
    again = absorb()
    held = absorb.held()
    todo = [i for i, s in enumerate(shards) if any(j.id not in held and j.id not in again for j in s)]
    for i in todo:
        reopen(root, i)
    stats = Stats(planned=len(jobs), skipped_done=len(held))
    display = Display(stats, console, cfg.pricing, quiet=not progress, summary_console=summary_console)
    ray = connect(ex.address)
    opts = worker_options(cfg) | ({} if num_gpus is None else {"num_gpus": num_gpus})
    remote = ray.remote(worker_cls).options(**opts, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)
    n_actors = min(ex.workers, len(todo)) or (1 if again else 0)
    actors = [remote.remote(cfg.model_dump(mode="json"), str(root)) for _ in range(n_actors)]
    to_run = [[j for j in s if j.id not in held] for s in shards]
    driver = Driver(ray, actors, to_run, todo, stats)
    order = [j.id for s in shards for j in s]  # the plan's decision order (shards are cut from it)
    interrupted = False
    try:
        for ref in [a.ready.remote() for a in actors]:  # a bad model, index or scorer fails here, once
            _unwrap(ray, ref)
        with display:
            driver.run(display)
            again = absorb() if todo else again
            if again and actors:  # repeats of questions accepted in other shards: asked again, into OUT
                redo = asked_again(jobs, again)
                add_stats(driver.finals, _unwrap(ray, actors[0].ask_again.remote(str(out), redo, order))["stats"])
                driver.finals.counts["duplicate_across_shards"] += len(redo)
                driver.finals.rejected["duplicate_instruction"] += len(redo)  # asked again, as one process counts it
                driver.refresh()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        driver.stop()
        absorb()  # what the shards hold now joins OUT, whatever stopped the session
        session.close()
    absorb.session_stats(stats, held)
    display.summary(out, interrupted=interrupted)
    return close_run(out, index, rundir, stats, report=report, interrupted=interrupted, summary_console=summary_console)


async def _preflight(backend: Backend) -> None:
    try:
        await backend.preflight()
    finally:
        with contextlib.suppress(Exception):
            await backend.aclose()
