from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _ragloom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ragloom", *args], capture_output=True, text=True, timeout=300)


def test_build_info_and_search_json(wiki_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    r = _ragloom(
        "index", "build", "--corpus", str(wiki_corpus), "--out", str(out), "--limit", "50", "--index-type", "hnsw"
    )
    assert r.returncode == 0, r.stderr
    assert "50 passages, dim 384, hnsw index" in r.stderr
    info = _ragloom("index", "info", str(out))
    assert "passages   50" in info.stdout and "all-MiniLM-L6-v2" in info.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["passages"] == 50 and manifest["corpus"]["limit"] == 50
    r = _ragloom("index", "search", str(out), "Mona Lisa painting by Leonardo", "-k", "3", "--json")
    hits = json.loads(r.stdout)
    assert [set(h) for h in hits] == [{"id", "title", "text", "score", "rank"}] * 3
    assert hits[0]["id"] == "wiki:Mona Lisa" and [h["rank"] for h in hits] == [0, 1, 2]


def test_search_on_missing_index_is_one_line_exit_2(tmp_path: Path) -> None:
    r = _ragloom("index", "search", str(tmp_path / "nope"), "q")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "index directory not found" in r.stderr
