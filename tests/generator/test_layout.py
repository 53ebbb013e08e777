"""Document order (`documents.order`) and the export's prompt layouts (`--layout fixed | mixed`)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from ragloom.generator.publish.export import export
from ragloom.generator.runs.layout import LAYOUTS, Layouter, order_documents, source_slots
from scipy.stats import chisquare

PARADIGM_SOURCES = {"useless_doc": 1, "single_doc_support": 1, "single_doc_answer": 1, "multi_doc_support": 3}


def _docs(n_sources: int, total: int = 10) -> list[dict]:
    docs = [{"id": f"s{i}", "title": f"S{i}", "text": f"source {i}", "role": "source"} for i in range(n_sources)]
    docs += [
        {"id": f"d{i}", "title": f"D{i}", "text": f"distractor {i}", "role": "distractor", "rank": 200 + i}
        for i in range(total - n_sources)
    ]
    return docs


def _records(order: str, n: int = 1000, seed: int = 7) -> list[dict]:
    kinds = list(PARADIGM_SOURCES)
    out = []
    for pos in range(n):
        paradigm = kinds[pos % len(kinds)]
        docs = order_documents(
            _docs(PARADIGM_SOURCES[paradigm]), order, seed=seed, job_id=f"job-{pos:05d}", position=pos, slots=10
        )
        out.append({"id": f"job-{pos:05d}", "paradigm": paradigm, "instruction": f"Question {pos}?", "answer": "A.",
                    "documents": docs})  # fmt: skip
    return out


@pytest.mark.parametrize("order", ["balanced", "shuffle"])
def test_source_slots_pass_a_chi_squared_uniformity_test_over_1000_records(order: str) -> None:
    slots = source_slots(_records(order))
    observed = [slots[i] for i in range(10)]
    assert sum(observed) == 250 * 3 + 750  # every source was placed once
    assert chisquare(observed).pvalue > 0.01


def test_balanced_order_places_first_sources_more_evenly_than_a_shuffle() -> None:
    def spread(order: str) -> int:
        # the slot of each record's single source, over the one-source records
        c = Counter(
            i for r in _records(order) if r["paradigm"] != "multi_doc_support"
            for i, d in enumerate(r["documents"]) if d["role"] == "source"
        )  # fmt: skip
        return max(c.values()) - min(c.values())

    assert spread("balanced") < spread("shuffle")


def test_sources_first_and_last_put_every_source_at_the_ends() -> None:
    first = order_documents(_docs(3), "sources_first", seed=1, job_id="j", position=0, slots=10)
    last = order_documents(_docs(3), "sources_last", seed=1, job_id="j", position=0, slots=10)
    assert [d["role"] for d in first[:3]] == ["source"] * 3
    assert [d["role"] for d in last[-3:]] == ["source"] * 3


def test_order_is_the_same_for_the_same_job_and_seed_and_keeps_every_document() -> None:
    a = order_documents(_docs(2), "balanced", seed=3, job_id="job-9", position=9, slots=10)
    b = order_documents(_docs(2), "balanced", seed=3, job_id="job-9", position=9, slots=10)
    c = order_documents(_docs(2), "balanced", seed=4, job_id="job-9", position=9, slots=10)
    assert a == b
    assert sorted(d["id"] for d in a) == sorted(d["id"] for d in _docs(2))
    assert [d["id"] for d in a] != [d["id"] for d in c]


def test_a_record_with_fewer_documents_than_slots_is_still_ordered() -> None:
    docs = order_documents(_docs(1, total=4), "balanced", seed=0, job_id="j", position=7, slots=10)
    assert len(docs) == 4 and sum(d["role"] == "source" for d in docs) == 1


def test_unknown_order_is_refused() -> None:
    with pytest.raises(ValueError, match="documents.order"):
        order_documents(_docs(1), "random", seed=0, job_id="j", position=0, slots=10)


# -- export layouts ----------------------------------------------------------------------------


def _run_dir(tmp_path: Path, n: int = 60) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    recs = _records("balanced", n=n)
    for r in recs:
        r |= {"job_id": r["id"], "exemplar": {"id": "e", "source": "builtin", "text": "x", "task_type": None,
                                               "options": []}, "generation": {}}  # fmt: skip
    (out / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    (out / "run.json").write_text(json.dumps({"config": {"seed": 5}}), encoding="utf-8")
    return out


def test_mixed_export_is_byte_identical_for_the_same_seed(tmp_path: Path) -> None:
    out = _run_dir(tmp_path)
    export(out, "messages", tmp_path / "a" / "d.jsonl", layout="mixed", seed=11, plain_share=0.2)
    export(out, "messages", tmp_path / "b" / "d.jsonl", layout="mixed", seed=11, plain_share=0.2)
    export(out, "messages", tmp_path / "c" / "d.jsonl", layout="mixed", seed=12, plain_share=0.2)
    a = (tmp_path / "a" / "d.jsonl").read_bytes()
    assert a == (tmp_path / "b" / "d.jsonl").read_bytes()
    assert a != (tmp_path / "c" / "d.jsonl").read_bytes()


def test_mixed_export_draws_several_layouts_numberings_and_plain_examples(tmp_path: Path) -> None:
    out = _run_dir(tmp_path, n=200)
    card, _, n = export(out, "messages", tmp_path / "m" / "d.jsonl", layout="mixed", seed=1, plain_share=0.25)
    rows = [json.loads(line) for line in (tmp_path / "m" / "d.jsonl").read_text().splitlines()]
    users = [r["messages"][0]["content"] for r in rows]
    assert n == 200
    # each layout's own wording appears
    for name, text in LAYOUTS.items():
        opening = text.split("{")[0] or text.split("}")[1][:12]
        assert any(opening in u for u in users), name
    assert any("[1] " in u for u in users) and any("\n1. " in u or u.startswith("1. ") for u in users)
    plain = [r for r, u in zip(rows, users, strict=True) if "source 0" not in u]
    assert plain, "no plain examples were mixed in"
    assert all(r["paradigm"] in {"useless_doc", "single_doc_support", "multi_doc_support"} for r in plain)
    text = card.read_text()
    assert "--layout mixed" in text and "layout:plain" in text


def test_fixed_export_keeps_the_rag_instruct_prompt(tmp_path: Path) -> None:
    out = _run_dir(tmp_path, n=3)
    export(out, "messages", tmp_path / "f" / "d.jsonl")
    first = json.loads((tmp_path / "f" / "d.jsonl").read_text().splitlines()[0])
    user = first["messages"][0]["content"]
    assert user.startswith("### Paragraph:\n[1] ") and user.endswith("### Instruction:\nQuestion 0?")


def test_mixed_layout_on_a_view_without_a_prompt_is_a_user_error(tmp_path: Path) -> None:
    from ragloom.errors import ConfigError

    out = _run_dir(tmp_path, n=3)
    with pytest.raises(ConfigError, match="--layout mixed"):
        export(out, "raw", tmp_path / "r" / "d.jsonl", layout="mixed")


def test_layouter_refuses_a_plain_share_outside_0_1() -> None:
    with pytest.raises(ValueError, match="plain-share"):
        Layouter("mixed", plain_share=1.5)
