"""Stand-ins for the two resources AMBER's official scorer needs and this machine cannot have.

The official scorer and damo's parity test inject the SAME stand-ins (scripts/parity_official.py loads
this file by path), so the parity test checks everything around them: noun filtering, safe words,
associations, the similarity loops and every counter. They are not spaCy or NLTK:

- :class:`VectorNlp` plays ``spacy.load("en_core_web_lg")``: ``nlp(text).similarity(other)`` is 1.0 for
  the same token sequence, 0.0 when either side has no vector, else the cosine of the mean token
  vectors (spaCy's ``Doc.similarity`` rules), over a small hand-written vector table;
- :class:`LookupTagger` plays ``nltk.pos_tag``: a token → tag table, "NN" for tokens it does not list.
"""

from __future__ import annotations

import math


class VectorDoc:
    def __init__(self, text: str, vectors: dict[str, list[float]]) -> None:
        self.tokens = text.split()
        self.vectors = vectors

    @property
    def vector(self) -> list[float]:
        rows = [self.vectors.get(t, [0.0, 0.0, 0.0]) for t in self.tokens]
        return [sum(col) / len(rows) for col in zip(*rows)] if rows else [0.0, 0.0, 0.0]

    def similarity(self, other: VectorDoc) -> float:
        if self.tokens == other.tokens:
            return 1.0
        a, b = self.vector, other.vector
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
        if na == 0 or nb == 0:
            return 0.0
        return sum(x * y for x, y in zip(a, b)) / (na * nb)


class VectorNlp:
    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def __call__(self, text: str) -> VectorDoc:
        return VectorDoc(text, self.vectors)


class LookupTagger:
    def __init__(self, tags: dict[str, str]) -> None:
        self.tags = tags

    def __call__(self, tokens: list[str]) -> list[tuple[str, str]]:
        return [(t, self.tags.get(t, "NN")) for t in tokens]
