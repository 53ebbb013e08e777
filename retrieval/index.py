"""A self-describing index directory: manifest, passage store, faiss index; and batch search.

DIR/manifest.json    encoder, dim, normalisation, prefixes, index type and parameters,
                     passage count, corpus fingerprint, ragloom version
DIR/passages.arrow   the passage store (row i = faiss vector i)
DIR/ids.npy          sorted id hashes for id -> row lookup
DIR/index.faiss      the faiss index (inner product)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragloom.errors import IndexMismatchError, MissingDependencyError, MissingInputError

from .corpus import CorpusSpec, CorpusStats, iter_corpus
from .encoder import Encoder, EncoderSpec, resolve_encoder
from .encoder_backends import check_backend, default_threads, numerics_group
from .store import STORE_FILE, PassageStore
from .types import Hit

MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("faiss is needed for retrieval: pip install faiss-cpu") from None
    return faiss


def read_manifest(directory: str | Path) -> dict[str, Any]:
    d = Path(directory)
    if not d.is_dir():
        raise MissingInputError(f"index directory not found: {d}; build one with `ragloom index build`")
    path = d / MANIFEST
    if not path.exists():
        raise MissingInputError(
            f"{d}: no {MANIFEST}; this is not a ragloom index (build one with `ragloom index build`)"
        )
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise IndexMismatchError(f"{path}: corrupt manifest ({e.msg}); rebuild the index") from None


class Index:
    """An opened index directory. `search` embeds queries in batches and returns ranked hits."""

    def __init__(
        self,
        directory: str | Path,
        *,
        encoder: str | EncoderSpec | None = None,
        corpus: CorpusSpec | None = None,
        device: str | None = None,
        encoder_backend: str | None = None,
        quantize: str | None = None,
        precision: str | None = None,
    ) -> None:
        """`encoder_backend`/`quantize`/`precision` choose how queries are embedded (None: as the index
        was built); numerics that would change results are an IndexMismatchError (see `check_numerics`)."""
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir)
        m = self.manifest
        enc = m["encoder"]
        if encoder is not None:
            asked = encoder.name if isinstance(encoder, EncoderSpec) else encoder
            if resolve_encoder(asked)[0] != enc["name"]:
                raise IndexMismatchError(
                    f"{self.dir} was built with encoder {enc['name']!r} (dim {enc['dim']}), not {asked!r}; "
                    "use that encoder or rebuild the index with `ragloom index build --encoder`"
                )
        backend, quant, prec = enc.get("backend", "torch"), enc.get("quantize"), enc.get("precision", "f32")
        if encoder_backend is not None or quantize is not None or precision is not None:
            asked_backend = encoder_backend or backend
            asked_prec = precision or (prec if asked_backend == "openvino" else "f32")
            check_numerics(self.dir, (backend, quant, prec), (asked_backend, quantize, asked_prec))
            backend, quant, prec = asked_backend, quantize, asked_prec
        for name in (STORE_FILE, "ids.npy", INDEX_FILE):
            if not (self.dir / name).exists():
                raise MissingInputError(f"{self.dir}: {name} is missing; rebuild the index with `ragloom index build`")
        if (self.dir / STORE_FILE).stat().st_size != m["store"]["bytes"]:
            raise IndexMismatchError(
                f"{self.dir}: the passage store changed since the index was built; rebuild the index"
            )
        if corpus is not None:
            check_corpus_unchanged(m, corpus)
        self.store = PassageStore(self.dir)
        self.faiss_index = _read_faiss(self.dir / INDEX_FILE)
        if self.faiss_index.ntotal != m["passages"] or len(self.store) != m["passages"]:
            raise IndexMismatchError(
                f"{self.dir}: manifest says {m['passages']} passages but the index holds {self.faiss_index.ntotal} "
                f"and the store {len(self.store)}; rebuild the index"
            )
        self.encoder_spec = EncoderSpec(
            name=enc["name"],
            query_prefix=enc.get("query_prefix", ""),
            passage_prefix=enc.get("passage_prefix", ""),
            normalize=enc.get("normalize", True),
            device=device,
            backend=backend,
            quantize=quant,
            precision=prec,
        )
        import_faiss().omp_set_num_threads(default_threads())
        self._encoder: Encoder | None = None
        self._direct_map = False  # ivf-pq: row -> list position, built on the first `vectors` call

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            enc = Encoder(self.encoder_spec)
            if enc.dim != self.manifest["encoder"]["dim"]:
                raise IndexMismatchError(
                    f"{self.dir}: encoder {enc.name!r} gives dimension {enc.dim}, the index has {self.manifest['encoder']['dim']}"
                )
            self._encoder = enc
        return self._encoder

    def __len__(self) -> int:
        return int(self.manifest["passages"])

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(list(queries))

    def search_embeddings(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw faiss search: (scores, rows), each (n, k); row -1 where fewer than k exist."""
        _set_search_params(self.faiss_index, self.manifest["index"], k)
        scores, rows = self.faiss_index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return scores, rows

    def vectors(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The index's own vectors of `rows`, without re-encoding: exact for flat and hnsw, the
        decoded PQ codes (approximate) for ivf-pq. (len(rows), dim) float32."""
        if self.manifest["index"]["type"] == "ivf-pq" and not self._direct_map:
            import_faiss().extract_index_ivf(self.faiss_index).make_direct_map()
            self._direct_map = True
        keys = np.ascontiguousarray(rows, dtype=np.int64)
        if not len(keys):
            return np.empty((0, int(self.manifest["encoder"]["dim"])), dtype=np.float32)
        return np.asarray(self.faiss_index.reconstruct_batch(keys), dtype=np.float32)

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """For each query, up to k hits best first, with passage, score and 0-based rank."""
        return self.hits_from_rows(*self.search_rows(queries, k))

    def search_rows(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Embed and search, without reading passages: (scores, rows), each (len(queries), k).
        Turn the ranks you need into hits with `hits_from_rows(scores[:, a:b], rows[:, a:b], a)`."""
        if not 1 <= k <= 1000:
            raise ValueError(f"k={k} is out of range; use 1 <= k <= 1000")
        if not queries:
            return np.empty((0, k), dtype=np.float32), np.empty((0, k), dtype=np.int64)
        return self.search_embeddings(self.embed_queries(queries), min(k, len(self)))

    def hits_from_rows(self, scores: np.ndarray, rows: np.ndarray, first_rank: int = 0) -> list[list[Hit]]:
        flat = rows.reshape(-1)
        valid = flat[flat >= 0]
        uniq, inverse = np.unique(valid, return_inverse=True)
        passages = self.store.get_rows(uniq)
        out: list[list[Hit]] = []
        pos = 0
        for qi in range(rows.shape[0]):
            hits = []
            for rank, (row, score) in enumerate(zip(rows[qi], scores[qi], strict=False)):
                if row < 0:
                    break
                hits.append(Hit(passages[inverse[pos]], float(score), first_rank + rank))
                pos += 1
            out.append(hits)
        return out


def _numerics_text(backend: str, quantize: str | None, precision: str) -> str:
    return backend + (f" {quantize}" if quantize else "") + (f" {precision}" if precision != "f32" else "")


def check_numerics(directory: Path, built: tuple[str, str | None, str], asked: tuple[str, str | None, str]) -> None:
    """Raise IndexMismatchError when the asked encoder numerics would change the index's results."""
    check_backend(*asked)
    if numerics_group(*built) != numerics_group(*asked):
        b, a = _numerics_text(*built), _numerics_text(*asked)
        raise IndexMismatchError(
            f"{directory} was built with encoder_backend {b}; querying it with {a} would change results: "
            f"use encoder_backend {built[0]}"
            + (f" with quantize {built[1]}" if built[1] else " without quantize")
            + (f" and precision {built[2]}" if built[2] != "f32" else "")
            + " or rebuild the index with `ragloom index build --encoder-backend`"
        )


def _read_faiss(path: Path) -> Any:
    faiss = import_faiss()
    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:
        try:
            return faiss.read_index(str(path))
        except RuntimeError as e:
            raise IndexMismatchError(
                f"{path}: unreadable faiss index ({str(e).splitlines()[0]}); rebuild the index"
            ) from None


def _set_search_params(index: Any, params: dict[str, Any], k: int) -> None:
    kind = params["type"]
    if kind == "hnsw":
        index.hnsw.efSearch = max(int(params.get("ef_search", 128)), k)
    elif kind == "ivf-pq":
        import_faiss().extract_index_ivf(index).nprobe = int(params.get("nprobe", 64))


def corpus_source_stat(path: str) -> dict[str, int]:
    p = Path(path)
    if not p.exists():
        return {}
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    return {
        "size": sum(f.stat().st_size for f in files),
        "mtime_ns": max((f.stat().st_mtime_ns for f in files), default=0),
    }


def check_corpus_unchanged(manifest: dict[str, Any], corpus: CorpusSpec) -> None:
    """Raise IndexMismatchError when `corpus` is not the corpus the index was built from."""
    built = manifest["corpus"]
    if os.path.abspath(corpus.path) != built["path"]:
        raise IndexMismatchError(
            f"index was built from {built['path']}, not {corpus.path}; rebuild it with `ragloom index build --corpus {corpus.path}`"
        )
    if corpus_source_stat(corpus.path) == built.get("stat"):
        return
    from .store import fingerprint_rows

    fp = fingerprint_rows(iter_corpus(corpus, CorpusStats()), limit=built.get("limit"))
    if fp != built["fingerprint"]:
        raise IndexMismatchError(
            f"corpus {corpus.path} changed since the index was built; rebuild it with `ragloom index build`"
        )
