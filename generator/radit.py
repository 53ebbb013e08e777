"""RA-DIT data (Lin et al., ICLR 2024) from the same index, loaders, backends and checkpoint as `generate`.

- `lm-ft`: one example per retrieved chunk, prompt `Background: {title} {text}\\n\\n{x}`,
  completion y (the loss is on y only, so the two stay apart).
- `lsr`: for each (x, y) the top-k chunks c, scored log p_LM(y | c o x) by the backend, and
  LSR(c) = softmax(score / tau) over the k chunks; one record per query in the shape
  Atlas- / DPR-style retriever trainers read. Corpus mode cuts x and y from sampled chunks.

Both use the run directory of `generate` (`RunDir`: resumable, each record once, `OUT/run.json`);
a query that cannot be scored (the server refused it, no log-probabilities, tokens that do not align)
is a failed job in `OUT/failed.jsonl`, not a stopped run. A finished run is exported to
`OUT/train.jsonl` with a dataset card.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ragloom.retrieval import Hit, Index, Passage
from rich.console import Console

from ragloom.errors import ConfigError

from .aio import run_sync
from .backends import Backend, ScoreRequest, lsr_scores
from .config import Pricing
from .display import Display, arun_with_display, run_with_display
from .runs import Breaker, Checkpoint, LmFtRecord, LsrChunk, LsrRecord, RunDir, Stats, identity_hash, index_identity
from .types import InstructionPair

LM_FT = "radit-lm-ft"
LSR = "radit-lsr"


def background(p: Passage | None, context: str | None = None) -> str:
    if p is None:
        return f"Background: {context}"
    return f"Background: {p.title} {p.text}" if p.title else f"Background: {p.text}"


def lm_ft_prompt(x: str, p: Passage | None = None, context: str | None = None) -> str:
    """The RA-DIT fine-tuning prompt: the chunk, a blank line, the instruction."""
    return f"{background(p, context)}\n\n{x}"


def lsr_texts(pair: InstructionPair, p: Passage) -> tuple[str, str]:
    """(prefix, target) to score: c o x, then y. A corpus continuation follows x after a space;
    an answer follows the instruction on a new line."""
    if pair.passage_id is not None:
        return f"{background(p)}\n\n{pair.instruction}", " " + pair.output
    return f"{background(p)}\n\n{pair.instruction}\n", pair.output


def corpus_pairs(index: Index, n: int, seed: int, x_words: int, y_words: int) -> tuple[list[InstructionPair], int]:
    """RA-DIT's self-supervised pairs: x = the first `x_words` words of a sampled chunk, y = the next
    `y_words`. Chunks too short for both are skipped and counted. Seeded."""
    total = len(index.store)
    rng = np.random.default_rng(seed)
    order = rng.permutation(total) if total <= 4 * n + 1000 else rng.choice(total, size=4 * n + 1000, replace=False)
    out: list[InstructionPair] = []
    skipped = 0
    for start in range(0, len(order), 1024):
        rows = [int(r) for r in order[start : start + 1024]]
        for row, p in zip(rows, index.store.get_rows(rows)):
            words = p.text.split()
            if len(words) < x_words + y_words:
                skipped += 1
                continue
            x, y = " ".join(words[:x_words]), " ".join(words[x_words : x_words + y_words])
            out.append(InstructionPair(f"corpus:{row}", x, y, "corpus", passage_id=p.id))
            if len(out) == n:
                return out, skipped
    if len(out) < n:
        raise ConfigError(
            f"--from-corpus {n}: only {len(out)} chunks have {x_words}+{y_words} words; "
            "lower --from-corpus, --x-words or --y-words"
        )
    return out, skipped


def open_run(out: Path, kind: str, identity: dict[str, Any], overwrite: bool) -> tuple[RunDir, Checkpoint]:
    """Create or resume the run directory; a different run there is an error unless `overwrite`."""
    rundir = RunDir(out)
    hashed = {k: v for k, v in identity.items() if k != "source"}
    checkpoint = rundir.open(
        kind=kind, plan_hash=identity_hash(hashed), info={"config": identity, "identity": hashed}, overwrite=overwrite
    )
    return rundir, checkpoint


@dataclass
class RaditResult:
    out: Path
    stats: Stats
    interrupted: bool = False


def _chunk(h: Hit) -> dict[str, Any]:
    return {"id": h.passage.id, "title": h.passage.title, "rank": h.rank, "score": round(float(h.score), 6)}


def lm_ft_records(pair: InstructionPair, hits: Sequence[Hit] | None, plain_copy: bool) -> list[LmFtRecord]:
    """k records (one per chunk), or one with the record's own context; plus the plain pair if asked."""
    y, pid, src = pair.output, pair.id, pair.source
    out: list[LmFtRecord] = []
    if hits is None:
        out.append(
            LmFtRecord(f"{pid}#ctx", lm_ft_prompt(pair.instruction, context=pair.context), y, "context", pid, src)
        )
    else:
        for h in hits:
            prompt = lm_ft_prompt(pair.instruction, h.passage)
            out.append(LmFtRecord(f"{pid}#{h.rank}", prompt, y, "retrieved", pid, src, _chunk(h)))
    if plain_copy:
        out.append(LmFtRecord(f"{pid}#plain", pair.instruction, y, "plain", pid, src))
    return out


def _expected_ids(pair: InstructionPair, k: int, use_context: bool, plain_copy: bool) -> list[str]:
    ids = [f"{pair.id}#ctx"] if use_context else [f"{pair.id}#{r}" for r in range(k)]
    return ids + ([f"{pair.id}#plain"] if plain_copy else [])


def run_lm_ft(
    pairs: list[InstructionPair],
    index: Index | None,
    out: Path,
    *,
    k: int,
    plain_copy: bool,
    identity: dict[str, Any],
    overwrite: bool = False,
    quiet: bool = False,
    batch_size: int = 256,
    export_view: str = "prompt-completion",
    summary_console: Console | None = None,
) -> RaditResult:
    use_context = index is None
    if index is not None and k > len(index):
        raise ConfigError(f"--k {k}: the index holds only {len(index)} passages")
    console = Console(stderr=True, quiet=quiet)
    rundir, checkpoint = open_run(out, LM_FT, identity, overwrite)
    todo = [p for p in pairs if any(i not in checkpoint.done for i in _expected_ids(p, k, use_context, plain_copy))]
    stats = Stats(planned=len(pairs), skipped_done=len(pairs) - len(todo))
    display = Display(stats, console, Pricing(), quiet=quiet, label="lm-ft", summary_console=summary_console)

    def body() -> None:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            hits: list[list[Hit]] | list[None] = (
                [None] * len(batch) if index is None else index.search([p.instruction for p in batch], k)
            )
            for pair, hs in zip(batch, hits):
                for rec in lm_ft_records(pair, hs, plain_copy):
                    checkpoint.write_example(rec)
                stats.accepted += 1
            display.update()

    with rundir:  # the session lock is released however this ends
        interrupted = run_with_display(display, checkpoint, out, body)
        rundir.write_info(stats=stats.as_dict())
    if not interrupted:
        _finish(out, export_view, console)
    return RaditResult(out, stats, interrupted)


async def _score_pairs(
    pairs: list[InstructionPair],
    index: Index,
    backend: Backend,
    checkpoint: Checkpoint,
    stats: Stats,
    *,
    k: int,
    tau: float,
    length_normalize: bool,
    on_progress: Any,
    search_batch: int = 64,
) -> None:
    """Search runs a batch ahead in a thread; `workers` pairs are scored at once, k requests each,
    so the backend's own concurrency limit is what bounds the server's load."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
    workers = max(2, math.ceil(2 * backend.parallelism * backend.batch_size / k) + 1)
    breaker = Breaker(backend, "queries in a row failed to score")

    async def produce() -> None:
        for start in range(0, len(pairs), search_batch):
            batch = pairs[start : start + search_batch]
            # corpus mode: the chunk x and y came from must not be its own context
            extra = 1 if any(p.passage_id for p in batch) else 0
            hits = await asyncio.to_thread(index.search, [p.instruction for p in batch], k + extra)
            for pair, hs in zip(batch, hits):
                kept = [h for h in hs if h.passage.id != pair.passage_id][:k]
                await queue.put((pair, kept))
        for _ in range(workers):
            await queue.put(None)

    async def work() -> None:
        while (item := await queue.get()) is not None:
            pair, hits = item
            texts = [lsr_texts(pair, h.passage) for h in hits]
            results = await backend.score([ScoreRequest(a, b) for a, b in texts])
            for r in results:
                stats.retried.update(r.retry_reasons)
            error = next((r.error for r in results if r.error), None)
            if error:  # the transport failed: the query stays unfinished, a rerun resumes it
                stats.backend_errors[error] += 1
                breaker.failed(error)
                on_progress()
                continue
            failed = next((r for r in results if r.failure), None)
            if failed is not None:  # this query cannot be scored: it fails with its reason, the run goes on
                breaker.rejected(str(failed.failure), failed.detail)
                checkpoint.write_failure(pair.id, str(failed.failure), 1, failed.detail)
                stats.failed[str(failed.failure)] += 1
                on_progress()
                continue
            breaker.ok()
            raw = [r.logprob for r in results]
            used = [r.logprob / max(len(r.tokens), 1) for r in results] if length_normalize else raw
            lsr = lsr_scores(used, tau)
            ctxs = [
                LsrChunk(
                    h.passage.id,
                    h.passage.title,
                    h.passage.text,
                    h.rank,
                    round(float(h.score), 6),
                    r.logprob,
                    len(r.tokens),
                    s,
                )
                for h, r, s in zip(hits, results, lsr)
            ]
            checkpoint.write_example(LsrRecord(pair.id, pair.instruction, [pair.output], ctxs, pair.source))
            stats.accepted += 1
            on_progress()

    tasks = [asyncio.create_task(produce())] + [asyncio.create_task(work()) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def run_lsr(
    pairs: list[InstructionPair],
    index: Index,
    backend: Backend,
    out: Path,
    *,
    k: int,
    tau: float,
    length_normalize: bool,
    identity: dict[str, Any],
    overwrite: bool = False,
    quiet: bool = False,
    summary_console: Console | None = None,
) -> RaditResult:
    if tau <= 0:
        raise ConfigError(f"--tau {tau}: must be > 0 (RA-DIT uses 0.01 to 0.1)")
    if k < 2 or k > min(len(index) - 1, 1000):
        raise ConfigError(f"--k {k}: must be between 2 and {min(len(index) - 1, 1000)} for this index")
    return run_sync(
        _alsr(
            pairs,
            index,
            backend,
            out,
            k=k,
            tau=tau,
            length_normalize=length_normalize,
            identity=identity,
            overwrite=overwrite,
            quiet=quiet,
            summary_console=summary_console,
        )
    )


async def _alsr(
    pairs: list[InstructionPair],
    index: Index,
    backend: Backend,
    out: Path,
    *,
    k: int,
    tau: float,
    length_normalize: bool,
    identity: dict[str, Any],
    overwrite: bool,
    quiet: bool,
    summary_console: Console | None,
) -> RaditResult:
    console = Console(stderr=True, quiet=quiet)
    rundir: RunDir | None = None
    try:
        await backend.preflight()  # before anything is written
        rundir, checkpoint = open_run(out, LSR, identity, overwrite)
        todo = [p for p in pairs if p.id not in checkpoint.done]
        stats = Stats(planned=len(pairs), skipped_done=len(pairs) - len(todo))
        display = Display(stats, console, Pricing(), quiet=quiet, label="lsr", summary_console=summary_console)
        body = _score_pairs(
            todo,
            index,
            backend,
            checkpoint,
            stats,
            k=k,
            tau=tau,
            length_normalize=length_normalize,
            on_progress=display.update,
        )
        interrupted = await arun_with_display(display, checkpoint, out, body)
        rundir.write_info(stats=stats.as_dict())
    finally:
        if rundir is not None:
            rundir.close()
        with contextlib.suppress(Exception):
            await backend.aclose()
    if not interrupted and stats.outcome() != "unfinished":
        _finish(out, "lsr", console)  # queries that failed with a reason are in failed.jsonl, not missing
    return RaditResult(out, stats, interrupted)


def _finish(out: Path, view: str, console: Console) -> None:
    from .publish import export

    card, _, _ = export(out, view, out / "train.jsonl")
    console.print(f"exported {out / 'train.jsonl'} ({view}) and {card}", soft_wrap=True, highlight=False)


def identity_of(
    kind: str, index: Index | None, pairs: Sequence[InstructionPair], source: dict[str, Any] | None = None, **opts: Any
) -> dict[str, Any]:
    """What makes two runs the same run (resume) or different ones (refuse without --overwrite): the
    pairs' content (not the file, field names or limit that produced it), the options and what the
    index holds. The CLI and `ragloom.radit` both build it here. `source` (where the pairs came
    from) is kept in run.json for people, outside the hash."""
    digest = hashlib.sha256()
    for p in pairs:
        digest.update(json.dumps([p.id, p.instruction, p.output, p.context, p.passage_id]).encode() + b"\n")
    ident: dict[str, Any] = {"kind": kind, "pairs": {"sha256": digest.hexdigest()[:20], "count": len(pairs)}, **opts}
    if index is not None:
        ident["index"] = index_identity(index.manifest)
    if source is not None:
        ident["source"] = source
    return ident
