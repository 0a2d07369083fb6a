"""Cross-user optimization of the persona-synthesis program (MIPROv2 or GEPA).

Each user becomes one optimization example: the input is the user's verified reasoning
traces on their train pairs, rendered as the synthesis program reads them; the metric is the
accuracy of a judge guided by the synthesized persona on that user's validation pairs (each
shown once, in a seeded order). The compiled program is saved as DSPy JSON state and
``personae fit --persona-program`` uses it in place of the shipped default.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import dspy

from personae.data import PreferenceRecord, UserHistory, split_user
from personae.errors import ConfigError
from personae.lm import default_adapter
from personae.programs import (
    PersonaJudge,
    PersonaSynthesis,
    VerifiedReasoning,
    check_preferred,
    check_reached,
    stable_coin,
)
from personae.runs import (
    Executor,
    ItemsRun,
    Ledger,
    Progress,
    RetryPolicy,
    content_digest,
    record_key,
    run_items,
)

__all__ = ["optimize_persona_program", "persona_examples", "persona_metric"]

logger = logging.getLogger(__name__)

_ONE_TRY = RetryPolicy(max_attempts=1)  # inside an optimizer's metric: a failed judgment counts as wrong


def persona_examples(users: Sequence[UserHistory], *, lm: dspy.BaseLM, fractions: tuple[float, float, float] =
                     (0.5, 0.2, 0.3), verify_attempts: int = 2, seed: int = 0, ledger: Ledger | None = None,
                     executor: Executor | None = None, progress: Progress | None = None,
                     runs: list[ItemsRun] | None = None) -> list[dspy.Example]:
    """One example per user with verified traces: input ``preference_history``, plus its validation pairs.

    Users are verified through the run layer: ``executor`` runs them (default one at a time),
    a ``ledger`` keeps each user's rendered traces as they finish (a re-run reuses them), and
    ``runs``, when given, receives the :class:`~personae.runs.ItemsRun` (counts and cost).
    """
    synthesis = PersonaSynthesis()
    splits = {user.user_id: split_user(user.records, fractions) for user in users}
    usable = [user for user in users if splits[user.user_id].val]
    verifier = VerifiedReasoning(max_attempts=verify_attempts, seed=seed)

    def verify(user: UserHistory) -> str:
        verified = [verifier(record) for record in splits[user.user_id].train]
        check_reached(verified, f"user {user.user_id}: verified reasoning")  # an outage is no result
        traces = [p.trace for p in verified if p.verified]
        return synthesis.render(traces) if traces else ""

    def key(user: UserHistory) -> str:
        return f"{user.user_id}@{content_digest(*(record_key(r) for r in user.records))}"

    with dspy.context(adapter=dspy.settings.adapter or default_adapter()):
        run = run_items(verify, usable, key=key, row=lambda user, o: {"user_id": user.user_id, "history": o.value},
                        ledger=ledger, lm=lm, policy=RetryPolicy(max_attempts=1), executor=executor,
                        progress=progress, label="verify users")
    if runs is not None:
        runs.append(run)
    examples = []
    for user, row in zip(usable, run.rows, strict=True):
        if not row.get("history"):
            logger.info("user %s has no verified traces; left out of optimization", user.user_id)
            continue
        examples.append(dspy.Example(preference_history=row["history"], user_id=user.user_id,
                                     val=[r.to_dict() for r in splits[user.user_id].val], seed=seed)
                        .with_inputs("preference_history"))
    return examples


def _score(persona: str, val: Sequence[dict[str, Any]], seed: int) -> tuple[float, list[str]]:
    judge = PersonaJudge(persona)
    correct, notes = 0, []
    for row in val:
        record = PreferenceRecord.from_dict(row)
        chosen_first = stable_coin(seed, "val", record.record_id, record.prompt)
        first, second = (record.chosen, record.rejected) if chosen_first else (record.rejected, record.chosen)
        outcome = _ONE_TRY.attempt(lambda r=record, a=first, b=second: check_preferred(  # type: ignore[misc]
            judge(context=r.prompt, first_response=a, second_response=b).preferred))
        ok = outcome.value is not None and (outcome.value == "First") == chosen_first
        if outcome.error:  # counted wrong, with its reason
            notes.append(outcome.error)
        correct += ok
        if not ok:
            notes.append(f"the persona did not predict the choice on: {record.prompt[:120]!r}")
    return (correct / len(val) if val else 0.0), notes


def persona_metric(gold: dspy.Example, pred: dspy.Prediction, trace: Any = None, pred_name: str | None = None,
                   pred_trace: Any = None) -> Any:
    """Validation accuracy of the persona-guided judge; with GEPA's extra arguments, plus feedback."""
    score, notes = _score(str(pred.persona or ""), gold.val, int(gold.get("seed", 0)))
    if pred_name is None and pred_trace is None:
        return score
    feedback = f"The persona let a judge predict {score:.0%} of this user's held-out choices. " + " ".join(notes[:3])
    return dspy.Prediction(score=score, feedback=feedback)


def optimize_persona_program(examples: Sequence[dspy.Example], *, lm: dspy.BaseLM, optimizer: str = "mipro",
                             auto: str = "light", num_threads: int = 1, seed: int = 0,
                             student: PersonaSynthesis | None = None,
                             max_metric_calls: int | None = None) -> PersonaSynthesis:
    """Compile the persona-synthesis program over ``examples`` (see :func:`persona_examples`).

    ``auto`` sets the optimizer's budget; for GEPA ``max_metric_calls`` replaces it.
    """
    if len(examples) < 2:
        raise ConfigError("optimizing the persona prompt needs at least two users with verified traces")
    student = student or PersonaSynthesis()
    half = max(1, len(examples) // 2)
    trainset, valset = list(examples[:half]), list(examples[half:])
    with dspy.context(lm=lm, adapter=dspy.settings.adapter or default_adapter()):
        if optimizer == "mipro":
            compiler = dspy.MIPROv2(metric=persona_metric, auto=auto, num_threads=num_threads, seed=seed,
                                    max_bootstrapped_demos=1, max_labeled_demos=0, verbose=False)
            return compiler.compile(student, trainset=trainset, valset=valset)  # type: ignore[no-any-return]
        if optimizer == "gepa":
            budget: dict[str, Any] = {"max_metric_calls": max_metric_calls} if max_metric_calls else {"auto": auto}
            compiler = dspy.GEPA(metric=persona_metric, reflection_lm=lm, num_threads=num_threads,
                                 seed=seed, **budget)
            return compiler.compile(student, trainset=trainset, valset=valset)  # type: ignore[no-any-return]
    raise ConfigError(f"unknown optimizer {optimizer!r}; choose mipro or gepa")
