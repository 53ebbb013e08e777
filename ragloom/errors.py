"""Errors. A `RagloomError` is a user error: the CLI prints its message as one line and exits 2.

Each subclass also derives from the matching builtin, so callers can catch either.
"""

from __future__ import annotations


class RagloomError(Exception):
    """Base class: a problem the user can fix; the message says what and how."""

    exit_code = 2


class ConfigError(RagloomError, ValueError):
    """A bad config key or value."""


class InputFormatError(RagloomError, ValueError):
    """A malformed record in a user file; the message names the file and line."""


class MissingInputError(RagloomError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class IndexMismatchError(RagloomError, ValueError):
    """An index opened with another encoder, dimension or a changed corpus."""


class MissingDependencyError(RagloomError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


class BackendError(RagloomError, RuntimeError):
    """The LLM server refused the work in a way retries cannot fix (bad key, unknown model)."""


class OutputError(RagloomError, OSError):
    """The output directory cannot be written, or holds another run."""
