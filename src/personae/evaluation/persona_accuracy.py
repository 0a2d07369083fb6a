"""Persona accuracy ("Whose Boat Does it Float?"): does a persona predict the side it came from?

For every record there are two personas: the chosen-side persona (someone who would prefer
``chosen``) and the rejected-side persona (someone who would prefer ``rejected``). A judge
(:class:`~personae.programs.PersonaJudge`, on any LM, not necessarily the one that inferred
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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel, Field

from personae.data import PreferenceRecord
from personae.errors import ConfigError, DataError
from personae.evaluation.log import CostLog, finite, package_versions, read_log
from personae.evaluation.stats import method_stats
from personae.lm import Cost, CostMeter
from personae.programs import Judgment, Outcome, PersonaInference, PersonaJudge, judge_pair, run_batch

__all__ = [
    "PERSONA_ACCURACY_VERSION",
    "SIDES",
    "PersonaAccuracyConfig",
    "PersonaAccuracyLog",
    "PersonaAccuracyRun",
    "PersonaJudgmentLog",
    "PersonaRow",
    "SideSummary",
    "evaluate_persona_accuracy",
    "persona_accuracy_summary",
    "persona_column",
    "read_persona_accuracy_log",
    "write_persona_accuracy_report",
]

logger = logging.getLogger(__name__)

PERSONA_ACCURACY_VERSION = 1
Side = Literal["chosen", "rejected"]
SIDES: tuple[Side, Side] = ("chosen", "rejected")


class PersonaRow(BaseModel):
    """The two personas of one record and where each came from (``column:<name>`` or ``inferred``).

    ``error`` says why inference failed (the inferred personas are then None).
    """

    record_id: str
    chosen_persona: str | None = None
    rejected_persona: str | None = None
    chosen_source: str = ""
    rejected_source: str = ""
    error: str | None = None
    attempts: int = 0


class PersonaJudgmentLog(BaseModel):
    """One judgment: one side's persona of one record, in one order.

    ``picked`` is the response the judge chose (``"chosen"`` or ``"rejected"``), ``correct``
    whether that is the persona's own side. An unscored judgment (``error`` says why) has
    ``correct`` False: it counts as wrong. ``prompt`` holds the chat messages of the last
    attempt and ``raw_output`` the model's answer (None when no call was made).
    """

    record_id: str
    side: Side
    persona: str | None = None
    chosen_first: bool
    preferred: str | None = None
    picked: Side | None = None
    correct: bool = False
    reasoning: str | None = None
    error: str | None = None
    attempts: int = 0
    prompt: list[dict[str, Any]] | None = None
    raw_output: str | None = None

    @property
    def scored(self) -> bool:
        return self.error is None


class SideSummary(BaseModel):
    """Accuracy of one side's personas, with its bootstrap interval and order agreement."""

    side: Side
    judgments: int
    correct: int
    unscored: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    records: int
    records_both_scored: int
    orders_agreed: int
    unscored_reasons: dict[str, int] = Field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        """Of the records scored in both orders, the share where both orders picked the same response."""
        return self.orders_agreed / self.records_both_scored if self.records_both_scored else None


class PersonaAccuracyConfig(BaseModel):
    """The resolved configuration of a persona-accuracy run."""

    judge_model: str
    infer_model: str | None = None
    chosen_column: str | None = None
    rejected_column: str | None = None
    inferred_sides: list[Side] = Field(default_factory=list)
    seed: int = 0
    concurrency: int = 1
    max_attempts: int = 3
    confidence: float = 0.95
    resamples: int = 2000
    data_source: str = ""
    records: int = 0
    extra: dict[str, Any] = Field(default_factory=dict)


class PersonaAccuracyLog(BaseModel):
    """Everything about one persona-accuracy run (written as JSON with ``write_run_log``)."""

    version: int = PERSONA_ACCURACY_VERSION
    kind: Literal["persona_accuracy"] = "persona_accuracy"
    config: PersonaAccuracyConfig
    versions: dict[str, str | None] = Field(default_factory=dict)
    started: datetime
    finished: datetime
    cost: CostLog = Field(default_factory=CostLog)
    inference_cost: CostLog = Field(default_factory=CostLog)
    judge_cost: CostLog = Field(default_factory=CostLog)
    summary: list[SideSummary] = Field(default_factory=list)
    orders_agreed: int = 0
    records_both_scored: int = 0
    personas: list[PersonaRow] = Field(default_factory=list)
    judgments: list[PersonaJudgmentLog] = Field(default_factory=list)

    def side(self, name: str) -> SideSummary:
        for summary in self.summary:
            if summary.side == name:
                return summary
        raise KeyError(name)

    @property
    def order_agreement(self) -> float | None:
        """Over both sides, the share of (record, side) pairs scored in both orders whose orders agree."""
        return self.orders_agreed / self.records_both_scored if self.records_both_scored else None


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
    index: int
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

    personas: list[PersonaRow] = []
    slots: list[PersonaJudgmentLog | None] = []
    tasks: list[_Task] = []
    for record in records:
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
                else:
                    tasks.append(_Task(len(slots), record, side, persona, chosen_first))
                    slots.append(None)
        personas.append(row)

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
            judgment = judge_pair(PersonaJudge(task.persona), task.record, chosen_first=task.chosen_first)
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
        slots[task.index] = PersonaJudgmentLog(
            record_id=task.record.record_id, side=task.side, persona=task.persona, chosen_first=task.chosen_first,
            preferred=value.preferred if value else None, picked=picked, correct=picked == task.side,
            reasoning=value.reasoning if value else None, error=None if value else (outcome.error or "failed"),
            attempts=outcome.attempts, prompt=capture.messages, raw_output=capture.output,
        )
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


# -- reading back, summary and report ---------------------------------------------------------


def read_persona_accuracy_log(path: str | os.PathLike[str]) -> PersonaAccuracyLog:
    """Read a persona-accuracy run log written by ``write_run_log``."""
    return read_log(path, PersonaAccuracyLog, version=PERSONA_ACCURACY_VERSION, what="persona-accuracy run log")


def _as_log(run: Any) -> PersonaAccuracyLog:
    return run if isinstance(run, PersonaAccuracyLog) else run.log


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _with_ci(s: SideSummary) -> str:
    if s.accuracy is None:
        return "n/a"
    if s.ci_low is None or s.ci_high is None:
        return _pct(s.accuracy)
    return f"{s.accuracy:.1%} ({s.ci_low:.1%}-{s.ci_high:.1%})"


def persona_accuracy_summary(run: Any, *, markdown: bool = True) -> str:
    """One row per side: accuracy with its CI, judgments, unscored and order agreement."""
    from personae.evaluation.report import _table

    log = _as_log(run)
    header = ["personas", f"accuracy ({log.config.confidence:.0%} CI)", "judgments", "unscored", "orders agree",
              "source"]
    rows = []
    for s in log.summary:
        column = log.config.chosen_column if s.side == "chosen" else log.config.rejected_column
        agree = f"{s.orders_agreed}/{s.records_both_scored}" if s.records_both_scored else "-"
        rows.append([f"{s.side}-side", _with_ci(s), str(s.judgments), str(s.unscored), agree,
                     f"column {column}" if column else "inferred"])
    return _table(header, rows, markdown=markdown)


def write_persona_accuracy_report(run: Any, out_dir: str | os.PathLike[str], *,
                                  filename: str = "report.md", max_unscored: int = 50) -> Path:
    """Write a short markdown report of a persona-accuracy run into ``out_dir``; return its path."""
    from personae.evaluation.report import _table

    log = _as_log(run)
    c = log.config
    versions = ", ".join(f"{name} {version}" for name, version in log.versions.items() if version)
    sources = []
    for side, column in (("chosen", c.chosen_column), ("rejected", c.rejected_column)):
        sources.append(f"{side}-side from column `{column}`" if column else
                       f"{side}-side inferred by `{c.infer_model}`")
    lines = [
        "# Persona accuracy",
        "",
        f"- data: `{c.data_source or '(in memory)'}`, {c.records} records",
        f"- personas: {'; '.join(sources)}",
        f"- judge: `{c.judge_model}`, every persona judged in both orders",
        f"- seed {c.seed}, concurrency {c.concurrency}, max attempts {c.max_attempts}",
        f"- started {log.started.isoformat(timespec='seconds')}, finished {log.finished.isoformat(timespec='seconds')}",
        f"- versions: {versions}",
        "",
        "A judge sees the prompt, both responses and one persona and picks the response that persona "
        "prefers. A chosen-side persona is accurate when the judge picks the chosen response, a "
        "rejected-side persona when it picks the rejected one. Unscored judgments (failed calls, "
        "unparseable answers, missing personas) count as wrong. The interval is a percentile bootstrap "
        f"({c.resamples} resamples) over records, both orders of a record resampled together.",
        "",
        "## Summary",
        "",
        persona_accuracy_summary(log),
        "",
        f"Order agreement (both sides): {_pct(log.order_agreement)} "
        f"({log.orders_agreed}/{log.records_both_scored} persona-record pairs scored in both orders picked "
        "the same response whichever way round it was shown).",
        "",
        f"Cost: inference {log.inference_cost.lm_calls} calls, judging {log.judge_cost.lm_calls} calls; total "
        f"{log.cost.lm_calls} calls, {log.cost.prompt_tokens:,} prompt + {log.cost.completion_tokens:,} completion "
        f"tokens, {log.cost.seconds:.1f} s.",
        "",
    ]
    unscored = [j for j in log.judgments if not j.scored]
    if unscored:
        rows = [[j.record_id, j.side, "chosen first" if j.chosen_first else "rejected first", j.error or ""]
                for j in unscored[:max_unscored]]
        lines += ["## Unscored judgments (counted wrong)", "",
                  _table(["record", "persona", "order", "reason"], rows, markdown=True), ""]
        if len(unscored) > max_unscored:
            lines += [f"... and {len(unscored) - max_unscored} more (see the run log).", ""]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = out / filename
    report.write_text("\n".join(lines), encoding="utf-8")
    logger.info("wrote %s", report)
    return report
