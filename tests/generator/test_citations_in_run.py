"""`answer_style: cited | quoted` end to end through the fake server: the prompts ask for citations, the
check rejects planted wrong ones (asked again, then failed), records renumber [n] to the documents'
final order, and every export (`--layout mixed` included) keeps each [n] pointing at the source it cites
and every quote verbatim; `ragloom audit` reads the RAFT export and reports the citations."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fake_openai import FakeServer, Faults
from runs import jsonl, run_config

from ragloom.cli import main

PARADIGMS = {"single_doc_answer": 1, "multi_doc_answer": 1, "single_doc_support": 1, "multi_doc_support": 1, "useless_doc": 1}  # fmt: skip
MARK = re.compile(r"\[(\d+)\]")


def cited_words(answer: str) -> list[tuple[int, str]]:
    """(n, the five words before the marker) for each [n]: the fake server cites a document's own
    sentence, so those words are that document's."""
    out = []
    for m in MARK.finditer(answer):
        before = MARK.sub("", answer[: m.start()]).replace(".", " ").split()
        out.append((int(m.group(1)), " ".join(before[-5:])))
    return out


def squash(text: str) -> str:
    return " ".join(text.replace(".", " ").split())


def generate(tmp: Path, index: Path, style: str, count: int = 30) -> Path:
    faults = Faults(cited=style == "cited", quoted=style == "quoted", rate_bad_citation=0.25)
    with FakeServer(faults) as srv:
        cfg = run_config(
            tmp,
            index,
            srv.base_url,
            count,
            paradigms=PARADIGMS,
            answer_style=style,
            validation={"attempts": 2},
            quality={"conformance": False, "relevance": False},  # the fake's pairs are not judged here
        )
        assert main(["generate", "--config", str(cfg), "--quiet", "--no-report"]) == 0
        assert srv.counts["bad_citation"] > 0
        prompts = [r["messages"][-1]["content"] for r in srv.requests if "messages" in r]
    assert prompts and all(("Citations: " if style == "cited" else "Form of the answer: ") in p for p in prompts)
    return tmp / "out"


def test_cited_run_renumbers_rejects_planted_citations_and_every_export_resolves(
    wiki_index: Path, tmp_path: Path
) -> None:
    out = generate(tmp_path, wiki_index, "cited")
    recs, failed = jsonl(out / "examples.jsonl"), jsonl(out / "failed.jsonl")
    cited = [f for f in failed if f["reason"].startswith("citation_")]
    assert recs and cited and {f["reason"] for f in failed} - {"not_multiple_choice"} <= {"citation_unsupported", "citation_to_useless"}  # fmt: skip
    assert all(f["attempts"] == 2 for f in cited)  # asked again before failing
    moved = 0
    for r in recs:
        docs = r["documents"]
        assert len(docs) == 10 and r["quality"]["citations"]["precision"] in (None, 1.0)
        for n, words in cited_words(r["answer"]):
            assert docs[n - 1]["role"] == "source" and words in squash(docs[n - 1]["text"]), (r["id"], n, words)
            moved += n != 1
        if r["paradigm"] == "useless_doc":
            assert not MARK.search(r["answer"])
    assert moved  # sources do sit elsewhere than first: renumbering was exercised
    stats = json.loads((out / "run.json").read_text())["stats"]
    assert stats["counts"]["citations_passed"] == len(recs)
    assert stats["rejected"]["citation_unsupported"] >= 1
    answered = [r for r in recs if r["paradigm"] == "single_doc_answer"]
    cites = sum(len(MARK.findall(r["answer"])) for r in answered)
    assert answered and stats["counts"]["citation_supported_single_doc_answer"] >= cites  # per paradigm in run.json

    to = tmp_path / "exp" / "mixed.jsonl"
    assert main(["export", str(out), "--to", str(to), "--layout", "mixed", "--format", "messages"]) == 0
    rows = [json.loads(x) for x in to.read_text().splitlines()]
    card = (tmp_path / "exp" / "README.md").read_text()
    line = next(x for x in card.splitlines() if x.startswith("- citations (`quality.citations`)"))
    assert f"single_doc_answer precision 1.00, recall 1.00 ({len(answered)} records)" in line
    numberings = set()
    for row in rows:
        user, answer = row["messages"][0]["content"], row["messages"][1]["content"]
        for n, words in cited_words(answer):
            block = re.search(rf"^(?:\[{n}\] |{n}\. )(.*?)(?=^\[\d+\] |^\d+\. |\Z)", user, re.M | re.S)
            assert block, (row["id"], n)  # the n-th document is numbered n in the exported prompt
            numberings.add("brackets" if block.group(0).startswith("[") else "dotted")
            assert words in squash(block.group(1)), (row["id"], n)
    assert numberings == {"brackets", "dotted"}  # both drawn (seeded), never "none" for a cited record
    assert main(["report", str(out), "--to", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "Citations per paradigm" in html  # the report's table, fed by its per-paradigm summary:
    assert f'"single_doc_answer":"precision 1.00, recall 1.00 ({len(answered)} records)"' in html
    assert main(["export", str(out), "--to", str(tmp_path / "exp" / "plain.jsonl"), "--strip-citations"]) == 0
    plain = [json.loads(x) for x in (tmp_path / "exp" / "plain.jsonl").read_text().splitlines()]
    assert len(plain) == len(recs) and not any(MARK.search(p["messages"][1]["content"]) for p in plain)


def test_quoted_run_keeps_verbatim_quotes_and_audit_reads_its_raft_export(wiki_index: Path, tmp_path: Path) -> None:
    out = generate(tmp_path, wiki_index, "quoted")
    recs, failed = jsonl(out / "examples.jsonl"), jsonl(out / "failed.jsonl")
    assert recs and {f["reason"] for f in failed} - {"not_multiple_choice"} == {"quote_not_in_source"}
    for r in recs:
        sources = [d["text"] for d in r["documents"] if d["role"] == "source"]
        quotes = re.findall(r"##begin_quote## (.*?) ##end_quote##", r["answer"])
        assert (not quotes) == (r["paradigm"] == "useless_doc")
        assert all(any(q in s for s in sources) for q in quotes)  # verbatim
        assert "<ANSWER>: " in r["answer"]
    mixed = tmp_path / "exp" / "mixed.jsonl"
    assert main(["export", str(out), "--to", str(mixed), "--layout", "mixed", "--format", "sharegpt"]) == 0
    for row in (json.loads(x) for x in mixed.read_text().splitlines()):
        user, answer = row["conversations"][0]["value"], row["conversations"][1]["value"]
        quotes = re.findall(r"##begin_quote## (.*?) ##end_quote##", answer)
        assert all(q in user for q in quotes), row["id"]  # each quote verbatim in the prompt's documents
    to = tmp_path / "exp" / "raft.jsonl"
    assert main(["export", str(out), "--to", str(to), "--format", "raft"]) == 0
    rows = [json.loads(x) for x in to.read_text().splitlines()]
    assert {"question", "context", "oracle_context", "cot_answer", "instruction"} <= set(rows[0])
    from ragloom.generator.audit.command import audit

    results, summary = audit(to)  # RAFT's own layout: roles from oracle_context, quotes checked
    assert len(results) == len(recs)
    assert all("quote_not_in_source" not in r["issues"] for r in results)
    cit = summary.to_dict()["citations"]
    assert cit["quotes"] == sum(r["answer"].count("##begin_quote##") for r in recs) and cit["quotes_verbatim"] == 1.0


def test_audit_reports_citation_precision_recall_and_fails_on_its_codes(wiki_index: Path, tmp_path: Path) -> None:
    """A cited dataset with wrong citations written in by hand: audit flags exactly those, and
    `--fail-on citation_unsupported` exits 1 on it and 0 on the clean run."""
    from ragloom.generator.audit.command import audit

    out = generate(tmp_path, wiki_index, "cited", count=15)
    recs = jsonl(out / "examples.jsonl")
    results, summary = audit(out)
    assert not [r for r in results if any(c.startswith("citation_") for c in r["issues"])]
    cit = summary.to_dict()["citations"]
    assert cit["precision"] == 1.0 and cit["citations"] == sum(len(MARK.findall(r["answer"])) for r in recs)
    assert main(["audit", str(out), "--json", "--fail-on", "citation_unsupported,citation_missing"]) == 0

    bad = tmp_path / "bad.jsonl"
    rows, wrong = [], set()
    for r in recs:
        cites = [int(n) for n in MARK.findall(r["answer"])]
        distractor = next(i for i, d in enumerate(r["documents"], 1) if d["role"] == "distractor")
        if cites and len(wrong) < 3:  # point the first citation at a distractor
            r = {**r, "answer": r["answer"].replace(f"[{cites[0]}]", f"[{distractor}]", 1)}
            wrong.add(r["id"])
        rows.append(r)
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results, summary = audit(bad)
    flagged = {r["id"] for r in results if "citation_unsupported" in r["issues"]}
    assert flagged == wrong and summary.to_dict()["citations"]["precision"] < 1.0
    assert main(["audit", str(bad), "--json", "--fail-on", "citation_unsupported"]) == 1
