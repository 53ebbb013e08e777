"""Precomputed passage embeddings: Contriever-style pickled shards, or `.npy` plus an ids file.

The published Wikipedia embeddings (Contriever, RAG-Instruct) are a directory of pickle
files, each holding `(ids, float32 matrix)`. Either source is aligned to the passage
store's row order so row i of the index is passage i of the store.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ragloom.errors import InputFormatError, MissingInputError

from .store import PassageStore


def iter_embedding_shards(path: str | Path) -> Iterator[tuple[list[str], np.ndarray, str]]:
    """Yield (ids, matrix, shard name) from a shard directory, a pickle, or a `.npy` file.

    A `.npy` file needs its ids beside it: `NAME.ids.txt` (one per line) or `NAME.ids.json`.
    """
    p = Path(path)
    if not p.exists():
        raise MissingInputError(f"embeddings not found: {p}")
    files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")) if p.is_dir() else [p]
    files = [f for f in files if not f.name.endswith((".ids.txt", ".ids.json"))]
    if not files:
        raise MissingInputError(f"{p}: no embedding shards in this directory")
    for f in files:
        if f.suffix == ".npy":
            yield _read_npy(f)
        else:
            yield _read_pickle(f)


def _read_pickle(f: Path) -> tuple[list[str], np.ndarray, str]:
    # Pickles can run code: load only shards you trust (the published embeddings are pickles).
    try:
        with open(f, "rb") as fh:
            obj = pickle.load(fh)  # noqa: S301
    except Exception as e:
        raise InputFormatError(f"{f}: not a pickled (ids, matrix) shard ({type(e).__name__}: {e})") from None
    if not (isinstance(obj, tuple) and len(obj) == 2):
        raise InputFormatError(f"{f}: expected a pickled tuple (ids, float32 matrix), got {type(obj).__name__}")
    ids, mat = obj
    return _check(f, [str(i) for i in ids], np.asarray(mat))


def _read_npy(f: Path) -> tuple[list[str], np.ndarray, str]:
    txt, js = f.with_suffix(".ids.txt"), f.with_suffix(".ids.json")
    if txt.exists():
        ids = [line.rstrip("\n") for line in txt.read_text(encoding="utf-8").splitlines()]
    elif js.exists():
        ids = [str(i) for i in json.loads(js.read_text(encoding="utf-8"))]
    else:
        raise MissingInputError(f"{f}: no ids file beside it; write one id per line to {txt.name}")
    return _check(f, ids, np.load(f, mmap_mode="r"))


def _check(f: Path, ids: list[str], mat: np.ndarray) -> tuple[list[str], np.ndarray, str]:
    if mat.ndim != 2:
        raise InputFormatError(f"{f}: embeddings must be a 2-d matrix, got shape {mat.shape}")
    if len(ids) != mat.shape[0]:
        raise InputFormatError(f"{f}: {len(ids)} ids but {mat.shape[0]} embedding rows")
    return ids, mat, str(f)


def align_embeddings(store: PassageStore, source: str | Path, out: Path) -> np.memmap:
    """Write the shards into a float32 `.npy` memmap at `out`, in store row order.

    Ids in the shards that the corpus lacks, and corpus passages no shard covers, are
    errors that give the count and a few examples.
    """
    n = len(store)
    mat: np.memmap | None = None
    seen = np.zeros(n, dtype=bool)
    for ids, shard, name in iter_embedding_shards(source):
        rows = store.rows_of(ids)
        missing = [ids[i] for i in np.nonzero(rows < 0)[0]]
        if missing:
            raise InputFormatError(
                f"{name}: {len(missing)} embedding ids are not in the corpus (e.g. {', '.join(map(repr, missing[:5]))}); "
                "build the index from the corpus these embeddings were made for"
            )
        if mat is None:
            mat = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, shard.shape[1]))
        elif shard.shape[1] != mat.shape[1]:
            raise InputFormatError(f"{name}: dimension {shard.shape[1]} differs from earlier shards ({mat.shape[1]})")
        mat[rows] = np.asarray(shard, dtype=np.float32)
        seen[rows] = True
    if mat is None:
        raise MissingInputError(f"{source}: no embeddings found")
    if not seen.all():
        lack = np.nonzero(~seen)[0]
        examples = [p.id for p in store.get_rows(lack[:5])]
        raise InputFormatError(
            f"{source}: {len(lack)} corpus passages have no embedding (e.g. {', '.join(map(repr, examples))}); "
            "the embeddings and the corpus must hold the same ids"
        )
    mat.flush()
    return mat
