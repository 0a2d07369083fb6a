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
from pathlib import Path
from typing import Any

import dspy
from typing_extensions import override

from personae.data import UserHistory, split_user
from personae.errors import ConfigError
from personae.evaluation.metrics import HeldOutAccuracy, HeldOutAccuracyFeedback
from personae.lm import default_adapter
from personae.programs import PersonaSynthesis, VerifiedReasoning, check_reached
from personae.runs import (
    BaseTask,
    Executor,
    Finished,
    Ledger,
    Outcome,
    Progress,
    RunLog,
    RunSpec,
    content_digest,
    package_versions,
    record_key,
    run,
)

__all__ = ["SynthesisExamplesLog", "SynthesisExamplesTask", "optimize_persona_program", "verify_synthesis_examples"]

SynthesisExamplesLog = RunLog[dict[str, Any], dict[str, Any]]
"""The run log of verifying users for the persona prompt's optimization."""

logger = logging.getLogger(__name__)


class SynthesisExamplesTask(BaseTask[UserHistory, str, SynthesisExamplesLog]):
    """Verified reasoning over each user's train pairs, rendered as the synthesis program reads it:
    one item per user with validation pairs (users are fitted whole; each verification has its own
    retries). The output ``OUT`` is the compiled program's file: the ledger is ``OUT.progress.jsonl``.
    After the run, ``examples`` holds one :class:`dspy.Example` per user with verified traces."""

    name = "optimize-persona-prompt"

    def __init__(self, users: Sequence[UserHistory], *, fractions: tuple[float, float, float] = (0.5, 0.2, 0.3),
                 verify_attempts: int = 2, seed: int = 0) -> None:
        self.synthesis = PersonaSynthesis()
        self.splits = {user.user_id: split_user(user.records, fractions) for user in users}
        self.users = [user for user in users if self.splits[user.user_id].val]
        self.verifier = VerifiedReasoning(attempts=verify_attempts, seed=seed)
        self.adapter = dspy.settings.adapter or default_adapter()
        self.seed, self.state = seed, {"seed": seed, "verify_attempts": verify_attempts}
        self.examples: list[dspy.Example] = []

    @override
    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> SynthesisExamplesLog:
        return SynthesisExamplesLog(command=self.name, config=dict(self.state), versions=package_versions(),
                                    results={})

    @override
    def items(self, stage: str, done: Finished) -> Sequence[UserHistory]:
        return self.users

    @override
    def key(self, item: UserHistory) -> str:
        return f"{item.user_id}@{content_digest(*(record_key(r) for r in item.records))}"

    @override
    def call(self, item: UserHistory) -> str:
        with dspy.context(adapter=self.adapter):
            verified = [self.verifier.for_record(record) for record in self.splits[item.user_id].train]
        check_reached(verified, f"user {item.user_id}: verified reasoning")  # an outage is no result
        traces = [p.trace for p in verified if p.verified]
        return self.synthesis.render(traces) if traces else ""

    @override
    def row(self, item: UserHistory, outcome: Outcome[str]) -> dict[str, Any]:
        return {"user_id": item.user_id, "history": outcome.value}

    @override
    def paths(self, out: Path) -> tuple[Path, Path | None]:
        return out.with_name(out.name + ".progress.jsonl"), None

    @override
    def summary(self, started: SynthesisExamplesLog, done: Finished) -> SynthesisExamplesLog:
        self.examples = []
        for user, row in zip(self.users, done.all_rows, strict=True):
            if not row.get("history"):
                logger.info("user %s has no verified traces; left out of optimization", user.user_id)
                continue
            self.examples.append(dspy.Example(preference_history=row["history"], user_id=user.user_id,
                                              val=[r.to_dict() for r in self.splits[user.user_id].val],
                                              seed=self.seed).with_inputs("preference_history"))
        return started.model_copy(update={"results": {"examples": len(self.examples)}})


def verify_synthesis_examples(users: Sequence[UserHistory], *, lm: dspy.BaseLM,
                              fractions: tuple[float, float, float] = (0.5, 0.2, 0.3), verify_attempts: int = 2,
                              seed: int = 0, ledger: Ledger | None = None, executor: Executor | None = None,
                              progress: Progress | None = None,
                              runs: list[SynthesisExamplesLog] | None = None) -> list[dspy.Example]:
    """One persona-synthesis example per user, made with LM calls on ``lm``: verified reasoning
    over the user's train pairs gives the input ``preference_history``; the user's validation
    pairs go in ``val`` (what :class:`~personae.evaluation.HeldOutAccuracy` scores on).

    :class:`SynthesisExamplesTask` run by :func:`personae.runs.run`: ``executor`` runs the users
    (default one at a time), a ``ledger`` keeps each user's rendered traces as they finish (a
    re-run reuses them), and ``runs``, when given, receives the run log (counts and cost).
    """
    task = SynthesisExamplesTask(users, fractions=fractions, verify_attempts=verify_attempts, seed=seed)
    log = run(task, RunSpec(max_attempts=1), lm=lm, ledger=ledger, executor=executor, progress=progress)
    if runs is not None:
        runs.append(log)
    return task.examples


def optimize_persona_program(examples: Sequence[dspy.Example], *, lm: dspy.BaseLM | None = None,
                             optimizer: str = "mipro", auto: str = "light", num_threads: int = 1, seed: int = 0,
                             student: PersonaSynthesis | None = None, max_metric_calls: int | None = None,
                             valset: Sequence[dspy.Example] | None = None) -> PersonaSynthesis:
    """Compile the persona-synthesis program over ``examples`` (see :func:`verify_synthesis_examples`),
    on ``lm`` or the LM configured in DSPy, which also judges for the metric
    (:class:`~personae.evaluation.HeldOutAccuracy`; GEPA gets its feedback form).

    Without ``valset`` the first half of ``examples`` trains and the rest validates. ``auto`` sets
    the optimizer's budget; for GEPA ``max_metric_calls`` replaces it.
    """
    lm = lm or dspy.settings.lm
    if lm is None:
        raise ConfigError("no LM: pass lm= or configure one with dspy.configure(lm=...)")
    if valset is None:
        if len(examples) < 2:
            raise ConfigError("optimizing the persona prompt needs at least two users with verified traces")
        half = max(1, len(examples) // 2)
        trainset, valset = list(examples[:half]), list(examples[half:])
    else:
        trainset, valset = list(examples), list(valset)
        if not trainset or not valset:
            raise ConfigError("optimizing the persona prompt needs training and validation examples")
    student = student or PersonaSynthesis()
    with dspy.context(lm=lm, adapter=dspy.settings.adapter or default_adapter()):
        if optimizer == "mipro":
            compiler = dspy.MIPROv2(metric=HeldOutAccuracy(lm), auto=auto, num_threads=num_threads, seed=seed,
                                    max_bootstrapped_demos=1, max_labeled_demos=0, verbose=False)
            return compiler.compile(student, trainset=trainset, valset=valset)  # type: ignore[no-any-return]
        if optimizer == "gepa":
            budget: dict[str, Any] = {"max_metric_calls": max_metric_calls} if max_metric_calls else {"auto": auto}
            compiler = dspy.GEPA(metric=HeldOutAccuracyFeedback(lm), reflection_lm=lm, num_threads=num_threads,
                                 seed=seed, **budget)
            return compiler.compile(student, trainset=trainset, valset=valset)  # type: ignore[no-any-return]
    raise ConfigError(f"unknown optimizer {optimizer!r}; choose mipro or gepa")
