"""The card's figures: PNGs written beside the card, referenced from it, and uploaded by push."""

from __future__ import annotations

import json
import re
from pathlib import Path

import huggingface_hub
import pytest
from ragloom.generator.publish.export import export
from ragloom.generator.publish.push import push
from test_push_and_secrets import StandInHfApi

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(tmp_path: Path) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    recs = []
    for i, paradigm in enumerate(["useless_doc", "single_doc_answer", "multi_doc_answer"] * 5):
        docs = [{"id": f"s{i}", "title": "T", "text": "source", "role": "source", "rank": 0, "rule": None}]
        docs += [
            {
                "id": f"d{i}-{k}",
                "title": "D",
                "text": "other",
                "role": "distractor",
                "rank": 200 + 7 * k,
                "rule": "band",
            }
            for k in range(4)
        ]
        docs = docs[i % 5 :] + docs[: i % 5]
        recs.append({
            "id": f"job-{i:03d}", "job_id": f"job-{i:03d}", "paradigm": paradigm,
            "instruction": "What is it " + "really " * i + "?", "answer": "It is " + "so " * (2 * i) + ".",
            "documents": docs,
            "exemplar": {"id": "e", "source": "builtin", "text": "x", "task_type": None, "options": []},
            "generation": {},
        })  # fmt: skip
    failed = [
        {"job_id": "job-900", "reason": "duplicate_instruction", "attempts": 3},
        {"job_id": "job-901", "reason": "invalid_json", "attempts": 3},
        {"job_id": "job-902", "reason": "contaminated", "attempts": 1,
         "curation": {"contamination": [{"eval_set": "popqa", "method": "exact", "eval_id": "pq-17",
                                         "field": "instruction"}]}},
    ]  # fmt: skip
    (out / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    (out / "failed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in failed), encoding="utf-8")
    cfg = {
        "seed": 0,
        "documents": {"order": "balanced"},
        "curation": {"decontaminate": [{"name": "popqa"}, {"name": "nq"}]},
    }
    (out / "run.json").write_text(json.dumps({"config": cfg}), encoding="utf-8")
    return out


def test_figures_are_written_beside_the_card_as_png_and_referenced_from_it(tmp_path: Path) -> None:
    card, _, _ = export(_run(tmp_path), "messages", tmp_path / "exp" / "data.jsonl")
    text = card.read_text()
    refs = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", text)
    assert {Path(r).stem for r in refs} == {"lengths", "distractor_ranks", "source_slots", "source_reuse", "rejections"}
    for r in refs:
        png = card.parent / r
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 2000


def test_card_has_the_contamination_table_slot_histogram_and_curation_counts(tmp_path: Path) -> None:
    card, _, _ = export(_run(tmp_path), "messages", tmp_path / "exp" / "data.jsonl")
    text = card.read_text()
    assert "| popqa | 0 | 0 | 1 | 0 | `pq-17` |" in text
    assert "| nq | 0 | 0 | 0 | 0 |  |" in text
    assert "- duplicate_instruction: 1 jobs" in text and "- contaminated: 1 jobs" in text
    # 15 records, one source each, rotated over 5 slots: 3 per slot
    assert "### Source slots (documents.order: balanced)" in text
    assert all(f"| {s} | 3 |" in text for s in range(1, 6))


def test_the_same_records_draw_the_same_figure_bytes(tmp_path: Path) -> None:
    run = _run(tmp_path)
    a, _, _ = export(run, "messages", tmp_path / "a" / "data.jsonl")
    b, _, _ = export(run, "messages", tmp_path / "b" / "data.jsonl")
    for name in ("lengths", "source_slots"):
        assert (a.parent / "figures" / f"{name}.png").read_bytes() == (
            b.parent / "figures" / f"{name}.png"
        ).read_bytes()


def test_push_uploads_the_figures_with_the_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    StandInHfApi.calls.clear()
    StandInHfApi.uploaded.clear()
    StandInHfApi.fail_status = None
    monkeypatch.setattr(huggingface_hub, "HfApi", StandInHfApi)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_for_figures")
    push(_run(tmp_path), "alice/figs")
    up = StandInHfApi.uploaded
    assert "README.md" in up
    for r in re.findall(r"\]\(([^)]+\.png)\)", up["README.md"].decode()):
        assert up[r][:8] == PNG_MAGIC
