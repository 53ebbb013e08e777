"""ragloom.retrieval: corpus readers, passage store, encoder, faiss index, distractor sampling.

This package never imports `ragloom.generator`.
"""

from .build import INDEX_TYPES, IndexParams, build_index
from .corpus import FORMATS, CorpusSpec, CorpusStats, iter_corpus
from .distractors import contains_answer, normalize_text, sample_distractors
from .encoder import DEFAULT_ENCODER, Encoder, EncoderSpec
from .index import Index, read_manifest
from .store import PassageStore
from .types import Distractor, Hit, Passage

__all__ = [
    "DEFAULT_ENCODER",
    "FORMATS",
    "INDEX_TYPES",
    "CorpusSpec",
    "CorpusStats",
    "Distractor",
    "Encoder",
    "EncoderSpec",
    "Hit",
    "Index",
    "IndexParams",
    "Passage",
    "PassageStore",
    "build_index",
    "contains_answer",
    "iter_corpus",
    "normalize_text",
    "read_manifest",
    "sample_distractors",
]
