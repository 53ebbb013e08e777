"""A run on an index built with a fast encoder backend embeds with that backend in every check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeServer, Faults
from ragloom.generator.audit.command import audit
from ragloom.retrieval import CorpusSpec, EncoderSpec, build_index
from ragloom.retrieval import encoder as encoder_module
from runs import jsonl, run_config

from ragloom.cli import main


def test_a_run_on_an_openvino_index_embeds_every_check_with_one_openvino_encoder(
    wiki_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("RAGLOOM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "encoder-cache"))
    index = tmp_path / "idx"
    build_index(CorpusSpec(str(wiki_corpus)), index, encoder=EncoderSpec(backend="openvino"), limit=120)
    evals = tmp_path / "eval.jsonl"
    evals.write_text(json.dumps({"question": "Which painter made the portrait of Lisa Gherardini?"}) + "\n")

    loads: list[tuple[str, str]] = []
    real_load = encoder_module.load_model

    def spy(load_path: str, backend: str, quantize: Any, device: str, offline: bool, *rest: Any) -> Any:
        loads.append((backend, rest[0] if rest else "f32"))
        return real_load(load_path, backend, quantize, device, offline, *rest)

    monkeypatch.setattr(encoder_module, "load_model", spy)
    with FakeServer(Faults(grounded=True)) as srv:
        cfg = run_config(
            tmp_path,
            index,
            srv.base_url,
            12,
            paradigms={"single_doc_answer": 1},
            quality={"conformance": True},  # the paradigm check; the leak screen is on by default
            curation={"dedup": {"enabled": True}, "decontaminate": [{"name": "e", "path": str(evals), "cosine": 0.9}]},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
    recs = jsonl(tmp_path / "out" / "examples.jsonl")
    assert recs and all(r["quality"]["scores"] for r in recs)  # the paradigm check embedded them
    # index search, distractor search, paradigm check, leak screen, dedup and decontamination's cosine:
    # one encoder object, loaded once, with the index's backend
    assert loads == [("openvino", "f32")]
    results, _ = audit(tmp_path / "out")
    assert len(results) == len(recs)
    assert loads == [("openvino", "f32")] * 2  # audit: one more process-level encoder, the same backend
