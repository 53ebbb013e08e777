from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from ragloom.generator.config import ExemplarFilters, ExemplarSource
from ragloom.generator.exemplars import filter_exemplars, load_source

from ragloom.errors import InputFormatError


def test_builtin_set_has_150_tagged_instructions_over_ten_task_types() -> None:
    items = load_source(ExemplarSource(source="builtin"))
    assert len(items) >= 150
    types = Counter(e.task_type for e in items)
    assert set(types) == {
        "factoid",
        "explanation",
        "comparison",
        "summarize",
        "list",
        "yes_no",
        "multiple_choice",
        "how_to",
        "multi_step",
        "dialogue",
    }
    assert all(n >= 10 for n in types.values())
    assert all(len(e.options) == 4 for e in items if e.task_type == "multiple_choice")
    assert len({e.text for e in items}) == len(items)


def _write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize(
    "fmt,rows,expected",
    [
        ("json", [{"example_question": "What is the tallest tree species?"}], "What is the tallest tree species?"),
        (
            "alpaca",
            [{"instruction": "Summarise this article", "input": "The Nile is long."}],
            "Summarise this article\n\nThe Nile is long.",
        ),
        (
            "sharegpt",
            [
                {
                    "conversations": [
                        {"from": "system", "value": "s"},
                        {"from": "human", "value": "Why is snow white?"},
                        {"from": "gpt", "value": "..."},
                    ]
                }
            ],
            "Why is snow white?",
        ),
        (
            "messages",
            [{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "Who was Ada Lovelace?"}]}],
            "Who was Ada Lovelace?",
        ),
    ],
)
def test_loaders_read_their_format(tmp_path: Path, fmt: str, rows: list, expected: str) -> None:
    f = _write(tmp_path / "x.jsonl", rows)
    items = load_source(ExemplarSource(source=str(f), format=fmt, text_field="example_question"))
    assert [e.text for e in items] == [expected]


def test_json_array_and_datasets_directory(tmp_path: Path) -> None:
    import datasets

    (tmp_path / "a.json").write_text(json.dumps([{"q": "One question here?"}, {"q": "Two question here?"}]))
    assert len(load_source(ExemplarSource(source=str(tmp_path / "a.json"), format="json", text_field="q"))) == 2
    datasets.Dataset.from_list([{"instruction": "How do bees make honey?"}]).save_to_disk(tmp_path / "hf")
    assert load_source(ExemplarSource(source=str(tmp_path / "hf")))[0].text == "How do bees make honey?"


@pytest.mark.parametrize(
    "fmt,content,message",
    [
        ("json", '{"q": "fine"}\n{"q": broken\n', "x.jsonl:2: invalid JSON"),
        ("json", '{"q": "fine"}\n{"other": "x"}\n', "x.jsonl:2: no field 'q'"),
        ("alpaca", '{"input": "x"}\n', "x.jsonl:1: Alpaca record has no 'instruction'"),
        ("sharegpt", '{"conversations": [{"from": "gpt", "value": "x"}]}\n', "x.jsonl:1: no turn with from"),
        ("messages", '{"messages": "nope"}\n', "x.jsonl:1: expected a list of turns"),
    ],
)
def test_malformed_exemplar_files_name_file_and_line(tmp_path: Path, fmt: str, content: str, message: str) -> None:
    (tmp_path / "x.jsonl").write_text(content)
    with pytest.raises(InputFormatError, match=message):
        load_source(ExemplarSource(source=str(tmp_path / "x.jsonl"), format=fmt, text_field="q"))


def test_length_and_duplicate_filters_count_drops() -> None:
    items = load_source(ExemplarSource(source="builtin"))
    dup = [*items[:5], items[0], items[1]]
    dropped: dict[str, int] = {}
    kept = filter_exemplars(dup, ExemplarFilters(min_words=6), dropped)
    assert dropped.get("exemplar_duplicate", 0) + dropped.get("exemplar_too_short", 0) == len(dup) - len(kept)
    assert dropped["exemplar_duplicate"] >= 1
    assert all(len(e.text.split()) >= 6 for e in kept)
