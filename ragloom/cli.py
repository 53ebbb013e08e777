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


def silence_progress_bars() -> None:
    """`--quiet`: hide third-party progress bars too (the encoder's "Loading weights", datasets' own).
    huggingface_hub, transformers and datasets read these variables when first imported; a library
    already imported is told directly."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        from datasets.utils import logging as datasets_logging

        datasets_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        silence_progress_bars()
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
