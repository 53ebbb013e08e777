"""The wheel a user installs holds every template set and data file the code reads, and building it
prints no setuptools warning (a newcomer's `make quickstart` shows the install's output)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_template_set_and_data_file_and_builds_without_warnings(tmp_path: Path) -> None:
    # built from a copy: pip builds in the source tree (build/, *.egg-info), and a test leaves the repo as it was
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("ragloom", "retrieval", "generator", "prompts", "exemplars"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(src)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Package would be ignored" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
    (wheel,) = tmp_path.glob("ragloom-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = [f"ragloom/prompts/{p.relative_to(ROOT / 'prompts')}" for p in (ROOT / "prompts").rglob("*.j2")]
    wanted += [f"ragloom/exemplars/{p.name}" for p in (ROOT / "exemplars").glob("*.jsonl")]
    wanted += [f"ragloom/generator/publish/{n}" for n in ("report.html.j2", "report.css", "report.js")]
    assert any(w.startswith("ragloom/prompts/small/") for w in wanted)
    assert sorted(set(wanted) - names) == []
