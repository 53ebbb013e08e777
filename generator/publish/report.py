"""`ragloom report OUT`: one self-contained HTML page for a run directory (generate, radit lm-ft,
radit lsr): overview, figures and an examples browser, readable offline from disk.

The page is `report.html.j2` with `report.css` and `report.js` inlined and the run's data embedded
as JSON in a `<script type="application/json">` block, every `<` written as `\\u003c` so no text
can close or reopen a tag there. The script puts data into the DOM with `textContent` only.
Secrets never reach the page: config keys named like a credential are dropped, URLs lose their
query string and user info, and the values of credential-named environment variables are blanked.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jinja2

import ragloom
from ragloom.errors import InputFormatError, MissingInputError, OutputError

from ..runs import EXAMPLES, FAILED, RUN, read_jsonl
from .report_data import generate_view
from .report_radit import lm_ft_view, lsr_view

KINDS = {None: "generate", "radit-lm-ft": "radit-lm-ft", "radit-lsr": "radit-lsr"}
SECRET_KEY = re.compile(r"api_?key|secret|passw(or)?d|credential|authorization|cookie|token(?!s|iz)", re.I)
REDACTED = "[redacted]"


def is_secret_key(key: str) -> bool:
    """`api_key_env`, `hf_token`, `client_secret` are; `max_tokens`, `prompt_tokens` (counts) are not."""
    return bool(SECRET_KEY.search(key))


def clean_url(value: str) -> str:
    """A URL without its query string, fragment and user info (which can carry keys)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return value
    if not parts.scheme or not parts.netloc:
        return value
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def clean_config(value: Any) -> Any:
    """The config as the page shows it: credential-named keys dropped, URLs cleaned, recursively."""
    if isinstance(value, dict):
        return {k: clean_config(v) for k, v in value.items() if not is_secret_key(str(k))}
    if isinstance(value, list):
        return [clean_config(v) for v in value]
    if isinstance(value, str) and "://" in value:
        return clean_url(value)
    return value


def env_secrets() -> list[str]:
    """Values of credential-named environment variables (8+ characters), to blank wherever they appear."""
    return sorted({v for k, v in os.environ.items() if is_secret_key(k) and len(v) >= 8}, key=len, reverse=True)


def load_run(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """run.json, the accepted records and the failed jobs of a run directory."""
    if not out.is_dir():
        raise MissingInputError(f"{out}: no such run directory; give the OUT of `ragloom generate` or `radit`")
    path = out / RUN
    if not path.exists():
        raise MissingInputError(f"{path} not found: {out} is not a ragloom run directory (no {RUN})")
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputFormatError(f"{path}: not valid JSON ({e}); rerun the command that wrote it") from None
    if not isinstance(run, dict):
        raise InputFormatError(f"{path}: expected a JSON object; rerun the command that wrote it")
    if run.get("kind") not in KINDS:
        raise InputFormatError(f"{path}: unknown run kind {run.get('kind')!r}; expected one of radit-lm-ft, radit-lsr")
    return run, read_jsonl(out / EXAMPLES, repair=False), read_jsonl(out / FAILED, repair=False)


def _overview(run: dict[str, Any], records: list[dict[str, Any]], failed: list[dict[str, Any]]) -> dict[str, Any]:
    stats: dict[str, Any] = run["stats"] if isinstance(run.get("stats"), dict) else {}
    cfg = run.get("config") or {}
    pricing = cfg.get("pricing") if isinstance(cfg.get("pricing"), dict) else None
    index = run.get("index") or cfg.get("index") or {}
    return {
        "kind": KINDS[run.get("kind")],
        "plan_hash": run.get("plan_hash"),
        "started": run.get("started"),
        "versions": run.get("versions"),
        "planned": stats.get("planned", run.get("count")),
        "accepted": len(records),
        "failed": len(failed),
        "stats": clean_config(stats),
        "pricing": pricing,
        "index": clean_config(index) if isinstance(index, dict) else None,
        "config": clean_config(cfg),
        "exemplars_dropped": run.get("exemplars_dropped"),
    }


def report_data(out: Path) -> dict[str, Any]:
    """Everything the page embeds, as one JSON-able dict."""
    run, records, failed = load_run(out)
    data = _overview(run, records, failed)
    kind = data["kind"]
    if kind == "generate":
        data.update(generate_view(run, records, failed))
        data["usage"] = _usage(data["stats"], data["usage_from_records"], data["pricing"])
    else:
        data.update(lm_ft_view(records) if kind == "radit-lm-ft" else lsr_view(records))
        data["failure_reasons"] = {}
        for f in failed:
            data["failure_reasons"][str(f.get("reason"))] = data["failure_reasons"].get(str(f.get("reason")), 0) + 1
    data["title"] = f"ragloom report: {out.resolve().name}"
    data["written"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    data["ragloom_version"] = ragloom.__version__
    return data


def _usage(stats: dict[str, Any], from_records: dict[str, int], pricing: dict[str, Any] | None) -> dict[str, Any]:
    """Tokens of the whole run when run.json recorded them, else those of the accepted records' last attempts."""
    recorded = stats.get("usage") if isinstance(stats.get("usage"), dict) else None
    usage = {**(recorded or from_records), "recorded": recorded is not None}
    if pricing:
        p, c = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        usage["cost"] = (
            p * float(pricing.get("prompt_per_million") or 0) + c * float(pricing.get("completion_per_million") or 0)
        ) / 1e6
    return usage


def _asset(name: str) -> str:
    return resources.files("ragloom.generator.publish").joinpath(name).read_text(encoding="utf-8")


def _finite(v: Any) -> Any:
    """NaN and infinities (which JSON.parse refuses) as null."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _payload(data: dict[str, Any]) -> str:
    """Compact JSON for the data block: no raw `<` (so no `</script>` or `<!--`), secrets blanked."""
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = text.replace("<", "\\u003c")
    for secret in env_secrets():
        text = text.replace(json.dumps(secret, ensure_ascii=False)[1:-1].replace("<", "\\u003c"), REDACTED)
    return text


def render(data: dict[str, Any]) -> str:
    """The page's HTML."""
    title = data["title"]
    for secret in env_secrets():
        title = title.replace(secret, REDACTED)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_asset("report.html.j2")).render(
        title=title, css=_asset("report.css"), js=_asset("report.js"), payload=_payload(data)
    )


def write_report(out: Path, to: Path | None = None) -> Path:
    """Write the report page for run directory `out` to `to` (default `out/report.html`); returns the path."""
    out = Path(out)
    to = Path(to) if to is not None else out / "report.html"
    page = render(report_data(out))
    tmp = to.with_name(to.name + ".tmp")
    try:
        to.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, to)
    except OSError as e:
        raise OutputError(f"cannot write {to}: {e.strerror or e}; choose another path with --to") from None
    return to
