"""Report page at scale: a synthetic generate run of N records over the real Wikipedia summaries
(10 documents each, distractors with band ranks), written with `write_report` and opened in
headless Chromium.

    python bench/report.py [--records 50000] [--repeats 3] [--json out.json]

P1  write_report seconds and page size (MB) for N records
P2  page ready: ms from navigation start to the marker the page's script sets once the overview,
    the figures and the first page of examples are drawn (`body[data-ready-ms]`), against the raw
    floor measured in the same run: the same data block in a page whose script only JSON.parses it
P3  wall-clock of `chromium --headless --dump-dom` on the page, against the same on a 10-record page
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

PARADIGMS = ["useless_doc", "single_doc_support", "multi_doc_support", "single_doc_answer", "multi_doc_answer"]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def write_run(out: Path, n: int, seed: int = 0) -> None:
    from conftest import wiki_summaries

    rng = random.Random(seed)
    data = wiki_summaries()
    passages = [{"id": f"wiki:{v['title']}", "title": v["title"], "text": v["extract"]} for v in data.values()]
    out.mkdir(parents=True)
    counts = {p: n // 5 + (i < n % 5) for i, p in enumerate(PARADIGMS)}
    cfg = {
        "seed": seed,
        "count": n,
        "paradigms": dict.fromkeys(PARADIGMS, 1),
        "pricing": {"prompt_per_million": 0.15, "completion_per_million": 0.6},
    }
    (out / "run.json").write_text(json.dumps({"plan_hash": "bench", "config": cfg, "count": n, "paradigms": counts}))
    with (out / "examples.jsonl").open("w") as fh:
        for i in range(n):
            paradigm = PARADIGMS[i % 5]
            k = rng.randint(2, 4) if paradigm.startswith("multi") else 1
            picks = rng.sample(passages, 10)
            docs = [{**p, "role": "source", "rank": rng.randrange(5), "rule": None} for p in picks[:k]]
            docs += [{**p, "role": "distractor", "rank": rng.randrange(200, 250), "rule": "band"} for p in picks[k:]]
            rng.shuffle(docs)
            words = picks[0]["text"].split()
            rec = {
                "id": f"{seed}-{i:06d}",
                "job_id": f"{seed}-{i:06d}",
                "paradigm": paradigm,
                "instruction": " ".join(words[: rng.randint(8, 25)]) + "?",
                "answer": " ".join(words[: rng.randint(10, 80)]),
                "documents": docs,
                "exemplar": {
                    "id": f"ex-{i % 152}",
                    "source": "builtin",
                    "text": "Who painted the Mona Lisa?",
                    "task_type": "qa",
                    "options": [],
                },
                "generation": {
                    "attempts": 1 + (rng.random() < 0.2),
                    "usage": {"prompt_tokens": 1400, "completion_tokens": 90},
                },
                "ragloom_version": "0.1.0",
            }
            fh.write(json.dumps(rec) + "\n")
    (out / "failed.jsonl").write_text("")


def load(page: Path, profile: Path) -> tuple[float, int]:
    """(wall seconds of a --dump-dom run, the page's data-ready-ms)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["chromium", *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.perf_counter() - t0
    m = re.search(r'data-ready-ms="(\d+)"', proc.stdout)
    if not m:
        raise SystemExit(f"no ready marker in the dumped DOM of {page}: {proc.stderr[-1500:]}")
    return wall, int(m.group(1))


def parse_only(page: Path, to: Path) -> None:
    """The raw floor: the same data block, a script that only parses it and sets the marker."""
    html = page.read_text(encoding="utf-8")
    start = html.index('<script type="application/json"')
    block = html[start : html.index("</script>", start) + len("</script>")]
    script = (
        "<script>var d = JSON.parse(document.getElementById('ragloom-data').textContent);"
        "document.body.setAttribute('data-ready-ms', String(Math.round(performance.now())));</script>"
    )
    to.write_text(f"<!DOCTYPE html><html><body>{block}{script}</body></html>", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    from ragloom.generator.publish.report import write_report

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results: dict = {"records": args.records}
        for name, n in (("big", args.records), ("small", 10)):
            write_run(tmp / name, n)
            t0 = time.perf_counter()
            page = write_report(tmp / name)
            results[f"{name}_write_s"] = round(time.perf_counter() - t0, 2)
            results[f"{name}_mb"] = round(page.stat().st_size / 1e6, 2)
        parse_only(tmp / "big" / "report.html", tmp / "parse_only.html")
        runs: dict[str, list[tuple[float, int]]] = {"big": [], "small": [], "parse_only": []}
        for i in range(args.repeats):
            for name, page in (
                ("big", tmp / "big" / "report.html"),
                ("small", tmp / "small" / "report.html"),
                ("parse_only", tmp / "parse_only.html"),
            ):
                runs[name].append(load(page, tmp / f"profile-{name}-{i}"))
        for name, rs in runs.items():
            results[f"{name}_ready_ms"] = [r for _, r in rs]
            results[f"{name}_wall_s"] = [round(w, 2) for w, _ in rs]
        big = statistics.median(results["big_ready_ms"])
        floor = statistics.median(results["parse_only_ready_ms"])
        results["P2_ready_ms_median"] = big
        results["P2_parse_only_ms_median"] = floor
        results["P2_ratio_vs_parse_only"] = round(big / floor, 2)
        results["P3_wall_s_median"] = statistics.median(results["big_wall_s"])
        results["P3_small_wall_s_median"] = statistics.median(results["small_wall_s"])
        print(json.dumps(results, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
