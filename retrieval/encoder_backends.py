"""Encoder backends: torch (sentence-transformers), or OpenVINO / ONNX Runtime from a conversion made
once, in process, from the packaged model itself (retrieval/encoder_export.py; no optimum).

The converted model is cached under `encoder_cache_dir()` in a folder keyed by the model's files
(paths, sizes, mtimes), the backend, the precision, the quantisation and the runtime's version, so it
is made once per machine and reused by every index build and every run. `CONVERSIONS` counts the
conversions this process made.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
import warnings
from functools import cache
from pathlib import Path
from typing import Any

from ragloom.errors import ConfigError, MissingDependencyError

from .quiet import import_openvino

BACKENDS = ("torch", "openvino", "onnx")
QUANTIZE = ("int8",)
PRECISIONS = ("f32", "bf16")
# top-10 overlap of an int8 index against torch, bench/retrieval.py R4 (1,000 Wikipedia summaries, 798
# queries); int8 is accepted only where it keeps >= INT8_MIN_OVERLAP. openvino has no int8 path here.
INT8_OVERLAP = {"onnx": 0.926}
INT8_MIN_OVERLAP = 0.9
_NEEDS = {
    "onnx": (("onnxruntime", "onnx"), "pip install 'ragloom[onnx]'"),
    "openvino": (("openvino",), "pip install 'ragloom[openvino]'"),
}
READY = "ragloom-export.json"
CONVERSIONS = {"count": 0}
_NOTED: list[bool] = []


def check_backend(backend: str, quantize: str | None, precision: str = "f32") -> None:
    """Raise ConfigError for an unknown backend, quantisation or precision, or one the backend cannot do."""
    if backend not in BACKENDS:
        raise ConfigError(f"encoder_backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"quantize {quantize!r} is not allowed; use int8 or leave it unset")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "f32" and backend != "openvino":
        raise ConfigError(f"precision {precision} needs encoder_backend openvino (got {backend})")
    if quantize and backend not in INT8_OVERLAP:
        raise ConfigError(
            f"quantize {quantize} needs encoder_backend onnx (got {backend}); pass --encoder-backend onnx"
        )
    if quantize and INT8_OVERLAP[backend] < INT8_MIN_OVERLAP:
        raise ConfigError(
            f"quantize int8 is refused for encoder_backend {backend}: its measured top-10 overlap with torch is "
            f"{INT8_OVERLAP[backend]:.3f} (< {INT8_MIN_OVERLAP}) on Wikipedia text; drop quantize "
            "(encoder_backend openvino is faster and faithful)"
        )


def numerics_group(backend: str, quantize: str | None, precision: str = "f32") -> str:
    """Encoders in one group give the same retrieval; across groups they may not.

    Measured by bench/retrieval.py R4 (all-MiniLM-L6-v2, 1,000 Wikipedia summaries, 798 queries):
    onnx fp32 and openvino f32 against torch have top-10 overlap 1.000 and the same known-article
    recall@5, so the three share a group. openvino bf16 and int8 change scores slightly and stay in
    groups of their own."""
    if quantize is None and precision == "f32":
        return "fp32"
    return backend + (f"-{quantize}" if quantize else "") + (f"-{precision}" if precision != "f32" else "")


def require_backend(backend: str) -> None:
    """Raise MissingDependencyError (one line, with the install command) when `backend` cannot be imported."""
    if backend == "torch":
        return
    modules, install = _NEEDS[backend]
    for module in modules:
        try:
            import_openvino() if module == "openvino" else importlib.import_module(module)
        except Exception as e:  # ImportError, or a broken install
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise MissingDependencyError(f"encoder_backend {backend} needs {module} ({first}): {install}") from None


@cache
def cpu_has_bf16() -> bool:
    """True when OpenVINO's CPU plugin reports BF16 (avx512_bf16 or AMX), else /proc/cpuinfo says so."""
    try:
        ov = import_openvino()
        return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags


def effective_precision(backend: str, precision: str) -> str:
    """`precision`, except bf16 on a CPU without it: a one-line note on stderr and f32."""
    if backend == "openvino" and precision == "bf16" and not cpu_has_bf16():
        if not _NOTED:
            _NOTED.append(True)
            print("note: precision bf16: this CPU has no bf16 (avx512_bf16/AMX); encoding in f32", file=sys.stderr)
        return "f32"
    return precision


def default_threads() -> int:
    """The cores this process may use (its CPU affinity), for the encoder runtime and faiss."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def encoder_cache_dir() -> Path:
    """Where converted encoders live: $RAGLOOM_CACHE_DIR/encoders, else ~/.cache/ragloom/encoders."""
    root = os.environ.get("RAGLOOM_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "ragloom"
    return Path(root).expanduser() / "encoders"


def runtime_version(backend: str) -> str:
    """The versions of the packages a conversion depends on, read from their metadata (importing torch
    to ask would cost seconds on every load of a converted model that never runs torch)."""
    names = ("torch", "openvino") if backend == "openvino" else ("torch", "onnxruntime", "onnx")
    return ",".join(f"{n}={_version(n)}" for n in names)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def export_key(model_dir: Path, backend: str, precision: str, quantize: str | None) -> str:
    """A cache key from the model's files (paths, sizes, mtimes), backend, precision, quantisation, runtime."""
    files = sorted(f for f in model_dir.rglob("*") if f.is_file())
    stamp = [(str(f.relative_to(model_dir)), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    blob = json.dumps([str(model_dir.resolve()), stamp, backend, precision, quantize, runtime_version(backend)])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def model_file(backend: str, quantize: str | None) -> str:
    if backend == "openvino":
        return "model.xml"
    return "model_int8.onnx" if quantize == "int8" else "model.onnx"


def local_model_dir(load_path: str, offline: bool) -> Path:
    """The model's local directory: `load_path` itself, or its snapshot in the Hugging Face cache."""
    if Path(load_path).is_dir():
        return Path(load_path)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(load_path, local_files_only=offline))


def exported_model_dir(model_dir: Path, backend: str, precision: str, quantize: str | None) -> Path:
    """The cached conversion of `model_dir` for `backend`, made now if it is not there yet."""
    from .encoder_export import convert_onnx, convert_openvino, quantize_onnx_int8, read_layout
    from .quiet import quiet_loading

    key = export_key(model_dir, backend, precision, quantize)
    target = encoder_cache_dir() / f"{model_dir.name or 'model'}-{backend}-{key}"
    if (target / READY).exists():
        return target
    layout = read_layout(model_dir)
    tmp = target.parent / f".{target.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        CONVERSIONS["count"] += 1
        # the tracers' notes on Python control flow say nothing to a user, nor does transformers'
        # "`loss_type=None` was set in the config" log line while the model is traced
        with warnings.catch_warnings(), quiet_loading():
            warnings.simplefilter("ignore")
            if backend == "openvino":
                convert_openvino(layout, tmp / "model.xml")
            else:
                convert_onnx(layout, tmp / "model.onnx")
                if quantize == "int8":
                    quantize_onnx_int8(tmp / "model.onnx", tmp / "model_int8.onnx")
        info = {
            "source": str(model_dir),
            "backend": backend,
            "precision": precision,
            "quantize": quantize,
            "runtime": runtime_version(backend),
            "file": model_file(backend, quantize),
        }
        (tmp / READY).write_text(json.dumps(info) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same conversion first: use theirs
            if not (target / READY).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_model(
    load_path: str,
    backend: str,
    quantize: str | None,
    device: str,
    offline: bool,
    precision: str = "f32",
    threads: int | None = None,
) -> Any:
    """A SentenceTransformer for torch; for openvino/onnx a ConvertedEncoder over the cached conversion."""
    if backend == "torch":
        from sentence_transformers import SentenceTransformer

        from .quiet import quiet_loading

        with quiet_loading():  # no "Loading weights" bar: the library prints nothing unless asked
            return SentenceTransformer(load_path, device=device, local_files_only=offline)
    from .encoder_export import read_layout
    from .encoder_runtime import ConvertedEncoder, FastTokenizer, onnx_runner, openvino_runner

    require_backend(backend)
    model_dir = local_model_dir(load_path, offline)
    path = exported_model_dir(model_dir, backend, precision, quantize) / model_file(backend, quantize)
    n = threads or default_threads()
    run, names = openvino_runner(path, precision, n) if backend == "openvino" else onnx_runner(path, n)
    layout = read_layout(model_dir)
    tokenizer = FastTokenizer(layout, names)
    dim = run([tokenizer(["a"])])[0].shape[1]
    return ConvertedEncoder(tokenizer, run, int(dim))
