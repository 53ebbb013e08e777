"""Does the corpus know what the encoder does not? The leak screen's misses describe the answer through
world knowledge ("a German polar meteorologist" for Wegener). This measures one way to read that
knowledge from the index itself: search the index with each window of a candidate distractor (its title
with one or two sentences, as the statement check reads it) and take the best rank at which one of the
record's sources comes back (the candidate's own passage left out). A leak should bring a source back
near the top; a leak-free band distractor should not.

    python bench/leak_bridge.py [calibration heldout ...] [--json bench/results/leak_bridge.json]

Prints, per rank cut, how many planted leaks and leak-free distractors a "source within the top k" rule
would flag, and the rank of each leak the screen misses (statement check on). Measured in session 17:
it does not separate (see the README's quality section), so no such check is in the screen.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

DEPTH = 20
CUTS = (1, 3, 5, 10, 20)


def source_rank(index: Any, windows: list[str], own: str, sources: set[str]) -> int | None:
    """The best 0-based rank, over the windows' searches, at which a source comes back (None: not in
    the top DEPTH of any); the candidate's own passage does not count as a rank."""
    best = None
    for hits in index.search(windows, DEPTH + 1):
        titles = [h.passage.title for h in hits if h.passage.title != own]
        rank = next((i for i, t in enumerate(titles[:DEPTH]) if t in sources), None)
        if rank is not None and (best is None or rank < best):
            best = rank
    return best


def main() -> None:
    from leak_eval import emit, fired, load, make_screen, screen_of
    from leak_fixture import open_index
    from ragloom.generator.quality.leaks import windows
    from ragloom.retrieval import Passage

    ap = argparse.ArgumentParser()
    ap.add_argument("sets", nargs="*", default=["calibration", "heldout", "heldout2", "heldout3", "heldout4"])
    ap.add_argument("--index-dir", default=os.path.expanduser("~/.cache/ragloom/leak-fixture-index"))
    ap.add_argument("--json")
    args = ap.parse_args()
    index = open_index(Path(args.index_dir))
    screen = make_screen(False)
    rows = []
    for name in args.sets:
        for rec in load(name):
            s = screen_of(screen, rec)
            sources = {d["title"] for d in rec["sources"]}
            for d in rec["band"] + rec["planted"]:
                p = Passage(d["id"], d["title"], d["text"])
                rank = source_rank(index, windows(p), d["title"], sources)
                missed = bool(d["leak"]) and not any(fired(s, d).values())
                rows.append(
                    {
                        "set": name,
                        "record": rec["id"],
                        "title": d["title"],
                        "leak": d["leak"],
                        "rank": rank,
                        "missed": missed,
                    }
                )
    leaks = [r for r in rows if r["leak"]]
    clean = [r for r in rows if not r["leak"]]
    out = {
        "leaks": len(leaks),
        "leak_free": len(clean),
        "flagged_at_top_k": {
            k: {
                "leaks": sum(r["rank"] is not None and r["rank"] < k for r in leaks),
                "leak_free": sum(r["rank"] is not None and r["rank"] < k for r in clean),
                "screen_misses": sum(r["rank"] is not None and r["rank"] < k for r in leaks if r["missed"]),
            }
            for k in CUTS
        },
        "screen_misses": [
            f"{r['record']} {r['leak']}: {r['title']} (source rank {r['rank']})" for r in leaks if r["missed"]
        ],
    }
    emit(out, args.json)


if __name__ == "__main__":
    main()
