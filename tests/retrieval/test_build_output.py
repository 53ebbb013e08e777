"""What a user sees while an index is built: progress lines in a pipe or log, nothing from the
library's model loading ("Loading weights" bars), and nothing at all in library use."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

from ragloom.retrieval.progress import BuildProgress
from rich.console import Console

# as a user runs it: tests/conftest.py turns the hub's progress bars off for the test process itself
USER_ENV = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
LINE = re.compile(r"^embedding (\d[\d,]*)/(\d[\d,]*) passages \| [\d,]+ passages/s(?: \| [\d,]+ s left)?$")


def _lines(every: float, updates: list[tuple[int, int]]) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with BuildProgress(console, every=every) as bar:
        for done, total in updates:
            bar.update("embed", done, total)
    return out.getvalue().splitlines()


def test_progress_off_a_terminal_is_one_plain_line_per_interval_and_a_last_one() -> None:
    updates = [(n, 1000) for n in range(100, 1001, 100)]
    every_update = _lines(0.0, updates)
    assert len(every_update) == 10 and all(LINE.match(x) for x in every_update), every_update
    assert [x.split()[1].split("/")[0] for x in every_update] == [f"{n:,}" for n in range(100, 1001, 100)]
    assert "s left" in every_update[0] and "s left" not in every_update[-1]
    # a long interval: the ten quick updates give only the closing line, never silence at the end
    long = _lines(3600.0, updates)
    assert len(long) == 1 and long[0].startswith("embedding 1,000/1,000 passages | "), long


def test_index_build_in_a_pipe_shows_progress_and_no_loading_bar(wiki_corpus: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "ragloom", "index", "build", "--corpus", str(wiki_corpus)]
    cmd += ["--out", str(tmp_path / "idx"), "--limit", "60"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=USER_ENV)
    assert r.returncode == 0, r.stderr
    shown = (r.stdout + r.stderr).splitlines()
    assert any(LINE.match(x) and x.startswith("embedding 60/60 ") for x in shown), shown
    assert "Loading weights" not in r.stdout + r.stderr
    assert shown[-1].startswith("built ") and "60 passages" in shown[-1]


def test_library_build_and_search_print_nothing(wiki_corpus: Path, tmp_path: Path) -> None:
    code = (
        "import ragloom\n"
        f"idx = ragloom.build_index({str(wiki_corpus)!r}, {str(tmp_path / 'idx')!r}, limit=30)\n"
        "idx.search(['Mona Lisa painting'], k=2)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=USER_ENV)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)


def test_the_first_openvino_build_converts_the_encoder_without_a_word_of_the_tracers(
    wiki_corpus: Path, tmp_path: Path
) -> None:
    """A fresh cache: the build converts the model (transformers traces it), and the user sees only
    the progress and the result, as with torch."""
    cmd = [sys.executable, "-m", "ragloom", "index", "build", "--corpus", str(wiki_corpus), "--limit", "20"]
    cmd += ["--out", str(tmp_path / "idx"), "--encoder-backend", "openvino"]
    env = USER_ENV | {"RAGLOOM_CACHE_DIR": str(tmp_path / "empty-cache")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    shown = (r.stdout + r.stderr).splitlines()
    assert list((tmp_path / "empty-cache" / "encoders").iterdir()), "no conversion happened"
    assert all(LINE.match(x) for x in shown[:-1]) and shown[-1].startswith("built "), shown
