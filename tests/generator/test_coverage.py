"""Issue 28: a dataset that covers the corpus. `sources.strategy: corpus` uses every passage once
before any twice, `exemplar` + `max_reuse` caps reuse, the sources are decided in the plan (resume
gives the same), and coverage is reported in run.json, the card, the report and the audit.

Expected values are counted here from the records' documents and the index's own files, not with
generator/publish/coverage.py."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fake_openai import FakeServer, Faults
from ragloom.generator.config import ExemplarSource, load_config
from ragloom.generator.plan import plan_hash
from ragloom.generator.run import plan_jobs
from ragloom.retrieval import Encoder, Index
from runs import jsonl, kill_at, run_config
from test_report import chromium  # noqa: F401  (the fixture)

from ragloom.cli import main
from ragloom.errors import ConfigError

FAKE_BACKEND = {"type": "openai", "model": "x", "base_url": "http://127.0.0.1:9/v1", "api_key_env": None}


def _plan(index: Path, count: int, sources: dict, seed: int = 0) -> tuple[list, dict]:
    cfg = load_config(
        None,
        [],
        base={"index": str(index), "count": count, "seed": seed, "sources": sources, "output": "unused"}
        | {"backend": FAKE_BACKEND},
    )
    info: dict = {}
    jobs, _ = plan_jobs(cfg, None, info, index=Index(index))
    return jobs, info


def _words(text: str) -> set[str]:
    return set(re.sub(r"[^\w\s]", " ", text.lower()).split())


def test_corpus_strategy_uses_every_passage_once_before_any_twice(wiki_index: Path) -> None:
    """400 passages. 150 jobs fill fewer slots than the corpus: no passage twice. 300 jobs fill more:
    then every passage is a source and none more than twice. A multi-doc job's other sources are
    its first passage's neighbours, not near duplicates of each other."""
    index = Index(wiki_index)
    n = len(index)
    jobs, info = _plan(wiki_index, 150, {"strategy": "corpus"})
    slots = [r for j in jobs for r in j.source_rows]
    assert all(len(j.source_rows) == j.n_sources for j in jobs)
    assert len(slots) <= n and len(set(slots)) == len(slots)
    assert info["sources"]["planned_distinct"] == len(set(slots)) and info["sources"]["source_reuse_exceeded"] == 0
    for j in jobs:
        texts = [_words(p.text) for p in index.store.get_rows(list(j.source_rows))]
        for a in range(len(texts)):
            for b in range(a + 1, len(texts)):
                assert len(texts[a] & texts[b]) / len(texts[a] | texts[b]) < 0.8
    more, minfo = _plan(wiki_index, 300, {"strategy": "corpus"})
    uses = Counter(r for j in more for r in j.source_rows)
    assert sum(uses.values()) > n and len(uses) == n
    # a multi-doc job with no unused neighbour within max_depth (here a quarter of the corpus) takes
    # the least used one and counts it: nothing beyond twice that is not counted
    over = sum(c - 2 for c in uses.values() if c > 2)
    assert over <= minfo["sources"]["source_reuse_exceeded"] <= 0.02 * sum(uses.values())
    # the exemplar fits the passage: among the 8 built-in exemplars nearest to it (embedded here)
    enc = Encoder(index.encoder_spec)
    from ragloom.generator.exemplars import load_source

    builtin = load_source(ExemplarSource())
    ex_vecs = enc.encode_queries([e.text for e in builtin])
    sample = jobs[:20]
    first = index.store.get_rows([j.source_rows[0] for j in sample])
    p_vecs = enc.encode_passages([f"{p.title} {p.text}" for p in first])  # as the index embeds them
    for j, v in zip(sample, p_vecs, strict=True):
        nearest = {builtin[i].id for i in np.argsort(-(ex_vecs @ v))[:12]}  # 8 asked, 4 for float ties
        assert j.exemplar.id in nearest
    assert len({j.exemplar.id for j in jobs}) > 30  # the seeded pick among 8 still varies them


def test_exemplar_max_reuse_caps_planned_sources_and_deeper_hits_fill_in(wiki_index: Path) -> None:
    free, _ = _plan(wiki_index, 300, {})
    assert not any(j.source_rows for j in free)  # the default still picks at run time
    capped, info = _plan(wiki_index, 300, {"max_reuse": 2})
    uses = Counter(r for j in capped for r in j.source_rows)
    assert max(uses.values()) <= 2 and info["sources"]["source_reuse_exceeded"] == 0
    assert all(len(j.source_rows) >= min(j.n_sources, 2) for j in capped)
    # the same plan without the cap reuses passages: its top-5 picks, as the run picks them
    cfg = load_config(None, [], base={"index": str(wiki_index), "count": 300, "output": "x", "backend": FAKE_BACKEND})
    from ragloom.generator.sources import select_sources

    picked = select_sources(free, Index(wiki_index), cfg.sources, cfg.seed)
    assert max(Counter(p.id for j in picked for p in j.sources).values()) > 2
    # max_reuse 1 over 300 jobs runs past max_depth 3 for some: counted, never a failure
    tight, tinfo = _plan(wiki_index, 300, {"max_reuse": 1, "max_depth": 5})
    exceeded = sum(c - 1 for c in Counter(r for j in tight for r in j.source_rows).values() if c > 1)
    assert tinfo["sources"]["source_reuse_exceeded"] == exceeded > 0


def test_plan_hash_covers_the_strategy_and_its_settings(wiki_index: Path) -> None:
    index = Index(wiki_index)
    hashes = set()
    for sources in (
        {},
        {"strategy": "corpus"},
        {"strategy": "corpus", "exemplar_pool": 4},
        {"max_reuse": 2},
        {"max_reuse": 3},
    ):
        cfg = load_config(
            None,
            [],
            base={"index": str(wiki_index), "count": 40, "output": "x", "sources": sources, "backend": FAKE_BACKEND},
        )
        jobs, _ = plan_jobs(cfg, None, {}, index=index)
        hashes.add(plan_hash(cfg, jobs))
    assert len(hashes) == 5


def test_max_reuse_with_the_corpus_strategy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_reuse applies to strategy exemplar"):
        load_config(
            None,
            [],
            base={
                "output": "x",
                "index": "x",
                "count": 1,
                "backend": FAKE_BACKEND,
                "sources": {"strategy": "corpus", "max_reuse": 2},
            },
        )


def _sources_by_job(out: Path) -> dict[str, list[str]]:
    return {
        r["job_id"]: [d["id"] for d in r["documents"] if d["role"] == "source"] for r in jsonl(out / "examples.jsonl")
    }


def test_coverage_in_run_json_card_report_and_audit_match_the_records(
    wiki_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 120, sources={"strategy": "corpus"})
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    out = tmp_path / "out"
    by_job = _sources_by_job(out)
    assert len(by_job) > 100
    uses = Counter(i for ids in by_job.values() for i in ids)
    n = len(Index(wiki_index))
    assert max(uses.values()) == 1  # strategy corpus, fewer slots than passages
    run = json.loads((out / "run.json").read_text())
    cov = run["coverage"]
    assert cov["distinct_sources"] == len(uses) and cov["source_slots"] == sum(uses.values())
    assert cov["corpus_passages"] == n and abs(cov["corpus_share"] - len(uses) / n) < 1e-6
    assert cov["max_reuse"] == 1 and cov["mean_reuse"] == 1.0 and cov["reuse_histogram"] == {"1": len(uses)}
    assert run["sources"]["strategy"] == "corpus" and run["sources"]["planned_slots"] >= sum(uses.values())
    # the card (export) and its figure
    assert main(["export", str(out), "--to", str(tmp_path / "ds")]) == 0
    card = (tmp_path / "ds" / "README.md").read_text()
    assert f"distinct source passages: {len(uses):,} ({len(uses) / n:.1%} of {n:,} passages)" in card
    assert "reuse per passage: max 1, mean 1.00" in card and "figures/source_reuse.png" in card
    assert (tmp_path / "ds" / "figures" / "source_reuse.png").stat().st_size > 1000
    # the report's data block
    page = (out / "report.html").read_text()
    data = json.loads(re.search(r'id="ragloom-data"[^>]*>(.*?)</script>', page, re.S).group(1))
    assert data["coverage"]["distinct_sources"] == len(uses) and data["coverage"]["reuse_histogram"] == {"1": len(uses)}
    assert "fig-source-reuse" in page and "stat-corpus-share" in page
    # the audit of the exported records against the index
    capsys.readouterr()
    rc = main(
        ["audit", str(out / "examples.jsonl"), "--index", str(wiki_index), "--json", "--out", str(tmp_path / "a.jsonl")]
    )
    assert rc == 0
    audited = json.loads(capsys.readouterr().out)["coverage"]
    assert audited["distinct_sources"] == len(uses) and audited["source_slots"] == sum(uses.values())
    assert audited["source_ids_not_in_index"] == 0 and audited["max_reuse"] == 1


def test_audit_reports_coverage_of_any_dataset_whose_documents_carry_index_ids(
    wiki_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-made dataset: passage ids of the index as sources (one used three times), one id the
    index does not have."""
    store = Index(wiki_index).store
    ps = store.get_rows([0, 1, 2, 3])
    rows = []
    for n, srcs in enumerate([[ps[0]], [ps[0], ps[1]], [ps[0]], [ps[2]]]):
        docs = [{"id": p.id, "title": p.title, "text": p.text, "role": "source"} for p in srcs]
        docs.append(
            {
                "id": "not-in-the-index",
                "title": "x",
                "text": "some other text here",
                "role": "source" if n == 3 else "distractor",
            }
        )
        rows.append(
            {
                "instruction": f"What does passage {n} say about its subject?",
                "answer": "It says a lot.",
                "documents": docs,
            }
        )
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["audit", str(path), "--index", str(wiki_index), "--json", "--out", str(tmp_path / "r.jsonl")]) == 0
    summary = json.loads(capsys.readouterr().out)
    cov = summary["coverage"]
    n = len(store)
    assert cov["distinct_sources"] == 3 and cov["source_slots"] == 5 and cov["max_reuse"] == 3
    assert cov["reuse_histogram"] == {"1": 2, "3": 1} and cov["source_ids_not_in_index"] == 1
    assert abs(cov["corpus_share"] - 3 / n) < 1e-6 and abs(cov["mean_reuse"] - 5 / 3) < 1e-3


def test_a_killed_and_resumed_corpus_run_has_the_sources_of_an_uninterrupted_one(
    wiki_index: Path, tmp_path: Path
) -> None:
    """Sources decided in the plan: a run SIGKILLed twice and resumed gives every job the sources
    one uninterrupted process gives it (and the plan hash lets it resume)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    extra = {"sources": {"strategy": "corpus"}}
    with FakeServer(Faults(latency=0.01)) as srv:
        clean = run_config(tmp_path / "a", wiki_index, srv.base_url, 160, **extra)
        assert main(["generate", "--config", str(clean), "--quiet"]) == 0
        cfg = run_config(tmp_path / "b", wiki_index, srv.base_url, 160, **extra)
        out = tmp_path / "b" / "out"
        kill_at(cfg, out, (30, 90))
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    a, b = _sources_by_job(tmp_path / "a" / "out"), _sources_by_job(out)
    assert len(a) > 120 and a == b  # the fake server's pairs fail validation for a few jobs
    assert max(Counter(i for ids in b.values() for i in ids).values()) == 1


def test_report_page_shows_the_coverage_cards_and_the_reuse_figure(chromium: str, tmp_path: Path) -> None:  # noqa: F811
    """In a real browser (skipped where chromium is not installed, as the other report tests)."""
    from ragloom.generator.publish.report import write_report
    from test_report import dump, write_generate_run

    out = write_generate_run(tmp_path / "run")
    uses = Counter(i for ids in _sources_by_job(out).values() for i in ids)
    dom = dump(chromium, write_report(out), tmp_path)
    assert dom.one(id="stat-distinct-sources")["text"].startswith(str(len(uses)))
    assert dom.one(id="stat-max-reuse")["text"].startswith(str(max(uses.values())))
    assert "fig-source-reuse" in {e["attrs"]["id"] for e in dom.find(tag="figure")}
