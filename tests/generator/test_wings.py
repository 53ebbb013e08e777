"""The package's layout rules (README "Layout"), read from the source with `ast`: every wing says what it
owns, nothing reaches into another wing's modules, and wings import no core module but the leaves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GENERATOR = Path(__file__).resolve().parents[2] / "generator"
WINGS = sorted(p.name for p in GENERATOR.iterdir() if p.is_dir() and (p / "__init__.py").exists())
LEAVES = {"types", "paradigms", "strict", "aio"}  # core modules a wing may read: they import nothing of the package
# audit reads a run's sections through the run config's models; nothing imports audit but the CLI and API
MAY_READ = {"audit": LEAVES | {"config"}}


def _imports(path: Path) -> list[tuple[int, list[str]]]:
    """(line, absolute module path under generator/ as parts) of each relative import in `path`."""
    rel = path.relative_to(GENERATOR)
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            target = base + (node.module.split(".") if node.module else [])
            if not node.module:  # from . import a, b: the modules themselves
                out += [(node.lineno, [*target, a.name]) for a in node.names]
            else:
                out.append((node.lineno, target))
    return out


def test_the_wings_are_the_ones_the_readme_names() -> None:
    assert WINGS == ["audit", "backends", "curation", "publish", "quality", "runs"]


@pytest.mark.parametrize("wing", WINGS)
def test_each_wing_says_what_it_owns_and_what_it_may_import(wing: str) -> None:
    doc = ast.get_docstring(ast.parse((GENERATOR / wing / "__init__.py").read_text())) or ""
    assert "owns" in doc and "may import" in doc, f"{wing}/__init__.py: say what it owns and what it may import"


def test_nothing_reaches_into_another_wings_modules() -> None:
    bad = []
    for path in GENERATOR.rglob("*.py"):
        own = path.relative_to(GENERATOR).parts[0]
        for line, target in _imports(path):
            if len(target) >= 2 and target[0] in WINGS and target[0] != own:
                bad.append(f"{path.relative_to(GENERATOR)}:{line} imports {'.'.join(target)}")
    assert bad == [], "import these through the wing's __init__:\n" + "\n".join(bad)


def test_wings_read_only_the_core_leaves() -> None:
    """The core imports the wings; a wing importing the core (config.py, pipeline.py...) would be a cycle."""
    bad = []
    for wing in WINGS:
        for path in (GENERATOR / wing).rglob("*.py"):
            for line, target in _imports(path):
                if target and target[0] not in WINGS and target[0] not in MAY_READ.get(wing, LEAVES):
                    bad.append(f"{path.relative_to(GENERATOR)}:{line} imports core module {target[0]}")
    assert bad == [], "\n".join(bad)


def test_each_wing_owns_its_config_section() -> None:
    """`config.py` composes RunConfig from the wings' sections: none of those is defined in config.py."""
    from ragloom.generator.backends import OpenAIBackendConfig
    from ragloom.generator.config import RunConfig
    from ragloom.generator.curation import Curation
    from ragloom.generator.publish import Card
    from ragloom.generator.quality import Quality, Validation
    from ragloom.generator.runs import DocumentsConfig

    fields = RunConfig.model_fields
    owners = {
        "quality": Quality,
        "validation": Validation,
        "curation": Curation,
        "documents": DocumentsConfig,
        "card": Card,
    }
    for key, model in owners.items():
        assert fields[key].annotation is model
        assert model.__module__.split(".")[2] in WINGS, (key, model.__module__)
    assert OpenAIBackendConfig.__module__ == "ragloom.generator.backends.config"
