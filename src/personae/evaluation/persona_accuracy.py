"""Persona accuracy ("Whose Boat Does it Float?"): does a persona predict the side it came from?

For every record there are two personas: the chosen-side persona (someone who would prefer
``chosen``) and the rejected-side persona (someone who would prefer ``rejected``). A judge
(:class:`~personae.programs.PersonaAccuracyJudge`, on any LM, not necessarily the one that inferred
the personas) sees the prompt, both responses and one persona, and says which response that
persona prefers; each (record, side) is judged in both orders. The chosen-side persona is
accurate in a judgment when the judge picks the chosen response, the rejected-side persona
when it picks the rejected one.

Personas come from columns of the records (``chosen_column`` / ``rejected_column``) or, for a
side without a column, are inferred with :class:`~personae.programs.PersonaInference`.
Failed or unparseable judgments, and judgments of a side whose persona is missing or could
not be inferred, are unscored: they count as wrong and are listed with their reasons.
Each side's accuracy comes with a percentile bootstrap interval resampled over records
(both orders of a record move together); the order-agreement rate is the share of
(record, side) pairs, scored in both orders, where the judge picked the same response
whichever way round it was shown.

::

    run = evaluate_persona_accuracy(records, lm=judge_lm, chosen_column="chosen_persona_gold",
                                    rejected_column="rejected_persona_gold")
    print(run.accuracy("chosen"), run.side("rejected").ci_low, run.order_agreement)
    write_run_log(run, "out/run.json")
    write_persona_accuracy_report(run, "out")
"""

from __future__ import annotations

import copy
import logging
import os
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from personae.data import PreferenceRecord
from personae.errors import ConfigError, ContentError, DataError
from personae.evaluation.log import (
    SIDES,
    PersonaAccuracyConfig,
    PersonaAccuracyLog,
    PersonaAccuracyResults,
    PersonaRow,
    Side,
    SideSummary,
    finite,
)
from personae.evaluation.stats import method_stats
from personae.programs import PersonaAccuracyJudge, PersonaInference, Verdict, judge_pair
from personae.runs import (
    Cost,
    Counts,
    Executor,
    Judgment,
    Ledger,
    Outcome,
    Progress,
    RetryPolicy,
    ThreadExecutor,
    content_digest,
    package_versions,
    record_key,
    record_run,
    run_items,
)

__all__ = ["PersonaAccuracyRun", "evaluate_persona_accuracy", "persona_column", "resolve_persona_columns"]

logger = logging.getLogger(__name__)



@dataclass
class PersonaAccuracyRun:
    """The result of :func:`evaluate_persona_accuracy`; ``log`` holds everything."""

    log: PersonaAccuracyLog

    def side(self, name: str) -> SideSummary:
        """The :class:`SideSummary` of side ``name`` (``chosen`` or ``rejected``)."""
        return self.log.results.side(name)

    def accuracy(self, side: str) -> float:
        """Accuracy of ``side``'s personas (unscored judgments counted wrong); NaN when nothing was judged."""
        value = self.log.results.side(side).accuracy
        return float("nan") if value is None else value

    @property
    def chosen(self) -> SideSummary:
        """The summary of the chosen side's personas."""
        return self.side("chosen")

    @property
    def rejected(self) -> SideSummary:
        """The summary of the rejected side's personas."""
        return self.side("rejected")

    @property
    def order_agreement(self) -> float:
        """Over both sides, the share of records scored in both orders whose orders agree; NaN when none
        was."""
        value = self.log.results.order_agreement
        return float("nan") if value is None else value

    @property
    def judgments(self) -> list[Judgment]:
        """Every judgment of the run, of both sides."""
        return self.log.judgments

    @property
    def personas(self) -> list[PersonaRow]:
        """The two personas of each record and where each came from."""
        return self.log.results.personas

    @property
    def unscored(self) -> list[Judgment]:
        """The judgments counted wrong because they could not be scored, with their ``error``."""
        return [j for j in self.log.judgments if not j.scored]

    @property
    def cost(self) -> Cost:
        """The LM cost of the whole run (inference and judging)."""
        return self.log.cost

    @property
    def inference_cost(self) -> Cost:
        """The LM cost of inferring personas (nothing when both came from columns)."""
        return self.log.costs["inference"]

    @property
    def judge_cost(self) -> Cost:
        """The LM cost of judging with the personas."""
        return self.log.costs["judging"]


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


@dataclass(frozen=True)
class _Task:
    position: int         # the record's place in the data
    record: PreferenceRecord
    side: Side
    persona: str
    chosen_first: bool

    @property
    def key(self) -> str:
        first = "chosen" if self.chosen_first else "rejected"
        return f"judge/{record_key(self.record)}/{self.side}/{content_digest(self.persona)}/{first}"


def _lm_name(lm: dspy.BaseLM) -> str:
    return str(getattr(lm, "model", type(lm).__name__))


def evaluate_persona_accuracy(
    records: Sequence[PreferenceRecord],
    *,
    lm: dspy.BaseLM,
    chosen_column: str | None = None,
    rejected_column: str | None = None,
    infer_lm: dspy.BaseLM | None = None,
    program: PersonaInference | None = None,
    concurrency: int = 1,
    max_attempts: int = 3,
    seed: int = 0,
    confidence: float = 0.95,
    resamples: int = 2000,
    source: str | None = None,
    extra: Mapping[str, Any] | None = None,
    ledger: Ledger | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_judgment: Callable[[Judgment], None] | None = None,
    log_path: str | os.PathLike[str] | None = None,
) -> PersonaAccuracyRun:
    """Judge each record's chosen-side and rejected-side persona in both orders and summarise.

    Args:
        records: The preference pairs (record ids must be unique).
        lm: The judge's model. It is never modified (retries use fresh-rollout copies).
        chosen_column: A record column holding the chosen-side persona; None: infer it.
        rejected_column: The same for the rejected side.
        infer_lm: The model that infers the personas of a side without a column (default ``lm``).
        program: The persona-inference program (default :class:`PersonaInference`, e.g. a
            compiled one loaded with ``PersonaInference().load(path)``); only its demos and
            instructions matter, it runs for the sides that need inferring.
        seed: Seeds the bootstrap (each side's interval from ``Random(f"{seed}/{side}")``).
        source: The data source named in the log; ``extra``: more configuration to keep there.
        ledger: Where inferred personas and judgments are written as they are made; what it
            already holds (the same record text, side, persona text and order) is reused, so an
            interrupted run resumes where it stopped.
        executor: Runs the calls (default: ``concurrency`` threads); ``progress`` shows them.
        log_path: Where the run log is kept: written at the start (status ``started``) and
            at the end (``success``), or when the run is interrupted or fails.
        on_judgment: Called with each new judgment as it is made.
    """
    if concurrency < 1 or max_attempts < 1:
        raise ConfigError("concurrency and max_attempts must be at least 1")
    ids = [r.record_id for r in records]
    if len(set(ids)) != len(ids):
        raise DataError("record ids repeat; cannot tell the pairs apart", source=source or "<records>",
                        field="record_id")
    columns: dict[str, str | None] = {"chosen": chosen_column, "rejected": rejected_column}
    to_infer: tuple[Side, ...] = tuple(side for side in SIDES if not columns[side])
    infer_lm = infer_lm or lm
    policy = RetryPolicy(max_attempts=max_attempts)
    executor = executor or ThreadExecutor(concurrency)
    config = PersonaAccuracyConfig(
        judge_model=_lm_name(lm), infer_model=_lm_name(infer_lm) if to_infer else None,
        chosen_column=chosen_column, rejected_column=rejected_column, inferred_sides=list(to_infer),
        seed=seed, concurrency=concurrency, max_attempts=max_attempts, confidence=confidence, resamples=resamples,
        data_source=source or "", records=len(records), extra=dict(extra or {}),
    )
    log = PersonaAccuracyLog(command="eval-personas", config=config, versions=package_versions(),
                             results=PersonaAccuracyResults())

    def body() -> Any:

        inferred: dict[str, dict[str, Any]] = {}
        infer_cost, counts = Cost(), Counts()
        if to_infer and records:
            infer = (copy.deepcopy(program) if program is not None else PersonaInference()).with_attempts(1)
            infer.sides = tuple(to_infer)

            def one(record: PreferenceRecord) -> dict[str, str]:
                pred = infer.for_record(record)
                out: dict[str, str] = {}
                for side in to_infer:
                    value = pred.get(f"{side}_persona")
                    if not isinstance(value, str) or not value.strip():
                        raise ContentError(f"the model wrote no {side}-side persona")
                    out[side] = value.strip()
                return out

            sides = "+".join(to_infer)
            run = run_items(one, records, key=lambda r: f"infer/{record_key(r)}/{sides}",
                            row=lambda r, o: {"record_id": r.record_id, "personas": o.value}, ledger=ledger,
                            lm=infer_lm, policy=policy, executor=executor, progress=progress, label="infer personas")
            inferred = {r.record_id: row for r, row in zip(records, run.rows, strict=True)}
            infer_cost, counts = run.cost, run.counts

        personas: list[PersonaRow] = []
        unjudged: dict[tuple[str, Side, bool], Judgment] = {}
        tasks: list[_Task] = []
        for position, record in enumerate(records):
            row = PersonaRow(record_id=record.record_id)
            result = inferred.get(record.record_id)
            if result is not None:
                row.error, row.attempts = result.get("error"), int(result.get("attempts") or 0)
            for side in SIDES:
                column = columns[side]
                if column:
                    persona = persona_column(record, column)
                    source_name = f"column:{column}"
                    reason = f"no persona: column '{column}' is missing or empty"
                else:
                    source_name = "inferred"
                    value = (result.get("personas") or {}).get(side) if result is not None else None
                    persona = value if isinstance(value, str) else None
                    reason = f"no persona: inference failed: {result.get('error') if result else 'not run'}"
                setattr(row, f"{side}_persona", persona)
                setattr(row, f"{side}_source", source_name)
                for chosen_first in (True, False):
                    if persona is None:
                        unjudged[(record.record_id, side, chosen_first)] = Judgment(
                            record_id=record.record_id, method="persona", side=side,
                            first="chosen" if chosen_first else "rejected", error=reason, kind="no_persona")
                    else:
                        tasks.append(_Task(position, record, side, persona, chosen_first))
            personas.append(row)

        # Judge one record's two personas back to back in each order: their prompts differ only
        # from the persona on, so a server's prompt cache reads the record once per order.
        tasks.sort(key=lambda task: (task.position, not task.chosen_first, task.side != "chosen"))

        def judge_one(task: _Task) -> Verdict:
            judge = PersonaAccuracyJudge(task.persona, attempts=1)  # the run retries each judgment
            return judge_pair(judge, task.record, chosen_first=task.chosen_first)

        def judgment_row(task: _Task, outcome: Outcome[Verdict]) -> dict[str, Any]:
            first, second = ("chosen", "rejected") if task.chosen_first else ("rejected", "chosen")
            return Judgment.of(outcome, record_id=task.record.record_id, first=first, second=second, truth=task.side,
                               method="persona", side=task.side, persona=task.persona).model_dump(mode="json")

        judged = run_items(judge_one, tasks, key=lambda task: task.key, row=judgment_row, ledger=ledger, lm=lm,
                           policy=policy, executor=executor, progress=progress, label="judge personas", capture=True,
                           on_row=None if on_judgment is None else lambda e: on_judgment(Judgment.model_validate(e)))
        by_slot = {(t.record.record_id, t.side, t.chosen_first): Judgment.model_validate(entry)
                   for t, entry in zip(tasks, judged.rows, strict=True)}
        by_slot.update(unjudged)
        judgments = [by_slot[(r.record_id, side, first)] for r in records for side in SIDES for first in (True, False)]
        if on_judgment is not None:
            for judgment in unjudged.values():
                on_judgment(judgment)

        summaries = [_summarise(side, judgments, seed=seed, confidence=confidence, resamples=resamples)
                     for side in SIDES]
        results = PersonaAccuracyResults(summary=summaries, orders_agreed=sum(s.orders_agreed for s in summaries),
                                         records_both_scored=sum(s.records_both_scored for s in summaries),
                                         personas=personas)
        final = log.model_copy(update={
            "cost": infer_cost + judged.cost, "costs": {"inference": infer_cost,
                                                                     "judging": judged.cost},
            "counts": counts.add(judged.counts), "results": results, "judgments": judgments})
        return final.ended("success")

    return PersonaAccuracyRun(record_run(log, log_path, body))


def _summarise(side: Side, judgments: Sequence[Judgment], *, seed: int, confidence: float,
               resamples: int) -> SideSummary:
    mine = [j for j in judgments if j.side == side]
    stats = method_stats([("", j.record_id, j.chosen_first, j.correct is True, j.scored) for j in mine],
                         rng=random.Random(f"{seed}/{side}"), confidence=confidence, resamples=resamples)
    reasons = Counter(_reason(j.error or "") for j in mine if not j.scored)
    return SideSummary(
        side=side, judgments=stats.judgments, correct=stats.correct, unscored=stats.unscored,
        accuracy=finite(stats.accuracy), ci_low=finite(stats.ci_low), ci_high=finite(stats.ci_high),
        records=stats.pairs, records_both_scored=stats.pairs_both_scored, orders_agreed=stats.orders_agreed,
        unscored_reasons=dict(reasons.most_common()),
    )


def _reason(error: str) -> str:
    """A short category of an unscored judgment's reason, for the summary."""
    if error.startswith("no persona:"):
        return "no persona: " + error.split(":", 2)[1].strip().split(":", 1)[0]
    return error.split(":", 1)[0]
