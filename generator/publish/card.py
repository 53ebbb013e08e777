"""The dataset card: Hub metadata (huggingface_hub's `DatasetCardData`), how the data was made,
statistics, and the config with nothing private in it.

The card travels with `push`: it never holds a server URL, `extra_body`/`extra_headers`, or an absolute
local path (a path is reduced to its last component). Licence, language and name come from the
config's `card:` section, since only the user knows what the corpus is; unset, the card says so.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCard, DatasetCardData

import ragloom

from ..paradigms import PARADIGMS
from ..runs import Example, LmFtRecord, LsrRecord, Record
from .citations import citation_lines

_PATH_KEYS = {"index", "output", "path", "source", "templates", "knowledge_cache", "dir", "pairs"}
_PRIVATE_KEYS = {"base_url", "extra_body", "extra_headers", "default_query", "api_key_env"}


def public_config(cfg: Any, key: str = "") -> Any:
    """`cfg` without server addresses or request extras, and with local paths cut to their name."""
    if isinstance(cfg, dict):
        return {k: public_config(v, k) for k, v in cfg.items() if k not in _PRIVATE_KEYS}
    if isinstance(cfg, list):
        return [public_config(v, key) for v in cfg]
    if key in _PATH_KEYS and isinstance(cfg, str) and ("/" in cfg or "\\" in cfg):
        return Path(cfg).name
    return cfg


def statistics(records: list[Example], failed: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)

    def mean(xs: list[float]) -> float:
        return round(sum(xs) / len(xs), 2) if xs else 0.0

    reasons = Counter(f["reason"] for f in failed)
    total = n + len(failed)
    return {
        "examples": n,
        "per_paradigm": dict(sorted(Counter(r.paradigm for r in records).items())),
        "mean_question_words": mean([len(r.instruction.split()) for r in records]),
        "mean_answer_words": mean([len(r.answer.split()) for r in records]),
        "mean_source_documents": mean([len(r.sources) for r in records]),
        "mean_documents": mean([len(r.documents) for r in records]),
        "distractor_rules": dict(
            sorted(Counter(d.rule for r in records for d in r.documents if d.role == "distractor").items())
        ),
        "failed_jobs": len(failed),
        "failure_reasons": {k: {"count": v, "rate": round(v / total, 4)} for k, v in reasons.most_common()},
    }


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def card_data(
    cfg: dict[str, Any], n: int, *, task_categories: list[str], tags: list[str], data_file: str
) -> DatasetCardData:
    card = cfg.get("card") or {}
    return DatasetCardData(
        license=card.get("license") or "unknown",
        language=card.get("language") or None,
        pretty_name=card.get("pretty_name"),
        size_categories=[_size_category(n)],
        task_categories=task_categories,
        tags=tags,
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": data_file}]}],
    )


CARD = "README.md"


def is_ragloom_card(path: Path) -> bool:
    """Whether `path` is a dataset card ragloom wrote (its YAML header is tagged `ragloom`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    m = re.match(r"---\n(.*?)\n---\n", text, re.S)
    try:
        meta = yaml.safe_load(m.group(1)) if m else None
    except yaml.YAMLError:
        return False
    return isinstance(meta, dict) and "ragloom" in (meta.get("tags") or [])


def write_card(
    directory: Path,
    records: list[Example],
    failed: list[dict[str, Any]],
    run: dict[str, Any],
    *,
    view: str,
    data_file: str,
    layouts: dict[str, Any] | None = None,
    name: str = CARD,
) -> Path:
    stats = statistics(records, failed)
    cfg = run.get("config", {})
    backend = cfg.get("backend", {})
    meta = card_data(
        cfg,
        stats["examples"],
        task_categories=["question-answering", "text-generation"],
        tags=["rag", "synthetic", "ragloom", "rag-instruct"],
        data_file=data_file,
    )
    sources = sorted({r.exemplar.source for r in records})
    licence = (cfg.get("card") or {}).get("license")
    lines = [
        f"# {(cfg.get('card') or {}).get('pretty_name') or 'RAG instruction data made with ragloom'}",
        "",
        f"{stats['examples']} retrieval-augmented instruction examples in the `{view}` view, generated with "
        f"[ragloom](https://pypi.org/project/ragloom/) {ragloom.__version__} following RAG-Instruct "
        "(arXiv 2501.00353): instruction simulation from exemplar instructions, source documents retrieved "
        "for each exemplar, and distractors sampled from retrieval ranks beyond the top 200.",
        "",
        ""
        if licence
        else "Licence: not stated. The documents are the corpus's text: set `card.license` to the "
        "corpus's licence before publishing.",
        "",
        "## How it was made",
        "",
        f"- Model: `{backend.get('model')}` via the `{backend.get('type')}` backend",
        f"- Sampling: `{json.dumps(cfg.get('sampling', {}))}`; seed {cfg.get('seed')}",
        f"- Exemplar sources: {', '.join(Path(s).name for s in sources) or 'none'}",
        f"- Documents per example: {cfg.get('distractors', {}).get('total_docs')}, distractor rank band "
        f"{cfg.get('distractors', {}).get('rank_band')}",
        f"- Index: encoder `{run.get('index', {}).get('encoder', {}).get('name')}`, "
        f"{run.get('index', {}).get('passages')} passages",
        "",
        "### Paradigms",
        "",
        *[f"- `{k}`: {v.definition}" for k, v in PARADIGMS.items()],
        "",
        "## Statistics",
        "",
        "| paradigm | examples |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in stats["per_paradigm"].items()],
        "",
        f"- mean question words: {stats['mean_question_words']}",
        f"- mean answer words: {stats['mean_answer_words']}",
        f"- mean source documents: {stats['mean_source_documents']}",
        f"- distractors by rule: {', '.join(f'{k} {v}' for k, v in stats['distractor_rules'].items()) or 'none'}",
        f"- jobs that ended without a record: {stats['failed_jobs']}",
        *[f"  - {k}: {v['count']} ({v['rate']:.1%})" for k, v in stats["failure_reasons"].items()],
        "",
        *quality_section(records, failed, run),
        *curation_section(directory, [r.to_dict() for r in records], failed, run, layouts)[0],
        *_stats_and_config({"statistics": stats}, cfg),
    ]
    return _write(directory / name, meta, lines)


def quality_section(records: list[Example], failed: list[dict[str, Any]], run: dict[str, Any]) -> list[str]:
    """The quality gate's account: paradigm conformance per paradigm (records kept against the
    paradigm_mismatch rejections of the last session, from run.json), rejections by reason, the
    distractor rules and the leaks screened out by check, truncations."""
    st = run.get("stats") or {}
    counts, rejected = st.get("counts") or {}, st.get("rejected") or {}
    out = ["## Quality", ""]
    checked = [r for r in records if r.quality is not None and "ok" in r.quality]  # the paradigm check's verdict
    if checked:
        out += [
            "| paradigm | records checked | conform | paradigm_mismatch rejections (last session) |",
            "| --- | --- | --- | --- |",
        ]
        for p in sorted(
            {r.paradigm for r in checked}
            | {k.removeprefix("paradigm_mismatch_") for k in counts if k.startswith("paradigm_mismatch_")}
        ):
            mine = [r for r in checked if r.paradigm == p]
            ok = sum(bool(r.quality and r.quality.get("ok")) for r in mine)
            out.append(f"| {p} | {len(mine)} | {ok} | {counts.get(f'paradigm_mismatch_{p}', 0)} |")
        out.append("")
    else:
        out += ["- paradigm conformance: not checked (`quality.conformance: false`)", ""]
    if rejected:
        out.append("- rejections, asked again (last session): " + ", ".join(f"{k} {v}" for k, v in rejected.items()))
    leaks = {k.removeprefix("distractor_leak_"): v for k, v in counts.items() if k.startswith("distractor_leak_")}
    rules = {k.removeprefix("distractor_rule_"): v for k, v in counts.items() if k.startswith("distractor_rule_")}
    out.append(
        "- distractor candidates screened out for carrying the answer: "
        + (", ".join(f"{k} {v}" for k, v in leaks.items()) or "none")
    )
    if rules:
        out.append("- distractors by rule (last session): " + ", ".join(f"{k} {v}" for k, v in rules.items()))
    nec = {k.removeprefix("necessity_"): v for k, v in counts.items() if k.startswith("necessity_")}
    if nec:
        out.append(
            "- source necessity (`quality.necessity`, LM-scored, last session): "
            + ", ".join(f"{k} {v}" for k, v in sorted(nec.items()))
        )
    out += relevance_lines(records, failed, counts)
    out += citation_lines([r.to_dict() for r in records], failed)
    truncated = rejected.get("truncated", 0) + sum(f.get("reason") == "truncated" for f in failed)
    out += [
        f"- replies cut off at max_tokens (`truncated`): {truncated}",
        f"- records with fewer than total_docs documents (`short_padded`): {counts.get('short_padded', 0)}",
        "",
    ]
    return out


def relevance_lines(records: list[Example], failed: list[dict[str, Any]], counts: dict[str, Any]) -> list[str]:
    """`quality.relevance`: records whose answer was checked against its question, the off_topic
    rejections by paradigm (last session, from run.json) and the jobs that failed as off_topic."""
    checked = sum(bool(r.quality and "relevance" in r.quality) for r in records)
    off = {k.removeprefix("off_topic_"): v for k, v in counts.items() if k.startswith("off_topic_")}
    if not checked and not off:
        return []
    by = ", ".join(f"{k} {v}" for k, v in sorted(off.items())) or "none"
    lost = sum(f.get("reason") == "off_topic" for f in failed)
    return [
        f"- answers that address the question (`quality.relevance`): {checked} records checked; "
        f"off_topic rejections (last session): {by}; jobs failed as off_topic: {lost}"
    ]


def _stats_and_config(stats: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    """The card's closing blocks: statistics as JSON, then the config (nothing private) as YAML."""
    json_block = ["```json", json.dumps(stats, indent=2), "```", ""]
    shown = yaml.safe_dump(public_config(cfg), sort_keys=False).strip()
    return [*json_block, "## Config", "", "```yaml", shown, "```", ""]


def _write(path: Path, meta: DatasetCardData, lines: list[str]) -> Path:
    card = DatasetCard(f"---\n{meta.to_yaml()}\n---\n\n" + "\n".join(lines))
    card.save(path)
    return path


def radit_statistics(records: list[Record], kind: str) -> dict[str, Any]:
    if kind == "radit-lm-ft":
        lm = [r for r in records if isinstance(r, LmFtRecord)]
        return {
            "examples": len(lm),
            "pairs": len({r.pair_id for r in lm}),
            "per_kind": dict(sorted(Counter(r.kind for r in lm).items())),
            "sources": dict(sorted(Counter(r.source for r in lm).items())),
        }
    lsr = [r for r in records if isinstance(r, LsrRecord) and r.ctxs]
    k = [len(r.ctxs) for r in lsr]
    agree = [max(r.ctxs, key=lambda c: c.lsr_score).rank == 0 for r in lsr]
    return {
        "queries": len(lsr),
        "chunks_per_query": round(sum(k) / len(k), 2) if k else 0,
        "mean_top_lsr_score": round(sum(max(c.lsr_score for c in r.ctxs) for r in lsr) / len(lsr), 4) if lsr else 0,
        "lm_prefers_retriever_top1": round(sum(agree) / len(agree), 4) if agree else 0,
        "sources": dict(sorted(Counter(r.source for r in lsr).items())),
    }


def write_radit_card(
    directory: Path, records: list[Record], run: dict[str, Any], *, view: str, data_file: str, name: str = CARD
) -> Path:
    kind = run.get("kind", "")
    cfg = run.get("config", {})
    stats = radit_statistics(records, kind)
    n = stats.get("examples", stats.get("queries", 0))
    lm_ft = kind == "radit-lm-ft"
    meta = card_data(
        cfg,
        n,
        task_categories=["text-generation"] if lm_ft else ["text-retrieval"],
        tags=["rag", "ragloom", "ra-dit", "lm-finetuning" if lm_ft else "retriever-training"],
        data_file=data_file,
    )
    index = cfg.get("index") or {}
    if lm_ft:
        what = (
            f"{n} retrieval-augmented fine-tuning examples (RA-DIT, Lin et al., ICLR 2024) in the `{view}` view: "
            "each (instruction x, output y) pair is written once per retrieved chunk c with the prompt "
            "`Background: {title} {text}\\n\\n{x}` and the completion y; train with the loss on the completion only."
        )
        how = [
            f"- Chunks per pair (k): {cfg.get('k')}" if not cfg.get("context_field") else "",
            f"- Context: the record's own field `{cfg['context_field']}`" if cfg.get("context_field") else "",
            f"- Plain (x, y) copy included: {bool(cfg.get('plain_copy'))}",
        ]
    else:
        what = (
            f"{n} queries with LM-supervised retrieval targets (RA-DIT): for each (x, y), the top-k chunks c, "
            "the language model's log p(y | c o x), and LSR(c) = softmax(log p / tau) over the k chunks. "
            "The records are in the `{query, answers, ctxs}` shape of Atlas- and DPR-style retriever trainers."
        )
        backend = cfg.get("backend", {})
        how = [
            f"- Chunks per query (k): {cfg.get('k')}; tau: {cfg.get('tau')}; "
            f"length-normalised: {bool(cfg.get('length_normalize'))}",
            f"- Scoring model: `{backend.get('model')}` via the `{backend.get('type')}` backend",
            f"- Queries from the corpus (x = {cfg.get('x_words')} words, y = the next {cfg.get('y_words')}): "
            f"{cfg.get('from_corpus')}"
            if cfg.get("from_corpus")
            else "",
        ]
    lines = [
        "# RA-DIT " + ("fine-tuning" if lm_ft else "retriever-training") + " data made with ragloom",
        "",
        what,
        "",
        "## How it was made",
        "",
        f"- ragloom {ragloom.__version__}",
        f"- Source datasets: {', '.join(Path(s).name for s in stats['sources']) or 'none'}",
        f"- Index: `{Path(str(index.get('dir'))).name}`, encoder `{index.get('encoder')}`, {index.get('passages')} passages"
        if index
        else "- Index: none",
        *[h for h in how if h],
        "",
        "## Statistics",
        "",
        *_stats_and_config(stats, cfg),
    ]
    return _write(directory / name, meta, lines)


# -- curation: figures, source slots, contamination, layouts (issue 14) ----------------------

CURATION_REASONS = ("duplicate_instruction", "contaminated", "answerable_closed_book", "source_unused")


def curation_section(
    directory: Path,
    records: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    run: dict[str, Any],
    layouts: dict[str, Any] | None = None,
) -> tuple[list[str], list[Path]]:
    """The card's curation part: figures (drawn into `directory/figures/`), the source-slot
    histogram, curation drops, the contamination table and the export layouts used.
    Returns the markdown lines and the figure files written."""
    from ..curation import contamination_table
    from ..runs import source_slots
    from .coverage import corpus_size, of_records
    from .figures import draw_figures

    figs = draw_figures(records, failed, run, directory)
    captions = {
        "lengths": "Question and answer length per paradigm",
        "distractor_ranks": "Distractor retrieval ranks and rules",
        "source_slots": "Source-document slots",
        "source_reuse": "Source reuse: passages by the number of records they are a source of",
        "rejections": "Rejections and curation drops",
    }
    lines = ["## Figures", ""]
    lines += [f"![{captions[k]}]({v})" for k, v in figs.items()] + [""]
    slots = source_slots(records)
    if slots:
        order = (run.get("config", {}).get("documents") or {}).get("order", "shuffle (before documents.order)")
        lines += [f"### Source slots (documents.order: {order})", "", "| slot | source documents |", "| --- | --- |"]
        lines += [f"| {s + 1} | {slots[s]} |" for s in range(max(slots) + 1)] + [""]
    cover = of_records(records, corpus_size(run))
    planned = run.get("sources") or {}
    strategy = ((run.get("config") or {}).get("sources") or {}).get("strategy", "exemplar")
    lines += ["### Coverage of the corpus", "", f"- sources.strategy: {strategy}"]
    lines += cover.lines()
    if planned.get("source_reuse_exceeded"):
        lines.append(
            f"- source slots planned past max_reuse (`source_reuse_exceeded`): {planned['source_reuse_exceeded']}"
        )
    lines.append("")
    drops = Counter(f["reason"] for f in failed if f["reason"] in CURATION_REASONS)
    lines += ["### Curation", ""]
    lines += [f"- {r}: {drops.get(r, 0)} jobs" for r in CURATION_REASONS]
    counts = (run.get("stats") or {}).get("counts") or {}
    caught = {k.removeprefix("duplicate_"): v for k, v in counts.items() if k.startswith("duplicate_")}
    if caught:
        dd = (run.get("config", {}).get("curation") or {}).get("dedup") or {}
        lines.append(
            "- duplicate questions asked again, by the check that caught them (last session): "
            + ", ".join(f"{k} {v}" for k, v in sorted(caught.items()))
            + f" (minhash >= {dd.get('minhash_threshold')}, cosine >= {dd.get('cosine_threshold')})"
        )
    lines.append("")
    table = contamination_table(failed)
    sets = [s.get("name") for s in (run.get("config", {}).get("curation") or {}).get("decontaminate", [])]
    if sets or table:
        methods = ("13gram", "8gram", "exact", "encoder")
        lines += ["### Contamination", "", "| eval set | " + " | ".join(methods) + " | matched eval ids |"]
        lines += ["| --- " * (len(methods) + 2) + "|"]
        for name in dict.fromkeys([*sets, *table]):
            row = table.get(name, {"methods": {}, "eval_ids": []})
            ids = ", ".join(f"`{i}`" for i in row["eval_ids"][:50]) + (" ..." if len(row["eval_ids"]) > 50 else "")
            lines += [f"| {name} | " + " | ".join(str(row["methods"].get(m, 0)) for m in methods) + f" | {ids} |"]
        lines += [""]
    if layouts:
        lines += [f"### Prompt layouts (`--layout {layouts['mode']}`, seed {layouts['seed']})", ""]
        if layouts["mode"] == "mixed":
            lines += [f"- plain instruction share asked: {layouts['plain_share']}"]
            lines += [f"- {k}: {v}" for k, v in layouts["used"].items()]
        else:
            lines += ["- every record: `### Paragraph:` / `### Instruction:`, `[i]` numbering, titles on"]
        lines += [""]
    return lines, [directory / p for p in figs.values()]
