"""Corpus readers: every format streams passages; malformed records are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ragloom.retrieval import CorpusSpec, CorpusStats, iter_corpus

from ragloom.cli import main


def _read(path: Path, **kw) -> tuple[list, CorpusStats]:
    stats = CorpusStats()
    return [p for p, _ in iter_corpus(CorpusSpec(str(path), **kw), stats)], stats


def test_jsonl_with_custom_fields_generated_ids_and_skipped_empties(tmp_path: Path) -> None:
    f = tmp_path / "c.jsonl"
    f.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"doc": "a", "head": "A", "body": "alpha text"},
                {"head": "B", "body": "beta text"},
                {"doc": "c", "head": "C", "body": "   "},
            ]
        )
        + "\n"
    )
    passages, stats = _read(f, id_field="doc", title_field="head", text_field="body")
    assert [p.title for p in passages] == ["A", "B"]
    assert passages[0].id == "a" and passages[1].id.startswith("p")
    again, _ = _read(f, id_field="doc", title_field="head", text_field="body")
    assert again[1].id == passages[1].id  # generated ids are stable
    assert stats.skipped_empty == 1 and stats.generated_ids == 1


def test_dpr_tsv(tmp_path: Path) -> None:
    f = tmp_path / "psgs_w100.tsv"
    f.write_text('id\ttext\ttitle\n1\t"Aaron is a prophet."\tAaron\n2\tSecond passage\tB\n')
    passages, _ = _read(f)
    assert [(p.id, p.title, p.text) for p in passages] == [
        ("1", "Aaron", "Aaron is a prophet."),
        ("2", "B", "Second passage"),
    ]


def test_csv_parquet_and_datasets_directory(tmp_path: Path) -> None:
    import datasets

    rows = [{"id": "x1", "title": "One", "text": "first"}, {"id": "x2", "title": "Two", "text": "second"}]
    ds = datasets.Dataset.from_list(rows)
    ds.to_csv(tmp_path / "c.csv", index=False)
    ds.to_parquet(tmp_path / "c.parquet")
    ds.save_to_disk(tmp_path / "hf")
    for path in ("c.csv", "c.parquet", "hf"):
        passages, _ = _read(tmp_path / path)
        assert [p.id for p in passages] == ["x1", "x2"], path


def test_text_folder_is_chunked_with_overlap_and_titled(tmp_path: Path) -> None:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "guide.md").write_text("# Install Guide\n\n" + " ".join(f"w{i}" for i in range(250)))
    (d / "notes_file.txt").write_text("short note")
    passages, _ = _read(d, chunk_words=100, chunk_overlap=20)
    guide = [p for p in passages if p.id.startswith("guide.md")]
    assert all(p.title == "Install Guide" for p in guide)
    assert len(guide) == 3
    assert guide[0].text.split()[-20:] == guide[1].text.split()[:20]
    assert [p.title for p in passages if p.id.startswith("notes")] == ["notes file"]


BAD = {
    "bad.jsonl": ('{"id": "a", "text": "ok"}\n{"id": "b", "text": \n', "bad.jsonl:2: invalid JSON"),
    "nofield.jsonl": ('{"id": "a", "body": "ok"}\n', "nofield.jsonl:1: record has no field 'text'"),
    "bad.tsv": ("id\ttext\ttitle\n1\tok\tT\n2\tmissing title\n", "bad.tsv:3: expected 3 tab-separated fields, got 2"),
    "header.tsv": ("text\tid\n1\tok\n", "header.tsv:1: expected the DPR header"),
    "bad.csv": ("id,title,text\n1,T,ok\n2,T\n", "bad.csv:3: expected 3 columns, got 2"),
    "bad.parquet": ("this is not parquet", "bad.parquet: not a readable Parquet file"),
    "binary.jsonl": (b'{"id": "a", "text": "ok"}\n\xff\xfe\x00garbage\n', "binary.jsonl:2: not UTF-8"),
    "dup.jsonl": (
        '{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n{"id": "a", "text": "three"}\n',
        "duplicate passage id 'a' at",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_corpus_is_a_one_line_error_naming_file_and_line(name: str, tmp_path: Path, capsys) -> None:
    content, expected = BAD[name]
    f = tmp_path / name
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "idx"
    code = main(["index", "build", "--corpus", str(f), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert expected in err
    assert "Traceback" not in err
    assert not out.exists()
    if name == "dup.jsonl":
        assert "dup.jsonl:1" in err and "dup.jsonl:3" in err


def test_empty_corpus_is_an_error(tmp_path: Path, capsys) -> None:
    f = tmp_path / "empty.jsonl"
    f.write_text('{"id": "a", "text": ""}\n')
    assert main(["index", "build", "--corpus", str(f), "--out", str(tmp_path / "i")]) == 2
    assert "has no passages (1 empty records skipped)" in capsys.readouterr().err


def test_existing_index_is_not_overwritten_without_flag(tmp_path: Path, capsys) -> None:
    out = tmp_path / "idx"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    f = tmp_path / "c.jsonl"
    f.write_text('{"id": "a", "text": "x"}\n')
    assert main(["index", "build", "--corpus", str(f), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
