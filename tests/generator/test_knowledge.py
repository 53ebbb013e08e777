"""The knowledge-intensity filter: decisions asked once, cached on disk, applied to the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from fake_openai import FakeServer
from ragloom.generator.knowledge import PROMPT, parse_decision

from ragloom.cli import main

EXEMPLARS = [
    "Who designed the Brooklyn Bridge and when was it opened?",
    "Explain how penicillin was discovered.",
    "Compare the climates of Norway and Spain.",
    "Write a poem about the sea at night.",
    "Tell me a joke about cats and dogs.",
]


@pytest.mark.parametrize(
    ("reply", "decision"),
    [("Yes", True), ("no.", False), ('{"answer": "yes"}', True), ("Yes, retrieval helps.", True), ("maybe", None)],
)
def test_parse_decision(reply: str, decision: bool | None) -> None:
    assert parse_decision(reply) is decision


def _knowledge_requests(srv: FakeServer) -> list[str]:
    return [
        r["messages"][-1]["content"]
        for r in srv.requests
        if "messages" in r and "yes or no" in r["messages"][-1]["content"]
    ]


def test_filter_drops_non_knowledge_exemplars_and_caches(wiki_index: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "ex.jsonl").write_text("".join(json.dumps({"instruction": t}) + "\n" for t in EXEMPLARS))
    with FakeServer() as srv:
        cfg = {
            "index": str(wiki_index),
            "count": 12,
            "output": str(tmp_path / "out"),
            "exemplars": [{"source": str(tmp_path / "ex.jsonl")}],
            "exemplar_filters": {"knowledge_filter": True},
            "backend": {"type": "openai", "base_url": srv.base_url, "model": "fake", "api_key_env": None},
        }
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["generate", "--config", str(tmp_path / "run.yaml"), "--quiet"]) == 0
        asked = _knowledge_requests(srv)
        assert len(asked) == 5 and all(PROMPT.split("\n")[0] in a for a in asked)
        recs = [json.loads(x) for x in (tmp_path / "out" / "examples.jsonl").read_text().splitlines()]
        used = {r["exemplar"]["text"] for r in recs}
        assert used <= set(EXEMPLARS[:3]) and used  # the poem and the joke were dropped
        cache = [json.loads(x) for x in (tmp_path / "out" / "knowledge_filter.jsonl").read_text().splitlines()]
        assert sorted((c["text"], c["helps"]) for c in cache) == sorted((t, i < 3) for i, t in enumerate(EXEMPLARS))
        run = json.loads((tmp_path / "out" / "run.json").read_text())
        assert run["exemplars_dropped"]["exemplar_not_knowledge_intensive"] == 2
        # the same run again (resume) and a dry run ask nothing: every decision is cached
        n = len(srv.requests)
        assert main(["generate", "--config", str(tmp_path / "run.yaml"), "--quiet"]) == 0
        capsys.readouterr()
        assert main(["generate", "--config", str(tmp_path / "run.yaml"), "--dry-run"]) == 0
        plan = json.loads(capsys.readouterr().out)
        assert plan["knowledge_filter"]["cached"] == 5 and plan["knowledge_filter"]["pending"] == 0
        assert len(_knowledge_requests(srv)) == 5 and len(srv.requests) == n


@pytest.mark.slow
def test_filter_with_gemma_records_a_decision_per_exemplar(gemma_server: str, wiki_index: Path, tmp_path: Path) -> None:
    """The real model answers yes/no (its judgement is weak; the test checks the plumbing: every
    parseable reply is cached and nothing is asked twice)."""
    from ragloom.generator.backends import make_backend
    from ragloom.generator.config import OpenAIBackendConfig
    from ragloom.generator.knowledge import DecisionCache, knowledge_filter
    from ragloom.generator.types import Exemplar

    exs = [[Exemplar(str(i), t, "t") for i, t in enumerate(EXEMPLARS[:3])]]
    cfg = OpenAIBackendConfig(type="openai", base_url=gemma_server, model="gemma", api_key_env=None, concurrency=1)
    dropped: dict[str, int] = {}
    kept, info = knowledge_filter(exs, make_backend(cfg), tmp_path / "k.jsonl", dropped)
    decisions = DecisionCache(tmp_path / "k.jsonl").decisions
    # every exemplar's outcome is cached, an unparseable reply as undecided (None, kept): asked again,
    # it could come out otherwise and change the plan of a run being resumed
    assert info["asked"] == 3 and len(decisions) == 3
    assert sum(v is None for v in decisions.values()) == info["undecided"]
    assert len(kept[0]) == 3 - dropped.get("exemplar_not_knowledge_intensive", 0)
    again, info2 = knowledge_filter(exs, make_backend(cfg), tmp_path / "k.jsonl", {})
    assert info2["asked"] == 0 and info2["cached"] == 3
    assert again == kept  # cached decisions reapplied
