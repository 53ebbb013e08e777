"""The `ragloom` command. User errors print one line and exit 2; nothing else is caught."""

from __future__ import annotations

import argparse
import os
import sys

from ragloom import __version__
from ragloom.errors import RagloomError


def build_parser() -> argparse.ArgumentParser:
    from ragloom.retrieval import cli as retrieval_cli

    parser = argparse.ArgumentParser(
        prog="ragloom", description="Retrieval-augmented instruction-tuning data from any corpus."
    )
    parser.add_argument("--version", action="version", version=f"ragloom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    retrieval_cli.add_commands(sub)
    from ragloom.generator import cli as generator_cli

    generator_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RagloomError as e:
        print(f"ragloom: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("ragloom: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
