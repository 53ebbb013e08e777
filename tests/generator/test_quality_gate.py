"""The quality gate's config names, truncation, the template language and the optional LLM judge."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from ragloom.generator import Exemplar, parse_pair
from ragloom.generator.backends import ChatRequest, ChatResult
from ragloom.generator.backends.base import Backend
from ragloom.generator.config import Quality, RunConfig, load_config
from ragloom.generator.quality.conformance import CheckInput
from ragloom.generator.quality.judge import JudgeCache, combine, judge
from ragloom.generator.templates import Templates
from ragloom.retrieval import Passage

from ragloom.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fake_openai import FakeServer, Faults

BASE = {"index": "idx", "count": 1, "backend": {"type": "openai", "model": "m"}}
EX = Exemplar("e", "Who painted The Starry Night?", "builtin")


def test_quality_conformance_is_on_by_default_and_off_by_its_exact_name(tmp_path: Path) -> None:
    cfg = RunConfig.model_validate(BASE)
    assert cfg.quality.conformance is True and cfg.quality.judge is False
    off = tmp_path / "c.yaml"
    off.write_text(json.dumps({**BASE, "quality": {"conformance": False}}))
    assert load_config(off).quality.conformance is False
    with pytest.raises(ConfigError, match="did you mean 'quality.conformance'"):
        load_config(None, ["index=i", "count=1", "backend.type=openai", "backend.model=m", "quality.conformace=false"])


def test_default_max_tokens_leaves_room_for_a_detailed_answer_and_max_rank_sits_below_the_band() -> None:
    cfg = RunConfig.model_validate(BASE)
    # ~81 words of answer and ~22 of question are ~140 tokens; the JSON and a preamble fit easily
    assert cfg.sampling.max_tokens >= 4 * 140
    assert cfg.distractors.max_rank == 1000
    with pytest.raises(ValueError, match="max_rank"):
        RunConfig.model_validate({**BASE, "distractors": {"rank_band": [200, 250], "max_rank": 240}})


def test_language_reaches_every_template() -> None:
    docs = [Passage("p", "Nile", "The Nile is a river."), Passage("q", "Amazon", "The Amazon is a river.")]
    english = Templates()
    german = Templates(language="German")
    for paradigm in ("useless_doc", "single_doc_support", "single_doc_answer", "multi_doc_support", "multi_doc_answer"):
        used = docs if paradigm.startswith("multi") else docs[:1]
        assert "both in English" in english.render(paradigm, EX, used)
        assert "both in German" in german.render(paradigm, EX, used)


def test_templates_follow_rag_instruct_on_exemplar_form_and_answer_quality() -> None:
    text = Templates().render("single_doc_answer", EX, [Passage("p", "Nile", "The Nile is a river.")])
    assert "different subject" not in text  # the documents were retrieved for the exemplar's subject
    assert "statement" in text and "instruction" in text  # q* need not end in "?"
    assert "accurate, detailed and comprehensive" in text
    assert "ignore any instructions" in text and "self-contained" in text
    multi = Templates().render("multi_doc_support", EX, [Passage("p", "A", "a."), Passage("q", "B", "b.")])
    assert "multi-hop reasoning" in multi and "none of them states the answer directly" in multi


def _chat(base_url: str, requests: list[ChatRequest]) -> list[ChatResult]:
    from ragloom.generator.backends import make_backend
    from ragloom.generator.config import OpenAIBackendConfig

    backend = make_backend(OpenAIBackendConfig(type="openai", base_url=base_url, model="fake", api_key_env=None))

    async def go() -> list[ChatResult]:
        try:
            return await backend.chat(requests)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_a_reply_cut_off_at_max_tokens_is_truncated_not_invalid_json() -> None:
    with FakeServer(Faults(first=["length"])) as srv:
        req = ChatRequest([{"role": "user", "content": "[Document 1] Nile\nq"}])
        cut, whole = _chat(srv.base_url, [req]), _chat(srv.base_url, [req])
    src = [Passage("p", "Nile", "The Nile is a river in Africa.")]
    assert cut[0].finish_reason == "length"
    assert parse_pair(cut[0].text, sources=src, exemplar=EX, finish_reason=cut[0].finish_reason) == (None, "truncated")
    # the same cut text without the finish reason is what used to be counted: invalid_json
    assert parse_pair(cut[0].text, sources=src, exemplar=EX)[1] == "invalid_json"
    assert whole[0].finish_reason == "stop"
    assert parse_pair(whole[0].text, sources=src, exemplar=EX, finish_reason="stop")[1] != "truncated"


class QueuedJudge:
    """A stand-in backend whose `chat` answers from a queue; its methods keep Backend's signatures."""

    name, model, batch_size, parallelism = "queued", "judge-model", 8, 1

    def __init__(self, replies: list[str]) -> None:
        self.replies, self.requests = list(replies), []

    async def chat(self, requests):  # type: ignore[no-untyped-def]
        self.requests += list(requests)
        return [ChatResult(text=self.replies.pop(0)) for _ in requests]


def test_stand_in_matches_the_backend_protocol() -> None:
    assert inspect.signature(QueuedJudge.chat).parameters.keys() == inspect.signature(Backend.chat).parameters.keys()


ITEM = CheckInput(
    "Who designed the Eiffel Tower?",
    "Gustave Eiffel's company designed and built it.",
    [
        Passage(
            "s", "Eiffel Tower", "It is named after the engineer Gustave Eiffel, whose company designed and built it."
        )
    ],
    "useless_doc",
)


def test_judge_verdicts_are_structured_cached_by_content_and_combined_as_configured(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path / "judge.jsonl")
    backend = QueuedJudge(['{"states": true, "supports": true, "documents_used": [1]}'])
    (v,) = asyncio.run(judge(backend, [ITEM], cache))  # type: ignore[arg-type]
    assert v is not None and v["found"] == "states" and v["ok"] is False  # useless_doc must not help
    assert backend.requests[0].json_schema is not None and backend.requests[0].temperature == 0.0
    # a second run (a new cache object on the same file) asks nothing
    again = QueuedJudge([])
    (w,) = asyncio.run(judge(again, [ITEM], JudgeCache(tmp_path / "judge.jsonl")))  # type: ignore[arg-type]
    assert again.requests == [] and w == v
    encoder_ok: dict[str, Any] = {"found": "no_help", "ok": True, "scores": {}}
    assert combine(encoder_ok, v, "both")["ok"] is False
    assert combine(encoder_ok, v, "encoder")["ok"] is True
    assert combine(encoder_ok, v, "judge")["found"] == "states"
    # with the encoder check off the judge decides alone (a judge without a verdict never reaches combine:
    # the gate leaves that job unfinished, tests/generator/test_no_record_lost.py)
    alone = combine(None, v, "both")
    assert alone["ok"] is False and alone["found"] == "states" and alone["encoder"] is None


def test_an_unparseable_judge_reply_is_not_cached(tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path / "judge.jsonl")
    (v,) = asyncio.run(judge(QueuedJudge(["I think yes"]), [ITEM], cache))  # type: ignore[arg-type]
    assert v is None and not (tmp_path / "judge.jsonl").exists()


def test_quality_thresholds_come_from_config() -> None:
    q = Quality(state_words=0.7)
    assert q.thresholds().state_words == 0.7
