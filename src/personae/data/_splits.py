"""Per-user train/val/test splits that keep every pair of one prompt on the same side."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from personae.data._records import PreferenceData, PreferenceRecord, UserHistory
from personae.errors import ConfigError

__all__ = ["SPLITS", "UserSplit", "parse_fractions", "select_users", "split_by_prompt", "split_user"]

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class UserSplit:
    """One user's records on each side, each side in the original record order."""

    train: list[PreferenceRecord]
    val: list[PreferenceRecord]
    test: list[PreferenceRecord]


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.5,0.2,0.3"`` (train, validation, test shares) as three checked numbers; else ConfigError."""
    try:
        parts = [float(part) for part in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) != 3:
        raise ConfigError(f"fractions: expected three numbers such as 0.5,0.2,0.3, got {text!r}")
    return _check_fractions(parts)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3:
        raise ConfigError(f"fractions must be (train, val, test), got {tuple(fractions)!r}")
    train, val, test = (float(f) for f in fractions)
    if min(train, val, test) < 0 or not all(math.isfinite(f) for f in (train, val, test)):
        raise ConfigError(f"fractions must be finite and non-negative, got {tuple(fractions)!r}")
    if not math.isclose(train + val + test, 1.0, abs_tol=1e-6):
        raise ConfigError(f"fractions must sum to 1, got {tuple(fractions)!r} (sum {train + val + test:g})")
    return train, val, test


def split_user(
    records: Sequence[PreferenceRecord], fractions: tuple[float, float, float] = (0.5, 0.2, 0.3)
) -> UserSplit:
    """Split one user's records into train/val/test, deterministically.

    When every record names its split (train, val or test), that split is kept. Otherwise
    the records are grouped by :attr:`PreferenceRecord.prompt_key`, the groups taken in order
    of first appearance, and the first ``round(n * f_train)`` groups go to train, up to
    ``round(n * (f_train + f_val))`` to val, the rest to test, so all pairs of one prompt
    land on one side. ``fractions`` are checked even when the source splits are kept.
    """
    train_f, val_f, _ = _check_fractions(fractions)
    records = list(records)
    if records and all(record.split in SPLITS for record in records):
        sides: dict[str, list[PreferenceRecord]] = {name: [] for name in SPLITS}
        for record in records:
            sides[str(record.split)].append(record)
        return UserSplit(sides["train"], sides["val"], sides["test"])
    if any(record.split is not None for record in records):
        logger.info("not every record names a split (train/val/test): splitting by prompt instead")
    groups: dict[str, int] = {}
    for record in records:
        groups.setdefault(record.prompt_key, len(groups))
    n = len(groups)
    n_train = round(n * train_f)
    n_train_val = round(n * (train_f + val_f))
    split = UserSplit([], [], [])
    for record in records:
        position = groups[record.prompt_key]
        side = split.train if position < n_train else split.val if position < n_train_val else split.test
        side.append(record)
    return split


def split_by_prompt(
    data: PreferenceData | Sequence[PreferenceRecord], fractions: tuple[float, float, float] = (0.5, 0.2, 0.3)
) -> dict[str, UserSplit]:
    """:func:`split_user` for every user, in order of first appearance (see ``by_user``)."""
    _check_fractions(fractions)
    if not isinstance(data, PreferenceData):
        data = PreferenceData(data)
    return {user_id: split_user(history.records, fractions) for user_id, history in data.by_user().items()}


def select_users(
    users: Mapping[str, UserHistory] | PreferenceData | Sequence[UserHistory],
    *,
    top: int | None = None,
    min_pairs: int = 0,
) -> list[UserHistory]:
    """Users with at least ``min_pairs`` pairs; with ``top``, only the ``top`` with the most pairs.

    Ties are broken by order of first appearance, and the result keeps that order.
    """
    if isinstance(users, PreferenceData):
        histories = list(users.by_user().values())
    elif isinstance(users, Mapping):
        histories = list(users.values())
    else:
        histories = list(users)
    kept = [h for h in histories if len(h.records) >= min_pairs]
    if top is not None:
        if top < 1:
            raise ConfigError("the number of users must be at least 1")
        ranked = sorted(range(len(kept)), key=lambda i: (-len(kept[i].records), i))[:top]
        kept = [kept[i] for i in sorted(ranked)]
    return kept
