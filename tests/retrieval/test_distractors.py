from __future__ import annotations

import random
from collections import Counter

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


def test_short_band_widens_deeper_never_shallower_on_a_1000_passage_ranking() -> None:
    # every band passage but two holds the answer: the rest must come from ranks >= 250, nearest first
    hits = _hits(1000)
    for r in range(200, 248):
        p = hits[r].passage
        hits[r] = Hit(Passage(p.id, p.title, p.text + " Zorblax Bridge"), hits[r].score, r)
    for seed in range(10):
        picks = sample_distractors(
            hits, sources=[hits[0].passage], n=9, rng=random.Random(seed), answer="Zorblax Bridge"
        )
        assert [p.rule for p in picks].count("band") == 2
        widened = [p for p in picks if p.rule == "widened"]
        assert len(widened) == 7 and all(250 <= p.rank < 300 for p in widened)
        assert all(p.rank >= 200 for p in picks)


def test_widening_goes_window_by_window_down_to_max_rank_then_random() -> None:
    hits = _hits(1000)
    pool = [Passage(f"r{i}", "R", f"random passage {i}") for i in range(50)]
    leaky = {h.passage.id for h in hits if 200 <= h.rank < 400}  # the screen rejects ranks 200-399
    picks = sample_distractors(
        hits,
        sources=[],
        n=60,
        rng=random.Random(0),
        max_rank=450,
        screen=lambda p: "key_span" if p.id in leaky else None,
        random_passage=lambda rng: rng.choice(pool),
    )
    rules = [p.rule for p in picks]
    assert rules.count("widened") == 50 and all(400 <= p.rank < 450 for p in picks if p.rule == "widened")
    assert rules.count("random") == 10


def test_shallow_ranks_only_when_the_corpus_is_smaller_than_the_band() -> None:
    pool = [Passage(f"r{i}", "R", f"random passage {i}") for i in range(50)]
    tiny = _hits(120)  # a 120-passage corpus: no rank 200 exists
    picks = sample_distractors(
        tiny,
        sources=[tiny[0].passage],
        n=9,
        rng=random.Random(0),
        corpus_size=120,
        random_passage=lambda rng: rng.choice(pool),
    )
    assert [p.rule for p in picks] == ["shallow"] * 9
    assert all(100 <= p.rank < 120 for p in picks)  # the window nearest the band first ([150, 200) is empty)
    # the same short ranking from a large corpus (a search cut at k=120) never goes shallow
    picks = sample_distractors(
        tiny,
        sources=[tiny[0].passage],
        n=9,
        rng=random.Random(0),
        corpus_size=5000,
        random_passage=lambda rng: rng.choice(pool),
    )
    assert [p.rule for p in picks] == ["random"] * 9


def test_a_screened_candidate_is_counted_by_check_and_the_next_one_taken() -> None:
    hits = _hits(250)
    leaky = {f"p{r}": ("meaning" if r % 2 else "key_span") for r in range(200, 240)}
    leaks: Counter[str] = Counter()
    picks = sample_distractors(
        hits, sources=[], n=10, rng=random.Random(3), screen=lambda p: leaky.get(p.id), leaks=leaks
    )
    assert len(picks) == 10 and all(240 <= p.rank < 250 for p in picks)
    assert leaks["meaning"] + leaks["key_span"] == sum(leaks.values()) > 0
    assert all(p.passage.id not in leaky for p in picks)


def test_returns_fewer_only_when_every_rule_runs_dry() -> None:
    hits = _hits(2)
    picks = sample_distractors(hits, sources=[hits[0].passage], n=5, rng=random.Random(0), corpus_size=2)
    assert [p.passage.id for p in picks] == ["p1"]


def test_bad_band_or_max_rank_is_rejected() -> None:
    with pytest.raises(ValueError, match="band"):
        sample_distractors([], sources=[], n=1, rng=random.Random(0), band=(250, 200))
    with pytest.raises(ValueError, match="max_rank"):
        sample_distractors([], sources=[], n=1, rng=random.Random(0), max_rank=240)


def test_answer_in_a_title_excludes_the_passage_and_an_empty_answer_excludes_none() -> None:
    hits = [Hit(Passage(f"p{r}", "Zorblax Bridge" if r % 2 else f"T{r}", f"text {r}"), 0.5, r) for r in range(200, 250)]
    for seed in range(10):
        picks = sample_distractors(hits, sources=[], n=25, rng=random.Random(seed), answer="Zorblax  bridge!")
        assert len(picks) == 25 and all(p.passage.title != "Zorblax Bridge" for p in picks)
    # an answer with no words in it matches nothing: every passage stays eligible
    picks = sample_distractors(hits, sources=[], n=50, rng=random.Random(0), answer="?!")
    assert len(picks) == 50
