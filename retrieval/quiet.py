"""Model loading without the libraries' own output: the library prints (and sends) nothing unless asked.

transformers (>= 5) draws a "Loading weights" tqdm bar for every model it loads, and logs warnings
about unused weights; sentence-transformers loads through it. `quiet_loading` turns both off around
one load and restores the caller's settings after it, so a user's own transformers setup is left as
it was."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


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


def import_openvino() -> Any:
    """`import openvino` without its telemetry.

    Unless CI=true or a consent file in ~/intel declines, importing openvino sends an event to Intel's
    analytics (the `openvino_telemetry` package, Google Analytics 4), and so does every model
    conversion; it writes a client id to ~/intel and leaves a thread pool of six running for the
    sending. ragloom sends nothing anywhere: its first import of openvino is made with
    `openvino_telemetry` hidden, so openvino binds its own stand-in (`openvino.tools.ovc.telemetry_stub`),
    as it does where that package is not installed. The package is as it was right after, for the
    user's own code. An openvino the user imported before ragloom is left as the user set it up."""
    if sys.modules.get("openvino") is not None:
        return sys.modules["openvino"]
    missing = object()
    telemetry = sys.modules.get("openvino_telemetry", missing)
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # its import raises ImportError
    try:
        import openvino
    finally:
        if telemetry is missing:
            del sys.modules["openvino_telemetry"]
        else:
            sys.modules["openvino_telemetry"] = telemetry  # type: ignore[assignment]
    return openvino


# the modules of openvino's converter that report to its telemetry package (bound as `tm`)
_OVC_TELEMETRY_USERS = ("convert_impl", "telemetry_utils", "utils")


@contextmanager
def openvino_telemetry_off() -> Iterator[None]:
    """A conversion sends nothing, also where the user imported openvino (with its telemetry) before
    ragloom did (`import_openvino`): for its duration the converter's modules use OpenVINO's own
    stand-in for a missing telemetry package."""
    from openvino.tools.ovc import telemetry_stub

    swapped = []
    for name in _OVC_TELEMETRY_USERS:
        module = importlib.import_module(f"openvino.tools.ovc.{name}")
        if hasattr(module, "tm"):
            swapped.append((module, module.tm))
            setattr(module, "tm", telemetry_stub)  # noqa: B010
    try:
        yield
    finally:
        for module, tm in swapped:
            setattr(module, "tm", tm)  # noqa: B010
