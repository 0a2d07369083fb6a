"""Reward models evaluated by the protocol of the LLM judges, into the same run log.

Every test pair is "judged" in both orders, as :func:`personae.evaluation.evaluate_methods`
does for LLM judges. A scalar reward model scores each response on its own, so both orders
always give the same answer; equal rewards (a tie) are recorded as unscored (reason ``tie``)
and count as wrong, like an LLM judge's unparseable answer. Pooled accuracy comes with the
same pair-clustered bootstrap interval, per user as well, so a reward model appears in the
same :func:`~personae.evaluation.summary_table` and report as the LLM judges.

:func:`evaluate_sides` scores pairs that describe both sides (a persona for the winner and
one for the loser, see :func:`~personae.distill.flip_pairs`): each pair once as it is, under
the winner's persona, and once the other way round, under the loser's. The run log's
"users" are then the two sides, and :func:`side_figures` gives each side's accuracy and the
pooled figure with intervals clustered by the original pair. On pairs that have both sides, a
scorer that ignores personas gives complementary answers on them, so it pools to 50%.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from personae.data import PreferenceRecord, UserSplit
from personae.distill._personas import FLIPPED_SUFFIX, flip_pairs
from personae.distill._reward_model import is_tie
from personae.errors import ConfigError, DataError
from personae.evaluation import (
    EvaluationLog,
    EvaluationResults,
    MethodStats,
    RunConfig,
    UserRow,
    bootstrap_ci,
    method_stats,
    summarise_method,
)
from personae.runs import Cost, Counts, Judgment, package_versions

__all__ = ["SIDES", "Scorer", "check_prompt_split", "evaluate_scorers", "evaluate_sides", "length_scorer",
           "reward_judgments", "side_figures"]

Scorer = Callable[[Sequence[PreferenceRecord]], Sequence[tuple[float, float]]]
"""Rewards ``(chosen, rejected)`` for each record, in order."""

SIDES = {"chosen": "chosen side", "rejected": "rejected side"}
"""The run-log "user" of each side in :func:`evaluate_sides`."""


def check_prompt_split(splits: Mapping[str, UserSplit]) -> int:
    """Check that no user's test prompt occurs in that user's train or validation pairs; return the test pairs.

    Prompts are compared by text (stripped) and by :attr:`PreferenceRecord.prompt_key`. A leak
    raises :class:`DataError` naming the user: a pair-level split lets a model memorise answers.
    """
    tests = 0
    for user_id, split in splits.items():
        seen = split.train + split.val
        texts = {r.prompt.strip() for r in seen}
        keys = {r.prompt_key for r in seen}
        leaked = [r for r in split.test if r.prompt.strip() in texts or r.prompt_key in keys]
        if leaked:
            raise DataError(f"{len(leaked)} test pairs share their prompt with the user's training pairs "
                            f"(first: {leaked[0].record_id}); split by prompt", source=f"user {user_id}",
                            field="prompt")
        tests += len(split.test)
    return tests


def length_scorer(records: Sequence[PreferenceRecord]) -> list[tuple[float, float]]:
    """The longer response wins (length in characters; equal lengths tie)."""
    return [(float(len(r.chosen)), float(len(r.rejected))) for r in records]


def reward_judgments(method: str, user_id: str, records: Sequence[PreferenceRecord],
                     rewards: Sequence[tuple[float, float]]) -> list[Judgment]:
    """Both orders of each record as judgments; equal rewards (up to float noise) are unscored (``tie``) and wrong."""
    rows = []
    for record, (chosen, rejected) in zip(records, rewards, strict=True):
        reasoning = f"reward(chosen)={chosen:.6g}, reward(rejected)={rejected:.6g}"
        for first in ("chosen", "rejected"):
            if is_tie(chosen, rejected):
                rows.append(Judgment(user_id=user_id, record_id=record.record_id, method=method, first=first,
                                     reasoning=reasoning, attempts=1, error="tie: equal rewards", kind="tie"))
                continue
            picked = "chosen" if chosen > rejected else "rejected"
            rows.append(Judgment(user_id=user_id, record_id=record.record_id, method=method, first=first,
                                 preferred="A" if picked == first else "B", picked=picked,
                                 correct=picked == "chosen", reasoning=reasoning, attempts=1))
    return rows


def evaluate_scorers(
    splits: Mapping[str, UserSplit],
    scorers: Mapping[str, Scorer],
    *,
    fractions: tuple[float, float, float] = (0.5, 0.2, 0.3),
    seed: int = 0,
    confidence: float = 0.95,
    resamples: int = 2000,
    model: str = "reward models",
    source: str = "",
    extra: Mapping[str, Any] | None = None,
) -> EvaluationLog:
    """Score every user's test pairs with every scorer and summarise as an evaluation's run log.

    ``splits`` are the users' splits (e.g. from :func:`personae.data.split_by_prompt`); each
    scorer gets every user's test records in one call (so it can batch them) and returns a
    ``(chosen, rejected)`` reward per record. A method's ``cost.seconds`` is the time its
    scorer took.
    """
    started = datetime.now(timezone.utc)
    judgments: list[Judgment] = []
    seconds: dict[str, float] = {}
    tests = [(user_id, record) for user_id, split in splits.items() for record in split.test]
    for method, scorer in scorers.items():
        clock = time.perf_counter()
        rewards = list(scorer([record for _, record in tests]))
        seconds[method] = time.perf_counter() - clock
        if len(rewards) != len(tests):
            raise ConfigError(f"scorer {method!r} gave {len(rewards)} rewards for {len(tests)} pairs")
        for (user_id, record), reward in zip(tests, rewards, strict=True):
            judgments += reward_judgments(method, user_id, [record], [reward])
    summaries, per_user = [], {}
    for method in scorers:
        summary, per_user[method] = summarise_method(method, judgments, Cost(seconds=seconds[method]), seed=seed,
                                                     confidence=confidence, resamples=resamples)
        summaries.append(summary)
    config = RunConfig(model=model, methods=list(scorers), fractions=fractions, seed=seed, concurrency=1,
                       max_attempts=1, data_source=source, users=len(splits), confidence=confidence,
                       resamples=resamples, extra=dict(extra or {}))
    users = [UserRow(user_id=user_id, n_train=len(split.train), n_val=len(split.val), n_test=len(split.test),
                     accuracy={m: per_user[m].get(user_id) for m in scorers})
             for user_id, split in splits.items()]
    counts = Counts(total=len(judgments), succeeded=len(judgments))  # a tie is unscored, not a failed call
    log = EvaluationLog(command="distill reward-model", config=config, versions=package_versions(), started=started,
                        cost=Cost(seconds=sum(seconds.values())), counts=counts, judgments=judgments,
                        costs={s.method: s.cost for s in summaries},
                        results=EvaluationResults(summary=summaries, users=users))
    return log.ended("success")


def evaluate_sides(
    records: Sequence[PreferenceRecord],
    scorers: Mapping[str, Scorer],
    *,
    persona: Callable[[PreferenceRecord], str],
    flip: Callable[[PreferenceRecord], str],
    fractions: tuple[float, float, float] = (0.0, 0.0, 1.0),
    seed: int = 0,
    confidence: float = 0.95,
    resamples: int = 2000,
    model: str = "reward models",
    source: str = "",
    extra: Mapping[str, Any] | None = None,
) -> EvaluationLog:
    """Score each pair on both sides: as it is under ``persona``, reversed under ``flip``.

    The sides come from :func:`~personae.distill.flip_pairs`, so each scorer sees records
    whose ``chosen`` is the side to find and whose ``metadata["persona"]`` is the persona that
    prefers it (``metadata["other_persona"]`` the other side's, for a swap control). A record
    without a ``flip`` persona, or with the same persona on both sides, is scored on its chosen
    side only. Record ids must be distinct and non-empty (they match a pair's two sides). The
    log's users are :data:`SIDES`; :func:`side_figures` reads the figures per side and on both.
    ``fractions`` is the split the records are the test part of, for the run log (the default: pairs
    held out as given, no split).
    """
    ids = Counter(r.record_id for r in records)
    repeated = next((rid for rid, n in ids.items() if n > 1 or not rid), None)
    if repeated is not None:
        raise DataError("each pair needs its own record id: the two sides of a pair are matched by it",
                        source=repeated or "(empty record id)", field="record_id")
    sides = flip_pairs(records, persona, flip)
    splits = {label: UserSplit([], [], [r for r in sides if r.metadata["side"] == side])
              for side, label in SIDES.items()}
    return evaluate_scorers({label: split for label, split in splits.items() if split.test}, scorers,
                            fractions=fractions, seed=seed, confidence=confidence, resamples=resamples,
                            model=model, source=source, extra=extra)


def side_figures(log: EvaluationLog, method: str, *, confidence: float | None = None,
                 resamples: int | None = None) -> dict[str, MethodStats]:
    """``method``'s accuracy on each side (keys ``"chosen"``, ``"rejected"``) and on ``"both"`` from a run of
    :func:`evaluate_sides`. The interval of ``"both"`` resamples original pairs, each with its two sides."""
    judgments = [j for j in log.judgments if j.method == method]
    if not judgments:
        raise ConfigError(f"no judgments of method {method!r} in this run log")
    confidence = log.config.confidence if confidence is None else confidence
    resamples = log.config.resamples if resamples is None else resamples
    figures = {}
    for side, label in (*SIDES.items(), ("both", None)):
        chosen = [j for j in judgments if label is None or j.user_id == label]
        if not chosen:
            continue
        rng = random.Random(f"{log.config.seed}/{method}/{side}")
        rows = [(j.user_id or "", j.record_id, j.chosen_first, j.correct is True, j.scored) for j in chosen]
        stats = method_stats(rows, rng=rng, confidence=confidence, resamples=resamples)
        if label is None:  # the two sides of a pair are not independent: resample whole pairs
            low, high = bootstrap_ci([j.correct is True for j in chosen], confidence=confidence,
                                     resamples=resamples, rng=rng,
                                     clusters=[j.record_id.removesuffix(FLIPPED_SUFFIX) for j in chosen])
            stats = replace(stats, ci_low=low, ci_high=high)
        figures[side] = stats
    return figures
