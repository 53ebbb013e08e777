"""Sharded embedding on Ray (`ragloom index build --ray [ADDRESS] [--shards N]`).

The driver cuts the passage store into fixed row ranges. Only the ranges without a finished
`part-NNNNN.npy` go to a Ray Data actor pool (`map_batches` with a callable class, one GPU per
actor where CUDA is present, CPU actors otherwise). Each actor embeds its range, writes the
matrix and its ids under temporary names, fsyncs and renames them into place: the `.npy` +
`.ids.txt` shard format that `--embeddings` reads. `build_index` then fills the faiss index
from the shards exactly as it does from precomputed embeddings. A rerun skips finished shards.

Actors open the passage store by path, so every node must see the index's parent directory
(a shared filesystem).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ragloom.errors import ConfigError, MissingDependencyError

from .encoder import Encoder, EncoderSpec, passage_text
from .store import PassageStore

INSTALL_HINT = "pip install 'ragloom[ray]'"


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise MissingDependencyError(f"--ray needs Ray ({e.name or e}): {INSTALL_HINT}") from None
    return ray


def connect(address: str | None) -> Any:
    """Ray, connected: to `address` ('auto' or host:port), or a local cluster when None.
    A process already connected (a test's cluster, a Ray job) keeps its connection."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    return ray


def shard_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    """`shards` contiguous row ranges covering 0..n, sizes differing by at most one."""
    if shards < 1:
        raise ConfigError(f"--shards {shards}: must be >= 1")
    shards = min(shards, max(n, 1))
    bounds = [n * i // shards for i in range(shards + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(shards)]


def default_shards(n: int) -> int:
    """At least 8 shards (work for 8 actors), at most ~100k passages each; fixed by the corpus size."""
    return max(1, min(n, max(8, -(-n // 100_000))))


def part_name(shard: int) -> str:
    return f"part-{shard:05d}"


def _write_synced(path: Path, write: Callable[[Any], None]) -> None:
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class EmbedShard:
    """Ray Data callable class: loads the store and encoder once, then embeds whole shards."""

    def __init__(self, store_dir: str, spec: dict[str, Any], out_dir: str) -> None:
        self.store = PassageStore(store_dir)
        self.encoder = Encoder(EncoderSpec(**spec))
        self.out = Path(out_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = []
        for shard, start, stop in zip(batch["shard"], batch["start"], batch["stop"], strict=True):
            self.embed(int(shard), int(start), int(stop))
            rows.append(int(stop) - int(start))
        return {"shard": np.asarray(batch["shard"]), "rows": np.asarray(rows)}

    def embed(self, shard: int, start: int, stop: int) -> None:
        passages = self.store.get_rows(np.arange(start, stop))
        vectors = self.encoder.encode_passages([passage_text(p.title, p.text) for p in passages])
        name = part_name(shard)
        ids = "".join(p.id + "\n" for p in passages).encode("utf-8")
        # ids first: the .npy is what marks the shard finished
        _write_synced(self.out / f"{name}.ids.txt", lambda fh: fh.write(ids))
        _write_synced(self.out / f"{name}.npy", lambda fh: np.save(fh, vectors))


def pending_shards(out: Path, ranges: list[tuple[int, int]]) -> list[int]:
    return [i for i in range(len(ranges)) if not (out / f"{part_name(i)}.npy").exists()]


def _cuda_gpus(ray: Any) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def embed_shards(
    store: PassageStore,
    spec: EncoderSpec,
    out: Path,
    *,
    shards: int,
    progress: Callable[[str, int, int], None] | None = None,
    address: str | None = None,
) -> list[int]:
    """Embed the store's unfinished row ranges on Ray into `out`; returns the shards embedded now."""
    ray = connect(address)
    out.mkdir(parents=True, exist_ok=True)
    ranges = shard_ranges(len(store), shards)
    todo = pending_shards(out, ranges)
    n = len(store)
    done = n - sum(ranges[i][1] - ranges[i][0] for i in todo)
    if progress:
        progress("embed", done, n)
    if not todo:
        return []
    gpus = _cuda_gpus(ray)
    actors = max(1, min(len(todo), gpus or int(ray.cluster_resources().get("CPU", 1))))
    items = [{"shard": i, "start": ranges[i][0], "stop": ranges[i][1]} for i in todo]
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        EmbedShard,
        fn_constructor_kwargs={"store_dir": str(store.dir), "spec": asdict(spec), "out_dir": str(out)},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
        num_cpus=0 if gpus else 1,
    )
    for row in ds.iter_rows():
        done += int(row["rows"])
        if progress:
            progress("embed", done, n)
    return todo


class RayEmbedder:
    """The `embed` hook of `build_index`: shards live beside the index directory, under a name
    derived from the corpus fingerprint, the encoder settings and the shard count, so a rerun
    of the same build finds them and a changed corpus or encoder does not."""

    def __init__(
        self, spec: EncoderSpec, out: str | Path, *, shards: int | None = None, address: str | None = None
    ) -> None:
        import_ray()
        if shards is not None:
            shard_ranges(1, shards)  # check the count before anything is read
        self.spec, self.shards, self.address = spec, shards, address
        out = Path(out)
        self.root = out.parent / f".{out.name}.ray-embed"
        self.dir: Path | None = None

    def __call__(
        self, store: PassageStore, fingerprint: str, progress: Callable[[str, int, int], None] | None = None
    ) -> str:
        shards = self.shards or default_shards(len(store))
        key = json.dumps({"corpus": fingerprint, "encoder": asdict(self.spec) | {"device": None}, "n": shards})
        self.dir = self.root / hashlib.sha256(key.encode()).hexdigest()[:16]
        embed_shards(store, self.spec, self.dir, shards=shards, progress=progress, address=self.address)
        return str(self.dir)

    def cleanup(self) -> None:
        """Remove the shards once the index that holds them is in place."""
        shutil.rmtree(self.root, ignore_errors=True)
