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
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import dspy

from personae.data import PreferenceRecord
from personae.errors import ConfigError, DataError
from personae.evaluation.log import (
    SIDES,
    CostLog,
    PersonaAccuracyConfig,
    PersonaAccuracyLog,
    PersonaJudgmentLog,
    PersonaRow,
    Side,
    SideSummary,
    finite,
    package_versions,
)
from personae.evaluation.stats import method_stats
from personae.lm import Cost, CostMeter
from personae.programs import Judgment, Outcome, PersonaAccuracyJudge, PersonaInference, judge_pair, run_batch

__all__ = ["PersonaAccuracyRun", "evaluate_persona_accuracy", "persona_column"]

logger = logging.getLogger(__name__)



@dataclass
class PersonaAccuracyRun:
    """The result of :func:`evaluate_persona_accuracy`; ``log`` holds everything."""

    log: PersonaAccuracyLog

    def side(self, name: str) -> SideSummary:
        return self.log.side(name)

    def accuracy(self, side: str) -> float:
        """Accuracy of ``side``'s personas (unscored judgments counted wrong); NaN when nothing was judged."""
        value = self.log.side(side).accuracy
        return float("nan") if value is None else value

    @property
    def chosen(self) -> SideSummary:
        return self.log.side("chosen")

    @property
    def rejected(self) -> SideSummary:
        return self.log.side("rejected")

    @property
    def order_agreement(self) -> float:
        value = self.log.order_agreement
        return float("nan") if value is None else value

    @property
    def judgments(self) -> list[PersonaJudgmentLog]:
        return self.log.judgments

    @property
    def personas(self) -> list[PersonaRow]:
        return self.log.personas

    @property
    def unscored(self) -> list[PersonaJudgmentLog]:
        """The judgments counted wrong because they could not be scored, with their ``error``."""
        return [j for j in self.log.judgments if not j.scored]

    @property
    def cost(self) -> Cost:
        return self.log.cost.to_cost()

    @property
    def inference_cost(self) -> Cost:
        return self.log.inference_cost.to_cost()

    @property
    def judge_cost(self) -> Cost:
        return self.log.judge_cost.to_cost()


def persona_column(record: PreferenceRecord, column: str) -> str | None:
    """The persona text in ``column`` of ``record`` (None when absent or blank)."""
    value = record.metadata.get(column)
    if value is None:
        value = record.raw.get(column)
    return value if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True)
class _Task:
    index: int            # slot of the judgment
    position: int         # the record's place in the data
    record: PreferenceRecord
    side: Side
    persona: str
    chosen_first: bool


def _lm_name(lm: dspy.BaseLM) -> str:
    return str(getattr(lm, "model", type(lm).__name__))


def _infer(
    records: Sequence[PreferenceRecord],
    sides: tuple[str, ...],
    program: PersonaInference | None,
    lm: dspy.BaseLM,
    *,
    concurrency: int,
    max_attempts: int,
    on_progress: Callable[[int, int], None] | None,
) -> dict[str, Outcome[dict[str, Any]]]:
    """Infer the personas of ``sides`` for every record; outcomes by record id."""
    infer = copy.deepcopy(program) if program is not None else PersonaInference()
    infer.sides = tuple(sides)
    results: dict[str, Outcome[dict[str, Any]]] = {}

    def one(record: PreferenceRecord) -> dict[str, Any]:
        pred = infer.for_record(record)
        out = {}
        for side in sides:
            value = pred.get(f"{side}_persona")
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"the model wrote no {side}-side persona")
            out[side] = value.strip()
        return out

    def save(outcome: Outcome[dict[str, Any]]) -> None:
        results[records[outcome.index].record_id] = outcome
        if on_progress:
            on_progress(len(results), len(records))

    if on_progress:
        on_progress(0, len(records))
    run_batch(one, records, lm=lm, concurrency=concurrency, max_attempts=max_attempts, on_result=save)
    return results


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
    on_progress: Callable[[int, int], None] | None = None,
    on_infer_progress: Callable[[int, int], None] | None = None,
    previous: Iterable[PersonaJudgmentLog | Mapping[str, Any]] = (),
    on_judgment: Callable[[PersonaJudgmentLog], None] | None = None,
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
        on_progress: Called with ``(judgments done, total)``; ``on_infer_progress`` with
            ``(records inferred, total)``.
        previous: Judgments of an earlier run (logs or their JSON rows): a scored one whose
            record, side, order and persona text match a judgment of this run is reused, not
            made again, so an interrupted run resumes where it stopped.
        on_judgment: Called with each new judgment as it is made (to write it out at once).
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
    started = datetime.now(timezone.utc)
    meter, infer_meter, judge_meter = CostMeter(), CostMeter(), CostMeter()

    inferred: dict[str, Outcome[dict[str, Any]]] = {}
    with meter.track():
        if to_infer and records:
            with infer_meter.track():
                inferred = _infer(records, to_infer, program, infer_lm, concurrency=concurrency,
                                  max_attempts=max_attempts, on_progress=on_infer_progress)

    reused: dict[tuple[str, str, bool, str | None], PersonaJudgmentLog] = {}
    for item in previous:
        old = item if isinstance(item, PersonaJudgmentLog) else PersonaJudgmentLog.model_validate(item)
        if old.scored:
            reused[(old.record_id, old.side, old.chosen_first, old.persona)] = old

    personas: list[PersonaRow] = []
    slots: list[PersonaJudgmentLog | None] = []
    tasks: list[_Task] = []
    for position, record in enumerate(records):
        row = PersonaRow(record_id=record.record_id)
        outcome = inferred.get(record.record_id)
        if outcome is not None:
            row.error, row.attempts = outcome.error, outcome.attempts
        reasons: dict[str, str] = {}
        for side in SIDES:
            column = columns[side]
            if column:
                persona = persona_column(record, column)
                source_name = f"column:{column}"
                if persona is None:
                    reasons[side] = f"no persona: column '{column}' is missing or empty"
            else:
                source_name = "inferred"
                value = (outcome.value or {}).get(side) if outcome is not None else None
                persona = value if isinstance(value, str) else None
                if persona is None:
                    reasons[side] = f"no persona: inference failed: {outcome.error if outcome else 'not run'}"
            setattr(row, f"{side}_persona", persona)
            setattr(row, f"{side}_source", source_name)
            for chosen_first in (True, False):
                if persona is None:
                    slots.append(PersonaJudgmentLog(record_id=record.record_id, side=side,
                                                    chosen_first=chosen_first, error=reasons[side]))
                elif (record.record_id, side, chosen_first, persona) in reused:
                    slots.append(reused[(record.record_id, side, chosen_first, persona)])
                else:
                    tasks.append(_Task(len(slots), position, record, side, persona, chosen_first))
                    slots.append(None)
        personas.append(row)

    # Judge one record's two personas back to back in each order: their prompts differ only
    # from the persona on, so a server's prompt cache reads the record once per order.
    tasks.sort(key=lambda task: (task.position, not task.chosen_first, task.side != "chosen"))

    from personae.lm import CallCapture

    captures: dict[int, CallCapture] = {}
    total = len(slots)
    done = total - len(tasks)
    if on_progress:
        on_progress(done, total)

    def judge_one(task: _Task) -> Judgment:
        capture = CallCapture()
        captures[task.index] = capture  # one worker per task: no two threads write one key
        probe = dspy.settings.lm.copy()
        probe.callbacks.append(capture)
        with dspy.context(lm=probe):
            judgment = judge_pair(PersonaAccuracyJudge(task.persona), task.record, chosen_first=task.chosen_first)
        if judgment.preferred not in ("First", "Second"):
            raise ValueError(f"the judge answered {judgment.preferred!r}, not First or Second")
        return judgment

    def save(outcome: Outcome[Judgment]) -> None:
        nonlocal done
        task = tasks[outcome.index]
        capture = captures.pop(task.index, None) or CallCapture()
        value = outcome.value
        picked: Side | None = None
        if value is not None:
            picked = "chosen" if value.correct else "rejected"  # Judgment.correct: it picked the chosen response
        judgment = slots[task.index] = PersonaJudgmentLog(
            record_id=task.record.record_id, side=task.side, persona=task.persona, chosen_first=task.chosen_first,
            preferred=value.preferred if value else None, picked=picked, correct=picked == task.side,
            reasoning=value.reasoning if value else None, error=None if value else (outcome.error or "failed"),
            attempts=outcome.attempts, prompt=capture.messages, raw_output=capture.output,
        )
        if on_judgment:
            on_judgment(judgment)
        done += 1
        if on_progress:
            on_progress(done, total)

    with meter.track(), judge_meter.track():
        run_batch(judge_one, tasks, lm=lm, concurrency=concurrency, max_attempts=max_attempts, on_result=save)
    judgments = [slot for slot in slots if slot is not None]

    summaries = [_summarise(side, judgments, seed=seed, confidence=confidence, resamples=resamples)
                 for side in SIDES]
    config = PersonaAccuracyConfig(
        judge_model=_lm_name(lm), infer_model=_lm_name(infer_lm) if to_infer else None,
        chosen_column=chosen_column, rejected_column=rejected_column, inferred_sides=list(to_infer),
        seed=seed, concurrency=concurrency, max_attempts=max_attempts, confidence=confidence, resamples=resamples,
        data_source=source or "", records=len(records), extra=dict(extra or {}),
    )
    log = PersonaAccuracyLog(
        config=config, versions=package_versions(), started=started, finished=datetime.now(timezone.utc),
        cost=CostLog.of(meter.cost), inference_cost=CostLog.of(infer_meter.cost),
        judge_cost=CostLog.of(judge_meter.cost), summary=summaries,
        orders_agreed=sum(s.orders_agreed for s in summaries),
        records_both_scored=sum(s.records_both_scored for s in summaries),
        personas=personas, judgments=judgments,
    )
    return PersonaAccuracyRun(log)


def _summarise(side: Side, judgments: Sequence[PersonaJudgmentLog], *, seed: int, confidence: float,
               resamples: int) -> SideSummary:
    mine = [j for j in judgments if j.side == side]
    stats = method_stats([("", j.record_id, j.chosen_first, j.correct, j.scored) for j in mine],
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
