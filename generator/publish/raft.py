"""RAFT's dataset layout (gorilla/raft, `raft.py`), written by `ragloom export --format raft` and read
by `ragloom audit`.

A RAFT row: `id`, `type` ("general"), `question`, `context: {title: [[...]], sentences: [[...]]}` (one
list per row, nested one level as RAFT writes it), `oracle_context` (the document that holds the
answer), `cot_answer` (reasoning quoting the documents between ##begin_quote## and ##end_quote##, then
`<ANSWER>: ...`) and `instruction` (each document as `<DOCUMENT>...</DOCUMENT>` on its own line, then
the question). ragloom's `oracle_context` is its source documents' texts joined by a blank line (a
ragloom record may have several); reading it back, a document whose text is in `oracle_context` is a
source and the others distractors.
"""

from __future__ import annotations

from typing import Any

RAFT_KEYS = ("question", "context", "cot_answer")


def raft_row(record: dict[str, Any]) -> dict[str, Any]:
    """The RAFT row of a ragloom record (its JSON dict), documents in the record's order."""
    docs = record["documents"]
    texts = [d["text"] for d in docs]
    oracle = "\n\n".join(d["text"] for d in docs if d.get("role") == "source")
    instruction = "".join(f"<DOCUMENT>{t}</DOCUMENT>\n" for t in texts) + record["instruction"]
    return {
        "id": record["id"],
        "type": "general",
        "question": record["instruction"],
        "context": {"title": [[d.get("title") or "" for d in docs]], "sentences": [texts]},
        "oracle_context": oracle,
        "cot_answer": record["answer"],
        "instruction": instruction,
        "paradigm": record.get("paradigm"),
    }


def is_raft(row: Any) -> bool:
    return isinstance(row, dict) and all(k in row for k in RAFT_KEYS) and isinstance(row["context"], dict)


def _flat(value: Any) -> list[Any]:
    """RAFT nests each list one level ([[...]]); a flat list is read as it is."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        return list(value[0])
    return list(value) if isinstance(value, list) else []


def from_raft(row: dict[str, Any]) -> dict[str, Any]:
    """The row in the shape `audit_input.to_record` reads: question, answer, documents with roles
    (source: its text is in `oracle_context`; no roles when the row has no oracle)."""
    ctx = row["context"]
    texts = [str(t) for t in _flat(ctx.get("sentences"))]
    titles = [str(t) for t in _flat(ctx.get("title"))]
    titles = titles if len(titles) == len(texts) else [""] * len(texts)
    oracle = row.get("oracle_context")
    oracles = oracle if isinstance(oracle, list) else [oracle] if isinstance(oracle, str) and oracle else []

    def role(text: str) -> str | None:
        if not oracles:
            return None
        return "source" if any(text.strip() and text.strip() in str(o) for o in oracles) else "distractor"

    return {
        "id": row.get("id"),
        "question": row["question"],
        "answer": row["cot_answer"],
        "paradigm": row.get("paradigm"),
        "documents": [
            {"id": f"doc{i}", "title": t, "text": x, **({"role": r} if (r := role(x)) else {})}
            for i, (t, x) in enumerate(zip(titles, texts, strict=True))
        ],
    }
