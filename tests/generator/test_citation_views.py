"""Citations through the record's document order and RAFT's layout (generator/publish/raft.py)."""

from __future__ import annotations

from ragloom.generator.publish.raft import from_raft, is_raft, raft_row
from ragloom.generator.quality.citations import cited_sentences
from ragloom.generator.runs import final_numbers, parse_quoted, renumber

RECORD = {
    "id": "r1",
    "paradigm": "multi_doc_answer",
    "instruction": "How high are Kilimanjaro and Elbrus?",
    "answer": "##Reason: ##begin_quote## Kilimanjaro is 5,895 m high ##end_quote## and "
    "##begin_quote## Elbrus is 5,642 m high ##end_quote##.\n<ANSWER>: 5,895 m and 5,642 m",
    "documents": [
        {"id": "d1", "title": "Alaric I", "text": "Alaric I was a king of the Visigoths.", "role": "distractor"},
        {"id": "s2", "title": "Mount Elbrus", "text": "Elbrus is 5,642 m high.", "role": "source"},
        {"id": "d2", "title": "Nile", "text": "The Nile is a river.", "role": "distractor"},
        {"id": "s1", "title": "Mount Kilimanjaro", "text": "Kilimanjaro is 5,895 m high.", "role": "source"},
    ],
}


def test_prompt_numbers_map_to_the_documents_final_places() -> None:
    """The prompt showed s1 as [1] and s2 as [2]; the record holds them 4th and 2nd."""
    mapping = final_numbers(["s1", "s2"], [d["id"] for d in RECORD["documents"]])
    assert mapping == {1: 4, 2: 2}
    answer = renumber("Kilimanjaro is 5,895 m high [1]. Elbrus is 5,642 m [2]. Both are volcanoes [1][2].", mapping)
    assert answer == "Kilimanjaro is 5,895 m high [4]. Elbrus is 5,642 m [2]. Both are volcanoes [4][2]."
    titles = [RECORD["documents"][n - 1]["title"] for s in cited_sentences(answer) for n in s.cites]
    assert titles == ["Mount Kilimanjaro", "Mount Elbrus", "Mount Kilimanjaro", "Mount Elbrus"]


def test_raft_rows_carry_raft_fields_and_read_back_with_roles() -> None:
    row = raft_row(RECORD)
    assert is_raft(row)
    assert row["context"] == {
        "title": [["Alaric I", "Mount Elbrus", "Nile", "Mount Kilimanjaro"]],
        "sentences": [[d["text"] for d in RECORD["documents"]]],
    }
    assert row["oracle_context"] == "Elbrus is 5,642 m high.\n\nKilimanjaro is 5,895 m high."
    assert row["instruction"].splitlines()[0] == "<DOCUMENT>Alaric I was a king of the Visigoths.</DOCUMENT>"
    assert row["instruction"].endswith("</DOCUMENT>\nHow high are Kilimanjaro and Elbrus?")
    assert parse_quoted(row["cot_answer"]).answer == "5,895 m and 5,642 m"
    back = from_raft(row)
    assert [(d["title"], d.get("role")) for d in back["documents"]] == [
        (d["title"], d["role"]) for d in RECORD["documents"]
    ]
    assert back["question"] == RECORD["instruction"] and back["answer"] == RECORD["answer"]


def test_a_raft_row_as_gorilla_writes_it() -> None:
    """Placeholder titles, one oracle chunk, no paradigm: roles come from the oracle."""
    row = {
        "id": "seed_task_0",
        "type": "general",
        "question": "Where does Roberto work?",
        "context": {
            "title": [["placeholder_title"] * 3],
            "sentences": [["Roberto works at Sanofi.", "Paris is big.", "Rome is old."]],
        },
        "oracle_context": "Roberto works at Sanofi.",
        "cot_answer": "##Reason: ##begin_quote## Roberto works at Sanofi. ##end_quote## <ANSWER>: Sanofi",
        "instruction": "<DOCUMENT>Roberto works at Sanofi.</DOCUMENT>\n...",
    }
    back = from_raft(row)
    assert [d.get("role") for d in back["documents"]] == ["source", "distractor", "distractor"]
    assert back["paradigm"] is None
