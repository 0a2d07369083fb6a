"""Accuracy statistics: percentile bootstrap intervals, per-method and per-user summaries.

Every judgment counts: an unscored judgment (failed calls, an unparseable answer, a method
that had nothing to judge with) is wrong. Pooled accuracy is correct / all judgments.

The pooled interval resamples *pairs* (the two orders of one test pair move together), a
cluster bootstrap that respects the dependence between the two judgments of one pair; with
``clusters=None`` :func:`bootstrap_ci` resamples single judgments.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

__all__ = ["MethodStats", "bootstrap_ci", "method_stats", "wilson_interval"]


def bootstrap_ci(
    outcomes: Sequence[bool] | Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    rng: random.Random,
    clusters: Sequence[Hashable] | None = None,
) -> tuple[float, float]:
    """A percentile bootstrap interval for the mean of ``outcomes`` (the accuracy; with outcomes
    ``float(a) - float(b)`` of two methods on the same items, their paired difference).

    Each resample draws, with replacement, as many units as there are: single outcomes, or,
    when ``clusters`` gives each outcome a cluster key (e.g. ``(user_id, record_id)``), whole
    clusters, so outcomes that belong together stay together. The interval holds the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled
    accuracies. No outcomes give ``(nan, nan)``. Deterministic for a given ``rng`` state.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    if clusters is not None and len(clusters) != len(outcomes):
        raise ValueError(f"clusters has {len(clusters)} keys for {len(outcomes)} outcomes")
    if not outcomes:
        return (math.nan, math.nan)
    import numpy as np

    if clusters is None:
        correct = np.fromiter((float(o) for o in outcomes), dtype=np.float64, count=len(outcomes))
        sizes = np.ones(len(outcomes), dtype=np.int64)
    else:
        groups: dict[Hashable, list[float]] = {}
        for key, outcome in zip(clusters, outcomes, strict=True):
            group = groups.setdefault(key, [0.0, 0])
            group[0] += float(outcome)
            group[1] += 1
        correct = np.array([g[0] for g in groups.values()], dtype=np.float64)
        sizes = np.array([g[1] for g in groups.values()], dtype=np.int64)
    generator = np.random.default_rng(rng.getrandbits(64))
    units = len(correct)
    accuracies = np.empty(resamples, dtype=np.float64)
    chunk = max(1, 2_000_000 // units)  # bound memory: draw the resamples in blocks
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = generator.integers(0, units, size=(stop - start, units))
        accuracies[start:stop] = correct[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(accuracies, [alpha, 1 - alpha])
    return (float(low), float(high))


@dataclass(frozen=True)
class MethodStats:
    """One method's accuracy figures over a set of judgments."""

    judgments: int
    correct: int
    unscored: int
    accuracy: float
    ci_low: float
    ci_high: float
    mean_user_accuracy: float
    users: int
    pairs: int
    pairs_both_scored: int
    orders_agreed: int
    per_user: dict[str, float]

    @property
    def agreement(self) -> float:
        """Of the pairs scored in both orders, the share where both orders picked the same response."""
        return self.orders_agreed / self.pairs_both_scored if self.pairs_both_scored else math.nan


@dataclass(frozen=True)
class _Row:
    user_id: str
    record_id: str
    chosen_first: bool
    correct: bool
    scored: bool


def method_stats(
    rows: Sequence[tuple[str, str, bool, bool, bool]],
    *,
    rng: random.Random,
    confidence: float = 0.95,
    resamples: int = 2000,
) -> MethodStats:
    """Summarise one method's judgments, given as ``(user_id, record_id, chosen_first, correct, scored)``.

    An unscored judgment must come with ``correct=False``. Two judgments of one pair agree
    when both are scored and both are right or both wrong (the judge picked the same
    response whichever way round it was shown).
    """
    items = [_Row(*row) for row in rows]
    for item in items:
        if item.correct and not item.scored:
            raise ValueError(f"judgment {item.record_id} is unscored but marked correct")
    outcomes = [item.correct for item in items]
    keys = [(item.user_id, item.record_id) for item in items]
    low, high = bootstrap_ci(outcomes, confidence=confidence, resamples=resamples, rng=rng, clusters=keys)
    by_user: dict[str, list[bool]] = defaultdict(list)
    by_pair: dict[tuple[str, str], list[_Row]] = defaultdict(list)
    for item, key in zip(items, keys, strict=True):
        by_user[item.user_id].append(item.correct)
        by_pair[key].append(item)
    per_user = {user: sum(values) / len(values) for user, values in by_user.items()}
    both = [pair for pair in by_pair.values() if len(pair) == 2 and all(j.scored for j in pair)]
    agreed = sum(1 for first, second in both if first.correct == second.correct)
    correct = sum(outcomes)
    return MethodStats(
        judgments=len(items),
        correct=correct,
        unscored=sum(1 for item in items if not item.scored),
        accuracy=correct / len(items) if items else math.nan,
        ci_low=low,
        ci_high=high,
        mean_user_accuracy=sum(per_user.values()) / len(per_user) if per_user else math.nan,
        users=len(per_user),
        pairs=len(by_pair),
        pairs_both_scored=len(both),
        orders_agreed=agreed,
        per_user=per_user,
    )


def wilson_interval(right: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The Wilson score interval of ``right`` successes in ``n`` trials (95% by default); None
    when ``n`` is 0. It stays inside [0, 1] and is sound for the handful of pairs one user has."""
    if n == 0:
        return None
    p = right / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - margin) / scale), min(1.0, (centre + margin) / scale)
