"""`ragloom audit`'s dataset-level checks, the ones `generate` runs as curation (dedup.py,
decontam.py), on records that already exist: duplicate instructions in the input's order (each one
names the earlier record it repeats), and overlap with eval sets (`--decontaminate`, or the run's
`curation.decontaminate`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ragloom.retrieval import Encoder

from ragloom.errors import ConfigError

from ..curation import Decontaminator, DedupConfig, Deduper, EvalSet, default_cache_dir
from .reader import AuditRecord

CURATION_CODES = ("duplicate_instruction", "contaminated")


def parse_eval_set(spec: str) -> EvalSet:
    """`NAME=PATH[:field,field[:answer_field,...]]` -> an eval set: the first list (default: question)
    is matched against the records' questions, the second (default: none) against their answers."""
    name, sep, rest = spec.partition("=")
    if not sep or not name or not rest:
        raise ConfigError(f"--decontaminate {spec!r}: write NAME=PATH or NAME=PATH:field,field[:answer_field,...]")
    path, _, columns = rest.partition(":")
    fields, _, answers = columns.partition(":")
    try:
        return EvalSet(
            name=name,
            path=path,
            fields=[f for f in fields.split(",") if f] or ["question"],
            answer_fields=[f for f in answers.split(",") if f],
        )
    except ValidationError as e:
        msg = e.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"--decontaminate {spec!r}: {msg} (write NAME=PATH:question_fields:answer_fields)") from None


def curate(
    records: Sequence[AuditRecord],
    results: list[dict[str, Any]],
    encoder: Encoder,
    run_config: dict[str, Any],
    eval_sets: Sequence[EvalSet] = (),
) -> Counter[str]:
    """Add `duplicate_instruction` / `contaminated` issues (with what they match) to `results`, in
    place, and return the counts by check (`duplicate_exact`, ..., `contaminated_<eval set>`)."""
    cur = run_config.get("curation") or {}
    dcfg = DedupConfig.model_validate(cur.get("dedup") or {})
    sets = list(eval_sets) or [EvalSet.model_validate(s) for s in cur.get("decontaminate") or []]
    if not dcfg.enabled and not sets:
        return Counter()
    vectors = encoder.encode_queries([r.question for r in records]) if records else None
    counts: Counter[str] = Counter()
    deduper = Deduper(dcfg)
    decon = None
    if sets:
        decon = Decontaminator.open(
            sets,
            Path(cur["cache_dir"]).expanduser() if cur.get("cache_dir") else default_cache_dir(),
            ns=cur.get("decontam_ngrams") or (13, 8),
            min_words=cur.get("decontam_min_words", 4),
            embed=encoder.encode_queries,
            encoder=encoder.cache_tag,
        )
    for i, (rec, res) in enumerate(zip(records, results, strict=True)):
        v = vectors[i] if vectors is not None else None
        if decon is not None and (matches := decon.check(rec.question, rec.answer, v)):
            res["issues"].append("contaminated")
            res["scores"]["contamination"] = [m.as_dict() for m in matches]
            counts.update(f"contaminated_{m.eval_set}" for m in matches)
        dup = deduper.check(rec.question, v)
        if dup is None:
            deduper.add(str(i), rec.question, v)  # keyed by position: record ids may repeat
        else:
            first = int(dup.of)
            res["issues"].append("duplicate_instruction")
            res["scores"]["duplicate"] = {**dup.as_dict(), "of": records[first].id, "of_position": first}
            counts[f"duplicate_{dup.check}"] += 1
    return counts
