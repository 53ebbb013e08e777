"""Real encoder, real faiss, real Wikipedia summaries."""

from __future__ import annotations

import itertools
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from ragloom.retrieval import CorpusSpec, Encoder, Index, IndexParams, build_index
from ragloom.retrieval.encoder import passage_text

from ragloom.errors import IndexMismatchError, MissingInputError

KNOWN_QUERIES = {
    "Who painted the Mona Lisa portrait?": "wiki:Mona Lisa",
    "Which wrought-iron tower in Paris was built for the 1889 World's Fair?": "wiki:Eiffel Tower",
    "Who developed the theory of relativity?": "wiki:Albert Einstein",
    "How do plants convert light into chemical energy?": "wiki:Photosynthesis",
    "What is the highest mountain above sea level?": "wiki:Mount Everest",
    "Which antibiotic did Alexander Fleming discover?": "wiki:Penicillin",
}


def test_known_answer_queries_find_their_article_in_top_5(wiki_index: Path) -> None:
    index = Index(wiki_index)
    results = index.search(list(KNOWN_QUERIES), k=5)
    for (query, article), hits in zip(KNOWN_QUERIES.items(), results):
        assert article in [h.passage.id for h in hits], f"{query!r} -> {[h.passage.id for h in hits]}"
        assert [h.rank for h in hits] == list(range(5))
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_saved_index_gives_the_same_results_as_in_memory_search(wiki_index: Path, wiki_corpus: Path) -> None:
    import faiss

    index = Index(wiki_index)
    enc = Encoder()
    store = index.store
    titles, texts = store.slice_texts(0, len(store))
    mem = faiss.IndexFlatIP(enc.dim)
    mem.add(enc.encode_passages([passage_text(t, x) for t, x in zip(titles, texts)]))
    q = enc.encode_queries(list(KNOWN_QUERIES))
    mem_scores, mem_rows = mem.search(q, 20)
    hits = index.search(list(KNOWN_QUERIES), k=20)
    for qi, qhits in enumerate(hits):
        assert [store.get_rows([r])[0].id for r in mem_rows[qi]] == [h.passage.id for h in qhits]
        np.testing.assert_allclose(mem_scores[qi], [h.score for h in qhits], rtol=1e-4, atol=1e-5)


def _recall(approx: list[list], exact: list[list], k: int) -> float:
    got = [len({h.passage.id for h in a[:k]} & {h.passage.id for h in e[:k]}) / k for a, e in zip(approx, exact)]
    return float(np.mean(got))


@pytest.mark.parametrize("kind,floor", [("hnsw", 0.95), ("ivf-pq", 0.6)])
def test_approximate_index_recall_at_10_against_flat(
    kind: str, floor: float, wiki_corpus: Path, wiki_index: Path, tmp_path: Path
) -> None:
    out = tmp_path / kind
    m = build_index(CorpusSpec(str(wiki_corpus)), out, index_type=kind, params=IndexParams(nlist=8, nprobe=8))
    assert m["index"]["type"] == kind
    titles = [json.loads(line)["title"] for line in wiki_corpus.read_text().splitlines()][:60]
    queries = [f"Tell me about {t}" for t in titles]
    recall = _recall(Index(out).search(queries, k=10), Index(wiki_index).search(queries, k=10), 10)
    print(f"{kind} recall@10 vs flat: {recall:.3f}")
    assert recall >= floor


def test_k_up_to_1000_returns_every_passage_of_a_small_corpus(wiki_index: Path) -> None:
    index = Index(wiki_index)
    hits = index.search(["history of science"], k=1000)[0]
    assert len(hits) == len(index) == 400
    assert len({h.passage.id for h in hits}) == 400


def test_precomputed_shards_give_the_same_index_as_embedding_from_scratch(
    wiki_corpus: Path, wiki_index: Path, tmp_path: Path
) -> None:
    import faiss

    index = Index(wiki_index)
    ids, titles, texts = [], [], []
    for i, t, x in index.store.iter_batches():
        ids += i
        titles += t
        texts += x
    vecs = Encoder().encode_passages([passage_text(t, x) for t, x in zip(titles, texts)])
    shards = tmp_path / "shards"
    shards.mkdir()
    # Contriever's layout: pickled (ids, matrix) shards, in an order unrelated to the corpus.
    order = np.random.default_rng(0).permutation(len(ids))
    for s, part in enumerate(np.array_split(order, 3)):
        with open(shards / f"passages_{s:02d}", "wb") as fh:
            pickle.dump(([ids[i] for i in part], vecs[part]), fh)
    out = tmp_path / "pre"
    m = build_index(CorpusSpec(str(wiki_corpus)), out, embeddings=str(shards))
    assert m["embeddings"] == "precomputed"
    a = faiss.read_index(str(out / "index.faiss"))
    b = faiss.read_index(str(wiki_index / "index.faiss"))
    np.testing.assert_allclose(
        faiss.rev_swig_ptr(a.get_xb(), a.ntotal * a.d), faiss.rev_swig_ptr(b.get_xb(), b.ntotal * b.d), atol=1e-5
    )

    # .npy + ids file works too
    np.save(tmp_path / "emb.npy", vecs)
    (tmp_path / "emb.ids.txt").write_text("\n".join(ids) + "\n")
    build_index(CorpusSpec(str(wiki_corpus)), tmp_path / "npy", embeddings=str(tmp_path / "emb.npy"))
    assert Index(tmp_path / "npy").search(["Mona Lisa painting"], k=1)[0][0].passage.id == "wiki:Mona Lisa"


def test_embeddings_whose_ids_do_not_match_the_corpus_are_an_error(wiki_corpus: Path, tmp_path: Path) -> None:
    with open(tmp_path / "shard0", "wb") as fh:
        pickle.dump((["wiki:Mona Lisa", "nope-1", "nope-2"], np.zeros((3, 384), np.float32)), fh)
    with pytest.raises(Exception, match=r"2 embedding ids are not in the corpus.*'nope-1'"):
        build_index(CorpusSpec(str(wiki_corpus)), tmp_path / "x", embeddings=str(tmp_path / "shard0"))
    assert not (tmp_path / "x").exists()


def test_opening_with_another_encoder_is_an_error(wiki_index: Path) -> None:
    with pytest.raises(IndexMismatchError, match="built with encoder 'sentence-transformers/all-MiniLM-L6-v2'"):
        Index(wiki_index, encoder="intfloat/e5-base-v2")


def test_changed_corpus_is_detected(wiki_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    shutil.copy(wiki_corpus, corpus)
    build_index(CorpusSpec(str(corpus)), tmp_path / "idx", limit=30)
    Index(tmp_path / "idx", corpus=CorpusSpec(str(corpus)))  # unchanged: fine
    lines = corpus.read_text().splitlines()
    lines[3] = json.dumps({"id": "wiki:changed", "title": "Changed", "text": "Edited text."})
    corpus.write_text("\n".join(lines) + "\n")
    with pytest.raises(IndexMismatchError, match="changed since the index was built"):
        Index(tmp_path / "idx", corpus=CorpusSpec(str(corpus)))


def test_missing_index_files_are_named(wiki_index: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(wiki_index, broken)
    (broken / "index.faiss").unlink()
    with pytest.raises(MissingInputError, match="index.faiss is missing"):
        Index(broken)
    with pytest.raises(MissingInputError, match="not a ragloom index"):
        Index(tmp_path)


def test_id_lookup_without_a_dict(wiki_index: Path) -> None:
    store = Index(wiki_index).store
    assert store.get("wiki:Moon").title == "Moon"
    assert store.row_of("no such id") is None
