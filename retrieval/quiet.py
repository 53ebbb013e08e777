"""Model loading without the libraries' own output: the library prints nothing unless asked.

transformers (>= 5) draws a "Loading weights" tqdm bar for every model it loads, and logs warnings
about unused weights; sentence-transformers loads through it. `quiet_loading` turns both off around
one load and restores the caller's settings after it, so a user's own transformers setup is left as
it was."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_loading() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
