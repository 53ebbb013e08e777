"""The records of the generation layer: Exemplar, Job, Pair, Usage, InstructionPair (the output
records are in generator/record.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ragloom.retrieval import Passage

PARADIGMS: dict[str, tuple[int, int]] = {
    # name: (min source docs, max source docs)
    "useless_doc": (1, 1),
    "single_doc_support": (1, 1),
    "multi_doc_support": (2, 4),
    "single_doc_answer": (1, 1),
    "multi_doc_answer": (2, 4),
}

PARADIGM_DEFINITIONS: dict[str, str] = {
    "useless_doc": "q* is related to the document, but the document gives no useful information; a* answers from general knowledge",
    "single_doc_support": "the document helps (hints, facts) but does not state the answer",
    "multi_doc_support": "several documents help together, none states the answer",
    "single_doc_answer": "the answer is fully derivable from the one document",
    "multi_doc_answer": "the answer needs several documents (multi-hop or integration)",
}


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
