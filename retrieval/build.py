"""`build_index`: corpus -> passage store -> embeddings -> faiss index -> manifest, atomically.

The index is built in a temporary sibling directory and renamed into place at the end,
so a crash or a bad record never leaves a half-built index, and an existing index is
replaced only when the new one is complete.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

import ragloom
from ragloom.errors import InputFormatError, OutputError

from .corpus import CorpusSpec, CorpusStats, iter_corpus
from .embeddings import align_embeddings
from .encoder import Encoder, EncoderSpec, passage_text
from .index import INDEX_FILE, MANIFEST, corpus_source_stat, import_faiss
from .store import STORE_FILE, PassageStore, write_store

IndexType = Literal["flat", "hnsw", "ivf-pq"]
INDEX_TYPES = ("flat", "hnsw", "ivf-pq")


@dataclass
class IndexParams:
    """Index construction and search parameters; None means "choose from the corpus size"."""

    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128
    nlist: int | None = None
    pq_m: int | None = None
    pq_bits: int | None = None
    nprobe: int = 64
    train_size: int | None = None
    seed: int = 0
    add_batch: int = 16384


def build_index(
    corpus: CorpusSpec,
    out: str | Path,
    *,
    encoder: EncoderSpec | None = None,
    index_type: str = "flat",
    params: IndexParams | None = None,
    limit: int | None = None,
    embeddings: str | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    embed: Callable[..., str] | None = None,
) -> dict[str, Any]:
    """Build an index directory at `out` and return its manifest.

    `progress(stage, done, total)` is called as passages are embedded and added. `embed(store,
    fingerprint, progress)` embeds the written store elsewhere (on Ray) and returns the shards' path.
    """
    if index_type not in INDEX_TYPES:
        raise InputFormatError(f"unknown index type {index_type!r}; use one of {', '.join(INDEX_TYPES)}")
    out = Path(out)
    _check_out(out, overwrite)
    params = params or IndexParams()
    t0 = time.perf_counter()
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        stats = CorpusStats()
        rows = iter_corpus(corpus, stats)
        if limit is not None:
            rows = itertools.islice(rows, limit)
        n, fingerprint = write_store(rows, tmp)
        if n == 0:
            raise InputFormatError(
                f"{corpus.path}: the corpus has no passages ({stats.skipped_empty} empty records skipped)"
            )
        store = PassageStore(tmp)
        enc = Encoder(encoder)
        if embed is not None:
            embeddings = embed(store, fingerprint, progress)
        index, index_params = _fill_index(store, enc, index_type, params, embeddings, tmp, progress)
        import_faiss().write_index(index, str(tmp / INDEX_FILE))
        (tmp / "embeddings.npy").unlink(missing_ok=True)
        manifest = {
            "ragloom_version": ragloom.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "encoder": {
                "name": enc.name,
                "dim": int(index.d),
                "normalize": enc.spec.normalize,
                "query_prefix": enc.spec.query_prefix,
                "passage_prefix": enc.spec.passage_prefix,
                "backend": enc.spec.backend,
                "quantize": enc.spec.quantize,
                "precision": enc.precision,
            },
            "index": index_params,
            "passages": n,
            "corpus": {
                "path": os.path.abspath(corpus.path),
                "format": corpus.resolved_format(),
                "fields": {"id": corpus.id_field, "title": corpus.title_field, "text": corpus.text_field},
                "fingerprint": fingerprint,
                "stat": corpus_source_stat(corpus.path),
                "limit": limit,
                "skipped_empty": stats.skipped_empty,
                "generated_ids": stats.generated_ids,
            },
            "store": {"file": STORE_FILE, "bytes": (tmp / STORE_FILE).stat().st_size},
            "embeddings": "ray" if embed else "precomputed" if embeddings else "encoded",
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse to replace anything but an empty directory, or (with `overwrite`) a ragloom index."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out} is a file, not a directory; choose another --out")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise OutputError(f"{out} already exists; pass --overwrite to replace it")
    if not (out / MANIFEST).is_file():
        raise OutputError(
            f"{out} is not empty and holds no ragloom index (no {MANIFEST}); --overwrite replaces only an index: "
            "choose another --out or empty it yourself"
        )


def _fill_index(
    store: PassageStore,
    enc: Encoder,
    kind: str,
    params: IndexParams,
    embeddings: str | None,
    tmp: Path,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[Any, dict[str, Any]]:
    n = len(store)
    matrix = align_embeddings(store, embeddings, tmp / "embeddings.npy") if embeddings else None
    dim = int(matrix.shape[1]) if matrix is not None else enc.dim
    index, info = _new_index(kind, dim, n, params)

    def vectors_at(rows: np.ndarray) -> np.ndarray:
        if matrix is not None:
            return _normalized(np.asarray(matrix[rows], dtype=np.float32), enc.spec.normalize)
        return enc.encode_passages([passage_text(p.title, p.text) for p in store.get_rows(rows)])

    if not index.is_trained:
        rng = np.random.default_rng(params.seed)
        train_rows = np.sort(rng.choice(n, size=info["train_size"], replace=False))
        index.train(vectors_at(train_rows))
    done = 0

    def advance(k: int) -> None:
        nonlocal done
        done += k
        if progress:
            progress("embed", done, n)

    for start in range(0, n, params.add_batch):
        rows = np.arange(start, min(start + params.add_batch, n))
        if matrix is not None:
            index.add(vectors_at(rows))
            advance(len(rows))
        else:
            titles, texts = store.slice_texts(start, len(rows))
            index.add(
                enc.encode_passages([passage_text(t, x) for t, x in zip(titles, texts, strict=False)], progress=advance)
            )
    return index, info


def _normalized(x: np.ndarray, normalize: bool) -> np.ndarray:
    if normalize:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.maximum(norms, 1e-12)
    return np.ascontiguousarray(x, dtype=np.float32)


def _new_index(kind: str, dim: int, n: int, p: IndexParams) -> tuple[Any, dict[str, Any]]:
    faiss = import_faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim), {"type": "flat"}
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, p.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = p.ef_construction
        return index, {"type": "hnsw", "m": p.hnsw_m, "ef_construction": p.ef_construction, "ef_search": p.ef_search}
    nlist = p.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39 or 1, 65536))
    pq_m = p.pq_m or next(m for m in (64, 48, 32, 24, 16, 12, 8, 4, 2, 1) if (dim % m == 0 and dim // m >= 4) or m == 1)
    if dim % pq_m:
        raise InputFormatError(f"pq_m={pq_m} must divide the embedding dimension {dim}")
    train_size = min(n, p.train_size or max(64 * nlist, 65536))
    bits = p.pq_bits or (8 if train_size >= 10_000 else 6 if train_size >= 2_000 else 4)
    index = faiss.index_factory(dim, f"IVF{nlist},PQ{pq_m}x{bits}", faiss.METRIC_INNER_PRODUCT)
    info = {
        "type": "ivf-pq",
        "nlist": nlist,
        "pq_m": pq_m,
        "pq_bits": bits,
        "nprobe": p.nprobe,
        "train_size": train_size,
        "seed": p.seed,
    }
    return index, info
