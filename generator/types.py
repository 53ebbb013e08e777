"""The records of the generation layer: Exemplar, Job, Pair, Usage, InstructionPair (the output
records are in generator/runs/record.py; the paradigms in generator/paradigms.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ragloom.retrieval import Passage


@dataclass(frozen=True, slots=True)
class Exemplar:
    """A real instruction for the LLM to imitate; `options` makes it multiple choice."""

    id: str
    text: str
    source: str
    task_type: str | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Job:
    """One planned example. `sources` is filled by source selection; `attempt` counts asks."""

    id: str
    position: int
    paradigm: str
    exemplar: Exemplar
    n_sources: int
    sources: tuple[Passage, ...] = ()
    attempt: int = 1
    # index rows of the sources when the plan chose them (sources.strategy corpus, or max_reuse):
    # decided once on the driver in plan order, so a resumed or Ray-sharded run gets the same
    source_rows: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Pair:
    """A validated (q*, a*)."""

    question: str
    answer: str


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


@dataclass(frozen=True, slots=True)
class InstructionPair:
    """An (instruction x, output y) pair for RA-DIT; `context` is the record's own passage, if any."""

    id: str
    instruction: str
    output: str
    source: str
    context: str | None = None
    passage_id: str | None = None  # corpus mode: the chunk x and y were cut from (never its own context)
