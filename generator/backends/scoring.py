"""LM scoring helpers: pick a target's tokens out of an echoed prompt, and the LSR softmax."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import accumulate


class AlignmentError(ValueError):
    """The server's echoed tokens do not spell the scored text."""


def _starts(tokens: Sequence[str]) -> list[int]:
    return [0, *accumulate(len(t) for t in tokens)][:-1]


def target_tokens(
    tokens: Sequence[str],
    token_logprobs: Sequence[float | None],
    text_offset: Sequence[int] | None,
    prefix: str,
    target: str,
) -> tuple[list[str], list[float], bool]:
    """The target's tokens and their log-probabilities from the echo of `prefix + target`.

    Positions come from the token strings themselves when they spell the text (llama.cpp,
    vLLM with text tokens); otherwise from the server's `text_offset` (byte-level tokens
    shown as `bytes:...`). Tokens after the target (the one generated token) are left out.
    Returns (tokens, logprobs, straddles): `straddles` is true when the first target token
    also covers the end of the prefix, so the boundary could not be cut exactly.
    """
    full = prefix + target
    joined = "".join(tokens)
    shift = joined.find(full)
    if shift >= 0:
        starts = [s - shift for s in _starts(tokens)]
    elif text_offset is not None and len(text_offset) == len(tokens):
        starts = list(text_offset)
    else:
        raise AlignmentError("the echoed tokens do not spell the scored text and no text_offset was returned")
    lo, hi = len(prefix), len(full)
    picked: list[str] = []
    logprobs: list[float] = []
    straddles = False
    # a token ends where the next begins (byte tokens' strings are not their length in the text)
    ends = [*starts[1:], starts[-1] + len(tokens[-1])] if starts else []
    for tok, lp, start, end in zip(tokens, token_logprobs, starts, ends):
        if start >= hi or max(end, start + 1) <= lo:
            continue
        if start < lo:
            straddles = True
        if lp is None:
            raise AlignmentError(f"the server returned no log-probability for target token {tok!r}")
        picked.append(tok)
        logprobs.append(float(lp))
    if not picked:
        raise AlignmentError("no token of the target was found in the echoed prompt")
    return picked, logprobs, straddles


def lsr_scores(scores: Sequence[float], tau: float) -> list[float]:
    """softmax(score / tau) over one query's chunks (RA-DIT's LM-supervised retrieval target)."""
    if tau <= 0:
        raise ValueError("tau must be > 0")
    scaled = [s / tau for s in scores]
    top = max(scaled)
    exps = [math.exp(s - top) for s in scaled]
    total = sum(exps)
    return [e / total for e in exps]
