"""The persona index: training prompts with their personas, searched by prompt similarity."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from personae.data import PreferenceRecord
from personae.errors import ConfigError, DataError, MissingExtraError
from personae.retrieval._bm25 import BM25
from personae.retrieval._embed import SentenceTransformerEmbedder, encode_normalized

__all__ = ["EMBEDDERS", "PersonaIndex", "RetrievedPersona", "persona_text"]

logger = logging.getLogger(__name__)

EMBEDDERS = ("auto", "minilm", "bm25")
"""Embedder names :meth:`PersonaIndex.build` accepts (besides an object with ``encode``)."""

_QUERY_CHUNK = 256  # queries scored at once (bounds the query-by-document score matrix)


@dataclass(frozen=True)
class RetrievedPersona:
    """One training record found for a prompt: its prompt, its two personas, and how similar it is.

    ``score`` is the cosine similarity of the prompt embeddings (-1..1), or the BM25 score
    (0 and up, unbounded) for the ``bm25`` embedder.
    """

    prompt: str
    chosen_persona: str
    rejected_persona: str
    score: float
    record_id: str


@dataclass(frozen=True)
class _Entry:
    prompt: str
    chosen_persona: str
    rejected_persona: str
    record_id: str


def persona_text(record: PreferenceRecord, column: str) -> str | None:
    """The non-blank text of ``column`` in a record's metadata (or its source row), else None."""
    value = record.metadata.get(column)
    if value is None:
        value = record.raw.get(column)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


class _BM25Backend:
    def __init__(self, prompts: Sequence[str]) -> None:
        self.bm25 = BM25(prompts)

    def scores(self, queries: Sequence[str]) -> Any:
        import numpy as np

        return np.asarray(self.bm25.score_many(queries), dtype=np.float64).reshape(len(queries), self.bm25.size)


class _DenseBackend:
    def __init__(self, embedder: Any, prompts: Sequence[str], batch_size: int) -> None:
        self.embedder = embedder
        self.batch_size = batch_size
        self.matrix = encode_normalized(embedder, prompts, batch_size=batch_size)

    def scores(self, queries: Sequence[str]) -> Any:
        queries_matrix = encode_normalized(self.embedder, queries, batch_size=self.batch_size)
        if queries_matrix.shape[1] != self.matrix.shape[1]:
            raise ConfigError(f"the embedder returned {queries_matrix.shape[1]}-dimensional query vectors for "
                              f"an index of {self.matrix.shape[1]}-dimensional ones")
        return queries_matrix @ self.matrix.T


class PersonaIndex:
    """Training prompts and their personas; :meth:`retrieve` finds the personas of similar prompts.

    ::

        index = PersonaIndex.build(train.records, persona_columns=("chosen_persona_gold", "rejected_persona_gold"))
        best = index.retrieve("How do I get a mortgage?", k=3)
        best[0].chosen_persona, best[0].score

    Build it with :meth:`build`.
    """

    def __init__(self, entries: Sequence[_Entry], backend: Any, *, embedder: str,
                 persona_columns: tuple[str, str]) -> None:
        self._entries = list(entries)
        self._backend = backend
        self.embedder = embedder
        """The embedder's name: ``minilm``, ``bm25``, ``sentence-transformers:<path>`` or a class name."""
        self.persona_columns = persona_columns
        self._by_prompt: dict[str, list[int]] = {}
        for position, entry in enumerate(self._entries):
            self._by_prompt.setdefault(entry.prompt.strip(), []).append(position)

    @classmethod
    def build(
        cls,
        records: Iterable[PreferenceRecord],
        *,
        embedder: str | Any = "auto",
        persona_columns: Sequence[str] = ("chosen_persona", "rejected_persona"),
        model_path: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        device: str | None = None,
    ) -> PersonaIndex:
        """Index the prompts of ``records`` whose metadata holds both persona columns.

        ``embedder``: ``"minilm"`` (all-MiniLM-L6-v2 from the ``retrieval`` extra, cosine
        similarity of normalized embeddings; ``model_path`` loads another local folder or
        cached hub id the same way), ``"bm25"`` (pure Python, no extra), ``"auto"`` (MiniLM
        when the extra is installed, else BM25 with a logged notice) or any object with
        ``encode(list[str]) -> array`` (its vectors are normalized here). Prompts are encoded
        ``batch_size`` at a time. Records lacking a persona are left out (logged); none with
        both personas raises :class:`DataError`. ``embedder="minilm"`` without the extra raises
        :class:`MissingExtraError`.
        """
        columns = tuple(persona_columns)
        if len(columns) != 2:
            raise ConfigError(f"persona_columns needs the chosen and the rejected column, got {columns!r}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        entries: list[_Entry] = []
        missing = 0
        first: PreferenceRecord | None = None
        for record in records:
            if first is None:
                first = record
            chosen, rejected = persona_text(record, columns[0]), persona_text(record, columns[1])
            if chosen is None or rejected is None:
                missing += 1
                continue
            entries.append(_Entry(record.prompt, chosen, rejected, record.record_id))
        if not entries:
            seen = ", ".join(sorted(first.metadata)) if first is not None else "no records"
            raise DataError(f"no record has both persona columns {columns[0]!r} and {columns[1]!r} "
                            f"(metadata columns: {seen or 'none'})", source="PersonaIndex.build",
                            field=columns[0])
        if missing:
            logger.warning("left %d record(s) without both %s and %s out of the persona index",
                           missing, columns[0], columns[1])
        name, backend = _backend(embedder, [e.prompt for e in entries], model_path=model_path,
                                 batch_size=batch_size, device=device)
        logger.info("indexed %d training prompts with %s", len(entries), name)
        return cls(entries, backend, embedder=name, persona_columns=(columns[0], columns[1]))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"PersonaIndex({len(self)} prompts, embedder={self.embedder!r})"

    def retrieve(self, prompt: str, k: int = 1, *, exclude_same_prompt: bool = False) -> list[RetrievedPersona]:
        """The personas of the ``k`` training prompts most similar to ``prompt``, best first.

        With ``exclude_same_prompt`` a training record whose prompt is exactly ``prompt``
        (surrounding whitespace aside) is skipped, e.g. to retrieve for the training records
        themselves. Fewer than ``k`` come back when the index is smaller.
        """
        return self.retrieve_many([prompt], k, exclude_same_prompt=exclude_same_prompt)[0]

    def retrieve_many(self, prompts: Sequence[str], k: int = 1, *,
                      exclude_same_prompt: bool = False) -> list[list[RetrievedPersona]]:
        """:meth:`retrieve` for many prompts, encoded in batches; one list per prompt, in order."""
        import numpy as np

        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        prompts = [str(p) for p in prompts]
        results: list[list[RetrievedPersona]] = []
        for start in range(0, len(prompts), _QUERY_CHUNK):
            chunk = prompts[start:start + _QUERY_CHUNK]
            scores = np.array(self._backend.scores(chunk), dtype=np.float64)
            for row, prompt in zip(scores, chunk, strict=True):
                if exclude_same_prompt:
                    row[self._by_prompt.get(prompt.strip(), [])] = -np.inf
                order = np.argsort(-row, kind="stable")[:k]
                results.append([self._hit(int(i), float(row[i])) for i in order if np.isfinite(row[i])])
        return results

    def _hit(self, position: int, score: float) -> RetrievedPersona:
        entry = self._entries[position]
        return RetrievedPersona(entry.prompt, entry.chosen_persona, entry.rejected_persona, score, entry.record_id)


def _backend(embedder: Any, prompts: Sequence[str], *, model_path: str | os.PathLike[str] | None,
             batch_size: int, device: str | None) -> tuple[str, Any]:
    if isinstance(embedder, str):
        name = embedder.strip().lower()
        if name not in EMBEDDERS:
            raise ConfigError(f"embedder must be one of {', '.join(EMBEDDERS)} or an object with encode(), "
                              f"got {embedder!r}")
        if name == "bm25":
            return "bm25", _BM25Backend(prompts)
        try:
            model = SentenceTransformerEmbedder(model_path, batch_size=batch_size, device=device)
        except MissingExtraError as exc:
            if name == "minilm" or model_path is not None:
                raise
            logger.warning("%s; using BM25 word matching for persona retrieval instead", exc)
            return "bm25", _BM25Backend(prompts)
        label = "minilm" if model_path is None else f"sentence-transformers:{model_path}"
        return label, _DenseBackend(model, prompts, batch_size)
    if not callable(getattr(embedder, "encode", None)):
        raise ConfigError(f"embedder must be one of {', '.join(EMBEDDERS)} or an object with encode(), "
                          f"got a {type(embedder).__name__}")
    return str(getattr(embedder, "name", type(embedder).__name__)), _DenseBackend(embedder, prompts, batch_size)
