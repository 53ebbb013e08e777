"""`ragloom audit IN`: the library call `audit` and the command around it (progress, table, exit code)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from ragloom.retrieval import DEFAULT_ENCODER, Encoder, EncoderSpec, PassageStore, read_manifest

from ragloom.errors import ConfigError, OutputError

from ..config import Distractors, Quality, describe_error
from ..publish import coverage
from ..quality import REASONS, ConformanceChecker, SpanFrequency, registered_codes
from .auditor import AUDIT_CODES, Auditor, AuditSummary, answer_style, audit_checks
from .curation import CURATION_CODES, curate, parse_eval_set
from .reader import AuditRecord, read_input


def known_codes() -> tuple[str, ...]:
    """The codes `--fail-on` accepts: validation, audit's own, every registered check's, curation."""
    return tuple(dict.fromkeys((*REASONS, *AUDIT_CODES, *registered_codes(), *CURATION_CODES)))


def encoder_spec(run: dict[str, Any], index: str | None, encoder: str | None) -> EncoderSpec:
    """--index's encoder, else --encoder, else the run's index encoder, else the default (as in generate)."""
    if index and encoder:
        raise ConfigError("audit: give --index DIR or --encoder NAME, not both")
    if encoder:
        return EncoderSpec(encoder)
    enc = read_manifest(index)["encoder"] if index else (run.get("index") or {}).get("encoder")
    if not enc:
        return EncoderSpec(DEFAULT_ENCODER)
    # the encoder numerics the run queried with (its config's), else the index's
    cfg = {} if index else {k: v for k, v in (run.get("config") or {}).items() if v is not None}
    return EncoderSpec(
        enc["name"],
        enc.get("query_prefix", ""),
        enc.get("passage_prefix", ""),
        enc.get("normalize", True),
        backend=cfg.get("encoder_backend", enc.get("backend", "torch")),
        quantize=cfg.get("quantize", enc.get("quantize")),
        precision=cfg.get("precision", enc.get("precision", "f32")),
    )


def span_frequency(records: Sequence[AuditRecord], run: dict[str, Any], index: str | None) -> SpanFrequency | None:
    """How common each key span is, for the leak screen: in --index's passages, else the run's index
    (when it is still there), else the audited records' own distinct documents when there are at
    least 1,000 of them; else None (every key span then counts as specific)."""
    where = index or ((run.get("config") or {}).get("index"))
    if where and (Path(where) / "manifest.json").exists():
        return SpanFrequency.for_index_dir(where)
    docs = {(d.title, d.text) for r in records for d in r.documents}
    if len(docs) < 1000:
        return None
    return SpanFrequency.from_texts(f"{title}\n{text}" for title, text in sorted(docs))


def audit(
    path: str | Path,
    *,
    index: str | None = None,
    encoder: str | None = None,
    decontaminate: Sequence[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[dict[str, Any]], AuditSummary]:
    """Audit a run directory or dataset file: one result per record, and the summary.
    `decontaminate`: eval sets as `NAME=PATH[:field,...[:answer_field,...]]` (default: the run's
    `curation.decontaminate`). `progress(done, total)` is called after each batch."""
    eval_sets = [parse_eval_set(s) for s in decontaminate]
    records, run = read_input(path)
    cfg = run.get("config") or {}
    quality, dist = run_sections(cfg, path)
    enc = Encoder(encoder_spec(run, index, encoder))
    checker = ConformanceChecker(enc, quality.thresholds())
    auditor = Auditor(
        checker,
        leak_similarity=quality.leak_similarity,
        leak_gate_words=quality.leak_gate_words,
        band_start=dist.rank_band[0],
        total_docs=dist.total_docs if "distractors" in cfg else None,
        checks=audit_checks(quality, checker, answer_style(records)),
        frequency=span_frequency(records, run, index),
        leak_rule=quality.leak_rule(),
    )
    summary = AuditSummary()
    results = []
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, len(records))

    checked = list(auditor.run(records, step))
    results = [result for _, result in checked]
    # the dataset-level checks, as `generate` curates: duplicates in the input's order, eval overlap
    summary.curation.update(curate([rec for rec, _ in checked], results, enc, cfg, eval_sets))
    for rec, result in checked:
        summary.add(rec, result)
    if index:
        summary.coverage = index_coverage(records, index)
    return results, summary


def run_sections(cfg: dict[str, Any], path: str | Path) -> tuple[Quality, Distractors]:
    """The run's `quality` and `distractors` sections read through the config models (their defaults
    where a dataset carries no run.json), so audit judges with the settings `generate` used."""
    try:
        return Quality.model_validate(cfg.get("quality") or {}), Distractors.model_validate(
            cfg.get("distractors") or {}
        )
    except ValidationError as e:
        raise ConfigError(describe_error(e, f"{path}: run.json config")) from None


def index_coverage(records: Sequence[AuditRecord], index: str) -> dict[str, Any]:
    """Coverage of the index's corpus by the records' source documents (generator/publish/coverage.py):
    a source is a document with role `source` whose id is a passage id of the index."""
    store = PassageStore(index)
    ids = [[d.id for d in r.with_role("source")] for r in records]
    flat = list(dict.fromkeys(i for row in ids for i in row))
    known = {i for i, row in zip(flat, store.rows_of(flat), strict=True) if row >= 0}
    cover = coverage([[i for i in row if i in known] for row in ids], len(store))
    return {
        **cover.as_dict(),
        "source_ids_not_in_index": len(flat) - len(known),
        "records_without_roles": sum(not r.has_roles for r in records),
    }


def parse_fail_on(value: str | None) -> set[str]:
    codes = {c.strip() for c in (value or "").split(",") if c.strip()}
    known = known_codes()
    unknown = sorted(codes - set(known))
    if unknown:
        raise ConfigError(f"--fail-on {unknown[0]!r}: unknown code; use one of {', '.join(known)}")
    return codes


def print_table(summary: AuditSummary, file: IO[str]) -> None:
    """Two tables: records per paradigm (clean and with each issue), then every issue's count."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file, width=None if file.isatty() else 120)
    t = Table(title=f"ragloom audit: {summary.records} records")
    for col in ("paradigm", "records", "clean", "issues"):
        t.add_column(col, justify="left" if col in ("paradigm", "issues") else "right")
    for name, row in sorted(summary.by_paradigm.items()):
        issues = ", ".join(f"{c} {n}" for c, n in sorted(row.items()) if c not in ("records", "clean"))
        t.add_row(name, str(row["records"]), str(row["clean"]), issues or "-")
    console.print(t)
    if summary.issues:
        it = Table("issue", "records")
        for code, n in summary.issues.most_common():
            it.add_row(code, str(n))
        console.print(it)
    if summary.leaks:
        console.print("distractor leaks by check: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.leaks.items())))
    if summary.citations:
        c = summary.citation_summary()
        console.print(
            f"citations: precision {c['precision']} ({c.get('supported', 0)} of {c.get('citations', 0)} supported), "
            f"recall {c['recall']} ({c.get('cited_stated', 0)} of {c.get('stated_sentences', 0)} source-stated "
            f"sentences cited), quotes in a source {c['quotes_verbatim']} ({c.get('quotes_found', 0)} of {c.get('quotes', 0)})"
        )
    if summary.curation:
        console.print("curation by check: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.curation.items())))
    if summary.coverage:
        c = summary.coverage
        share = "unknown" if c["corpus_share"] is None else f"{c['corpus_share']:.1%}"
        console.print(
            f"coverage of the index: {c['distinct_sources']} distinct source passages ({share} of "
            f"{c['corpus_passages']}), reuse max {c['max_reuse']} mean {c['mean_reuse']}, "
            f"histogram {c['reuse_histogram']}; source ids not in the index: {c['source_ids_not_in_index']}"
        )
    if summary.skipped:
        skipped = ", ".join(f"{k} x{v}" for k, v in sorted(summary.skipped.items()))
        console.print(f"skipped (the records lack what the check needs): {skipped}")


def run_audit(
    path: str,
    *,
    out: str | None,
    as_json: bool,
    fail_on: str | None,
    index: str | None,
    encoder: str | None,
    decontaminate: Sequence[str] = (),
) -> int:
    """Exit 0 whatever the issues, 1 when a --fail-on code was found; user errors raise (exit 2)."""
    from rich.console import Console
    from rich.progress import Progress

    codes = parse_fail_on(fail_on)
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("auditing", total=None)
        results, summary = audit(
            path,
            index=index,
            encoder=encoder,
            decontaminate=decontaminate,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if out:
        try:
            Path(out).write_text(lines, encoding="utf-8")
        except OSError as e:
            raise OutputError(f"cannot write {out}: {e.strerror or e}") from None
    elif not as_json:
        sys.stdout.write(lines)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print_table(summary, sys.stderr if not out else sys.stdout)
    return 1 if codes & set(summary.issues) else 0
