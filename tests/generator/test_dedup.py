"""Duplicate instructions: the checks calibrated on hand-written pairs, and decisions in plan order
that give the same surviving jobs whether a run was interrupted or not."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from ragloom.generator.curation.dedup import DedupConfig, Deduper, InOrder, early_duplicates, normalize_question

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dedup_pairs.jsonl"
PAIRS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def encoder():
    from ragloom.retrieval import Encoder

    return Encoder()


def _judge(cfg: DedupConfig, pairs: list[dict], encoder) -> list[tuple[dict, str | None]]:
    vecs = encoder.encode_queries([t for p in pairs for t in (p["a"], p["b"])])
    out = []
    for i, p in enumerate(pairs):
        d = Deduper(cfg)
        d.add("a", p["a"], vecs[2 * i])
        hit = d.check(p["b"], vecs[2 * i + 1])
        out.append((p, hit.check if hit else None))
    return out


def _precision_recall(judged: list[tuple[dict, str | None]]) -> tuple[float, float]:
    tp = sum(1 for p, h in judged if h and p["duplicate"])
    fp = sum(1 for p, h in judged if h and not p["duplicate"])
    fn = sum(1 for p, h in judged if not h and p["duplicate"])
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


def test_fixture_holds_hand_written_pairs_and_hard_non_pairs() -> None:
    kinds = {p["kind"] for p in PAIRS}
    assert sum(p["duplicate"] for p in PAIRS) >= 30 and sum(not p["duplicate"] for p in PAIRS) >= 30
    assert {"paraphrase", "near_verbatim", "same_topic", "swapped_entity", "unrelated"} <= kinds


def test_default_thresholds_flag_no_non_pair_and_most_paraphrases(encoder) -> None:
    judged = _judge(DedupConfig(), PAIRS, encoder)
    precision, recall = _precision_recall(judged)
    false = [(p["a"], p["b"]) for p, h in judged if h and not p["duplicate"]]
    assert precision == 1.0, false
    assert recall >= 0.8  # level reached on the fixture, see the report


def test_lexical_checks_alone_flag_no_swapped_entity_question(encoder) -> None:
    # the fixture's duplicates are paraphrases or reworded: lexical checks are not meant to find
    # them (recall 0 here), but they must not take "capital of Austria" for "... of Australia"
    judged = _judge(DedupConfig(cosine_threshold=None), PAIRS, encoder)
    assert not [p for p, h in judged if h and not p["duplicate"]]


def test_semantic_check_alone_carries_the_recall(encoder) -> None:
    judged = _judge(DedupConfig(exact=False, minhash_threshold=None), PAIRS, encoder)
    precision, recall = _precision_recall(judged)
    assert precision == 1.0 and recall >= 0.8


def test_exact_check_ignores_case_punctuation_and_spacing() -> None:
    d = Deduper(DedupConfig(minhash_threshold=None, cosine_threshold=None))
    d.add("j1", "What is the capital of Australia?")
    hit = d.check("what is the  capital of AUSTRALIA")
    assert hit is not None and hit.check == "exact" and hit.of == "j1"
    assert d.check("What is the capital of Austria?") is None


def test_minhash_finds_a_near_verbatim_question_without_embeddings() -> None:
    d = Deduper(DedupConfig(exact=False, cosine_threshold=None))
    d.add("j1", "Describe the main functions of the human liver and explain how it stores energy for the body.")
    hit = d.check("Describe the main functions of the human liver and explain how it stores energy for the human body.")
    assert hit is not None and hit.check == "minhash" and hit.score >= 0.85
    assert d.check("Describe the main functions of the human kidneys and explain how they filter the blood.") is None


def test_a_resumed_deduper_knows_the_questions_already_written() -> None:
    recs = [{"job_id": "j1", "instruction": "Who discovered penicillin?"}]
    d = Deduper.from_records(DedupConfig(cosine_threshold=None), recs)
    assert len(d) == 1 and d.check("Who discovered penicillin ?") is not None


def test_dedup_can_be_switched_off() -> None:
    d = Deduper(DedupConfig(enabled=False))
    d.add("j1", "Who discovered penicillin?")
    assert d.check("Who discovered penicillin?") is None


# -- determinism: decisions in plan order ------------------------------------------------------

TOPICS = ["the Moon", "DNA", "Mount Everest", "penicillin", "the Eiffel Tower", "Shakespeare", "the Amazon"]
ASPECTS = ["history", "size", "discovery", "importance", "location"]


def _ask(job: str, attempt: int) -> str | None:
    """A stand-in LLM that answers the same (job, attempt) the same way: questions from a pool of
    35, so 60 jobs collide often; one ask in ten fails validation."""
    h = int(hashlib.sha256(f"{job}:{attempt}".encode()).hexdigest(), 16)
    if h % 10 == 0:
        return None
    return f"What do you know about the {ASPECTS[h // 10 % 5]} of {TOPICS[h // 50 % 7]}?"


def _simulate(
    jobs: list[str], order_seed: int, attempts: int, stop_after: int | None, written: dict, early: bool = False
) -> bool:
    """One run: asks complete in a random order, decisions go through InOrder + Deduper, results
    are 'written' to `written` (job -> question or failure). Returns False when killed. `early`:
    waiting candidates that already repeat an accepted question are re-asked at once, as the
    pipeline's Curator does."""
    cfg = DedupConfig(cosine_threshold=None)
    accepted = [{"job_id": j, "instruction": q} for j, q in written.items() if not q.startswith("FAILED")]
    dedup = Deduper.from_records(cfg, accepted)
    todo = [j for j in jobs if j not in written]
    gate: InOrder[tuple[str, int]] = InOrder(todo)
    pending = [(j, 1) for j in todo]
    rng = random.Random(order_seed)
    probed: dict[str, tuple[int, int]] = {}
    steps = 0
    while pending:
        if stop_after is not None and steps >= stop_after:
            return False
        steps += 1
        job, attempt = pending.pop(rng.randrange(len(pending)))
        q = _ask(job, attempt)
        if q is None:
            if attempt < attempts:
                pending.append((job, attempt + 1))
            else:
                written[job] = "FAILED invalid"
                gate.done(job)
        else:
            gate.put(job, (q, attempt))
        while (head := gate.head()) is not None:
            key, (question, att) = head
            if dedup.check(question) is not None:
                gate.retry(key)
                if att < attempts:
                    pending.append((key, att + 1))
                else:
                    written[key] = "FAILED duplicate_instruction"
                    gate.done(key)
                continue
            dedup.add(key, question)
            written[key] = question
            gate.done(key)
        if early:
            probe = lambda item: (item[0], None, item[1]) if item[1] < attempts else None  # noqa: E731
            for key, (_, att), _dup in early_duplicates(gate, dedup, probe, probed):
                pending.append((key, att + 1))
    assert gate.finished and len(gate) == 0
    return True


def test_interrupted_and_resumed_runs_keep_the_same_jobs_as_an_uninterrupted_run() -> None:
    jobs = [f"job-{i:03d}" for i in range(60)]
    reference: dict[str, str] = {}
    assert _simulate(jobs, order_seed=0, attempts=3, stop_after=None, written=reference)
    assert "FAILED duplicate_instruction" in reference.values()  # the pool forces collisions
    questions = [normalize_question(q) for q in reference.values() if not q.startswith("FAILED")]
    assert len(questions) == len(set(questions))
    for trial in range(12):
        rng = random.Random(100 + trial)
        written: dict[str, str] = {}
        finished, run = False, 0
        while not finished:  # kill at a random moment, then resume with another completion order
            run += 1
            finished = _simulate(jobs, rng.randrange(10**6), 3, rng.randrange(1, 60) if run < 4 else None, written)
        assert written == reference, f"trial {trial}"


def test_re_asking_waiting_duplicates_early_keeps_the_jobs_of_a_strictly_ordered_run() -> None:
    jobs = [f"job-{i:03d}" for i in range(60)]
    reference: dict[str, str] = {}
    assert _simulate(jobs, order_seed=0, attempts=3, stop_after=None, written=reference)
    for trial in range(12):
        rng = random.Random(500 + trial)
        written: dict[str, str] = {}
        finished, run = False, 0
        while not finished:  # early re-asks, killed at random moments and resumed
            run += 1
            stop = rng.randrange(1, 60) if run < 4 else None
            finished = _simulate(jobs, rng.randrange(10**6), 3, stop, written, early=True)
        assert written == reference, f"trial {trial}"


def test_a_waiting_candidate_that_repeats_an_accepted_question_is_released_for_a_re_ask() -> None:
    d = Deduper(DedupConfig(cosine_threshold=None))
    d.add("j0", "Who discovered penicillin?")
    gate: InOrder[tuple[str, int]] = InOrder(["a", "b", "c", "d"])  # a is still being asked
    gate.put("b", ("Who discovered penicillin ?", 1))  # repeats j0: re-ask now
    gate.put("c", ("How tall is Mount Everest?", 1))  # new: waits for its turn
    gate.put("d", ("who discovered penicillin", 3))  # a repeat, but its last attempt: fails at its turn
    probed: dict[str, tuple[int, int]] = {}
    probe = lambda item: (item[0], None, item[1]) if item[1] < 3 else None  # noqa: E731
    assert [(k, dup.check, dup.of) for k, _, dup in early_duplicates(gate, d, probe, probed)] == [("b", "exact", "j0")]
    assert [k for k, _ in gate.held()] == ["c", "d"]
    assert gate.head() is None  # a still holds the line
    d.add("j1", "How tall is Mount Everest?")  # accepted meanwhile: c now repeats it
    assert [k for k, _, _ in early_duplicates(gate, d, probe, probed)] == ["c"]


def test_in_order_holds_a_candidate_until_every_job_before_it_is_decided() -> None:
    gate: InOrder[str] = InOrder(["a", "b", "c"])
    gate.put("b", "qb")
    assert gate.head() is None  # a is undecided
    gate.done("a")
    assert gate.head() == ("b", "qb")
    gate.retry("b")  # re-asked: the line waits for b again
    gate.put("c", "qc")
    assert gate.head() is None
    gate.put("b", "qb2")
    assert gate.head() == ("b", "qb2")
    gate.done("b")
    assert gate.head() == ("c", "qc")


def test_semantic_check_uses_the_embeddings_it_is_given() -> None:
    d = Deduper(DedupConfig(exact=False, minhash_threshold=None, cosine_threshold=0.9))
    v = np.zeros(4, dtype=np.float32)
    v[0] = 1.0
    d.add("j1", "first question text", v)
    near = np.array([0.99, 0.141, 0, 0], dtype=np.float32)
    far = np.array([0.5, 0.866, 0, 0], dtype=np.float32)
    assert d.check("unrelated words entirely", near) is not None
    assert d.check("unrelated words entirely", far) is None


# -- in the pipeline, against the fake server --------------------------------------------------


def _run_records(out: Path) -> dict:
    from runs import jsonl

    return {
        r["id"]: (r["instruction"], r["answer"], [d["id"] for d in r["documents"]])
        for r in jsonl(out / "examples.jsonl")
    }


def test_fake_server_duplicates_are_re_asked_then_fail_and_none_reaches_the_output(
    wiki_index: Path, tmp_path: Path
) -> None:
    # the fake server's question names the first document's title, so jobs that share a first
    # source ask the same question, and a re-ask (same prompt, new seed) repeats it
    from fake_openai import FakeServer
    from runs import jsonl, run_config

    from ragloom.cli import main

    with FakeServer() as srv:
        cfg = run_config(tmp_path, wiki_index, srv.base_url, 80, curation={"dedup": {"enabled": True}})
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
        asked = sum(srv.counts.values())  # requests the server answered
    recs = jsonl(tmp_path / "out" / "examples.jsonl")
    questions = [normalize_question(r["instruction"]) for r in recs]
    assert len(questions) == len(set(questions))
    dups = [f for f in jsonl(tmp_path / "out" / "failed.jsonl") if f["reason"] == "duplicate_instruction"]
    assert dups and all(f["attempts"] == 3 and f["curation"]["duplicate"]["of"] for f in dups)
    stats = json.loads((tmp_path / "out" / "run.json").read_text())["stats"]
    assert stats["rejected"]["duplicate_instruction"] == 3 * len(dups)  # every ask of each was judged
    # which check caught them: the fake server repeats a question word for word
    by_check = {k: v for k, v in stats["counts"].items() if k.startswith("duplicate_")}
    assert sum(by_check.values()) == stats["rejected"]["duplicate_instruction"] and by_check.get("duplicate_exact")
    assert main(["export", str(tmp_path / "out"), "--to", str(tmp_path / "ds.jsonl")]) == 0
    assert f"exact {by_check['duplicate_exact']}" in (tmp_path / "README.md").read_text()
    assert asked >= len(recs) + 3 * len(dups)


def test_a_killed_and_resumed_run_keeps_the_same_jobs_as_an_uninterrupted_one(wiki_index: Path, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from fake_openai import FakeServer, Faults
    from runs import jsonl, run_config

    from ragloom.cli import main

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with FakeServer(Faults(latency=0.01, jitter=0.02)) as srv:
        clean = run_config(tmp_path / "a", wiki_index, srv.base_url, 150, curation={"dedup": {"enabled": True}})
        assert main(["generate", "--config", str(clean), "--quiet"]) == 0
        cfg = run_config(tmp_path / "b", wiki_index, srv.base_url, 150, curation={"dedup": {"enabled": True}})
        out = tmp_path / "b" / "out"
        cmd = [sys.executable, "-m", "ragloom", "generate", "--config", str(cfg), "--quiet"]
        rng = random.Random(7)
        for mark in sorted(rng.sample(range(10, 90), 3)):
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 180
            while proc.poll() is None and time.monotonic() < deadline:
                if (out / "examples.jsonl").exists() and (out / "examples.jsonl").read_bytes().count(b"\n") >= mark:
                    break
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    a, b = _run_records(tmp_path / "a" / "out"), _run_records(out)
    fa = sorted((f["job_id"], f["reason"]) for f in jsonl(tmp_path / "a" / "out" / "failed.jsonl"))
    fb = sorted((f["job_id"], f["reason"]) for f in jsonl(out / "failed.jsonl"))
    assert any(r == "duplicate_instruction" for _, r in fa)
    assert a == b and fa == fb


@pytest.mark.timeout(180)
def test_a_run_ends_when_the_job_holding_the_line_is_abandoned_after_the_others_finished(
    wiki_index: Path, tmp_path: Path
) -> None:
    # the first requests sent (plan order: the head of the line among them) hang past the client's
    # timeout with no retry, so those jobs are abandoned after every later job's pair is held
    # behind them; the record stage must still release the held pairs (it once waited forever)
    from fake_openai import FakeServer, Faults
    from runs import jsonl, run_config

    from ragloom.cli import main

    with FakeServer(Faults(first=["hang"] * 3, hang_seconds=20)) as srv:
        cfg = run_config(
            tmp_path,
            wiki_index,
            srv.base_url,
            20,
            backend={"concurrency": 8, "timeout": 3, "max_retries": 0},
            curation={"dedup": {"enabled": True}},
        )
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 3  # 3 jobs left unfinished
    recs = jsonl(tmp_path / "out" / "examples.jsonl")
    failed = jsonl(tmp_path / "out" / "failed.jsonl")
    assert len(recs) + len(failed) == 17


def test_many_jobs_decided_elsewhere_while_pairs_wait_leave_room_for_the_end_of_the_run() -> None:
    # while the record stage is busy (a slow paradigm check), every job failed elsewhere nudged it
    # with one more queue item; enough of them filled the bounded queue and the last job's _DONE
    # raised QueueFull, ending the run in a traceback. At most one nudge waits at a time.
    import asyncio
    import types

    from ragloom.generator.curation.dedup import InOrder
    from ragloom.generator.pipeline import _DONE, _NUDGE, Pipeline

    async def scenario() -> list[object]:
        p = Pipeline.__new__(Pipeline)
        p._accepted, p._ready = asyncio.Queue(maxsize=4), asyncio.Queue()
        p._remaining, p._nudged, p.on_progress = 12, False, lambda: None
        gate: InOrder[str] = InOrder([f"j{i}" for i in range(12)])
        gate.put("j11", "held behind the others")
        p.curator = types.SimpleNamespace(gate=gate)
        for i in range(11):  # eleven jobs fail elsewhere; nobody takes from the queue meanwhile
            p._decided_elsewhere(f"j{i}")
            p._job_done()
        p._job_done()  # the held job's record is written: the run is over
        return [p._accepted.get_nowait() for _ in range(p._accepted.qsize())]

    queued = asyncio.run(scenario())
    assert queued == [_NUDGE, _DONE]  # one nudge, then the end of the run


HELD_OUT = [
    json.loads(line)
    for line in (FIXTURE.parent / "dedup_heldout.jsonl").read_text(encoding="utf-8").splitlines()
    if line.strip()
]


def test_held_out_pairs_at_the_default_thresholds(encoder) -> None:
    """tests/fixtures/dedup_heldout.jsonl: 36 pairs written after the thresholds were frozen (18
    duplicates, 18 not). Measured on first run: 11 of 18 duplicates found (recall 0.61: paraphrases
    that reword the verb, cosine 0.868-0.922, miss the 0.93 bar), one false alarm ("When did the
    Berlin Wall come down?" / "... go up?", cosine 0.964: the encoder does not tell opposites apart)."""
    assert sum(p["duplicate"] for p in HELD_OUT) >= 15 and sum(not p["duplicate"] for p in HELD_OUT) >= 15
    assert not {(p["a"], p["b"]) for p in HELD_OUT} & {(p["a"], p["b"]) for p in PAIRS}
    judged = _judge(DedupConfig(), HELD_OUT, encoder)
    tp = sum(1 for p, h in judged if h and p["duplicate"])
    false = [(p["a"], p["b"]) for p, h in judged if h and not p["duplicate"]]
    assert tp >= 11, f"recall {tp}/18"
    assert len(false) <= 1, false
