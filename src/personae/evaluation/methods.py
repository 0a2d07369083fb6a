"""The judging methods compared by an evaluation, and where each finds what it knows of a user.

``default``       the judge with no knowledge of the user (the baseline every method must beat)
``profile``       the user's self-reported profile (demographics) in the prompt
``memory``        the user's train and validation pairs, verbatim, in the prompt
``persona``       a persona given per user, or read from the records' ``persona`` column
``synthesizeme``  the user's fitted judge, ``judge_path(judges_dir, user_id)``

A method that has nothing to judge a user with (no profile, no persona, no fitted judge)
does not fail the run: each of that user's judgments is unscored, with the reason, and
counts as wrong.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from personae.data import PreferenceRecord, UserHistory
from personae.errors import ConfigError, DataError
from personae.programs import DefaultJudge, Judge, MemoryJudge, PersonaJudge, ProfileJudge

__all__ = ["METHODS", "PERSONA_COLUMN", "check_methods", "judge_for", "judge_path", "persona_column", "read_personas",
           "resolve_persona_columns", "safe_name"]

logger = logging.getLogger(__name__)

METHODS = ("default", "profile", "memory", "persona", "synthesizeme")
PERSONA_COLUMN = "persona"
"""The record metadata column a user's persona is read from when none is given."""


def judge_path(judges_dir: str | os.PathLike[str], user_id: str) -> Path:
    """Where the fitted judge of ``user_id`` is saved in ``judges_dir``: ``<safe name>.json``.

    The very path ``personae fit`` writes to (it is :func:`personae.optimizers.judge_path`,
    the one place the naming rule lives).
    """
    from personae.optimizers import judge_path as fitted_judge_path

    return fitted_judge_path(judges_dir, user_id)


def safe_name(user_id: str) -> str:
    """The file-system-safe name :func:`judge_path` gives ``user_id`` (without ``.json``).

    An id that is already a safe name is kept as it is; any other is cleaned and gets a short
    hash of the original, so distinct ids keep distinct names.
    """
    return judge_path(".", user_id).name[: -len(".json")]


def check_methods(methods: Sequence[str], *, judges_dir: str | os.PathLike[str] | None) -> list[str]:
    """Validate method names (order kept, duplicates dropped)."""
    chosen = list(dict.fromkeys(m.strip() for m in methods if m.strip()))
    if not chosen:
        raise ConfigError(f"no method given; choose from {', '.join(METHODS)}")
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method {', '.join(map(repr, unknown))}; choose from {', '.join(METHODS)}")
    if "synthesizeme" in chosen and judges_dir is None:
        raise ConfigError("method 'synthesizeme' needs the folder of fitted judges (judges_dir / --judges)")
    return chosen


def _profile(history: UserHistory) -> str | None:
    if history.profile and history.profile.strip():
        return history.profile
    return next((r.profile for r in history.records if r.profile and r.profile.strip()), None)


def _persona(history: UserHistory, personas: Mapping[str, str] | None) -> str | None:
    if personas is not None and history.user_id in personas:
        given = personas[history.user_id]
        return given if isinstance(given, str) and given.strip() else None
    for record in history.records:
        value = record.metadata.get(PERSONA_COLUMN)
        if isinstance(value, str) and value.strip():
            return value
    return None


def read_personas(path: str | os.PathLike[str]) -> dict[str, str]:
    """A persona per user from a jsonl file of ``{user_id, persona}`` rows (the ``persona`` method's)."""
    from personae.data import read_jsonl_rows

    if not Path(path).is_file():
        raise DataError("no such file", source=str(path))
    personas = {}
    for number, row in enumerate(read_jsonl_rows(path), start=1):
        user_id, persona = row.get("user_id"), row.get("persona")
        if user_id is None or not isinstance(persona, str):
            raise DataError("expected a row with user_id and persona (text)", source=str(path), record=number,
                            field="persona" if user_id is not None else "user_id")
        personas[str(user_id)] = persona
    return personas


def judge_for(
    method: str,
    history: UserHistory,
    memory: Sequence[PreferenceRecord],
    *,
    personas: Mapping[str, str] | None = None,
    judges_dir: str | os.PathLike[str] | None = None,
    default: Judge | None = None,
) -> Judge | str:
    """The judge ``method`` uses for this user, or the reason it has none (its judgments go unscored).

    ``memory`` is what the memory judge may see (the user's train and validation pairs);
    ``default`` is a shared default judge to reuse.
    """
    if method == "default":
        return default or DefaultJudge(attempts=1)
    if method == "profile":
        profile = _profile(history)
        return ProfileJudge(profile, attempts=1) if profile else "no profile"
    if method == "memory":
        return MemoryJudge(memory, attempts=1) if memory else "no training pairs"
    if method == "persona":
        persona = _persona(history, personas)
        return PersonaJudge(persona, attempts=1) if persona else "no persona"
    if method == "synthesizeme":
        if judges_dir is None:
            raise ConfigError("method 'synthesizeme' needs judges_dir")
        from personae.optimizers import PersonalizedJudge

        path = judge_path(judges_dir, history.user_id)
        if not path.exists():
            return "no fitted judge"
        try:
            fitted = PersonalizedJudge.load(path)
        except DataError as exc:
            logger.warning("cannot use the fitted judge of %s: %s", history.user_id, exc)
            return f"invalid fitted judge: {exc}"
        if fitted.user_id != history.user_id:
            logger.warning("%s holds the judge of user %r, not %r", path, fitted.user_id, history.user_id)
        seen = fitted.n_train + fitted.n_val
        if seen > len(memory):  # splits run in order, so the judge read pairs of this test side
            reason = (f"the fitted judge read {seen} pairs, more than the {len(memory)} train and validation "
                      "pairs of this split, so it would be tested on pairs it was fitted on; fit and evaluate "
                      "with the same split fractions")
            logger.warning("%s: %s", history.user_id, reason)
            return reason
        judge: Judge = fitted.with_attempts(1)  # the run retries each judgment
        return judge
    raise ConfigError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def persona_column(record: PreferenceRecord, column: str) -> str | None:
    """The persona text in ``column`` of ``record`` (None when absent or blank)."""
    value = record.metadata.get(column)
    if value is None:
        value = record.raw.get(column)
    return value if isinstance(value, str) and value.strip() else None


def _has_column(records: Sequence[PreferenceRecord], column: str) -> bool:
    return any(column in r.metadata or column in r.raw for r in records)


def resolve_persona_columns(records: Sequence[PreferenceRecord], chosen: str | None, rejected: str | None,
                            source: str) -> tuple[str | None, str | None]:
    """The persona columns to read: the given ones, the other side by the chosen/rejected naming rule."""
    for column in (chosen, rejected):
        if column and records and not _has_column(records, column):
            raise DataError("no such column in the data", source=source, field=column)
    if chosen and not rejected and "chosen" in chosen:
        twin = chosen.replace("chosen", "rejected")
        rejected = twin if _has_column(records, twin) else None
    elif rejected and not chosen and "rejected" in rejected:
        twin = rejected.replace("rejected", "chosen")
        chosen = twin if _has_column(records, twin) else None
    return chosen, rejected
