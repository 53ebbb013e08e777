"""RA-DIT data as a library: `lm_ft` (retrieval-augmented fine-tuning examples) and `lsr`
(LM-supervised retriever targets). Each writes a resumable run directory, exports `OUT/train.jsonl`
with a card, and returns the run's records as a `datasets.Dataset`.

    ds = ragloom.radit.lm_ft([{"instruction": "...", "output": "..."}], index="idx", out="ft", k=3)
    ds = ragloom.radit.lsr("pairs.jsonl", index="idx", out="lsr", k=10, tau=0.01,
                           backend={"type": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "m"})
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragloom.errors import ConfigError

if TYPE_CHECKING:
    import datasets

    from ragloom.generator.types import InstructionPair
    from ragloom.retrieval import Index


def _pairs(
    pairs: Any, *, fmt: str | None, instruction_field: str, output_field: str, context_field: str | None
) -> tuple[list[InstructionPair], dict[str, Any]]:
    from ragloom.generator.config import ExemplarSource
    from ragloom.generator.exemplars import load_pairs
    from ragloom.generator.types import InstructionPair

    if isinstance(pairs, (str, Path)):
        src = ExemplarSource(source=str(pairs), format=fmt, text_field=instruction_field)  # type: ignore[arg-type]
        loaded = load_pairs(src, output_field, context_field)
        return loaded, {"pairs": str(pairs), "format": fmt, "count": len(loaded)}
    out: list[InstructionPair] = []
    for i, p in enumerate(pairs):
        if isinstance(p, InstructionPair):
            out.append(p)
            continue
        try:
            x, y = str(p[instruction_field]).strip(), str(p[output_field]).strip()
        except (KeyError, TypeError):
            raise ConfigError(f"pairs[{i}]: needs the keys {instruction_field!r} and {output_field!r}") from None
        ctx = str(p[context_field]) if context_field else None
        out.append(InstructionPair(f"pairs:{i}", x, y, "pairs", ctx))
    if not out:
        raise ConfigError("pairs: no records")
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps([[p.instruction, p.output, p.context] for p in out]).encode()).hexdigest()[:16]
    return out, {"pairs": f"in-memory:{digest}", "count": len(out)}


def _index(index: str | Path | Index) -> Index:
    from ragloom.retrieval import Index

    return index if isinstance(index, Index) else Index(index)


def lm_ft(
    pairs: Any,
    *,
    out: str | Path,
    index: str | Path | Index | None = None,
    k: int = 3,
    plain_copy: bool = False,
    context_field: str | None = None,
    format: str | None = None,
    instruction_field: str = "instruction",
    output_field: str = "output",
    overwrite: bool = False,
    progress: bool = True,
) -> datasets.Dataset:
    """k `{prompt: "Background: chunk\\n\\nx", completion: y}` examples per pair (or one with the pair's
    own `context_field`); `pairs`: a file / `datasets` dir / hub name, or a list of dicts."""
    from ragloom.generator.radit import LM_FT, identity_of, run_lm_ft

    if index is None and context_field is None:
        raise ConfigError("radit lm_ft: give index= to retrieve chunks, or context_field=")
    if k <= 0:
        raise ConfigError(f"k={k}: must be > 0")
    loaded, what = _pairs(
        pairs, fmt=format, instruction_field=instruction_field, output_field=output_field, context_field=context_field
    )
    idx = None if context_field else _index(index)  # type: ignore[arg-type]
    ident = identity_of(
        LM_FT, idx, loaded, what, k=None if context_field else k, context_field=context_field, plain_copy=plain_copy
    )
    result = run_lm_ft(
        loaded, idx, Path(out), k=k, plain_copy=plain_copy, identity=ident, overwrite=overwrite, quiet=not progress
    )
    return _dataset(result)


def lsr(
    pairs: Any,
    *,
    out: str | Path,
    index: str | Path | Index,
    backend: dict[str, Any] | Any,
    k: int = 10,
    tau: float = 0.01,
    length_normalize: bool = False,
    format: str | None = None,
    instruction_field: str = "instruction",
    output_field: str = "output",
    overwrite: bool = False,
    progress: bool = True,
) -> datasets.Dataset:
    """For each (x, y): the top-k chunks, log p_LM(y | c o x) and LSR = softmax(score / tau).
    `backend`: a `backend:` config section as a dict (or its model)."""
    from pydantic import ValidationError

    from ragloom.generator.backends import make_backend
    from ragloom.generator.config import BackendOnly, describe_error
    from ragloom.generator.radit import LSR, identity_of, run_lsr

    try:
        cfg = BackendOnly.model_validate({"backend": backend}).backend if isinstance(backend, dict) else backend
    except ValidationError as e:
        raise ConfigError(describe_error(e, "backend")) from None
    loaded, what = _pairs(
        pairs, fmt=format, instruction_field=instruction_field, output_field=output_field, context_field=None
    )
    idx = _index(index)
    scorer = make_backend(cfg)
    ident = identity_of(
        LSR,
        idx,
        loaded,
        what,
        k=k,
        tau=tau,
        length_normalize=length_normalize,
        backend={"type": cfg.type, "model": scorer.model},
    )
    result = run_lsr(
        loaded,
        idx,
        scorer,
        Path(out),
        k=k,
        tau=tau,
        length_normalize=length_normalize,
        identity=ident,
        overwrite=overwrite,
        quiet=not progress,
    )
    return _dataset(result)


def _dataset(result: Any) -> datasets.Dataset:
    import datasets

    from ragloom.generator.publish.export import load_run

    if result.interrupted:
        raise KeyboardInterrupt(f"interrupted; finished records are in {result.out}")
    records, _, _ = load_run(result.out)
    return datasets.Dataset.from_list(records)
