"""Okapi BM25 in pure Python: the retrieval fallback that needs no extra packages."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

__all__ = ["BM25", "tokenize"]

_WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens (letters, digits and underscores, any script)."""
    return _WORD.findall(text.lower())


class BM25:
    """Okapi BM25 over a fixed set of documents (``k1=1.5``, ``b=0.75`` by default).

    The idf is the non-negative form ``log(1 + (N - df + 0.5) / (df + 0.5))``, so a word that
    occurs in every document adds almost nothing and never subtracts. Scores are unbounded
    (higher is more similar); a query sharing no word with a document scores 0 for it.
    """

    def __init__(self, documents: Iterable[str], *, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._postings: dict[str, list[tuple[int, int]]] = {}
        lengths: list[int] = []
        for index, text in enumerate(documents):
            counts = Counter(tokenize(text))
            lengths.append(sum(counts.values()))
            for term, tf in counts.items():
                self._postings.setdefault(term, []).append((index, tf))
        self.size = len(lengths)
        average = (sum(lengths) / self.size) if self.size else 0.0
        # the length part of each document's denominator, computed once
        self._norm = [k1 * (1 - b + b * (n / average if average else 0.0)) for n in lengths]
        self._idf = {term: math.log(1 + (self.size - len(p) + 0.5) / (len(p) + 0.5))
                     for term, p in self._postings.items()}

    def scores(self, query: str) -> list[float]:
        """The score of every document for ``query``, in document order."""
        out = [0.0] * self.size
        for term, qtf in Counter(tokenize(query)).items():
            postings = self._postings.get(term)
            if not postings:
                continue
            weight = self._idf[term] * qtf
            for index, tf in postings:
                out[index] += weight * tf * (self.k1 + 1) / (tf + self._norm[index])
        return out

    def score_many(self, queries: Sequence[str]) -> list[list[float]]:
        """The scores of every document for each of ``queries``: one list per query, in document
        order."""
        return [self.scores(query) for query in queries]
