"""RA-DIT data: lm-ft examples, LSR scores (fake server for faults and scale, real Gemma for meaning), resume."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest
from fake_openai import FakeServer, Faults
from runs import jsonl

from ragloom.cli import main


def _pairs_from_corpus(corpus: Path, path: Path, n: int) -> list[dict]:
    rows = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()][:n]
    pairs = [
        {
            "instruction": f"What is known about {r['title']}?",
            "output": " ".join(r["text"].split()[:6]),
            "ctx": r["text"],
        }
        for r in rows
    ]
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs), encoding="utf-8")
    return pairs


# ---------------------------------------------------------------- lm-ft


def test_lm_ft_writes_k_background_examples_per_pair(wiki_corpus: Path, wiki_index: Path, tmp_path: Path) -> None:
    pairs = _pairs_from_corpus(wiki_corpus, tmp_path / "pairs.jsonl", 12)
    out = tmp_path / "lmft"
    rc = main(
        [
            "radit",
            "lm-ft",
            "--pairs",
            str(tmp_path / "pairs.jsonl"),
            "--index",
            str(wiki_index),
            "--k",
            "3",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    recs = jsonl(out / "examples.jsonl")
    assert len(recs) == 3 * len(pairs)
    by_pair: dict[str, list[dict]] = {}
    for r in recs:
        by_pair.setdefault(r["pair_id"], []).append(r)
    store = {json.loads(line)["id"]: json.loads(line) for line in wiki_corpus.read_text().splitlines()}
    for i, p in enumerate(pairs):
        mine = sorted(by_pair[f"pairs.jsonl:{i}"], key=lambda r: r["chunk"]["rank"])
        assert [r["chunk"]["rank"] for r in mine] == [0, 1, 2]
        assert len({r["chunk"]["id"] for r in mine}) == 3
        for r in mine:
            doc = store[r["chunk"]["id"]]
            assert r["prompt"] == f"Background: {doc['title']} {doc['text']}\n\n{p['instruction']}"
            assert r["completion"] == p["output"]
    # the article the question names is among its chunks
    hit = sum(
        any(r["chunk"]["title"] in pairs[i]["instruction"] for r in by_pair[f"pairs.jsonl:{i}"]) for i in range(12)
    )
    assert hit >= 10
    # the default export: prompt/completion JSONL that `datasets` loads, with a card
    ds = datasets.load_dataset("json", data_files=str(out / "train.jsonl"), split="train")
    assert ds.column_names == ["prompt", "completion"] and len(ds) == 36
    card = (out / "README.md").read_text()
    assert "Chunks per pair (k): 3" in card and "all-MiniLM-L6-v2" in card and '"examples": 36' in card


def test_lm_ft_context_field_and_plain_copy(wiki_corpus: Path, tmp_path: Path) -> None:
    pairs = _pairs_from_corpus(wiki_corpus, tmp_path / "pairs.jsonl", 5)
    out = tmp_path / "ctx"
    rc = main(
        [
            "radit",
            "lm-ft",
            "--pairs",
            str(tmp_path / "pairs.jsonl"),
            "--context-field",
            "ctx",
            "--no-retrieval-copy",
            "--out",
            str(out),
            "--export-format",
            "messages",
            "--quiet",
        ]
    )
    assert rc == 0
    recs = jsonl(out / "examples.jsonl")
    assert len(recs) == 2 * len(pairs)
    for i, p in enumerate(pairs):
        ctx = next(r for r in recs if r["id"] == f"pairs.jsonl:{i}#ctx")
        plain = next(r for r in recs if r["id"] == f"pairs.jsonl:{i}#plain")
        assert ctx["prompt"] == f"Background: {p['ctx']}\n\n{p['instruction']}"
        assert plain["prompt"] == p["instruction"] and plain["completion"] == p["output"]
    msgs = jsonl(out / "train.jsonl")
    assert msgs[0]["messages"][0]["role"] == "user" and msgs[0]["messages"][1]["role"] == "assistant"


def test_lm_ft_resumes_after_a_torn_checkpoint(wiki_corpus: Path, wiki_index: Path, tmp_path: Path) -> None:
    _pairs_from_corpus(wiki_corpus, tmp_path / "pairs.jsonl", 10)
    out = tmp_path / "lmft"
    args = ["radit", "lm-ft", "--pairs", str(tmp_path / "pairs.jsonl"), "--index", str(wiki_index), "--k", "2"]
    args += ["--out", str(out), "--quiet"]
    assert main(args) == 0
    full = (out / "examples.jsonl").read_bytes()
    # a kill mid-write: 7 whole lines and half of the 8th
    lines = full.splitlines(keepends=True)
    (out / "examples.jsonl").write_bytes(b"".join(lines[:7]) + lines[7][:20])
    assert main(args) == 0
    again = jsonl(out / "examples.jsonl")
    assert sorted(r["id"] for r in again) == sorted(json.loads(x)["id"] for x in lines)
    assert len(again) == 20
    # a different k in the same directory is refused
    assert main([*args[:-5], "--k", "3", "--out", str(out), "--quiet"]) == 2


def test_pair_formats(tmp_path: Path) -> None:
    from ragloom.generator.config import ExemplarSource
    from ragloom.generator.exemplars import load_pairs

    (tmp_path / "a.json").write_text(json.dumps([{"instruction": "Name it", "input": "a river", "output": "Nile"}]))
    (tmp_path / "s.jsonl").write_text(
        json.dumps({"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello"}]}) + "\n"
    )
    (tmp_path / "m.jsonl").write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "Q"},
                    {"role": "assistant", "content": "A"},
                ]
            }
        )
        + "\n"
    )
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": "Why?", "answer": "Because"}) + "\n")
    a = load_pairs(ExemplarSource(source=str(tmp_path / "a.json"), format="alpaca"))
    assert (a[0].instruction, a[0].output) == ("Name it\n\na river", "Nile")
    s = load_pairs(ExemplarSource(source=str(tmp_path / "s.jsonl"), format="sharegpt"))
    assert (s[0].instruction, s[0].output) == ("Hi?", "Hello")
    m = load_pairs(ExemplarSource(source=str(tmp_path / "m.jsonl"), format="messages"))
    assert (m[0].instruction, m[0].output) == ("Q", "A")
    q = load_pairs(ExemplarSource(source=str(tmp_path / "q.jsonl"), text_field="question"), output_field="answer")
    assert (q[0].instruction, q[0].output) == ("Why?", "Because")


def test_bad_pairs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c"}\n')
    rc = main(
        ["radit", "lm-ft", "--pairs", str(tmp_path / "p.jsonl"), "--context-field", "x", "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert "p.jsonl:1" in err and "'x'" in err
    (tmp_path / "s.jsonl").write_text(json.dumps({"conversations": [{"from": "human", "value": "Hi?"}]}) + "\n")
    rc = main(
        [
            "radit",
            "lm-ft",
            "--pairs",
            str(tmp_path / "s.jsonl"),
            "--format",
            "sharegpt",
            "--context-field",
            "x",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "s.jsonl:1" in err and "no reply" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- token boundary


def test_target_tokens_boundary() -> None:
    from ragloom.generator.backends.scoring import AlignmentError, target_tokens

    toks = ["Back", "ground", ":", " x", "\n", "Mir", "ela", " Q", " end"]
    lps = [None, -1.0, -1.0, -1.0, -1.0, -2.0, -0.5, -0.25, -9.0]
    t, lp, straddles = target_tokens(toks, lps, None, "Background: x\n", "Mirela Q")
    assert (t, lp, straddles) == (["Mir", "ela", " Q"], [-2.0, -0.5, -0.25], False)
    # a token that spans the boundary is kept and flagged
    t, _, straddles = target_tokens(
        ["Background: x", "\nMir", "ela"], [None, -1.0, -1.0], None, "Background: x\n", "Mirela"
    )
    assert t == ["\nMir", "ela"] and straddles
    # byte tokens that do not spell the text: the server's offsets decide
    t, _, _ = target_tokens(["bytes:\\xe2", "ab", "cd"], [None, -1.0, -1.0], [0, 1, 3], "A", "abcd")
    assert t == ["ab", "cd"]
    with pytest.raises(AlignmentError):
        target_tokens(["zz"], [None], None, "A", "b")


# ---------------------------------------------------------------- lsr against the fake server


def _lsr_args(pairs: Path, index: Path, out: Path, url: str, *extra: str) -> list[str]:
    return [
        "radit",
        "lsr",
        "--pairs",
        str(pairs),
        "--index",
        str(index),
        "--out",
        str(out),
        "--backend",
        "openai",
        "--base-url",
        url,
        "--model",
        "fake",
        "--quiet",
        *extra,
    ]


def test_lsr_records_scores_and_tau(wiki_corpus: Path, wiki_index: Path, tmp_path: Path) -> None:
    pairs = _pairs_from_corpus(wiki_corpus, tmp_path / "pairs.jsonl", 20)
    with FakeServer(Faults(latency=0.01, rate_429=0.1, rate_500=0.05, retry_after=0.05)) as srv:
        sharp, soft = tmp_path / "sharp", tmp_path / "soft"
        assert (
            main(_lsr_args(tmp_path / "pairs.jsonl", wiki_index, sharp, srv.base_url, "--k", "4", "--tau", "0.5")) == 0
        )
        assert main(_lsr_args(tmp_path / "pairs.jsonl", wiki_index, soft, srv.base_url, "--k", "4", "--tau", "5")) == 0
        assert srv.counts["429"] + srv.counts["500"] > 0  # faults happened and were retried
    a, b = jsonl(sharp / "examples.jsonl"), jsonl(soft / "examples.jsonl")
    assert len(a) == len(b) == len(pairs)
    n_holding = n_spread = 0
    for rec in a:
        ctxs = rec["ctxs"]
        assert len(ctxs) == 4 and [c["rank"] for c in ctxs] == [0, 1, 2, 3]
        assert math.isclose(sum(c["lsr_score"] for c in ctxs), 1.0, rel_tol=1e-9)
        z = [c["lm_logprob"] / 0.5 for c in ctxs]
        expect = [math.exp(v - max(z)) / sum(math.exp(w - max(z)) for w in z) for v in z]
        assert [c["lsr_score"] for c in ctxs] == pytest.approx(expect)
        # the fake LM rewards answer words found in the background: a chunk holding the answer wins
        holding = [c for c in ctxs if rec["answers"][0] in c["text"]]
        if holding:
            n_holding += 1
            best = max(ctxs, key=lambda c: c["lm_logprob"])
            assert rec["answers"][0] in best["text"]
        # each answer token was scored: the fake LM splits on whitespace
        assert all(c["lm_tokens"] == len(rec["answers"][0].split()) for c in ctxs)
    # same logprobs, different tau: the smaller tau is sharper
    for ra, rb in zip(sorted(a, key=lambda r: r["id"]), sorted(b, key=lambda r: r["id"])):
        assert [c["lm_logprob"] for c in ra["ctxs"]] == [c["lm_logprob"] for c in rb["ctxs"]]
        if len({c["lm_logprob"] for c in ra["ctxs"]}) > 1:
            n_spread += 1
            assert max(c["lsr_score"] for c in ra["ctxs"]) > max(c["lsr_score"] for c in rb["ctxs"])
    # the conditional checks above ran on most queries (the pair's own passage is usually retrieved)
    assert n_holding >= len(a) // 2 and n_spread >= len(a) // 2, (n_holding, n_spread)
    ds = datasets.load_dataset("json", data_files=str(sharp / "train.jsonl"), split="train")
    assert set(ds.column_names) >= {"query", "answers", "ctxs"} and len(ds) == 20
    # `ragloom export` picks the run kind's default view (lsr) and refuses a generate-only one
    assert main(["export", str(sharp), "--to", str(tmp_path / "lsr.parquet")]) == 0
    again = datasets.load_dataset("parquet", data_files=str(tmp_path / "lsr.parquet"), split="train")
    assert again["query"] == ds["query"] and again["ctxs"] == ds["ctxs"]
    assert main(["export", str(sharp), "--format", "alpaca", "--to", str(tmp_path / "x.jsonl")]) == 2


def test_lsr_length_normalised_and_corpus_mode(wiki_index: Path, tmp_path: Path) -> None:
    with FakeServer() as srv:
        out = tmp_path / "corpus"
        args = ["radit", "lsr", "--from-corpus", "15", "--x-words", "12", "--y-words", "6", "--index", str(wiki_index)]
        args += ["--k", "3", "--tau", "0.1", "--length-normalize", "--out", str(out), "--backend", "openai"]
        args += ["--base-url", srv.base_url, "--model", "fake", "--quiet"]
        assert main(args) == 0
    recs = jsonl(out / "examples.jsonl")
    assert len(recs) == 15
    from ragloom.retrieval import Index

    store = Index(wiki_index).store
    for rec in recs:
        row = int(rec["id"].split(":")[1])
        own = store.get_rows([row])[0]
        words = own.text.split()
        assert rec["query"] == " ".join(words[:12]) and rec["answers"] == [" ".join(words[12:18])]
        assert own.id not in [c["id"] for c in rec["ctxs"]]  # never its own chunk
        z = [c["lm_logprob"] / c["lm_tokens"] / 0.1 for c in rec["ctxs"]]
        expect = [math.exp(v - max(z)) / sum(math.exp(w - max(z)) for w in z) for v in z]
        assert [c["lsr_score"] for c in rec["ctxs"]] == pytest.approx(expect)


def test_lsr_resumes_after_sigkill(wiki_corpus: Path, wiki_index: Path, tmp_path: Path) -> None:
    _pairs_from_corpus(wiki_corpus, tmp_path / "pairs.jsonl", 120)
    out = tmp_path / "lsr"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with FakeServer(Faults(latency=0.05)) as srv:
        cmd = [sys.executable, "-m", "ragloom", *_lsr_args(tmp_path / "pairs.jsonl", wiki_index, out, srv.base_url)]
        cmd += ["--k", "3", "--concurrency", "4"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ex = out / "examples.jsonl"
            if ex.exists() and ex.read_bytes().count(b"\n") >= 20:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = (out / "examples.jsonl").read_bytes().count(b"\n")
        assert 20 <= before < 120
        assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    recs = jsonl(out / "examples.jsonl")
    ids = [r["id"] for r in recs]
    assert len(ids) == len(set(ids)) == 120


def test_lsr_backend_errors(
    wiki_corpus: Path, wiki_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _pairs_from_corpus(wiki_corpus, tmp_path / "pairs.jsonl", 3)
    with FakeServer(Faults(fixed_status=404)) as srv:
        rc = main(_lsr_args(tmp_path / "pairs.jsonl", wiki_index, tmp_path / "o", srv.base_url, "--k", "3"))
    err = capsys.readouterr().err.strip().splitlines()
    # a 404 that does not name the model: the server has no completions endpoint to score with
    assert rc == 2 and "404" in err[-1] and "completions endpoint with echo and logprobs" in err[-1]
    rc = main(
        [
            "radit",
            "lsr",
            "--pairs",
            str(tmp_path / "pairs.jsonl"),
            "--index",
            str(wiki_index),
            "--out",
            str(tmp_path / "o2"),
            "--quiet",
        ]
    )
    assert rc == 2 and "--backend" in capsys.readouterr().err


# ---------------------------------------------------------------- lsr against the real Gemma 270M

INVENTED = [
    ("zorblax", "Zorblax Bridge", "The Zorblax Bridge was designed by Mirela Quandt."),
    ("veltrin", "Veltrin Tower", "The Veltrin Tower was designed by Osric Pellam."),
    ("harrow", "Harrow Canal", "The Harrow Canal was dug by Tamsin Okoro."),
    ("kestrel", "Kestrel Dam", "The Kestrel Dam was engineered by Lotte Varga."),
    ("plum", "Plumvale Lighthouse", "Plumvale Lighthouse was built by Ivo Brenner."),
]


@pytest.fixture(scope="module")
def invented_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ragloom.retrieval import CorpusSpec, build_index

    d = tmp_path_factory.mktemp("invented")
    (d / "c.jsonl").write_text("".join(json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in INVENTED))
    build_index(CorpusSpec(str(d / "c.jsonl")), d / "idx")
    return d / "idx"


@pytest.mark.slow
def test_lsr_with_gemma_prefers_the_chunk_that_states_the_fact(
    gemma_scoring_server: str, invented_index: Path, tmp_path: Path
) -> None:
    # Scoring with echo on llama-cpp-python costs ~0.3 s per prompt token here (it sorts the
    # 262k-entry vocabulary in Python for every token), so the chunks are one sentence each.
    pairs = [
        {"instruction": "Who designed the Zorblax Bridge?", "output": "Mirela Quandt", "fact": "zorblax"},
        {"instruction": "Who engineered the Kestrel Dam?", "output": "Lotte Varga", "fact": "kestrel"},
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    out = tmp_path / "lsr"
    args = _lsr_args(tmp_path / "p.jsonl", invented_index, out, gemma_scoring_server, "--k", "3", "--tau", "1")
    args[args.index("fake")] = "gemma"
    assert main(args) == 0
    recs = {r["query"]: r for r in jsonl(out / "examples.jsonl")}
    for p in pairs:
        ctxs = recs[p["instruction"]]["ctxs"]
        assert len(ctxs) == 3
        assert math.isclose(sum(c["lsr_score"] for c in ctxs), 1.0, rel_tol=1e-9)
        best = max(ctxs, key=lambda c: c["lm_logprob"])
        assert best["id"] == p["fact"], [(c["id"], c["lm_logprob"]) for c in ctxs]
        assert best["lsr_score"] > 0.9  # tau 1 and a gap of many nats


@pytest.mark.slow
def test_gemma_scoring_sums_exactly_the_target_tokens(gemma_scoring_server: str) -> None:
    import asyncio

    from ragloom.generator.backends import ScoreRequest, make_backend
    from ragloom.generator.config import OpenAIBackendConfig

    backend = make_backend(
        OpenAIBackendConfig(type="openai", base_url=gemma_scoring_server, model="gemma", api_key_env=None)
    )
    prefix, target = "Background: Zorblax Bridge was designed by Mirela Quandt.\n\nWho designed it?\n", "Mirela Quandt"

    async def go():  # type: ignore[no-untyped-def]
        try:
            return await backend.score([ScoreRequest(prefix, target)])
        finally:
            await backend.aclose()

    (res,) = asyncio.run(go())
    assert res.error is None
    assert "".join(res.tokens) == target  # not the newline before it, not the generated token after
    assert len(res.token_logprobs) == len(res.tokens) >= 2
    assert res.logprob == pytest.approx(sum(res.token_logprobs)) and res.logprob < 0
