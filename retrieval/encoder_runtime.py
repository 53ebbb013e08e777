"""Run a converted encoder: the model's `tokenizers` fast tokenizer, then OpenVINO or ONNX Runtime.

Tokenisation matches sentence-transformers: truncation at the model's `max_seq_length` (not the 128
the packaged tokenizer.json carries), padding to the longest text of each batch, lower-casing where
the model says so. Texts are batched by token length (`batching.length_batches`) so that a batch
pads little, and the embeddings come back in the caller's order.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .batching import length_batches
from .encoder_export import StLayout

# short texts within this many tokens of a batch's longest stay in the batch (`length_batches`)
TOKEN_SLACK = 8


class FastTokenizer:
    """tokenizers.Tokenizer from the model's tokenizer.json, set to the model's length and padding."""

    def __init__(self, layout: StLayout, names: Sequence[str]) -> None:
        from tokenizers import Tokenizer

        d = layout.transformer_dir
        self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        pad_token = _pad_token(d)
        pad_id = self.tok.token_to_id(pad_token) if pad_token else None
        padding = self.tok.padding or {}
        self.tok.enable_truncation(max_length=layout.max_seq_length)
        self.tok.enable_padding(
            pad_id=pad_id if pad_id is not None else int(padding.get("pad_id", 0)),
            pad_token=pad_token or str(padding.get("pad_token", "[PAD]")),
            pad_type_id=int(padding.get("pad_type_id", 0)),
            direction=str(padding.get("direction", "right")).lower(),
        )
        self.left_padded = str(padding.get("direction", "right")).lower() == "left"
        self.lower = layout.do_lower_case
        self.names = tuple(names)

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        enc = self.tok.encode_batch([t.lower() if self.lower else t for t in texts])
        full = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        return {n: full[n] for n in self.names}


def _pad_token(d: Path) -> str | None:
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        f = d / name
        if f.is_file():
            tok = json.loads(f.read_text(encoding="utf-8")).get("pad_token")
            if isinstance(tok, dict):
                tok = tok.get("content")
            if isinstance(tok, str):
                return tok
    return None


class ConvertedEncoder:
    """The part of SentenceTransformer's interface the Encoder uses: `preprocess`, `encode`,
    `get_sentence_embedding_dimension`. `run(batches) -> embeddings of each` is the OpenVINO/ORT call:
    it gets all of one call's batches at once, so a runtime with several streams keeps them all busy."""

    def __init__(self, tokenizer: FastTokenizer, run: Any, dim: int) -> None:
        self.tokenizer, self._run, self._dim = tokenizer, run, dim

    def preprocess(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return self.tokenizer(texts)

    def get_sentence_embedding_dimension(self) -> int:
        return self._dim

    def encode(
        self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = False, **_: Any
    ) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self._dim), dtype=np.float32)
        # tokenised once, padded to the longest of all; each batch of like length (`length_batches`)
        # then takes its rows and only as many columns as its own longest text needs
        features = self.preprocess(list(texts))
        width = next(iter(features.values())).shape[1]
        mask = features.get("attention_mask")
        lengths = mask.sum(axis=1) if mask is not None else np.full(len(texts), width)
        groups = length_batches(lengths.tolist(), batch_size, slack=TOKEN_SLACK)
        batches = []
        for rows in groups:
            n = int(lengths[rows].max())
            cols = slice(width - n, width) if self.tokenizer.left_padded else slice(0, n)
            batches.append({k: np.ascontiguousarray(v[rows, cols]) for k, v in features.items()})
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for rows, vectors in zip(groups, self._run(batches), strict=True):
            out[rows] = vectors
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def openvino_runner(xml: Path, precision: str, threads: int) -> tuple[Any, list[str]]:
    """A thread-safe run(batches) over one compiled OpenVINO model.

    Compiled for throughput: OpenVINO splits `threads` into streams (one per core on a small machine),
    and each calling thread's batches go through its own `AsyncInferQueue`, one in flight per stream.
    Measured on 2 cores against one 2-thread latency stream (bench/retrieval.py R4, bench/generation.py G3):
    a stream runs on its own core, so a core the pipeline's Python takes for a while slows one stream
    and not every batch (the threads of one parallel batch wait for the slowest)."""
    from .quiet import import_openvino

    ov = import_openvino()

    core = ov.Core()
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "THROUGHPUT",
    }
    if os.access(xml.parent, os.W_OK):
        # OpenVINO keeps the compiled model beside the conversion (keyed by model, settings and its
        # version): a later load reads it instead of compiling again, 0.08 s against 0.17 s on 2 cores
        config["CACHE_DIR"] = str(xml.parent / "compiled")
    try:
        compiled = core.compile_model(str(xml), "CPU", config)
    except RuntimeError:
        if "CACHE_DIR" not in config:
            raise
        # a cache it cannot write (a full disk) or read (a torn blob): compile as without one
        config.pop("CACHE_DIR")
        compiled = core.compile_model(str(xml), "CPU", config)
    names = [p.get_any_name() for p in compiled.inputs]
    jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
    local = threading.local()

    def run(batches: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        queue = getattr(local, "queue", None)
        if queue is None:
            queue = local.queue = ov.AsyncInferQueue(compiled, jobs)
        out: list[np.ndarray | None] = [None] * len(batches)

        def done(request: Any, i: int) -> None:
            # copied: the request's output tensor is overwritten by its next batch
            out[i] = np.array(request.get_output_tensor(0).data, dtype=np.float32)

        queue.set_callback(done)
        for i, features in enumerate(batches):
            queue.start_async(features, userdata=i)
        queue.wait_all()
        if any(o is None for o in out):
            raise RuntimeError("OpenVINO returned no embeddings for a batch")
        return out  # type: ignore[return-value]

    return run, names


def onnx_runner(path: Path, threads: int) -> tuple[Any, list[str]]:
    """run(batches) over an ONNX Runtime CPU session, one batch after another (sessions are thread-safe)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(batches: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        return [np.asarray(session.run(None, f)[0], dtype=np.float32) for f in batches]

    return run, names
