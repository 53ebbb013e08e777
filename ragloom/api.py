"""Library entry points that take plain arguments (paths, names) and return objects, for notebooks
and scripts; the CLI calls the same functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragloom.retrieval import CorpusSpec, EncoderSpec, Index
from ragloom.retrieval import build_index as _build_index


def build_index(
    corpus: str | Path | CorpusSpec,
    out: str | Path,
    *,
    format: str | None = None,
    encoder: str | None = None,
    limit: int | None = None,
    **options: Any,
) -> Index:
    """Build an index directory from a corpus (JSONL, TSV, Parquet, CSV, a `datasets` dir or hub
    name, or a folder of text files) and open it. `options` go to the builder (e.g. `index_type`)."""
    spec = corpus if isinstance(corpus, CorpusSpec) else CorpusSpec(str(corpus), format)
    _build_index(spec, out, encoder=EncoderSpec(encoder) if encoder else None, limit=limit, **options)
    return Index(out, encoder=encoder)


def export(
    out: str | Path,
    view: str | None = None,
    to: str | Path | None = None,
    *,
    card_to: str | Path | None = None,
    overwrite: bool = False,
) -> Path:
    """Write run `out`'s records in `view` (default: the run kind's first) to `to` (`.jsonl`, `.parquet`
    or a `datasets` directory; default `OUT/export/train.jsonl`) with a dataset card (`card_to`, default
    README.md beside it; a file there that ragloom did not write is replaced only with `overwrite`);
    return `to`."""
    from ragloom.generator.publish.export import export as _export

    target = Path(to) if to is not None else Path(out) / "export" / "train.jsonl"
    _export(Path(out), view, target, card_to=Path(card_to) if card_to is not None else None, overwrite=overwrite)
    return target


def push(out: str | Path, repo: str, *, private: bool = False, view: str | None = None) -> str:
    """Upload run `out`'s view (Parquet) and its card to the dataset repo `repo`; return its URL."""
    from ragloom.generator.publish.push import push as _push

    return _push(Path(out), repo, private=private, view=view)
