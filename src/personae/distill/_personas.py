"""Where the persona of a preference pair comes from.

A persona spec is a comma-separated list of sources, tried in order; the first that gives a
non-empty text wins:

``column:NAME``  the record's column ``NAME`` (e.g. ``column:persona``)
``judges:DIR``   the persona of the user's fitted SynthesizeMe judge in ``DIR`` (``personae fit``)
``profile``      the user's self-reported profile (demographics)
``none``         no persona: the model sees only the context and the response

``"judges:out/judges,profile"`` takes the inferred persona and falls back on the profile.
A pair no source covers gets an empty persona, and its input has no persona segment.

Both sides of a pair. Persona-augmented data often describes the loser too: the tailoring
sets' ``rejected_persona_gold``, the ``rejected_persona`` column that ``personae
infer-personas`` writes. :func:`flip_pairs` turns each such pair into two, one per side, so a
model trained or scored on them can only be right by reading the persona.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from personae.data import PreferenceRecord
from personae.errors import ConfigError, DataError

__all__ = ["FLIPPED_SUFFIX", "PersonaResolver", "PersonaSource", "flip_pairs", "parse_persona_spec"]

logger = logging.getLogger(__name__)

_KINDS = ("column", "judges", "profile", "none")
FLIPPED_SUFFIX = "~flipped"
"""Appended to a record id for the pair's rejected side (see :func:`flip_pairs`)."""


@dataclass(frozen=True)
class PersonaSource:
    """One source of personas: ``kind`` is column, judges, profile or none; ``value`` its argument."""

    kind: str
    value: str | None = None

    def __str__(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value}"


def parse_persona_spec(spec: str) -> list[PersonaSource]:
    """Parse ``"judges:DIR,profile"`` into sources; raise :class:`ConfigError` when malformed."""
    sources: list[PersonaSource] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        kind, sep, value = part.partition(":")
        kind = kind.strip()
        if kind not in _KINDS:
            raise ConfigError(f"unknown persona source {part!r}; use column:NAME, judges:DIR, profile or none")
        if kind in ("column", "judges") and not value.strip():
            raise ConfigError(f"persona source {kind!r} needs an argument, e.g. {kind}:"
                              f"{'persona' if kind == 'column' else 'out/judges'}")
        if kind in ("profile", "none") and sep:
            raise ConfigError(f"persona source {kind!r} takes no argument, got {part!r}")
        sources.append(PersonaSource(kind, value.strip() or None))
    if not sources:
        raise ConfigError("empty persona spec; use none for a model without personas")
    if any(s.kind == "none" for s in sources) and len(sources) > 1:
        raise ConfigError("persona source 'none' cannot be combined with others")
    return sources


class PersonaResolver:
    """Gives each record its persona text by a spec (see the module docstring).

    ``personas`` maps user ids to persona texts and, when given, is tried before the spec's
    sources. Judges are read once per user.
    """

    def __init__(self, spec: str | Sequence[PersonaSource] = "profile", *,
                 personas: Mapping[str, str] | None = None) -> None:
        self.sources = parse_persona_spec(spec) if isinstance(spec, str) else list(spec)
        self.personas = dict(personas or {})
        self._judged: dict[tuple[str, str], str] = {}
        for source in self.sources:
            if source.kind == "judges" and not os.path.isdir(source.value or ""):
                raise ConfigError(f"persona source judges:{source.value}: no such folder of fitted judges")

    @property
    def uses_persona(self) -> bool:
        return bool(self.personas) or any(s.kind != "none" for s in self.sources)

    @property
    def spec(self) -> str:
        return ",".join(str(s) for s in self.sources)

    def __call__(self, record: PreferenceRecord) -> str:
        if record.user_id is not None and self.personas.get(record.user_id, "").strip():
            return self.personas[record.user_id].strip()
        for source in self.sources:
            text = self._lookup(source, record)
            if text:
                return text
        return ""

    def _lookup(self, source: PersonaSource, record: PreferenceRecord) -> str:
        if source.kind == "column":
            column = source.value or ""
            value = record.metadata.get(column, record.raw.get(column))
            return value.strip() if isinstance(value, str) else ""
        if source.kind == "profile":
            return (record.profile or "").strip()
        if source.kind == "judges":
            return self._judge_persona(source.value or "", record.user_id)
        return ""

    def _judge_persona(self, folder: str, user_id: str | None) -> str:
        if user_id is None:
            return ""
        key = (folder, user_id)
        if key not in self._judged:
            from personae.optimizers import PersonalizedJudge, judge_path

            path = judge_path(folder, user_id)
            persona = ""
            if path.exists():
                try:
                    persona = PersonalizedJudge.load(path).persona.strip()
                except DataError as exc:
                    logger.warning("cannot read the fitted judge of %s: %s", user_id, exc)
            self._judged[key] = persona
        return self._judged[key]

    def coverage(self, records: Sequence[PreferenceRecord]) -> float:
        """The share of ``records`` that get a non-empty persona."""
        return sum(1 for r in records if self(r)) / len(records) if records else 0.0



def flip_pairs(records: Sequence[PreferenceRecord], persona: Callable[[PreferenceRecord], str],
               flip: Callable[[PreferenceRecord], str]) -> list[PreferenceRecord]:
    """Each pair once per side, the side its persona prefers as ``chosen``.

    ``persona`` gives the persona of the side that won (the record as it is), ``flip`` that
    of the side that lost. A record becomes its chosen side, with ``metadata["persona"]``
    its ``persona`` text, then, when ``flip`` gives a text, its rejected side: ``chosen`` and
    ``rejected`` swapped, the record id suffixed with :data:`FLIPPED_SUFFIX` and
    ``metadata["persona"]`` the ``flip`` text. Both carry ``metadata["side"]`` (``"chosen"``
    or ``"rejected"``) and ``metadata["other_persona"]``, the other side's persona (empty
    when it has none), so a persona-swap control needs no second lookup. A pair whose two
    personas are the same text keeps its chosen side only (its flip would repeat the input
    with the opposite label). A record without a ``persona`` text raises :class:`DataError`
    naming it: its chosen side would be trained or scored without the persona that makes it
    right.
    """
    sides: list[PreferenceRecord] = []
    same = 0
    for record in records:
        won, lost = persona(record).strip(), flip(record).strip()
        if not won:
            raise DataError("no persona for the side that won; give a persona source that covers every record",
                            source=record.record_id or "", field="persona")
        sides.append(replace(record, metadata={**record.metadata, "persona": won, "other_persona": lost,
                                               "side": "chosen"}))
        if lost == won:
            same += 1
            lost = ""
        if lost:
            sides.append(replace(record, chosen=record.rejected, rejected=record.chosen,
                                 record_id=f"{record.record_id}{FLIPPED_SUFFIX}",
                                 metadata={**record.metadata, "persona": lost, "other_persona": won,
                                           "side": "rejected"}))
    if same:
        logger.warning("%d pairs have the same persona on both sides: their rejected side is left out", same)
    return sides
