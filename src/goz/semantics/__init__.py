"""Class semantics: one table format (`table`), built from word-vector files (`word_vectors`) or
text encoders (`encoders`, a registry: sentence-transformers, CLIP text towers)."""

from goz.semantics.build import build_semantics
from goz.semantics.table import SemanticsTable, load
from goz.semantics.word_vectors import (
    LEMMA_CASES,
    VECTOR_FORMATS,
    embed,
    load_word_vectors,
)

__all__ = ["SemanticsTable", "load", "build_semantics", "embed", "load_word_vectors", "LEMMA_CASES", "VECTOR_FORMATS"]
