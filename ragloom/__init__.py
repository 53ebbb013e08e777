"""ragloom: turn any text corpus into retrieval-augmented instruction-tuning data.

The library (the `ragloom` command is a thin shell over it):

    import ragloom
    idx = ragloom.build_index("wiki.jsonl", "idx")             # -> ragloom.Index
    ds = ragloom.generate("run.yaml")                          # -> datasets.Dataset (resumable)
    ds = await ragloom.agenerate({...})                         # inside a running event loop
    ragloom.export("out", "messages", "train.jsonl"); ragloom.push("out", "you/name")
    ragloom.radit.lm_ft(...); ragloom.radit.lsr(...)

Errors are `ragloom.RagloomError` subclasses that also derive from the matching builtin. Names are
imported on first use, so `import ragloom` stays light.
"""

from __future__ import annotations

from pkgutil import extend_path
from typing import Any

# A source checkout has a `ragloom/` folder that can shadow the installed package when
# the checkout is the working directory; extend_path lets `ragloom.generator` and
# `ragloom.retrieval` still resolve from the installed copy.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"

_LAZY = {
    "generate": ("ragloom.generator.run", "generate"),
    "agenerate": ("ragloom.generator.run", "agenerate"),
    "RunConfig": ("ragloom.generator.config", "RunConfig"),
    "load_config": ("ragloom.generator.config", "load_config"),
    "Index": ("ragloom.retrieval", "Index"),
    "build_index": ("ragloom.api", "build_index"),
    "export": ("ragloom.api", "export"),
    "push": ("ragloom.api", "push"),
    "report": ("ragloom.generator.publish.report", "write_report"),
    "RagloomError": ("ragloom.errors", "RagloomError"),
}
__all__ = [*_LAZY, "__version__", "radit"]


def __getattr__(name: str) -> Any:
    if name == "radit":
        import importlib

        return importlib.import_module("ragloom.radit")
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ragloom' has no attribute {name!r}")
