"""The run config: one Pydantic tree (`extra="forbid"`), loaded from YAML, overridable with --set.

`RunConfig` composes the sections each wing owns (backends: `backend:`; quality: `quality:` and
`validation:`; curation: `curation:`; runs: `documents:`; publish: `card:`) with the core's own
(exemplars, sampling, distractors, sources, pricing, corpus, execution). The wings' sections are
re-exported here for callers that build a config in code."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ragloom.errors import ConfigError, MissingInputError

from .backends import (
    BACKENDS,
    BackendConfig,
    LlamaCppBackendConfig,
    OpenAIBackendConfig,
    ScoringBackendConfig,
    VLLMBackendConfig,
)
from .curation import Curation
from .paradigms import PARADIGMS
from .publish import Card
from .quality import Quality, Validation
from .runs import DocumentsConfig
from .strict import Strict


class ExemplarSource(Strict):
    source: str = Field("builtin", description="'builtin', a file, a `datasets` directory or a hub dataset name")
    format: Literal["json", "jsonl", "alpaca", "sharegpt", "messages", "hf"] | None = None
    text_field: str = "instruction"
    options_field: str | None = None
    task_type_field: str | None = None
    split: str = "train"
    weight: float = Field(1.0, gt=0)
    limit: int | None = Field(None, gt=0)


class ExemplarFilters(Strict):
    min_words: int = Field(3, ge=0)
    max_words: int = Field(200, gt=0)
    dedupe: bool = True
    knowledge_filter: bool = Field(
        False, description="ask the LLM whether retrieval would help each exemplar; keep those where it would"
    )
    knowledge_cache: str | None = Field(
        None, description="JSON lines of cached decisions (default: OUTPUT/knowledge_filter.jsonl)"
    )


class Sampling(Strict):
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    # RAG-Instruct's answers average ~81 words (~110 tokens) and its questions ~22: 1024 leaves room
    # for a long answer, the JSON around it and a small model's preamble without cutting it off
    max_tokens: int = Field(1024, ge=1)


class Distractors(Strict):
    total_docs: int = Field(10, ge=1, le=100)
    rank_band: tuple[int, int] = (200, 250)
    max_rank: int = Field(
        1000, gt=0, le=1000, description="a short band widens deeper, window by window, down to this rank"
    )

    @field_validator("rank_band")
    @classmethod
    def _band(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= v[0] < v[1] <= 1000:
            raise ValueError(f"rank_band {list(v)} must satisfy 0 <= start < end <= 1000 (search k is at most 1000)")
        return v

    @model_validator(mode="after")
    def _deeper(self) -> Distractors:
        if self.max_rank < self.rank_band[1]:
            raise ValueError(f"max_rank {self.max_rank} is above the end of rank_band {list(self.rank_band)}")
        return self


class Sources(Strict):
    top_k: int = Field(5, ge=1, le=1000, description="single-doc paradigms pick from the top_k hits")
    multi_k: int = Field(10, ge=2, le=1000, description="multi-doc paradigms pick from the top multi_k hits")
    near_duplicate: float = Field(
        0.8, gt=0, le=1, description="word-set overlap above which two passages are duplicates"
    )
    # issue 28: where the sources come from, and how often one passage may be a source
    strategy: Literal["exemplar", "corpus"] = Field(
        "exemplar",
        description="exemplar: sources retrieved for the exemplar (RAG-Instruct); corpus: walk the corpus, "
        "every passage a source once before any twice, the exemplar drawn from those nearest the passage",
    )
    max_reuse: int | None = Field(
        None, ge=1, description="exemplar strategy: no passage is a source of more than N planned jobs (None: no limit)"
    )
    max_depth: int = Field(100, ge=1, le=1000, description="how deep in a ranking to look for unused passages")
    exemplar_pool: int = Field(
        8, ge=1, le=1000, description="corpus strategy: the exemplar is drawn from this many nearest"
    )

    @model_validator(mode="after")
    def _reuse_is_for_exemplar(self) -> Sources:
        if self.strategy == "corpus" and self.max_reuse is not None:
            raise ValueError(
                "sources.max_reuse applies to strategy exemplar; strategy corpus uses every passage once before "
                "any twice: remove max_reuse"
            )
        return self


class Pricing(Strict):
    prompt_per_million: float = Field(0.0, ge=0)
    completion_per_million: float = Field(0.0, ge=0)


class CorpusConfig(Strict):
    path: str
    format: Literal["jsonl", "tsv", "parquet", "csv", "hf", "text"] | None = None
    id_field: str = "id"
    title_field: str = "title"
    text_field: str = "text"
    limit: int | None = Field(None, gt=0)


class Execution(Strict):
    """Where the pipeline runs: this process, or worker actors on a Ray cluster (`ragloom[ray]`)."""

    engine: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="Ray cluster address ('auto', host:port); none: a local cluster")
    workers: int = Field(2, ge=1, le=4096, description="ray: worker actors, each with its own index and backend")


class RunConfig(Strict):
    index: str = Field(description="index directory (built from `corpus` when missing)")
    corpus: CorpusConfig | None = None
    encoder: str | None = None
    # how queries are embedded; None: as the index was built (torch when `corpus` builds it)
    encoder_backend: Literal["torch", "onnx", "openvino"] | None = None
    quantize: Literal["int8"] | None = None
    precision: Literal["f32", "bf16"] | None = None  # openvino: bf16 where the CPU has it; None: as built
    exemplars: list[ExemplarSource] = Field(default_factory=lambda: [ExemplarSource()])
    exemplar_filters: ExemplarFilters = Field(default_factory=ExemplarFilters)
    paradigms: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(PARADIGMS, 1.0))
    count: int = Field(gt=0)
    seed: int = 0
    backend: BackendConfig
    sampling: Sampling = Field(default_factory=Sampling)
    language: str = Field("English", min_length=1, description="the language q* and a* are written in")
    answer_style: Literal["plain", "cited", "quoted"] = Field(
        "plain",
        description="plain; cited: a* marks statements with [n] (renumbered to the record's documents); "
        "quoted: RAFT's reasoning quoting the documents, then <ANSWER>:",
    )
    distractors: Distractors = Field(default_factory=Distractors)
    sources: Sources = Field(default_factory=Sources)
    validation: Validation = Field(default_factory=Validation)
    quality: Quality = Field(default_factory=Quality)
    curation: Curation = Field(default_factory=Curation)
    documents: DocumentsConfig = Field(default_factory=DocumentsConfig)
    pricing: Pricing = Field(default_factory=Pricing)
    output: str = "out"
    templates: str | None = None
    card: Card = Field(default_factory=Card)
    execution: Execution = Field(default_factory=Execution)

    @field_validator("paradigms")
    @classmethod
    def _mix(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if name not in PARADIGMS:
                close = difflib.get_close_matches(name, list(PARADIGMS), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; use {', '.join(PARADIGMS)}"
                raise ValueError(f"unknown paradigm {name!r}{hint}")
            if w < 0:
                raise ValueError(f"weight of {name} is {w}; weights must be >= 0")
        if not v or sum(v.values()) <= 0:
            raise ValueError("the paradigm weights sum to 0; give at least one paradigm a positive weight")
        return v

    @field_validator("exemplars")
    @classmethod
    def _some_exemplars(cls, v: list[ExemplarSource]) -> list[ExemplarSource]:
        if not v:
            raise ValueError("no exemplar sources; use [{source: builtin}] for the built-in set")
        return v

    @model_validator(mode="after")
    def _docs_fit(self) -> RunConfig:
        need = max(PARADIGMS[p].sources[1] for p, w in self.paradigms.items() if w > 0)
        if self.distractors.total_docs < need:
            raise ValueError(
                f"distractors.total_docs={self.distractors.total_docs} is below the {need} source documents "
                "a multi-doc paradigm can take"
            )
        return self


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the last key of an error location."""
    current: type[BaseModel] | None = RunConfig
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        if part in BACKENDS:  # a discriminated union's tag: the backend's own section
            current = BACKENDS[part].config
            continue
        field = current.model_fields.get(str(part))
        current = _find_model(field.annotation) if field else None
    return current


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _find_model(arg)
        if found:
            return found
    return None


def describe_error(e: ValidationError, source: str) -> str:
    """One line for the first error: the key, the bad value, and what is allowed."""
    err = e.errors()[0]
    loc = tuple(p for p in err["loc"] if p not in BACKENDS)
    key = ".".join(str(p) for p in loc) or "(top level)"
    if err["type"] == "extra_forbidden":
        owner = _model_at(tuple(err["loc"]))
        close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1) if owner else []
        hint = f"; did you mean {'.'.join([*map(str, loc[:-1]), close[0]])!r}?" if close else ""
        return f"{source}: unknown key {key!r}{hint}"
    if err["type"] == "missing":
        return f"{source}: missing required key {key!r}"
    msg = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{source}: {key}: {msg}{shown}"


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b=c` overrides; the value is parsed as YAML (`count=5` is an int)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set sampling.temperature=0.2")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {key}: {part!r} is not a section")
            node = nxt
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    return data


class BackendOnly(Strict):
    """The `backend:` section alone, for commands that need only a backend (`radit lsr --config`)."""

    model_config = ConfigDict(extra="ignore")
    backend: ScoringBackendConfig


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path`; a missing file or bad YAML is a one-line error with the line."""
    p = Path(path)
    if not p.exists():
        raise MissingInputError(f"config not found: {p}; write an example with `ragloom init {p}`")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text; save the config as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{p}{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{p}: the config must be a mapping of keys, got {type(loaded).__name__}")
    return loaded or {}


def load_config(
    path: str | Path | None, overrides: list[str] | None = None, *, base: dict[str, Any] | None = None
) -> RunConfig:
    """Validate a config from YAML at `path` (or the dict `base`), with `a.b=c` overrides applied."""
    import copy

    data: dict[str, Any] = copy.deepcopy(base) if base is not None else {}
    source = str(path) if path else ("config" if base is not None else "--set")
    if path is not None:
        data = load_yaml(path)
    apply_overrides(data, overrides or [])
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe_error(e, source)) from None


__all__ = [
    "BackendOnly",
    "Card",
    "CorpusConfig",
    "Curation",
    "Distractors",
    "DocumentsConfig",
    "Execution",
    "ExemplarFilters",
    "ExemplarSource",
    "LlamaCppBackendConfig",
    "OpenAIBackendConfig",
    "Pricing",
    "Quality",
    "RunConfig",
    "Sampling",
    "Sources",
    "VLLMBackendConfig",
    "Validation",
    "apply_overrides",
    "describe_error",
    "load_config",
    "load_yaml",
]
