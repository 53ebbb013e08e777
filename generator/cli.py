"""`ragloom init | generate | audit | export | report | push | radit`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ragloom.errors import ConfigError, OutputError

from .backends import BACKENDS
from .publish import ALL_VIEWS

EXAMPLE_CONFIG = """\
# ragloom run config. Every key is optional unless marked required.
index: idx                      # required: a directory made by `ragloom index build`
# corpus: {path: data/wiki.jsonl, limit: 2000}   # build `index` from this corpus if it is missing
exemplars:                      # instructions the LLM imitates (instruction simulation)
  - source: builtin             # 152 built-in knowledge-intensive instructions, 10 task types
  # - {source: my.jsonl, format: json, text_field: question, weight: 2}   # formats: json, alpaca, sharegpt, messages, hf
# exemplar_filters: {knowledge_filter: true}   # keep only exemplars the LLM says retrieval would help (cached)
paradigms: {paradigms}
count: 25                       # required: examples to plan
seed: 0
backend:
  type: openai                  # openai (any OpenAI-compatible server) or vllm (in-process)
  base_url: http://127.0.0.1:8080/v1
  model: gemma
  api_key_env: null             # name of the environment variable holding the key, e.g. OPENAI_API_KEY
  concurrency: 4
  structured_output: auto       # auto, json_schema, json_object, off
sampling: {temperature: 0.7, top_p: 1.0, max_tokens: 1024}
language: English               # the language questions and answers are written in
distractors: {total_docs: 10, rank_band: [200, 250], max_rank: 1000}   # a short band widens deeper, to max_rank
validation: {attempts: 3, min_question_words: 4, copy_ngram: 12}
quality: {conformance: true, leak_screen: true}   # judge: true adds an LLM judge; combine: both | judge | encoder
documents: {order: balanced}    # balanced, shuffle, sources_first or sources_last
curation:                       # duplicates across the run are re-asked; eval-set overlaps fail as `contaminated`
  dedup: {minhash_threshold: 0.85, cosine_threshold: 0.93}
  # decontaminate: [{name: popqa, path: popqa_test.jsonl, fields: [question], answer_fields: [possible_answers], cosine: true}]   # or hf: DATASET, split: test
pricing: {prompt_per_million: 0.0, completion_per_million: 0.0}
output: out
# templates: my_prompts         # a directory with your own <paradigm>.j2 templates
"""


def example_config() -> str:
    """`ragloom init`'s config: every registered paradigm at weight 1."""
    from .paradigms import PARADIGMS

    mix = ", ".join(f"{name}: 1" for name in PARADIGMS)
    return EXAMPLE_CONFIG.replace("{paradigms}", "{" + mix + "}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    i = sub.add_parser("init", help="write a commented example config")
    i.add_argument("path", nargs="?", default="ragloom.yaml")
    i.set_defaults(func=_init)

    g = sub.add_parser("generate", help="plan and generate examples (resumable)")
    g.add_argument("--config", required=True)
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    g.add_argument("--dry-run", action="store_true", help="print the plan and a token/cost estimate; call no LLM")
    g.add_argument("--overwrite", action="store_true", help="discard a different run in the output directory")
    g.add_argument("--retry-failed", action="store_true", help="ask again for jobs that failed validation")
    g.add_argument("--quiet", action="store_true")
    g.add_argument("--no-report", action="store_true", help="do not write OUT/report.html at the end")
    g.add_argument(
        "--ray", nargs="?", const="", metavar="ADDRESS", help="run in shards on a Ray cluster (ragloom[ray])"
    )
    g.add_argument("--workers", type=int, metavar="N", help="--ray: worker actors (default: execution.workers)")
    g.set_defaults(func=_generate)

    e = sub.add_parser("export", help="write a view of a run's records with a dataset card")
    e.add_argument("out", help="the run's output directory")
    e.add_argument(
        "--format",
        choices=ALL_VIEWS,
        help="default: messages (generate), prompt-completion (radit lm-ft), lsr (radit lsr)",
    )
    e.add_argument("--to", required=True, help="PATH.jsonl, PATH.parquet, or a directory for `datasets`")
    e.add_argument(
        "--layout",
        choices=["fixed", "mixed"],
        default="fixed",
        help="mixed: a seeded draw per record of prompt layout, numbering and titles (messages, sharegpt)",
    )
    e.add_argument("--seed", type=int, help="seed of the mixed layouts (default: the run's seed)")
    e.add_argument("--plain-share", type=float, default=0.0, help="mixed: share of plain examples without documents")
    e.add_argument("--card-to", metavar="PATH", help="write the dataset card here (default: README.md beside --to)")
    e.add_argument("--overwrite", action="store_true", help="replace a card file that ragloom did not write")
    e.add_argument(
        "--strip-citations", action="store_true", help="answers as plain text: no [n] citations, no RAFT quote markers"
    )
    e.set_defaults(func=_export)

    rp = sub.add_parser("report", help="write one self-contained HTML page to look at a run (opens offline)")
    rp.add_argument("out", help="the run's output directory (generate, radit lm-ft or radit lsr)")
    rp.add_argument("--to", help="where to write the page (default: OUT/report.html)")
    rp.set_defaults(func=_report)

    p = sub.add_parser("push", help="upload a run's export and dataset card to the Hugging Face Hub")
    p.add_argument("out", help="the run's output directory")
    p.add_argument("--repo", required=True, help="USER/NAME of the dataset repo (created if missing)")
    p.add_argument("--private", action="store_true")
    p.add_argument("--format", choices=ALL_VIEWS)
    p.set_defaults(func=_push)

    a = sub.add_parser("audit", help="check any RAG instruction dataset: paradigm conformance, leaks, validation")
    a.add_argument("input", metavar="IN", help="a run directory, a .jsonl/.parquet file or a datasets directory")
    a.add_argument("--out", metavar="FILE", help="write one JSON line per record here (default: stdout)")
    a.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    a.add_argument("--fail-on", metavar="CODE,...", help="exit 1 when any of these issue codes is found")
    a.add_argument(
        "--decontaminate",
        metavar="NAME=PATH[:FIELDS[:ANSWER_FIELDS]]",
        action="append",
        default=[],
        help="an eval set to check for overlap: FIELDS (default question) against the records' questions, "
        "ANSWER_FIELDS against their answers (repeatable; default: the run's curation.decontaminate)",
    )
    enc = a.add_mutually_exclusive_group()
    enc.add_argument("--index", metavar="DIR", help="use this index's encoder")
    enc.add_argument("--encoder", metavar="NAME", help="use this sentence-transformers encoder")
    a.set_defaults(func=_audit)

    r = sub.add_parser("radit", help="RA-DIT data: retrieval-augmented LM fine-tuning and LM-supervised retriever data")
    rsub = r.add_subparsers(dest="radit_command", required=True)
    lm = rsub.add_parser("lm-ft", help="one `Background: chunk` example per retrieved chunk")
    _pair_args(lm)
    lm.add_argument("--index", help="index directory (not needed with --context-field)")
    lm.add_argument("--k", type=int, default=3, help="chunks per pair: k examples each (default 3)")
    lm.add_argument("--no-retrieval-copy", action="store_true", help="also write the plain (x, y) example")
    lm.add_argument("--context-field", help="use this field of each record as the Background instead of retrieval")
    lm.add_argument("--export-format", choices=["prompt-completion", "messages"], default="prompt-completion")
    lm.set_defaults(func=_radit_lm_ft)

    ls = rsub.add_parser("lsr", help="LM-supervised retrieval scores over the top-k chunks of each query")
    _pair_args(ls, required=False)
    ls.add_argument("--from-corpus", type=int, metavar="N", help="N self-supervised pairs cut from corpus chunks")
    ls.add_argument("--x-words", type=int, default=32, help="corpus mode: words of the chunk that form x")
    ls.add_argument("--y-words", type=int, default=32, help="corpus mode: the following words that form y")
    ls.add_argument("--seed", type=int, default=0, help="corpus mode: which chunks are sampled")
    ls.add_argument("--index", required=True)
    ls.add_argument("--k", type=int, default=10)
    ls.add_argument("--tau", type=float, default=0.01)
    ls.add_argument("--length-normalize", action="store_true", help="score by mean token log-prob instead of sum")
    ls.add_argument("--config", help="take the backend from this run config's `backend:` section")
    ls.add_argument(
        "--backend",
        choices=list(BACKENDS),
        help="or give the backend with flags (llama_cpp: a local GGUF model in process, fast on CPU)",
    )
    ls.add_argument("--base-url")
    ls.add_argument("--model", help="openai/vllm: the model name; llama_cpp: the name records show")
    ls.add_argument("--model-path", help="llama_cpp: the GGUF model file")
    ls.add_argument("--n-ctx", type=int, default=2048, help="llama_cpp: context in tokens")
    ls.add_argument("--api-key-env", help="environment variable holding the API key")
    ls.add_argument("--concurrency", type=int, default=8, help="openai: requests in flight")
    ls.add_argument(
        "--timeout",
        type=float,
        help="openai: seconds per request (default 120); a server that scores one request at a time "
        "needs concurrency x its time per request",
    )
    ls.set_defaults(func=_radit_lsr)


def _report(args: argparse.Namespace) -> int:
    from .publish import write_report

    path = write_report(Path(args.out), Path(args.to) if args.to else None)
    print(f"wrote {path}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from .publish import push

    url = push(Path(args.out), args.repo, private=args.private, view=args.format)
    print(f"pushed to {url}")
    return 0


def _pair_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--pairs", required=required, help="(instruction, output) pairs: a file, `datasets` dir or hub name")
    p.add_argument("--format", choices=["json", "jsonl", "alpaca", "sharegpt", "messages", "hf"])
    p.add_argument("--instruction-field", default="instruction")
    p.add_argument("--output-field", default="output")
    p.add_argument("--split", default="train")
    p.add_argument("--limit", type=int, help="read at most N pairs")
    p.add_argument("--out", required=True, help="output directory (resumable)")
    p.add_argument("--overwrite", action="store_true", help="discard a different run in the output directory")
    p.add_argument("--quiet", action="store_true")


def _init(args: argparse.Namespace) -> int:
    p = Path(args.path)
    if p.exists():
        raise OutputError(f"{p} already exists; choose another path")
    p.write_text(example_config(), encoding="utf-8")
    print(f"wrote {p}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    import json

    from .config import load_config
    from .run import dry_run, execute

    cfg = load_config(args.config, args.set)
    if args.ray is not None or args.workers is not None or cfg.execution.engine == "ray":
        from .ray_exec import run_ray_generate, with_flags

        cfg = with_flags(cfg, args.ray, args.workers)
        flags = {"dry_run": args.dry_run, "overwrite": args.overwrite, "retry_failed": args.retry_failed}
        return run_ray_generate(
            cfg, quiet=args.quiet, report=not args.no_report, summary_console=_summary_console(), **flags
        )
    if args.dry_run:
        print(json.dumps(dry_run(cfg), indent=2))
        return 0
    result = execute(
        cfg,
        progress=not args.quiet,
        overwrite=args.overwrite,
        retry_failed=args.retry_failed,
        report=not args.no_report,
        summary_console=_summary_console(),
    )
    return exit_code(result.interrupted, result.stats.outcome())


def exit_code(interrupted: bool, outcome: str) -> int:
    """0: every job finished (accepted, or failed with its reason: see the summary and failed.jsonl);
    3: jobs left unfinished by server errors (rerun to resume); 130: interrupted."""
    if interrupted:
        return 130
    return 3 if outcome == "unfinished" else 0


def _audit(args: argparse.Namespace) -> int:
    from .audit import run_audit

    return run_audit(
        args.input,
        out=args.out,
        as_json=args.json,
        fail_on=args.fail_on,
        index=args.index,
        encoder=args.encoder,
        decontaminate=args.decontaminate,
    )


def _export(args: argparse.Namespace) -> int:
    from .publish import export

    card, view, _ = export(
        Path(args.out),
        args.format,
        Path(args.to),
        layout=args.layout,
        seed=args.seed,
        plain_share=args.plain_share,
        card_to=Path(args.card_to) if args.card_to else None,
        overwrite=args.overwrite,
        strip_citations=args.strip_citations,
    )
    print(f"wrote {args.to} ({view}) and {card}")
    return 0


def _load_pairs(args: argparse.Namespace, context_field: str | None = None) -> tuple[list, dict]:
    from .config import ExemplarSource
    from .exemplars import load_pairs

    if args.limit is not None and args.limit <= 0:
        raise ConfigError(f"--limit {args.limit}: must be > 0")
    src = ExemplarSource(
        source=args.pairs, format=args.format, text_field=args.instruction_field, split=args.split, limit=args.limit
    )
    pairs = load_pairs(src, args.output_field, context_field)
    what = {
        "pairs": args.pairs,
        "format": args.format,
        "instruction_field": args.instruction_field,
        "output_field": args.output_field,
        "limit": args.limit,
        "count": len(pairs),
    }
    return pairs, what


def _radit_lm_ft(args: argparse.Namespace) -> int:
    from ragloom.retrieval import Index

    from .radit import LM_FT, identity_of, run_lm_ft

    if args.k <= 0:
        raise ConfigError(f"--k {args.k}: must be > 0")
    if not args.context_field and not args.index:
        raise ConfigError("radit lm-ft: give --index DIR to retrieve chunks, or --context-field FIELD")
    pairs, what = _load_pairs(args, args.context_field)
    index = None if args.context_field else Index(args.index)
    ident = identity_of(
        LM_FT,
        index,
        pairs,
        what,
        k=None if args.context_field else args.k,
        context_field=args.context_field,
        plain_copy=args.no_retrieval_copy,
    )
    result = run_lm_ft(
        pairs,
        index,
        Path(args.out),
        k=args.k,
        plain_copy=args.no_retrieval_copy,
        identity=ident,
        overwrite=args.overwrite,
        quiet=args.quiet,
        export_view=args.export_format,
        summary_console=_summary_console(),
    )
    return exit_code(result.interrupted, result.stats.outcome())


def _lsr_backend(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from .config import BackendOnly, describe_error, load_yaml

    if args.config and args.backend:
        raise ConfigError("radit lsr: give the backend either with --config or with --backend, not both")
    if args.config:
        data = load_yaml(args.config)
        if "backend" not in data:
            raise ConfigError(f"{args.config}: no `backend:` section")
        raw = data["backend"]
        source = args.config
    elif args.backend == "llama_cpp":
        if not args.model_path:
            raise ConfigError("radit lsr: --backend llama_cpp needs --model-path FILE.gguf")
        raw = {"type": "llama_cpp", "model_path": args.model_path, "model": args.model, "n_ctx": args.n_ctx}
        source = "flags"
    elif args.backend:
        if not args.model:
            raise ConfigError("radit lsr: --backend needs --model")
        raw = {"type": args.backend, "model": args.model}
        if args.backend == "openai":
            raw.update(base_url=args.base_url, api_key_env=args.api_key_env, concurrency=args.concurrency)
            if args.timeout is not None:
                raw["timeout"] = args.timeout
        source = "flags"
    else:
        raise ConfigError(
            "radit lsr: give the backend with --config run.yaml, --backend openai --base-url URL --model NAME, "
            "or --backend llama_cpp --model-path FILE.gguf"
        )
    try:
        return BackendOnly.model_validate({"backend": raw}).backend
    except ValidationError as e:
        raise ConfigError(describe_error(e, source)) from None


def _radit_lsr(args: argparse.Namespace) -> int:
    from ragloom.retrieval import Index

    from .backends import make_backend
    from .radit import LSR, corpus_pairs, identity_of, run_lsr

    if bool(args.pairs) == bool(args.from_corpus):
        raise ConfigError("radit lsr: give exactly one of --pairs SRC or --from-corpus N")
    if args.from_corpus is not None and (args.from_corpus <= 0 or args.x_words <= 0 or args.y_words <= 0):
        raise ConfigError("radit lsr: --from-corpus, --x-words and --y-words must be > 0")
    backend_cfg = _lsr_backend(args)
    index = Index(args.index)
    if args.from_corpus:
        pairs, _ = corpus_pairs(index, args.from_corpus, args.seed, args.x_words, args.y_words)
        what = {"from_corpus": args.from_corpus, "x_words": args.x_words, "y_words": args.y_words, "seed": args.seed}
    else:
        pairs, what = _load_pairs(args)
    backend = make_backend(backend_cfg)
    backend_id = {"type": backend_cfg.type, "model": backend.model}
    ident = identity_of(
        LSR, index, pairs, what, k=args.k, tau=args.tau, length_normalize=args.length_normalize, backend=backend_id
    )
    result = run_lsr(
        pairs,
        index,
        backend,
        Path(args.out),
        k=args.k,
        tau=args.tau,
        length_normalize=args.length_normalize,
        identity=ident,
        overwrite=args.overwrite,
        quiet=args.quiet,
        summary_console=_summary_console(),
    )
    return exit_code(result.interrupted, result.stats.outcome())


def _summary_console():  # type: ignore[no-untyped-def]
    from rich.console import Console

    return Console(stderr=True, highlight=False)
