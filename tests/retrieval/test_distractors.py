from __future__ import annotations

import random

import pytest
from ragloom.retrieval import Hit, Passage, sample_distractors


def _hits(n: int, answer_every: int = 0) -> list[Hit]:
    hits = []
    for r in range(n):
        text = f"passage number {r} about topic"
        if answer_every and r % answer_every == 0:
            text += " mentions Zorblax Bridge here"
        hits.append(Hit(Passage(f"p{r}", f"T{r}", text), 1.0 - r / 1000, r))
    return hits


def test_picks_stay_in_the_band_and_avoid_sources_and_answers() -> None:
    hits = _hits(250, answer_every=3)
    sources = [hits[210].passage, hits[0].passage]
    dup = Hit(Passage("dup", "x", hits[210].passage.text.upper()), 0.1, 220)
    hits[220] = dup
    for seed in range(20):
        picks = sample_distractors(hits, sources=sources, n=8, rng=random.Random(seed), answer="zorblax bridge")
        assert len(picks) == 8
        assert all(p.rule == "band" and 200 <= p.rank < 250 for p in picks)
        ids = {p.passage.id for p in picks}
        assert len(ids) == 8 and not ids & {"p210", "p0", "dup"}
        assert not any("zorblax" in p.passage.text.lower() for p in picks)


def test_same_seed_same_picks_and_different_seed_differs() -> None:
    hits = _hits(250)
    src = [hits[0].passage]
    a = sample_distractors(hits, sources=src, n=9, rng=random.Random(7))
    b = sample_distractors(hits, sources=src, n=9, rng=random.Random(7))
    c = sample_distractors(hits, sources=src, n=9, rng=random.Random(8))
    assert [d.passage.id for d in a] == [d.passage.id for d in b]
    assert [d.passage.id for d in a] != [d.passage.id for d in c]


def test_short_band_widens_downward_then_falls_back_to_random() -> None:
    hits = _hits(205)  # only ranks 200..204 in the band
    pool = [Passage(f"r{i}", "R", f"random passage {i}") for i in range(50)]
    picks = sample_distractors(
        hits, sources=[hits[0].passage], n=9, rng=random.Random(0), random_passage=lambda rng: rng.choice(pool)
    )
    rules = [p.rule for p in picks]
    assert rules.count("band") == 5 and rules.count("widened") == 4
    assert all(150 <= p.rank < 200 for p in picks if p.rule == "widened")

    tiny = _hits(3)
    picks = sample_distractors(
        tiny, sources=[tiny[0].passage], n=6, rng=random.Random(0), random_passage=lambda rng: rng.choice(pool)
    )
    assert [p.rule for p in picks].count("widened") == 2
    assert [p.rule for p in picks].count("random") == 4
    assert all(p.rank is None for p in picks if p.rule == "random")


def test_returns_fewer_only_when_every_rule_runs_dry() -> None:
    hits = _hits(2)
    picks = sample_distractors(hits, sources=[hits[0].passage], n=5, rng=random.Random(0))
    assert [p.passage.id for p in picks] == ["p1"]


def test_bad_band_is_rejected() -> None:
    with pytest.raises(ValueError, match="band"):
        sample_distractors([], sources=[], n=1, rng=random.Random(0), band=(250, 200))


def test_answer_in_a_title_excludes_the_passage_and_an_empty_answer_excludes_none() -> None:
    hits = [Hit(Passage(f"p{r}", "Zorblax Bridge" if r % 2 else f"T{r}", f"text {r}"), 0.5, r) for r in range(200, 250)]
    for seed in range(10):
        picks = sample_distractors(hits, sources=[], n=25, rng=random.Random(seed), answer="Zorblax  bridge!")
        assert len(picks) == 25 and all(p.passage.title != "Zorblax Bridge" for p in picks)
    # an answer with no words in it matches nothing: every passage stays eligible
    picks = sample_distractors(hits, sources=[], n=50, rng=random.Random(0), answer="?!")
    assert len(picks) == 50
