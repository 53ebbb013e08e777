"""The output records, defined once: `Example` (generate) and `LmFtRecord` / `LsrRecord` (RA-DIT).

Each is built in one place (generator/records.py, generator/radit.py), written as one JSON line by
`to_dict`, and read back by `from_dict` for export, the card and the report. The JSON shape is the
dataset's contract: field names do not change without a version note.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

Role = Literal["source", "distractor"]


@dataclass(slots=True)
class Document:
    """A passage as shown to the model (`ragloom.retrieval.Passage`'s id, title and text, so every check
    reads it as a passage), with its role: `rank` is its retrieval rank for q* (None: beyond the
    search), `rule` how a distractor was picked (band, deeper, random, shallow; None for a source).
    `ragloom audit` reads any dataset's documents into this type too; there `role` may be None (the
    dataset does not say)."""

    id: str
    title: str
    text: str
    role: Role | None
    rank: int | None = None
    rule: str | None = None

    @classmethod
    def of(cls, passage: Any, role: Role | None, rank: int | None = None, rule: str | None = None) -> Document:
        """From a retrieval Passage (or anything with id, title and text)."""
        return cls(passage.id, passage.title, passage.text, role, rank, rule)


@dataclass(slots=True)
class ExemplarRef:
    id: str
    source: str
    text: str
    task_type: str | None = None
    options: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Generation:
    """How the pair was made. `settings` holds backend-specific keys (e.g. structured_output);
    `truncated_sources` the ids of sources cut to fit `backend.max_prompt_tokens`."""

    backend: str
    model: str
    sampling: dict[str, Any]
    template: str
    template_hash: str
    prompt_hash: str
    usage: dict[str, int]
    attempts: int
    settings: dict[str, Any] = field(default_factory=dict)
    truncated_sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = {"backend": self.backend, "model": self.model, **self.settings}
        d.update(
            sampling=self.sampling,
            template=self.template,
            template_hash=self.template_hash,
            prompt_hash=self.prompt_hash,
            usage=self.usage,
            attempts=self.attempts,
        )
        if self.truncated_sources:
            d["truncated_sources"] = self.truncated_sources
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Generation:
        known = {"backend", "model", "sampling", "template", "template_hash", "prompt_hash", "usage", "attempts"}
        return cls(
            backend=d.get("backend", ""),
            model=d.get("model", ""),
            sampling=d.get("sampling", {}),
            template=d.get("template", ""),
            template_hash=d.get("template_hash", ""),
            prompt_hash=d.get("prompt_hash", ""),
            usage=d.get("usage", {}),
            attempts=int(d.get("attempts", 1)),
            settings={k: v for k, v in d.items() if k not in known | {"truncated_sources"}},
            truncated_sources=list(d.get("truncated_sources", [])),
        )


@dataclass(slots=True)
class Example:
    """One generated example: q* (`instruction`), a* (`answer`) and its documents in final order."""

    id: str
    paradigm: str
    instruction: str
    answer: str
    documents: list[Document]
    exemplar: ExemplarRef
    generation: Generation
    ragloom_version: str
    quality: dict[str, Any] | None = None
    curation: dict[str, Any] | None = None

    @property
    def job_id(self) -> str:
        return self.id

    @property
    def sources(self) -> list[Document]:
        return [d for d in self.documents if d.role == "source"]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "job_id": self.id,
            "paradigm": self.paradigm,
            "instruction": self.instruction,
            "answer": self.answer,
            # field by field: `asdict` deep-copies every string (a tenth of the record stage's Python in G3)
            "documents": [asdict_shallow(d) for d in self.documents],
            "exemplar": {**asdict_shallow(self.exemplar), "options": list(self.exemplar.options)},
            "generation": self.generation.to_dict(),
            "ragloom_version": self.ragloom_version,
        }
        if self.quality is not None:
            d["quality"] = self.quality
        if self.curation is not None:
            d["curation"] = self.curation
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        ex = d.get("exemplar") or {}
        return cls(
            id=d["id"],
            paradigm=d["paradigm"],
            instruction=d["instruction"],
            answer=d["answer"],
            documents=[
                Document(x["id"], x.get("title", ""), x["text"], x["role"], x.get("rank"), x.get("rule"))
                for x in d["documents"]
            ],
            exemplar=ExemplarRef(
                ex.get("id", ""), ex.get("source", ""), ex.get("text", ""), ex.get("task_type"), ex.get("options", [])
            ),
            generation=Generation.from_dict(d.get("generation") or {}),
            ragloom_version=d.get("ragloom_version", ""),
            quality=d.get("quality"),
            curation=d.get("curation"),
        )


@dataclass(slots=True)
class LmFtRecord:
    """RA-DIT fine-tuning example: `kind` is retrieved (one per chunk), context or plain."""

    id: str
    prompt: str
    completion: str
    kind: Literal["retrieved", "context", "plain"]
    pair_id: str
    source: str
    chunk: dict[str, Any] | None = None

    @property
    def job_id(self) -> str:
        return self.id

    def to_dict(self) -> dict[str, Any]:
        d = {"job_id": self.id, **asdict(self)}
        if self.chunk is None:
            del d["chunk"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LmFtRecord:
        return cls(d["id"], d["prompt"], d["completion"], d["kind"], d["pair_id"], d["source"], d.get("chunk"))


@dataclass(slots=True)
class LsrChunk:
    id: str
    title: str
    text: str
    rank: int
    retriever_score: float
    lm_logprob: float
    lm_tokens: int
    lsr_score: float


@dataclass(slots=True)
class LsrRecord:
    """RA-DIT retriever data for one query: its top-k chunks with LM scores and LSR targets."""

    id: str
    query: str
    answers: list[str]
    ctxs: list[LsrChunk]
    source: str

    @property
    def job_id(self) -> str:
        return self.id

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.id, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LsrRecord:
        return cls(d["id"], d["query"], d["answers"], [LsrChunk(**c) for c in d["ctxs"]], d.get("source", ""))


Record = Example | LmFtRecord | LsrRecord
RECORD_TYPES: dict[str, type[Example] | type[LmFtRecord] | type[LsrRecord]] = {
    "generate": Example,
    "radit-lm-ft": LmFtRecord,
    "radit-lsr": LsrRecord,
}


def from_dict(kind: str, d: dict[str, Any]) -> Record:
    """The typed record of a run of `kind` (run.json "kind"; generate runs have none)."""
    return RECORD_TYPES[kind].from_dict(d)


def asdict_shallow(obj: Any) -> dict[str, Any]:
    """A dataclass's fields as a dict, values as they are (no deep copy)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}
