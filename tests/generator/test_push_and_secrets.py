"""`ragloom push` against a stand-in Hub client that enforces huggingface_hub's real signatures,
and the secrets audit: a sentinel API key and HF token appear nowhere ragloom writes or says."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import datasets
import huggingface_hub
import pytest
import yaml
from fake_openai import FakeServer, Faults

from ragloom.cli import main

KEY = "sk-SENTINEL-4f1c9e0b7a2d"
HF = "hf_SENTINELtoken8d7e6f5a4b3c"
REAL = huggingface_hub.HfApi


class StandInHfApi:
    """HfApi without the network. Every call is bound against the installed huggingface_hub's
    real signature (a wrong argument name or a missing required one fails the test)."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    uploaded: ClassVar[dict[str, bytes]] = {}
    fail_status: ClassVar[int | None] = None
    fail_network: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        bound = inspect.signature(REAL.__init__).bind(self, *args, **kwargs)
        self.calls.append(("__init__", dict(bound.arguments)))

    def _record(self, name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = inspect.signature(getattr(REAL, name)).bind(self, *args, **kwargs)
        self.calls.append((name, dict(bound.arguments)))
        if self.fail_network:
            import importlib

            # what the installed huggingface_hub's HTTP client lets through when the Hub cannot be reached
            # (httpx2 in 2.x, httpx in 1.x)
            client = next(m for m in ("httpx2", "httpx") if importlib.util.find_spec(m))
            raise importlib.import_module(client).ConnectError("[Errno -3] Temporary failure in name resolution")
        if self.fail_status:
            import requests
            from huggingface_hub.errors import HfHubHTTPError

            resp = requests.Response()
            resp.status_code = self.fail_status
            raise HfHubHTTPError("refused", response=resp)
        return dict(bound.arguments)

    def create_repo(self, *args: Any, **kwargs: Any) -> str:
        a = self._record("create_repo", *args, **kwargs)
        return f"https://huggingface.co/datasets/{a['repo_id']}"

    def upload_folder(self, *args: Any, **kwargs: Any) -> None:
        a = self._record("upload_folder", *args, **kwargs)
        for f in Path(a["folder_path"]).rglob("*"):
            if f.is_file():
                self.uploaded[str(f.relative_to(a["folder_path"]))] = f.read_bytes()


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> type[StandInHfApi]:
    StandInHfApi.calls.clear()
    StandInHfApi.uploaded.clear()
    StandInHfApi.fail_status = None
    StandInHfApi.fail_network = False
    monkeypatch.setattr(huggingface_hub, "HfApi", StandInHfApi)
    return StandInHfApi


@pytest.fixture(scope="module")
def run_dir(wiki_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pushrun")
    with FakeServer() as srv:
        cfg = {
            "index": str(wiki_index),
            "count": 15,
            "output": str(tmp / "out"),
            "backend": {"type": "openai", "base_url": srv.base_url, "model": "fake", "api_key_env": None},
            "quality": {"conformance": False},
        }
        (tmp / "run.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["generate", "--config", str(tmp / "run.yaml"), "--quiet"]) == 0
    return tmp / "out"


def test_push_uploads_export_and_card(hub, run_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", HF)
    assert main(["push", str(run_dir), "--repo", "alice/wiki-rag", "--private"]) == 0
    names = [n for n, _ in hub.calls]
    assert names == ["__init__", "create_repo", "upload_folder"]
    init, create, upload = (a for _, a in hub.calls)
    assert init["token"] == HF
    assert create["repo_id"] == "alice/wiki-rag" and create["repo_type"] == "dataset" and create["private"] is True
    assert upload["repo_id"] == "alice/wiki-rag" and upload["repo_type"] == "dataset"
    figures = {n for n in hub.uploaded if n.startswith("figures/") and n.endswith(".png")}
    assert set(hub.uploaded) - figures == {"train.parquet", "README.md"} and figures
    (tmp_path / "train.parquet").write_bytes(hub.uploaded["train.parquet"])
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "train.parquet"), split="train")
    n = len((run_dir / "examples.jsonl").read_text().splitlines())
    assert len(ds) == n and ds[0]["messages"][0]["role"] == "user"
    card = hub.uploaded["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["configs"][0]["data_files"][0]["path"] == "train.parquet"
    assert "https://huggingface.co/datasets/alice/wiki-rag" in capsys.readouterr().out


def test_push_without_token_fails_before_any_work(hub, run_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no saved login there
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["push", str(run_dir), "--repo", "alice/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "HF_TOKEN" in err and "hf auth login" in err
    assert hub.calls == []


def test_push_refused_by_hub_is_one_line(hub, run_dir: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", HF)
    hub.fail_status = 403
    assert main(["push", str(run_dir), "--repo", "someone-else/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "403" in err and "write token" in err and HF not in err
    assert main(["push", str(run_dir), "--repo", "not a repo"]) == 2
    assert "USER/NAME" in capsys.readouterr().err


def test_push_without_network_is_one_line(hub, run_dir: Path, monkeypatch, capsys) -> None:
    """Before: push caught only OSError; huggingface_hub's httpx errors came out as a traceback."""
    monkeypatch.setenv("HF_TOKEN", HF)
    hub.fail_network = True
    assert main(["push", str(run_dir), "--repo", "alice/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot reach the Hugging Face Hub" in err and "ConnectError" in err


def test_secrets_never_leave_the_environment(hub, wiki_index: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """A run with a sentinel key (with faults, then a 401), export, push: grep everything."""
    monkeypatch.setenv("RAGLOOM_TEST_KEY", KEY)
    monkeypatch.setenv("HF_TOKEN", HF)
    said: list[str] = []
    with FakeServer(Faults(rate_429=0.1, rate_500=0.1, retry_after=0.01)) as srv:
        cfg = {
            "index": str(wiki_index),
            "count": 12,
            "output": str(tmp_path / "out"),
            "backend": {"type": "openai", "base_url": srv.base_url, "model": "fake", "api_key_env": "RAGLOOM_TEST_KEY"},
            "quality": {"conformance": False},
        }
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["generate", "--config", str(tmp_path / "run.yaml")]) == 0
        # the key was really sent to the server, so the audit below is not vacuous
        assert any(h.get("Authorization") == f"Bearer {KEY}" for h in srv.headers_seen)
    assert main(["export", str(tmp_path / "out"), "--format", "messages", "--to", str(tmp_path / "exp.jsonl")]) == 0
    assert main(["push", str(tmp_path / "out"), "--repo", "alice/x"]) == 0
    with FakeServer(Faults(fixed_status=401)) as srv:
        cfg["backend"]["base_url"] = srv.base_url  # type: ignore[index]
        cfg["output"] = str(tmp_path / "out401")
        (tmp_path / "run401.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["generate", "--config", str(tmp_path / "run401.yaml")]) == 2
    # the exception a library user would see
    from ragloom.generator.config import load_config

    import ragloom
    from ragloom.errors import BackendError

    with FakeServer(Faults(fixed_status=401)) as srv, pytest.raises(BackendError) as exc:
        ragloom.generate(load_config(tmp_path / "run401.yaml", [f"backend.base_url={srv.base_url}"]), progress=False)
    said.append(str(exc.value))
    said.append(repr(exc.value))
    out = capsys.readouterr()
    said += [out.out, out.err]
    assert "401" in out.err and "RAGLOOM_TEST_KEY" in out.err  # the message names the variable, not its value
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert KEY.encode() not in data and HF.encode() not in data, path
    for text in [*said, *(json.dumps(a, default=str) for _, a in hub.calls if _ != "__init__")]:
        assert KEY not in text and HF not in text
    shutil.rmtree(tmp_path / "out401", ignore_errors=True)
