"""Comparing two generators' responses as a task: personalization, quality, DeltaPQ.

For every test item (a prompt, the persona it is asked for, response A and response B) the
judge answers twice per criterion, once with A shown first and once with B first. A wins when
both orders pick A, B when both pick B; when the orders disagree the item is a tie. An item
with a judgment that failed or did not parse is *unscored*: it is reported as such and counted
as a tie, never as a win (see :mod:`personae.evaluation.tailoring` for the win rate and DeltaPQ).
Each criterion is a stage of the run, so each has its own cost.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import dspy
from typing_extensions import override

from personae.errors import ConfigError, DataError
from personae.evaluation.judging import PairItem, PairJudging
from personae.evaluation.tailoring import (
    TailoringConfig,
    TailoringEvalLog,
    TailoringItem,
    TailoringResults,
    tailoring_results,
)
from personae.programs import CRITERIA, TailoringJudge, program_digest
from personae.runs import Executor, Finished, Ledger, Progress, RunSpec, content_digest, package_versions, run

__all__ = ["TailoringTask", "compare_generations"]


class TailoringTask(PairJudging[TailoringEvalLog]):
    """Judge A against B on every item and criterion, in both orders (see the module docstring).

    ``a`` and ``b`` name the two generators in the log; ``config`` is kept in it as given.
    """

    name = "eval-tailoring"

    def __init__(self, items: Sequence[TailoringItem], *, criteria: Sequence[str] = CRITERIA, a: str = "A",
                 b: str = "B", config: dict[str, Any] | None = None) -> None:
        self.stages = list(dict.fromkeys(criteria))
        for criterion in self.stages:
            if criterion not in CRITERIA:
                raise ConfigError(f"unknown criterion {criterion!r}; choose from {', '.join(CRITERIA)}")
        if len({item.item_id for item in items}) != len(items):
            raise DataError("item ids must be distinct", source="<items>", field="item_id")
        self.items_, self.a, self.b, self.config = list(items), a, b, dict(config or {})

    @override
    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> TailoringEvalLog:
        config = TailoringConfig(model=_lm_name(lm), criteria=list(self.stages),
                                 concurrency=spec.resolved_concurrency(), max_attempts=spec.max_attempts,
                                 extra=self.config)
        return TailoringEvalLog(command="eval-tailoring", versions=package_versions(), results=TailoringResults(),
                                config=config)

    @override
    def label(self, stage: str) -> str:
        return f"eval-tailoring {stage}"

    @override
    def items(self, stage: str, done: Finished) -> list[PairItem]:
        judge = TailoringJudge(stage, attempts=1)  # the run retries each judgment
        judge_id = program_digest(judge)
        items = []
        for item in self.items_:
            pair_id = f"{item.item_id}@{content_digest(item.prompt, item.persona, item.response_a, item.response_b)}"
            for first in ("A", "B"):
                items.append(PairItem(
                    record_id=item.item_id, pair_id=pair_id, prompt=item.prompt,
                    responses=(item.response_a, item.response_b), first=first, judge=judge, judge_id=judge_id,
                    method=stage, labels=("A", "B"), truth=None, persona=item.persona,
                    inputs=(("persona", item.persona),), earlier=f"{pair_id}/{stage}/{first}"))
        return items

    @override
    def summary(self, started: TailoringEvalLog, done: Finished) -> TailoringEvalLog:
        judgments = self.judgments(done.all_rows)
        results = tailoring_results(self.items_, judgments, criteria=self.stages, model=started.config.model,
                                    a=self.a, b=self.b)
        return started.model_copy(update={"results": results, "judgments": judgments})


def _lm_name(lm: dspy.BaseLM) -> str:
    return str(getattr(lm, "model", type(lm).__name__))


def compare_generations(
    items: Sequence[TailoringItem], *, lm: dspy.BaseLM, criteria: Sequence[str] = CRITERIA, concurrency: int = 1,
    max_attempts: int = 3, a: str = "A", b: str = "B", config: dict[str, Any] | None = None,
    ledger: Ledger | None = None, executor: Executor | None = None, progress: Progress | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> TailoringEvalLog:
    """:class:`TailoringTask` run by :func:`personae.runs.run` in one call. With a ``ledger``,
    judgments are written as they are made and those it holds are reused; with a ``log_path``, the
    run log is kept there (``started``, then ``success``, or ``interrupted``/``error``)."""
    task = TailoringTask(items, criteria=criteria, a=a, b=b, config=config)
    spec = RunSpec(concurrency=concurrency, max_attempts=max_attempts)
    return run(task, spec, lm=lm, ledger=ledger, log_path=log_path, executor=executor, progress=progress)
