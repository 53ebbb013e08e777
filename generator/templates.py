"""Paradigm templates: `prompts/<paradigm>.j2`, a built-in set (`prompts/<set>/`, e.g. `small`), or the
user's own directory, rendered strictly."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from ragloom.retrieval import Passage

from ragloom.errors import ConfigError, MissingInputError

from .paradigms import PARADIGMS
from .types import Exemplar

REQUIRED_VARIABLES = ("documents", "exemplar")
ALLOWED_VARIABLES = {"documents", "exemplar", "paradigm", "language", "answer_style"}
# Built-in template sets, selected by name with config `templates: <name>`: prompts/<name>/. `small`
# asks small models (a few hundred million parameters, the quickstart's Gemma 3 270M) in fewer words.
BUILTIN_SETS = ("small",)


class Templates:
    """Loads and checks every paradigm template once; `render` gives the user message."""

    def __init__(
        self,
        directory: str | Path | None = None,
        paradigms: list[str] | None = None,
        *,
        language: str = "English",
        answer_style: str = "plain",
    ) -> None:
        self.language = language  # config key `language`: the language q* and a* are written in
        self.answer_style = answer_style  # config key `answer_style`: plain, cited ([n]) or quoted (RAFT)
        builtin = str(resources.files("ragloom.prompts"))
        if directory is not None and str(directory) in BUILTIN_SETS:
            directory = str(resources.files("ragloom.prompts") / str(directory))
        search = [builtin] if directory is None else [str(directory), builtin]
        if directory is not None and not Path(directory).is_dir():
            raise MissingInputError(f"template directory not found: {directory}")
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # noqa: S701 - prompts are plain text, not HTML
            # read once: a run renders with the templates it started with (and their recorded
            # digest), and no file is stat'ed per prompt
            auto_reload=False,
        )
        self.sources: dict[str, str] = {}
        self.templates: dict[str, jinja2.Template] = {}
        for name in paradigms or list(PARADIGMS):
            self._load(name)
        macros = self.env.loader.get_source(self.env, "_macros.j2")[0]  # type: ignore[union-attr]
        self._digests = {
            name: hashlib.sha256((source + macros).encode()).hexdigest()[:16] for name, source in self.sources.items()
        }

    def _load(self, name: str) -> None:
        fname = PARADIGMS[name].template_file if name in PARADIGMS else f"{name}.j2"
        try:
            source, filename, _ = self.env.loader.get_source(self.env, fname)  # type: ignore[union-attr]
        except jinja2.TemplateNotFound:
            raise MissingInputError(f"no template {fname} for paradigm {name!r}") from None
        try:
            ast = self.env.parse(source, fname, filename)
        except jinja2.TemplateSyntaxError as e:
            raise ConfigError(f"{filename}:{e.lineno}: template syntax error: {e.message}") from None
        used = meta.find_undeclared_variables(ast)
        unknown = sorted(used - ALLOWED_VARIABLES)
        if unknown:
            raise ConfigError(
                f"{filename}: unknown variable {unknown[0]!r}; templates may use {', '.join(sorted(ALLOWED_VARIABLES))}"
            )
        missing = [v for v in REQUIRED_VARIABLES if v not in used]
        if missing:
            raise ConfigError(f"{filename}: never uses the variable {missing[0]!r}; every paradigm template must")
        if self.answer_style != "plain" and "answer_style" not in used:  # it would never ask for citations
            raise ConfigError(
                f"{filename}: answer_style is {self.answer_style} but the template never uses the variable "
                "'answer_style'; use the default templates or add the block they have "
                "({{ m.answer_style_rules(answer_style, ...) }})"
            )
        self.sources[name] = source
        self.templates[name] = self.env.from_string(source)
        self.templates[name].filename = filename

    def render(self, paradigm: str, exemplar: Exemplar, documents: tuple[Passage, ...] | list[Passage]) -> str:
        context: dict[str, Any] = {
            "paradigm": paradigm,
            "language": self.language,
            "answer_style": self.answer_style,
            "exemplar": {"text": exemplar.text, "task_type": exemplar.task_type, "options": list(exemplar.options)},
            "documents": [{"id": d.id, "title": d.title, "text": d.text} for d in documents],
        }
        try:
            return self.templates[paradigm].render(context)
        except jinja2.UndefinedError as e:
            raise ConfigError(f"template {paradigm}.j2: {e.message}") from None

    def digests(self) -> dict[str, str]:
        """Every loaded template's digest, for the run's identity: an edited template is another run."""
        return dict(self._digests)

    def digest(self, paradigm: str) -> str:
        """Hash of the template bytes and the macros, recorded with every example."""
        return self._digests[paradigm]
