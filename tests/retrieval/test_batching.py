"""Encode batches of like length, and the encoder's memory of texts it embedded lately."""

from __future__ import annotations

import numpy as np
import pytest
from ragloom.retrieval import Encoder, EncoderSpec
from ragloom.retrieval.batching import length_batches


def test_a_batch_ends_where_the_length_drops_or_it_is_full() -> None:
    lengths = [110, 10, 12, 100, 11, 95, 60]
    got = [b.tolist() for b in length_batches(lengths, 32, slack=8)]
    # 110, 100, 95 are all >= 0.8 x 110; 60 is not; 12, 11, 10 are within 8 tokens of each other
    assert got == [[0, 3, 5], [6], [2, 4, 1]]
    assert [b.tolist() for b in length_batches([5, 5, 5, 5, 5], 2, slack=8)] == [[0, 1], [2, 3], [4]]
    # short texts a few tokens apart stay together although 4 < 0.8 x 9
    assert [b.tolist() for b in length_batches([9, 4, 7], 32, slack=8)] == [[0, 2, 1]]
    assert length_batches([], 32, slack=8) == []


@pytest.mark.parametrize("backend", ["torch", "openvino"])
def test_a_call_mixing_long_and_short_texts_gets_each_texts_own_vector(backend: str) -> None:
    """Long answers and short clauses in one call (what the checks send): every vector equals the
    one sentence-transformers gives that text on its own, in the caller's order."""
    from sentence_transformers import SentenceTransformer

    long = "The Nile is a major north-flowing river in northeastern Africa. " * 6
    texts = ["Cairo", long, "It flows north.", long[:120], "", "Lake Victoria feeds the White Nile."] * 6
    enc = Encoder(EncoderSpec(backend=backend), cache_size=0)
    got = enc.encode_passages(texts)
    ref = SentenceTransformer(enc._load_path, device="cpu")
    for i, t in enumerate(texts[:6]):
        want = ref.encode([t], normalize_embeddings=True)[0]
        assert float(got[i] @ want) > 0.9999, (i, t[:30])
        assert np.array_equal(got[i], got[i + 6])


def test_a_text_embedded_lately_is_not_embedded_again() -> None:
    enc = Encoder()
    seen: list[str] = []
    model = enc.model
    encode = model.encode

    def counting(texts, *a, **k):  # type: ignore[no-untyped-def]
        seen.extend(texts)
        return encode(texts, *a, **k)

    model.encode = counting
    questions = ["Where does the Nile rise?", "Who built the pyramids of Giza?"]
    first = enc.encode_passages(questions)  # the relevance check
    first[0] *= 0  # what a caller does with its array does not reach the encoder's memory
    again = enc.encode_queries([questions[1], questions[0], "Which sea does the Nile reach?"])  # the search
    assert seen == [*questions, "Which sea does the Nile reach?"]
    assert float(again[1] @ again[1]) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(again[0], enc.encode_passages([questions[1]])[0])
    # a model that prefixes queries embeds the prefixed text, which it has not seen
    prefixed = Encoder(EncoderSpec(query_prefix="query: "))
    prefixed.encode_passages(questions)
    prefixed.model.encode = counting
    seen.clear()
    prefixed.encode_queries(questions[:1])
    assert seen == ["query: Where does the Nile rise?"]
