"""Quality: record-level checks (owns the `quality:` and `validation:` sections).

What it owns: reply parsing and validation codes (`parse_pair`, `REASONS`), the paradigm check
(`ConformanceChecker`, its sentence spans), the distractor leak screen (`LeakScreen`), relevance
(`off_topic`), citation verification (`citations.py`: `[n]` citations and RAFT quotes, `quotes.py`),
the LLM judge and its cache, LM necessity scoring, and the gate that runs the enabled
checks over a batch. Every record-level check is one object of the check protocol (`checks.py`):
the pipeline and `ragloom audit` loop over the same objects.
It may import: backends and runs (through their `__init__`; runs for the answers' citation markers), the
core's leaf modules (types, paradigms, strict),
ragloom.retrieval and ragloom.errors. It never imports the run config: each check takes its section.
"""

from __future__ import annotations

from .checks import (
    CHECKS,
    CheckContext,
    CheckItem,
    Outcome,
    RecordCheck,
    build_checks,
    registered_codes,
)
from .citations import CitationCheck, CitationThresholds
from .config import Quality, Validation
from .conformance import CheckInput, ConformanceChecker, ConformanceThresholds
from .gate import ParadigmCheck
from .judge import JudgeCache, judge_cache
from .leaks import LeakRule, LeakScreen
from .necessity import NecessityCheck, NecessityConfig, checked, open_scorer
from .parsing import PAIR_JSON_SCHEMA, REASONS, Thresholds, parse_pair
from .relevance import RelevanceCheck, RelevanceThresholds
from .span_freq import SpanFrequency

__all__ = [
    "CHECKS",
    "PAIR_JSON_SCHEMA",
    "REASONS",
    "CheckContext",
    "CheckInput",
    "CheckItem",
    "CitationCheck",
    "CitationThresholds",
    "ConformanceChecker",
    "ConformanceThresholds",
    "JudgeCache",
    "LeakRule",
    "LeakScreen",
    "NecessityCheck",
    "NecessityConfig",
    "Outcome",
    "ParadigmCheck",
    "Quality",
    "RecordCheck",
    "RelevanceCheck",
    "RelevanceThresholds",
    "SpanFrequency",
    "Thresholds",
    "Validation",
    "build_checks",
    "checked",
    "judge_cache",
    "open_scorer",
    "parse_pair",
    "registered_codes",
]
