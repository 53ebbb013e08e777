"""`ragloom push`: export a run's view with its card and upload both to a Hugging Face dataset repo."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import ragloom
from ragloom.errors import BackendError, ConfigError

from .export import export


def hub_token() -> str | None:
    """HF_TOKEN, else the token saved by `hf auth login`."""
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a failed connection raises: OSError (requests' ConnectionError is one, huggingface_hub < 1)
    and the HTTP client errors of later huggingface_hub releases (httpx in 1.x, httpx2 in 2.x)."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx", "httpx2"):
        try:
            errors.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def push(out: Path, repo: str, *, private: bool = False, view: str | None = None) -> str:
    """Upload `out`'s records in `view` (Parquet) and the dataset card to `repo`; return its URL."""
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", repo):
        raise ConfigError(f"--repo {repo!r}: expected USER/NAME or ORG/NAME, e.g. --repo alice/wiki-rag-instruct")
    token = hub_token()
    if not token:
        raise ConfigError("no Hugging Face token: set HF_TOKEN or run `hf auth login`; nothing was uploaded")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with tempfile.TemporaryDirectory(prefix="ragloom-push-") as d:
        # a missing run or a view its kind lacks fails here, before any upload
        _, view, n = export(out, view, Path(d) / "train.parquet")
        api = HfApi(token=token, library_name="ragloom", library_version=ragloom.__version__)
        try:
            api.create_repo(repo, repo_type="dataset", private=private, exist_ok=True)
            api.upload_folder(
                repo_id=repo,
                folder_path=d,
                repo_type="dataset",
                commit_message=f"ragloom {ragloom.__version__}: {n} records ({view})",
            )
        except HfHubHTTPError as e:
            status = getattr(e.response, "status_code", None)
            hint = {
                401: "the token was refused; set a valid HF_TOKEN",
                403: "the token cannot write there; use a write token or your own namespace",
            }.get(status or 0, "see the Hub's status and retry")
            raise BackendError(f"Hugging Face Hub refused the upload to {repo} ({status}): {hint}") from None
        except _network_errors() as e:  # no network
            raise BackendError(f"cannot reach the Hugging Face Hub to upload {repo}: {type(e).__name__}") from None
    return f"https://huggingface.co/datasets/{repo}"
