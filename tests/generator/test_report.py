"""`ragloom report`: the page is checked in a real headless Chromium (Debian's `chromium`, which
`make test` installs): counts, hash-driven filters, escaping, a screenshot, no console errors."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fake_openai import FakeServer, Faults
from ragloom.generator.publish.report import clean_config, write_report
from runs import jsonl, run_config

from ragloom.cli import main

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
INJECTED = (
    "Plain text before. <script>document.body.setAttribute('data-pwned', 'script')</script> "
    "<img src=x onerror=\"document.body.setAttribute('data-pwned', 'img')\"> "
    "</script><!--<script> and after."
)


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: `make test` installs it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (`make test` installs it; CI runs these tests, never skips them)")
    return CHROMIUM


def browse(chromium: str, page: Path, tmp: Path, *, fragment: str = "", extra: tuple[str, ...] = ()) -> tuple[str, str]:
    """(DOM after the page's script ran, browser log) for `page` opened from disk."""
    args = [chromium, *FLAGS, f"--user-data-dir={tmp / 'chromium-profile'}", *extra]
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, proc.stderr


def dump(chromium: str, page: Path, tmp: Path, fragment: str = "") -> Dom:
    html, log = browse(chromium, page, tmp, fragment=fragment, extra=("--dump-dom",))
    console = [line for line in log.splitlines() if ":CONSOLE" in line]
    assert not console, console  # the page logs nothing: any console line is an error or a stray log
    dom = Dom()
    dom.feed(html)
    assert dom.find(tag="body")[0]["attrs"].get("data-ready-ms"), "the page's script did not finish"
    return dom


class Dom(HTMLParser):
    """Every element of a dumped DOM with its attributes and its text content."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict] = []
        self.stack: list[dict] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        node = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(node)
        if tag not in {"meta", "br", "input", "img", "link", "hr"}:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        for node in self.stack:
            node["text"] += data

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[dict]:
        return [
            e
            for e in self.elements
            if (tag is None or e["tag"] == tag)
            and (cls is None or cls in e["attrs"].get("class", "").split())
            and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def one(self, **kw: str) -> dict:
        found = self.find(**kw)
        assert len(found) == 1, (kw, found)
        return found[0]


# ---------------------------------------------------------------- hand-written run directories


def _doc(i: int, role: str, rank: int | None, rule: str | None, text: str | None = None) -> dict:
    return {
        "id": f"wiki:{i}",
        "title": f"Article {i}",
        "text": text or f"Passage number {i}.",
        "role": role,
        "rank": rank,
        "rule": rule,
    }


def _record(
    job: str, paradigm: str, q: str, a: str, sources: int, *, attempts: int = 1, text: str | None = None
) -> dict:
    docs = [_doc(100 + k, "source", k, None, text if k == 0 else None) for k in range(sources)]
    docs += [_doc(200 + k, "distractor", 200 + 5 * k, "band") for k in range(10 - sources - 1)]
    docs.append(_doc(999, "distractor", None, "random"))
    docs = docs[1:] + docs[:1]  # a source in the last slot
    return {
        "id": job,
        "job_id": job,
        "paradigm": paradigm,
        "instruction": q,
        "answer": a,
        "documents": docs,
        "exemplar": {
            "id": "ex-7",
            "source": "builtin",
            "text": "Who painted the Mona Lisa?",
            "task_type": "qa",
            "options": [],
        },
        "generation": {
            "backend": "openai",
            "model": "fake",
            "attempts": attempts,
            "usage": {"prompt_tokens": 100, "completion_tokens": 10},
        },
        "ragloom_version": "0.1.0",
    }


def write_generate_run(out: Path) -> Path:
    """6 accepted records and 3 failed jobs; the counts the tests expect are worked out by hand."""
    out.mkdir(parents=True)
    config = {
        "seed": 0,
        "count": 10,
        "paradigms": {"single_doc_answer": 1, "multi_doc_answer": 1, "useless_doc": 1},
        "backend": {
            "type": "openai",
            "base_url": "http://127.0.0.1:9/v1?api-key=QUERYSECRET",
            "api_key_env": "MY_KEY",
            "model": "fake",
        },
        "sampling": {"temperature": 0.7, "max_tokens": 512},
        "hf_token": "hf_CONFIGSECRET",
        "pricing": {"prompt_per_million": 1000.0, "completion_per_million": 2000.0},
    }
    run = {
        "plan_hash": "abc",
        "config": config,
        "count": 10,
        "paradigms": {"single_doc_answer": 4, "multi_doc_answer": 3, "useless_doc": 3},
    }
    (out / "run.json").write_text(json.dumps(run))
    records = [
        _record(
            "0-000000",
            "single_doc_answer",
            "Who designed the Eiffel Tower?",
            "Gustave Eiffel's company.",
            1,
            text=INJECTED,
        ),
        _record(
            "0-000001", "single_doc_answer", "When was the Great Wall begun?", "In the 7th century BC.", 1, attempts=3
        ),
        _record("0-000002", "single_doc_answer", "What does DNA stand for?", "Deoxyribonucleic acid.", 1),
        _record(
            "0-000003", "multi_doc_answer", "Which river and mountain are the largest?", "The Amazon and Everest.", 3
        ),
        _record(
            "0-000004",
            "multi_doc_answer",
            "How are Einstein and photosynthesis linked?",
            "Through the photoelectric effect.",
            2,
        ),
        _record("0-000005", "useless_doc", "Why is the sky blue?", "Rayleigh scattering.", 1),
    ]
    (out / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    failed = [
        {"job_id": "0-000006", "reason": "invalid_json", "attempts": 3, "paradigm": "single_doc_answer"},
        {"job_id": "0-000007", "reason": "invalid_json", "attempts": 3, "paradigm": "useless_doc"},
        {"job_id": "0-000008", "reason": "too_short", "attempts": 3, "paradigm": "useless_doc"},
    ]
    (out / "failed.jsonl").write_text("".join(json.dumps(f) + "\n" for f in failed))
    return out


def cell(dom: Dom, paradigm: str, col: str) -> str:
    row = dom.one(tag="tr", data_paradigm=paradigm)
    cells = [e for e in dom.find(tag="td", data_col=col) if e in _descendants(dom, row)]
    return cells[0]["text"]


def _descendants(dom: Dom, node: dict) -> list[dict]:
    i = dom.elements.index(node)
    # the row's cells are the td elements that follow it before the next row
    out = []
    for e in dom.elements[i + 1 :]:
        if e["tag"] == "tr":
            break
        out.append(e)
    return out


# ---------------------------------------------------------------- the page in a browser


def test_overview_shows_the_runs_counts_per_paradigm(chromium: str, tmp_path: Path) -> None:
    page = write_report(write_generate_run(tmp_path / "run"))
    assert page == tmp_path / "run" / "report.html"
    dom = dump(chromium, page, tmp_path)
    assert dom.one(id="stat-planned")["text"].startswith("10")
    assert dom.one(id="stat-accepted")["text"].startswith("6")
    assert dom.one(id="stat-failed")["text"].startswith("3")
    expected = {  # planned, accepted, failed, jobs retried, rejected attempts (2 + 3 | 0 | 3 + 3)
        "single_doc_answer": ("4", "3", "1", "1", "5"),
        "multi_doc_answer": ("3", "2", "0", "0", "0"),
        "useless_doc": ("3", "1", "2", "0", "6"),
    }
    for paradigm, values in expected.items():
        got = tuple(cell(dom, paradigm, c) for c in ("planned", "accepted", "failed", "retried", "rejected"))
        assert got == values, paradigm
    reasons = {e["text"] for e in dom.find(tag="td")}
    assert {"invalid_json", "too_short"} <= reasons
    # tokens of the six records' last attempts, priced at $1000 / $2000 per million
    assert dom.one(id="stat-prompt-tokens")["text"].startswith("600")
    assert dom.one(id="stat-cost")["text"].startswith("$0.7200")
    # all six records on the first page, none of the failed jobs
    assert dom.one(id="summary")["attrs"]["data-count"] == "6"
    assert len(dom.find(tag="article", cls="example")) == 6
    figures = {e["attrs"]["id"] for e in dom.find(tag="figure")}
    assert {"fig-question-length", "fig-answer-length", "fig-distractor-ranks", "fig-source-slots"} <= figures


def test_paradigm_filter_from_the_url_hash_shows_only_that_paradigm(chromium: str, tmp_path: Path) -> None:
    page = write_report(write_generate_run(tmp_path / "run"))
    dom = dump(chromium, page, tmp_path, "paradigm=multi_doc_answer")
    shown = [e["attrs"]["data-paradigm"] for e in dom.find(tag="article")]
    assert shown == ["multi_doc_answer", "multi_doc_answer"]
    assert dom.one(id="summary")["attrs"]["data-count"] == "2"


def test_reason_filter_lists_the_failed_jobs_with_that_reason(chromium: str, tmp_path: Path) -> None:
    page = write_report(write_generate_run(tmp_path / "run"))
    dom = dump(chromium, page, tmp_path, "reason=invalid_json")
    failures = dom.find(cls="failure")
    assert sorted(e["attrs"]["data-paradigm"] for e in failures) == ["single_doc_answer", "useless_doc"]
    assert not dom.find(tag="article")
    dom = dump(chromium, page, tmp_path, "reason=invalid_json&paradigm=useless_doc")
    assert [e["text"] for e in dom.find(cls="failure")] == ["invalid_json job 0-000007 · useless_doc · 3 attempts"]


def test_text_search_from_the_url_hash(chromium: str, tmp_path: Path) -> None:
    page = write_report(write_generate_run(tmp_path / "run"))
    dom = dump(chromium, page, tmp_path, "q=EIFFEL")
    assert [e["attrs"]["data-id"] for e in dom.find(tag="article")] == ["0-000000"]


def test_an_example_shows_sources_and_distractors_apart_with_rank_rule_and_exemplar(
    chromium: str, tmp_path: Path
) -> None:
    page = write_report(write_generate_run(tmp_path / "run"))
    dom = dump(chromium, page, tmp_path, "q=amazon")
    items = dom.find(tag="li")
    assert [e["attrs"]["class"] for e in items].count("source") == 3
    assert [e["attrs"]["class"] for e in items].count("distractor") == 7
    texts = [e["text"] for e in items]
    assert texts[-1].startswith("[10] SOURCE · rank 0Article 100")  # the fixture moved a source to the last slot
    assert any(t.startswith("[5] distractor · rank 210 · band") for t in texts)
    assert any(t.startswith("[9] distractor · rank - · random") for t in texts)
    assert dom.one(cls="exemplar")["text"] == "imitates exemplar builtin / ex-7 (qa): Who painted the Mona Lisa?"


def test_injected_markup_in_a_passage_stays_text_and_runs_nothing(chromium: str, tmp_path: Path) -> None:
    page = write_report(write_generate_run(tmp_path / "run"))
    html = page.read_text()
    assert "</script><!--<script>" not in html.split('id="ragloom-data">', 1)[1].split("</script>", 1)[0]
    dom = dump(chromium, page, tmp_path, "q=eiffel")
    body = dom.find(tag="body")[0]
    assert "data-pwned" not in body["attrs"]
    assert not dom.find(tag="img")
    assert len(dom.find(tag="script")) == 2  # the data block and the page's own script, nothing injected
    shown = [e["text"] for e in dom.find(tag="li", cls="source")]
    assert any(INJECTED in t for t in shown)


def test_overview_screenshot(chromium: str, tmp_path: Path) -> None:
    from PIL import Image

    page = write_report(write_generate_run(tmp_path / "run"))
    shot = tmp_path / "overview.png"
    _, log = browse(
        chromium, page, tmp_path, extra=(f"--screenshot={shot}", "--window-size=1280,1000", "--hide-scrollbars")
    )
    assert not [line for line in log.splitlines() if ":CONSOLE" in line]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", shot.read_bytes()[16:24]) == (1280, 1000)
    assert shot.stat().st_size > 30_000  # a blank or unstyled page compresses to a few kB
    colors = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 100


def test_no_network_references_in_the_page(tmp_path: Path) -> None:
    html = write_report(write_generate_run(tmp_path / "run")).read_text()
    for marker in ("<link", " src=", "@import", "url(", "fetch(", "XMLHttpRequest"):
        assert marker not in html.split('id="ragloom-data">')[0] + html.rsplit("</script>", 2)[-2], marker


# ---------------------------------------------------------------- secrets and errors


def test_config_keeps_no_credentials_and_urls_lose_their_query() -> None:
    cfg = {
        "backend": {"base_url": "https://user:pw@api.example.com/v1?key=abc#x", "api_key_env": "K", "model": "m"},
        "sampling": {"max_tokens": 512},
        "push": {"hf_token": "x", "client_secret": "y", "password": "z"},
        "stats": {"usage": {"prompt_tokens": 3}},
    }
    assert clean_config(cfg) == {
        "backend": {"base_url": "https://api.example.com/v1", "model": "m"},
        "sampling": {"max_tokens": 512},
        "push": {},
        "stats": {"usage": {"prompt_tokens": 3}},
    }


def test_secrets_never_reach_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_KEY", "sk-ENVSECRET-1234")
    out = write_generate_run(tmp_path / "run")
    rec = jsonl(out / "examples.jsonl")[2]
    rec["answer"] = "the key is sk-ENVSECRET-1234"
    lines = (out / "examples.jsonl").read_text().splitlines()
    lines[2] = json.dumps(rec)
    (out / "examples.jsonl").write_text("\n".join(lines) + "\n")
    html = write_report(out).read_text()
    for secret in ("QUERYSECRET", "hf_CONFIGSECRET", "MY_KEY", "sk-ENVSECRET-1234"):
        assert secret not in html
    assert "the key is [redacted]" in html


def test_user_errors_are_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.json not found" in err
    out = write_generate_run(tmp_path / "run")
    (out / "run.json").write_text("{not json")
    before = sorted(p.name for p in out.iterdir())
    assert main(["report", str(out)]) == 2
    assert "run.json: not valid JSON" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_record_of_the_wrong_shape_is_skipped_and_counted(chromium: str, tmp_path: Path) -> None:
    out = write_generate_run(tmp_path / "run")
    with (out / "examples.jsonl").open("a") as fh:
        fh.write(json.dumps({"id": "broken", "job_id": "broken", "paradigm": "useless_doc"}) + "\n")
    assert main(["report", str(out), "--to", str(tmp_path / "page.html")]) == 0
    dom = dump(chromium, tmp_path / "page.html", tmp_path)
    assert dom.one(id="summary")["attrs"]["data-count"] == "6"
    assert "1 records of an unexpected shape were skipped" in dom.one(id="paradigm-note")["text"]


# ---------------------------------------------------------------- real runs and RA-DIT runs


def test_report_of_a_real_generate_run_counts_what_the_files_hold(
    chromium: str, wiki_index: Path, tmp_path: Path
) -> None:
    from ragloom.generator.config import load_config
    from ragloom.generator.run import plan_jobs

    with FakeServer(Faults(rate_bad_json=0.35, seed=3)) as server:
        cfg = run_config(tmp_path, wiki_index, server.base_url, 40, validation={"attempts": 2})
        assert main(["generate", "--config", str(cfg), "--quiet"]) == 0
    out = tmp_path / "out"
    records, failed = jsonl(out / "examples.jsonl"), jsonl(out / "failed.jsonl")
    assert records and failed, "the faults should fail some jobs and not others"
    jobs, _ = plan_jobs(load_config(str(cfg), []))
    paradigm_of = {j.id: j.paradigm for j in jobs}
    assert main(["report", str(out)]) == 0
    dom = dump(chromium, out / "report.html", tmp_path)
    assert dom.one(id="stat-accepted")["text"].startswith(str(len(records)))
    assert dom.one(id="stat-failed")["text"].startswith(str(len(failed)))
    planned = Counter(paradigm_of.values())
    accepted = Counter(r["paradigm"] for r in records)
    failed_by = Counter(paradigm_of[f["job_id"]] for f in failed)
    for p in planned:
        got = (cell(dom, p, "planned"), cell(dom, p, "accepted"), cell(dom, p, "failed"))
        assert got == (str(planned[p]), str(accepted[p]), str(failed_by[p])), p
    shown = dom.find(tag="article")
    assert len(shown) == min(20, len(records))
    assert dom.one(id="page")["text"] == f"page 1 of {-(-len(records) // 20)}"


def test_report_of_a_real_radit_lm_ft_run_groups_prompts_per_pair(
    chromium: str, wiki_corpus: Path, wiki_index: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in wiki_corpus.read_text().splitlines()][:5]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"instruction": f"What is {r['title']}?", "output": r["text"][:40]}) + "\n" for r in rows)
    )
    out = tmp_path / "lmft"
    assert (
        main(
            [
                "radit",
                "lm-ft",
                "--pairs",
                str(pairs),
                "--index",
                str(wiki_index),
                "--k",
                "3",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    recs = jsonl(out / "examples.jsonl")
    assert main(["report", str(out)]) == 0
    dom = dump(chromium, out / "report.html", tmp_path)
    cards = dom.find(tag="article", cls="pair")
    assert sorted(c["attrs"]["data-id"] for c in cards) == sorted({r["pair_id"] for r in recs})
    assert len(dom.find(cls="prompt")) == len(recs) == 15
    assert dom.one(id="stat-pairs")["text"].startswith("5")


def write_lsr_run(out: Path) -> Path:
    out.mkdir(parents=True)
    cfg = {"kind": "radit-lsr", "k": 3, "tau": 0.1, "backend": {"type": "openai", "model": "fake"}}
    (out / "run.json").write_text(json.dumps({"kind": "radit-lsr", "plan_hash": "x", "config": cfg}))

    def ctx(pid: str, rank: int, rs: float, lp: float, lsr: float) -> dict:
        return {
            "id": pid,
            "title": pid.upper(),
            "text": f"text {pid}",
            "rank": rank,
            "retriever_score": rs,
            "lm_logprob": lp,
            "lm_tokens": 4,
            "lsr_score": lsr,
        }

    recs = [
        {
            "job_id": "q1",
            "id": "q1",
            "query": "Who built the tower?",
            "answers": ["Eiffel"],
            "source": "pairs",
            "ctxs": [ctx("a", 0, 0.9, -12.0, 0.1), ctx("b", 1, 0.8, -2.0, 0.7), ctx("c", 2, 0.5, -7.0, 0.2)],
        },
        {
            "job_id": "q2",
            "id": "q2",
            "query": "Where is Everest?",
            "answers": ["Nepal"],
            "source": "pairs",
            "ctxs": [ctx("d", 0, 0.7, -1.0, 0.6), ctx("a", 1, 0.6, -3.0, 0.3), ctx("e", 2, 0.2, -5.0, 0.1)],
        },
    ]
    (out / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return out


def test_lsr_report_shows_each_chunks_three_scores_as_bars(chromium: str, tmp_path: Path) -> None:
    page = write_report(write_lsr_run(tmp_path / "lsr"))
    dom = dump(chromium, page, tmp_path, "q=tower")
    assert dom.one(id="stat-agree")["text"].startswith("50%")  # q2 prefers rank 0, q1 rank 1
    rows = dom.find(cls="chunk", data_rank="1")
    assert len(rows) == 1
    i = dom.elements.index(rows[0])
    bars = [e for e in dom.elements[i + 1 : i + 12] if e["tag"] == "i"]
    widths = [float(b["attrs"]["style"].split("width:")[1].split("%")[0]) for b in bars]
    # retriever 0.8 within [0.5, 0.9], log-prob -2 within [-12, -2], LSR 0.7
    assert widths == pytest.approx([75.0, 100.0, 70.0])
    assert "fig-preferred-rank" in {e["attrs"].get("id") for e in dom.find(tag="figure")}


def test_failed_jobs_are_placed_in_the_paradigm_the_plan_gave_them(tmp_path: Path) -> None:
    from ragloom.generator.config import load_config
    from ragloom.generator.publish.report_data import plan_paradigms
    from ragloom.generator.run import plan_jobs

    weights = {
        "useless_doc": 3,
        "single_doc_support": 1,
        "multi_doc_support": 2,
        "single_doc_answer": 1,
        "multi_doc_answer": 0,
    }
    path = run_config(tmp_path, tmp_path / "idx", "http://127.0.0.1:9/v1", 57, seed=11, paradigms=weights)
    cfg = load_config(str(path), [])
    jobs, _ = plan_jobs(cfg)
    assert plan_paradigms(cfg.model_dump(mode="json"), 57) == {j.id: j.paradigm for j in jobs}


def test_quality_verdicts_are_drawn_and_records_with_issues_can_be_filtered(chromium: str, tmp_path: Path) -> None:
    out = write_generate_run(tmp_path / "run")
    recs = jsonl(out / "examples.jsonl")
    verdicts = [
        ("states", True, 0.8),
        ("supports", False, 0.4),
        ("states", True, 0.6),
        ("states", True, 0.9),
        ("no_help", False, 0.2),
        ("no_help", True, 0.1),
    ]
    for r, (found, ok, score) in zip(recs, verdicts):
        r["quality"] = {"found": found, "ok": ok, "scores": {"support": score}}
    recs[5]["curation"] = {"issues": ["duplicate_instruction"]}
    (out / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    page = write_report(out)
    dom = dump(chromium, page, tmp_path, "issue=paradigm_mismatch")
    assert [e["attrs"]["data-id"] for e in dom.find(tag="article")] == ["0-000001", "0-000004"]
    assert {"fig-quality", "fig-quality-scores"} <= {e["attrs"].get("id") for e in dom.find(tag="figure")}
    cells = [e["text"] for e in dom.find(tag="td")]
    i = cells.index("states 2, supports 1")  # single_doc_answer: 3 checked, 2 passed
    assert cells[i - 3 : i] == ["single_doc_answer", "3", "2"]
    dom = dump(chromium, page, tmp_path, "issue=duplicate_instruction")
    assert [e["attrs"]["data-id"] for e in dom.find(tag="article")] == ["0-000005"]
