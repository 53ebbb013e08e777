"""`ragloom init | generate | export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ragloom.errors import OutputError

EXAMPLE_CONFIG = """\
# ragloom run config. Every key is optional unless marked required.
index: idx                      # required: a directory made by `ragloom index build`
# corpus: {path: data/wiki.jsonl, limit: 2000}   # build `index` from this corpus if it is missing
exemplars:                      # instructions the LLM imitates (instruction simulation)
  - source: builtin             # 152 built-in knowledge-intensive instructions, 10 task types
  # - {source: my.jsonl, format: json, text_field: question, weight: 2}   # formats: json, alpaca, sharegpt, messages, hf
paradigms: {useless_doc: 1, single_doc_support: 1, multi_doc_support: 1, single_doc_answer: 1, multi_doc_answer: 1}
count: 25                       # required: examples to plan
seed: 0
backend:
  type: openai                  # openai (any OpenAI-compatible server) or vllm (in-process)
  base_url: http://127.0.0.1:8080/v1
  model: gemma
  api_key_env: null             # name of the environment variable holding the key, e.g. OPENAI_API_KEY
  concurrency: 4
  structured_output: auto       # auto, json_schema, json_object, off
sampling: {temperature: 0.7, top_p: 1.0, max_tokens: 512}
distractors: {total_docs: 10, rank_band: [200, 250]}
validation: {attempts: 3, min_question_words: 4, copy_ngram: 12}
pricing: {prompt_per_million: 0.0, completion_per_million: 0.0}
output: out
# templates: my_prompts         # a directory with your own <paradigm>.j2 templates
"""


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
    g.set_defaults(func=_generate)

    e = sub.add_parser("export", help="write a view of a run's records with a dataset card")
    e.add_argument("out", help="the run's output directory")
    e.add_argument("--format", choices=["raw", "rag-instruct", "messages", "alpaca", "sharegpt"], default="messages")
    e.add_argument("--to", required=True, help="PATH.jsonl, PATH.parquet, or a directory for `datasets`")
    e.set_defaults(func=_export)


def _init(args: argparse.Namespace) -> int:
    p = Path(args.path)
    if p.exists():
        raise OutputError(f"{p} already exists; choose another path")
    p.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    print(f"wrote {p}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from .config import load_config
    from .run import run_generate

    cfg = load_config(args.config, args.set)
    return run_generate(
        cfg, dry_run=args.dry_run, overwrite=args.overwrite, quiet=args.quiet, retry_failed=args.retry_failed
    )


def _export(args: argparse.Namespace) -> int:
    from .export import export

    card = export(Path(args.out), args.format, Path(args.to))
    print(f"wrote {args.to} ({args.format}) and {card}")
    return 0
