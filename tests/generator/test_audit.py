"""`ragloom audit` on every input shape, its per-record lines, summary and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ragloom.generator.audit.auditor import Auditor
from ragloom.generator.audit.reader import read_input
from ragloom.generator.config import Quality
from ragloom.generator.quality.conformance import ConformanceChecker

from ragloom.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "conformance.jsonl"
MOON = (
    "The Moon is the only natural satellite of Earth. It completes an orbit in relation to Earth and the Sun "
    "every 29.5 days."
)
LEAK = "Paris guides say the engineer's firm put the lattice tower up between 1887 and 1889."


def _doc(pid: str, title: str, text: str, role: str, rank: int, rule: str | None) -> dict[str, Any]:
    return {"id": pid, "title": title, "text": text, "role": role, "rank": rank, "rule": rule}


def _raw_records() -> list[dict[str, Any]]:
    """Raw-view records built from hand-labelled fixture rows, with distractors chosen by hand:
    r0 conforms and is clean, r1 has a distractor carrying its answer, r2 a distractor ranked 50,
    r3 is a single_doc_answer whose document does not state the answer (the Bahrain/Brazil row)."""
    fx = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    eiffel, everest, hamlet = fx[0], fx[1], fx[3]
    brazil = next(r for r in fx if "Brazil" in r["answer"] and r["paradigm"] == "single_doc_answer")
    rows = []
    for i, (r, extra) in enumerate(
        [
            (everest, _doc("m", "Moon", MOON, "distractor", 230, "band")),
            (eiffel, _doc("leak", "Paris", LEAK, "distractor", 215, "band")),
            (hamlet, _doc("m", "Moon", MOON, "distractor", 50, "widened")),
            (brazil, _doc("m", "Moon", MOON, "distractor", 240, "band")),
        ]
    ):
        src = r["sources"][0]
        rows.append(
            {
                "id": f"r{i}",
                "paradigm": r["paradigm"],
                "instruction": r["question"],
                "answer": r["answer"],
                "documents": [_doc(f"s{i}", src["title"], src["text"], "source", 0, None), extra],
                "exemplar": {"id": "e", "source": "builtin", "text": "Name the river that flows through Vienna."},
            }
        )
    return rows


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _lines(path: Path) -> dict[str, dict[str, Any]]:
    return {(d := json.loads(line))["id"]: d for line in path.read_text().splitlines()}


def _expect_raw_issues(got: dict[str, dict[str, Any]]) -> None:
    assert got["r0"]["issues"] == [] and got["r0"]["paradigm_found"] == "states"
    assert got["r1"]["issues"] == ["distractor_leak"] and got["r1"]["scores"]["leaks"] == {"leak": "key_span"}
    assert got["r2"]["issues"] == ["distractor_rank"]
    assert "paradigm_mismatch" in got["r3"]["issues"] and got["r3"]["paradigm_found"] == "no_help"


def test_audit_of_a_run_directory_reports_each_issue_and_short_padding(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _jsonl(run / "examples.jsonl", _raw_records())
    cfg = {"distractors": {"total_docs": 2, "rank_band": [200, 250]}, "quality": {"conformance": True}}
    (run / "run.json").write_text(json.dumps({"config": cfg}))
    out = tmp_path / "audit.jsonl"
    assert main(["audit", str(run), "--out", str(out)]) == 0
    got = _lines(out)
    _expect_raw_issues(got)
    table = capsys.readouterr().out
    assert "distractor_leak" in table and "single_doc_answer" in table and "key_span 1" in table
    # the run's total_docs is known: a record with fewer documents is short_padded
    cfg["distractors"]["total_docs"] = 3
    (run / "run.json").write_text(json.dumps({"config": cfg}))
    assert main(["audit", str(run), "--out", str(out)]) == 0
    assert all("short_padded" in d["issues"] for d in _lines(out).values())


@pytest.mark.parametrize("shape", ["jsonl", "parquet", "datasets"])
def test_audit_reads_the_raw_view_as_jsonl_parquet_and_a_datasets_directory(tmp_path: Path, shape: str) -> None:
    import datasets

    rows = _raw_records()
    if shape == "jsonl":
        src = _jsonl(tmp_path / "raw.jsonl", rows)
    elif shape == "parquet":
        src = tmp_path / "raw.parquet"
        datasets.Dataset.from_list(rows).to_parquet(str(src))
    else:
        src = tmp_path / "raw_ds"
        datasets.Dataset.from_list(rows).save_to_disk(str(src))
    out = tmp_path / "audit.jsonl"
    assert main(["audit", str(src), "--out", str(out)]) == 0
    _expect_raw_issues(_lines(out))


def test_rag_instruct_view_without_roles_checks_what_it_can_and_says_what_it_skipped(tmp_path: Path, capsys) -> None:
    rows = [
        {
            "question": r["instruction"],
            "answer": r["answer"],
            "documents": [f"{d['title']}\n{d['text']}" for d in r["documents"]],
        }
        for r in _raw_records()
    ]
    rows.append(
        {
            "question": "Name the river that flows through Paris.",
            "answer": "I'm sorry, but I cannot help with that.",
            "documents": [],
        }
    )
    src = _jsonl(tmp_path / "rag_instruct.jsonl", rows)
    assert main(["audit", str(src)]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(got) == 5
    for line in got[:4]:
        assert {"paradigm_mismatch", "distractor_leak", "distractor_rank", "instruction_echo"} <= set(line["skipped"])
        assert "distractor_leak" not in line["issues"]
    # what can be checked still is: the grounding over all documents and the lexical validation
    assert got[0]["paradigm_found"] == "states" and got[3]["paradigm_found"] == "no_help"
    # a refusal does not address its question either: relevance (every record, no roles needed) says so too
    assert got[4]["issues"] == ["refusal", "off_topic"] and got[4]["paradigm_found"] is None


def test_exit_code_is_1_only_for_fail_on_codes_found_and_2_for_user_errors(tmp_path: Path, capsys) -> None:
    src = _jsonl(tmp_path / "raw.jsonl", _raw_records())
    out = str(tmp_path / "a.jsonl")
    assert main(["audit", str(src), "--out", out, "--fail-on", "distractor_leak"]) == 1
    assert main(["audit", str(src), "--out", out, "--fail-on", "refusal,truncated"]) == 0
    capsys.readouterr()
    assert main(["audit", str(src), "--fail-on", "distractor_leek"]) == 2
    assert "distractor_leek" in capsys.readouterr().err
    assert main(["audit", str(tmp_path / "missing.jsonl")]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    assert main(["audit", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1" in err and "Traceback" not in err


def test_json_summary_counts_issues_per_paradigm(tmp_path: Path, capsys) -> None:
    src = _jsonl(tmp_path / "raw.jsonl", _raw_records())
    assert main(["audit", str(src), "--json", "--out", str(tmp_path / "a.jsonl")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records"] == 4
    assert summary["issues"]["distractor_leak"] == 1 and summary["issues"]["distractor_rank"] == 1
    assert summary["by_paradigm"]["single_doc_answer"]["records"] == 4
    assert summary["distractor_leaks_by_check"] == {"key_span": 1}


class _Counting:
    def __init__(self) -> None:
        from ragloom.retrieval import Encoder

        self.inner, self.calls = Encoder(), 0

    def encode_passages(self, texts: Any) -> Any:
        self.calls += 1
        return self.inner.encode_passages(texts)


def test_many_records_need_a_few_encoder_calls_per_batch_not_one_per_record(tmp_path: Path) -> None:
    rows = []
    for k in range(150):  # 600 records, distinct answers so nothing comes from the cache
        for r in _raw_records():
            rows.append({**r, "id": f"{r['id']}-{k}", "answer": f"{r['answer']} (note {k})"})
    records, _ = read_input(_jsonl(tmp_path / "many.jsonl", rows))
    enc = _Counting()
    q = Quality()
    auditor = Auditor(
        ConformanceChecker(enc),
        leak_similarity=q.leak_similarity,
        leak_gate_words=q.leak_gate_words,
        band_start=200,
        batch_size=256,
    )
    results = list(auditor.run(records))
    assert len(results) == 600
    batches = 3
    assert enc.calls <= 2 * batches


def test_audit_finds_repeated_instructions_in_input_order_and_eval_set_overlap(tmp_path: Path, capsys) -> None:
    rows = _raw_records()
    again = dict(rows[0], id="r4", instruction=rows[0]["instruction"].upper().rstrip("?") + " ?")  # same words
    near = dict(rows[2], id="r5", instruction=rows[2]["instruction"].rstrip("?.") + " today?")  # one word more
    src = _jsonl(tmp_path / "raw.jsonl", [*rows, again, near])
    evals = _jsonl(
        tmp_path / "eval.jsonl",
        [{"question": "Who wrote the novel Moby-Dick?"}, {"question": rows[1]["instruction"]}],  # row 1 is leaked
    )
    out = tmp_path / "audit.jsonl"
    args = ["audit", str(src), "--out", str(out), "--decontaminate", f"myeval={evals}", "--json"]
    assert main(args) == 0
    got = _lines(out)
    assert got["r4"]["issues"] == ["duplicate_instruction"]
    assert got["r4"]["scores"]["duplicate"]["check"] == "exact" and got["r4"]["scores"]["duplicate"]["of"] == "r0"
    assert "duplicate_instruction" in got["r5"]["issues"] and got["r5"]["scores"]["duplicate"]["of"] == "r2"
    assert "duplicate_instruction" not in got["r0"]["issues"]  # the first of a pair is kept
    assert got["r1"]["issues"] == ["distractor_leak", "contaminated"]
    (m,) = got["r1"]["scores"]["contamination"]
    assert m["eval_set"] == "myeval" and m["eval_id"] == "1" and m["field"] == "instruction"
    assert not any("contaminated" in got[k]["issues"] for k in ("r0", "r2", "r3", "r4", "r5"))
    summary = json.loads(capsys.readouterr().out)
    assert (
        summary["curation_by_check"]["duplicate_exact"] == 1
        and summary["curation_by_check"]["contaminated_myeval"] == 1
    )
    assert summary["issues"]["duplicate_instruction"] == 2
    assert main([*args, "--fail-on", "contaminated"]) == 1
    assert main(["audit", str(src), "--out", str(out), "--decontaminate", "no-equals-sign"]) == 2
