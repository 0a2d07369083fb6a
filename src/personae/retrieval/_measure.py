"""How well retrieval reproduces reference personas (e.g. the shared ``*_persona_retr`` columns)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from personae.data import PreferenceRecord
from personae.errors import ConfigError
from personae.retrieval._index import PersonaIndex, RetrievedPersona, persona_text

__all__ = ["RetrievalReport", "measure_retrieval", "normalize_whitespace"]


def normalize_whitespace(text: str) -> str:
    """Runs of whitespace as one space, none at the ends: what exact matches compare."""
    return " ".join(text.split())


@dataclass
class RetrievalReport:
    """Retrieved personas for test records, scored against the records' reference personas.

    Rates are over the ``measured`` records that have both reference columns (NaN when none
    has): ``*_top1`` is the share whose top-ranked retrieved persona equals the reference
    (whitespace normalized), ``*_hit_at_k`` the share with the reference among the top ``k``;
    ``both_*`` needs one retrieved record to match both sides. ``mean_score`` is the mean
    similarity of the top-ranked record over all test records. ``results`` holds the
    retrieved records of every test record, in order.
    """

    embedder: str
    k: int
    total: int
    measured: int
    chosen_top1: float
    rejected_top1: float
    both_top1: float
    chosen_hit_at_k: float
    rejected_hit_at_k: float
    both_hit_at_k: float
    mean_score: float
    reference_columns: tuple[str, str] = ("chosen_persona_retr", "rejected_persona_retr")
    results: list[list[RetrievedPersona]] = field(default_factory=list, repr=False)

    def summary(self) -> str:
        """A few lines with the figures, for a terminal."""
        head = f"retrieved for {self.total} prompts with {self.embedder} (k={self.k}); " \
               f"mean top-1 similarity {self.mean_score:.3f}"
        if not self.measured:
            return head + f"\nno record has {self.reference_columns[0]}/{self.reference_columns[1]} to compare with"
        lines = [head, f"compared with {self.reference_columns[0]}/{self.reference_columns[1]} "
                       f"on {self.measured} records:",
                 f"  top-1 exact match: chosen {self.chosen_top1:.1%}, rejected {self.rejected_top1:.1%}, "
                 f"both {self.both_top1:.1%}"]
        if self.k > 1:
            lines.append(f"  hit within top-{self.k}: chosen {self.chosen_hit_at_k:.1%}, "
                         f"rejected {self.rejected_hit_at_k:.1%}, both {self.both_hit_at_k:.1%}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The figures (``results`` left out), JSON-serialisable."""
        return {name: getattr(self, name) for name in (
            "embedder", "k", "total", "measured", "chosen_top1", "rejected_top1", "both_top1",
            "chosen_hit_at_k", "rejected_hit_at_k", "both_hit_at_k", "mean_score")} | {
            "reference_columns": list(self.reference_columns)}


def measure_retrieval(
    train_records: Iterable[PreferenceRecord] | PersonaIndex,
    test_records: Iterable[PreferenceRecord],
    *,
    embedder: str | Any = "auto",
    k: int = 1,
    persona_columns: Sequence[str] = ("chosen_persona", "rejected_persona"),
    reference_columns: Sequence[str] = ("chosen_persona_retr", "rejected_persona_retr"),
    exclude_same_prompt: bool = False,
    model_path: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
) -> RetrievalReport:
    """Retrieve personas for every test prompt and compare them with the reference columns.

    ``train_records`` are indexed with :meth:`PersonaIndex.build` (``embedder``,
    ``persona_columns``, ``model_path``, ``batch_size`` go there), or pass a built index.
    """
    refs = tuple(reference_columns)
    if len(refs) != 2:
        raise ConfigError(f"reference_columns needs the chosen and the rejected column, got {refs!r}")
    if isinstance(train_records, PersonaIndex):
        index = train_records
    else:
        index = PersonaIndex.build(train_records, embedder=embedder, persona_columns=persona_columns,
                                   model_path=model_path, batch_size=batch_size)
    tests = list(test_records)
    results = index.retrieve_many([r.prompt for r in tests], k, exclude_same_prompt=exclude_same_prompt)
    counts = dict.fromkeys(("c1", "r1", "b1", "ck", "rk", "bk"), 0)
    measured = 0
    for record, found in zip(tests, results, strict=True):
        chosen_ref, rejected_ref = persona_text(record, refs[0]), persona_text(record, refs[1])
        if chosen_ref is None or rejected_ref is None:
            continue
        measured += 1
        chosen_ref, rejected_ref = normalize_whitespace(chosen_ref), normalize_whitespace(rejected_ref)
        chosen = [normalize_whitespace(hit.chosen_persona) == chosen_ref for hit in found]
        rejected = [normalize_whitespace(hit.rejected_persona) == rejected_ref for hit in found]
        both = [c and r for c, r in zip(chosen, rejected, strict=True)]
        for key, hits in (("c", chosen), ("r", rejected), ("b", both)):
            counts[key + "1"] += bool(hits and hits[0])
            counts[key + "k"] += any(hits)
    top_scores = [found[0].score for found in results if found]

    def rate(key: str) -> float:
        return counts[key] / measured if measured else math.nan

    return RetrievalReport(
        embedder=index.embedder, k=k, total=len(tests), measured=measured,
        chosen_top1=rate("c1"), rejected_top1=rate("r1"), both_top1=rate("b1"),
        chosen_hit_at_k=rate("ck"), rejected_hit_at_k=rate("rk"), both_hit_at_k=rate("bk"),
        mean_score=sum(top_scores) / len(top_scores) if top_scores else math.nan,
        reference_columns=(refs[0], refs[1]), results=results,
    )
