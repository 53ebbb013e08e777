"""The registries that make a paradigm, a record check and a backend one entry each (issue 27).

A sixth paradigm and a new check are added here, in the test itself, exactly as README's recipes say
(a template plus one `register` entry; a check class plus one `CHECKS` line), and run end to end
against the fake server: the plan, the prompt, the paradigm check, the record, the card and audit
all pick them up with no other change."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from fake_openai import FakeServer, Faults
from ragloom.generator import paradigms
from ragloom.generator.paradigms import Paradigm
from ragloom.generator.quality import checks
from ragloom.generator.quality.checks import CheckItem, Outcome
from runs import jsonl, run_config

from ragloom.cli import main

TOY = "pair_answer"
TOY_TEMPLATE = """{%- import "_macros.j2" as m -%}
You write training data for a retrieval-augmented assistant.

{{ m.task_intro(language) }}

{{ m.simulated_instruction(exemplar) }}

Documents:
{{ m.document_block(documents) }}
Task: the answer must be stated by the first document; the second gives context.
{{ m.answer_quality() }}

{{ m.output_contract(exemplar) }}
"""


def _toy(rule) -> Paradigm:
    return Paradigm(TOY, "two documents, the first states the answer", (2, 2), conformance=rule)


def _run_toy(tmp_path: Path, wiki_index: Path, count: int = 12) -> Path:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / f"{TOY}.j2").write_text(TOY_TEMPLATE)  # the built-in templates are found beside it
    with FakeServer(Faults(grounded=True)) as srv:  # answers restate document 1's first sentence
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            count,
            paradigms={TOY: 1, "single_doc_answer": 1},
            templates=str(prompts),
            quality={"conformance": True},
            validation={"attempts": 2},
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
    return tmp_path / "out"


def test_a_sixth_paradigm_is_a_template_and_one_registry_entry(
    wiki_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(paradigms.PARADIGMS, TOY, _toy(lambda found, single, contributing: found == "states"))
    out = _run_toy(tmp_path, wiki_index)
    recs = jsonl(out / "examples.jsonl")
    toy = [r for r in recs if r["paradigm"] == TOY]
    assert len(toy) >= 4  # 6 planned; the grounded server's answers are stated by document 1
    for r in toy:
        sources = [d for d in r["documents"] if d["role"] == "source"]
        assert len(sources) == 2  # the entry's (2, 2) sources, padded with distractors to 10
        assert len(r["documents"]) == 10
        assert r["quality"]["found"] == "states" and r["quality"]["ok"] is True
        # the prompt came from the toy template (its own task line), recorded by name and hash
        assert r["generation"]["template"].startswith(TOY)
    # the card lists the paradigm with its definition, from the registry entry
    assert main(["export", str(out), "--to", str(tmp_path / "exp" / "d.jsonl")]) == 0
    card = (tmp_path / "exp" / "README.md").read_text()
    assert f"- `{TOY}`: two documents, the first states the answer" in card
    assert re.search(rf"\| {TOY} \| {len(toy)} \| {len(toy)} \|", card)


def test_the_paradigm_check_applies_the_new_entrys_rule(
    wiki_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same run with a rule no record meets: every toy job is re-asked, then fails as
    paradigm_mismatch, while the built-in paradigm beside it is untouched."""
    monkeypatch.setitem(paradigms.PARADIGMS, TOY, _toy(lambda found, single, contributing: False))
    out = _run_toy(tmp_path, wiki_index)
    recs = jsonl(out / "examples.jsonl")
    assert [r for r in recs if r["paradigm"] == TOY] == []
    assert len([r for r in recs if r["paradigm"] == "single_doc_answer"]) >= 4
    failed = [f for f in jsonl(out / "failed.jsonl") if f["reason"] == "paradigm_mismatch"]
    assert len(failed) == 6 and all(f["attempts"] == 2 for f in failed)
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert stats["counts"][f"paradigm_mismatch_{TOY}"] == 12  # 6 jobs, each asked twice


def test_an_unknown_paradigm_names_the_registered_ones(tmp_path: Path, wiki_index: Path, capsys) -> None:
    cfg = run_config(tmp_path, wiki_index, "http://127.0.0.1:9/v1", 2, paradigms={"single_doc_answr": 1})
    assert main(["generate", "--config", str(cfg), "--quiet"]) == 2
    assert "did you mean 'single_doc_answer'?" in capsys.readouterr().err


class NoDigits:
    """A toy record check: an answer may not hold a digit (code `answer_has_digits`)."""

    name = "no_digits"
    key = "no_digits"
    codes = ("answer_has_digits",)
    per_paradigm = frozenset({"answer_has_digits"})
    breaker = "judge"
    reads_markers = False

    @classmethod
    def build(cls, q, ctx) -> NoDigits:
        return cls()

    def applies(self, paradigm: str | None) -> bool:
        return True

    async def averdicts(self, items: Sequence[CheckItem]) -> list[Outcome]:
        out = []
        for i in items:
            digits = len(re.findall(r"\d", i.answer))
            out.append(Outcome(digits == 0, "answer_has_digits" if digits else None, {"digits": digits}))
        return out

    def figures(self, outcomes: Sequence[Outcome]) -> Counter[str]:
        return Counter("no_digits_passed" if o.ok else "no_digits_failed" for o in outcomes)


def test_a_new_check_is_a_class_and_one_registry_line_and_audit_runs_it_too(
    wiki_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checks, "CHECKS", [*checks.CHECKS, ("no_digits", f"{__name__}:NoDigits")])
    with FakeServer(Faults(grounded=True)) as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 30, validation={"attempts": 2})
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
    out = tmp_path / "out"
    recs, failed = jsonl(out / "examples.jsonl"), jsonl(out / "failed.jsonl")
    assert recs and failed  # Wikipedia first sentences: some carry years, some do not
    for r in recs:
        assert not re.search(r"\d", r["answer"]) and r["quality"]["no_digits"] == {"digits": 0}
    digits = [f for f in failed if f["reason"] == "answer_has_digits"]
    assert digits and all(f["attempts"] == 2 for f in digits)  # asked again, then failed with the check's code
    counts = json.loads((out / "run.json").read_text())["stats"]["counts"]
    assert counts["no_digits_passed"] == len(recs)
    assert counts["no_digits_failed"] >= 2 * len(digits)
    # audit builds its checks from the same registry: a dataset with a digit in one answer is flagged
    rows = [{**recs[0], "id": "a"}, {**recs[0], "id": "b", "answer": recs[0]["answer"] + " It ended in 1999."}]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = tmp_path / "audit.jsonl"
    assert main(["audit", str(data), "--index", str(wiki_index), "--out", str(lines), "--json"]) == 0
    assert main(["audit", str(data), "--index", str(wiki_index), "--json", "--fail-on", "answer_has_digits"]) == 1
    per = {r["id"]: r for r in jsonl(lines)}
    assert "answer_has_digits" in per["b"]["issues"] and "answer_has_digits" not in per["a"]["issues"]


def test_every_registered_backends_keys_get_a_did_you_mean(tmp_path: Path, wiki_index: Path, capsys) -> None:
    """The backend registry feeds config errors: a typo in the in-process llama_cpp scorer's section gets
    the same one-line hint as the openai section (before the registry it got none: the tags were a hand
    list of two)."""
    scorer = {"type": "llama_cpp", "model_path": "m.gguf", "n_ctxx": 512}
    cfg = run_config(tmp_path, wiki_index, "http://127.0.0.1:9/v1", 2, quality={"necessity_backend": scorer})
    assert main(["generate", "--config", str(cfg), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown key 'quality.necessity_backend.n_ctxx'; did you mean 'quality.necessity_backend.n_ctx'?" in err
    assert err.count("\n") == 0 and "Traceback" not in err
