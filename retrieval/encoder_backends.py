"""Encoder backends: torch, or an ONNX Runtime / OpenVINO export made once and cached.

The export and the int8 dynamic quantisation are sentence-transformers' own
(`SentenceTransformer(..., backend="onnx")`, `export_dynamic_quantized_onnx_model`). The
exported model is saved under `encoder_cache_dir()` in a folder keyed by the model path, the
model files' sizes and mtimes, the backend and the quantisation, so it is made once per
machine and reused by every index build and every run.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, cast

from ragloom.errors import ConfigError, MissingDependencyError

BACKENDS = ("torch", "onnx", "openvino")
QUANTIZE = ("int8",)
# what each optional backend imports, and the install command when it cannot
_NEEDS = {
    "onnx": ("optimum.onnxruntime", "ORTModelForFeatureExtraction", "pip install 'ragloom[onnx]'"),
    "openvino": (
        "optimum.intel.openvino",
        "OVModelForFeatureExtraction",
        "pip install 'sentence-transformers[openvino]'",
    ),
}
# ONNX Runtime's dynamic int8 quantisation for this CPU's instruction set (AVX2; no AVX-512 assumed)
INT8_CONFIG = "avx2"
READY = "ragloom-export.json"


def check_backend(backend: str, quantize: str | None) -> None:
    """Raise ConfigError for an unknown backend or quantisation, or one the backend cannot do."""
    if backend not in BACKENDS:
        raise ConfigError(f"encoder_backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"quantize {quantize!r} is not allowed; use int8 or leave it unset")
    if quantize and backend != "onnx":
        raise ConfigError(
            f"quantize {quantize} needs encoder_backend onnx (got {backend}); pass --encoder-backend onnx"
        )


def require_backend(backend: str) -> None:
    """Raise MissingDependencyError (one line, with the install command) when `backend` cannot be imported."""
    if backend == "torch":
        return
    module, cls, install = _NEEDS[backend]
    try:
        getattr(
            importlib.import_module(module), cls
        )  # optimum imports lazily: reach the class sentence-transformers uses
    except Exception as e:  # ImportError, or an installed optimum that does not fit this transformers
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise MissingDependencyError(
            f"encoder_backend {backend} needs {module.split('.')[0]} with a matching transformers ({first}): {install}"
        ) from None


def encoder_cache_dir() -> Path:
    """Where exported encoders live: $RAGLOOM_CACHE_DIR/encoders, else ~/.cache/ragloom/encoders."""
    root = os.environ.get("RAGLOOM_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "ragloom"
    return Path(root).expanduser() / "encoders"


def export_key(load_path: str, backend: str, quantize: str | None) -> str:
    """A cache key from the model path, its files' sizes and mtimes, the backend and the quantisation."""
    p = Path(load_path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
    stamp = [(str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    blob = json.dumps([str(p.resolve()) if p.exists() else load_path, stamp, backend, quantize])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def model_file(backend: str, quantize: str | None) -> str:
    if backend == "openvino":
        return "openvino/openvino_model.xml"
    # ONNX Runtime's avx2 config quantises weights to unsigned int8: the export names it quint8
    return f"onnx/model_quint8_{INT8_CONFIG}.onnx" if quantize == "int8" else "onnx/model.onnx"


def exported_model_dir(load_path: str, backend: str, quantize: str | None, offline: bool) -> Path:
    """The cached export of `load_path` for `backend` (+ quantisation), made now if it is not there yet."""
    target = encoder_cache_dir() / f"{Path(load_path).name or 'model'}-{export_key(load_path, backend, quantize)}"
    if (target / READY).exists():
        return target
    from sentence_transformers import SentenceTransformer

    tmp = target.parent / f".{target.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model = SentenceTransformer(load_path, device="cpu", backend=cast(Any, backend), local_files_only=offline)
        model.save(str(tmp))
        if quantize == "int8":
            from sentence_transformers import export_dynamic_quantized_onnx_model

            export_dynamic_quantized_onnx_model(model, INT8_CONFIG, str(tmp))
        if not (tmp / model_file(backend, quantize)).is_file():
            raise OSError(f"the export wrote no {model_file(backend, quantize)} in {tmp}")
        info = {"source": load_path, "backend": backend, "quantize": quantize, "file": model_file(backend, quantize)}
        (tmp / READY).write_text(json.dumps(info) + "\n", encoding="utf-8")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same export first: use theirs
            if not (target / READY).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_model(load_path: str, backend: str, quantize: str | None, device: str, offline: bool) -> Any:
    """A SentenceTransformer for `backend`; onnx and openvino load the cached export."""
    from sentence_transformers import SentenceTransformer

    if backend == "torch":
        return SentenceTransformer(load_path, device=device, local_files_only=offline)
    require_backend(backend)
    path = exported_model_dir(load_path, backend, quantize, offline)
    kwargs: dict[str, Any] = {"file_name": model_file(backend, quantize)}
    if backend == "onnx":
        kwargs["provider"] = "CPUExecutionProvider" if device == "cpu" else None
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return SentenceTransformer(
        str(path), device=device, backend=cast(Any, backend), model_kwargs=kwargs, local_files_only=True
    )
