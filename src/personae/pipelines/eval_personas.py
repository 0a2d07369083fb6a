"""``personae eval-personas`` as a task: persona accuracy ("Whose Boat Does it Float?").

For every record there are two personas: the chosen-side persona (someone who would prefer
``chosen``) and the rejected-side persona (someone who would prefer ``rejected``). A judge
(:class:`~personae.programs.PersonaAccuracyJudge`, on any LM, not necessarily the one that inferred
the personas) sees the prompt, both responses and one persona, and says which response that
persona prefers; each (record, side) is judged in both orders. The chosen-side persona is
accurate in a judgment when the judge picks the chosen response, the rejected-side persona
when it picks the rejected one.

Personas come from columns of the records (``chosen_column`` / ``rejected_column``) or, for a
side without a column, are inferred with :class:`~personae.programs.PersonaInference`: the
task's first stage, ``inference``; the judgments are its second, ``judging``. Failed or
unparseable judgments, and judgments of a side whose persona is missing or could not be
inferred, are unscored: they count as wrong and are listed with their reasons. Each side's
accuracy comes with a percentile bootstrap interval resampled over records (both orders of a
record move together); the order-agreement rate is the share of (record, side) pairs, scored in
both orders, where the judge picked the same response whichever way round it was shown.

::

    run = evaluate_persona_accuracy(records, lm=judge_lm, chosen_column="chosen_persona_gold",
                                    rejected_column="rejected_persona_gold")
    print(run.accuracy("chosen"), run.side("rejected").ci_low, run.order_agreement)
    write_persona_accuracy_report(run, "out")
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dspy
from typing_extensions import override

from personae.data import PreferenceRecord
from personae.errors import ContentError, DataError
from personae.evaluation import (
    PersonaAccuracyConfig,
    PersonaAccuracyLog,
    PersonaAccuracyResults,
    PersonaRow,
    SideSummary,
    persona_column,
    summarise_side,
)
from personae.evaluation.judging import PairItem, PairJudging, record_items
from personae.evaluation.log import SIDES, Side
from personae.lm import Cost
from personae.programs import PersonaAccuracyJudge, PersonaInference
from personae.runs import (
    Executor,
    Finished,
    Judgment,
    Ledger,
    Outcome,
    Progress,
    RunSpec,
    content_digest,
    lm_fingerprint,
    package_versions,
    record_key,
    run,
)

__all__ = ["PersonaAccuracyRun", "PersonaAccuracyTask", "evaluate_persona_accuracy"]


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
        """Over both sides, the share of records scored in both orders whose orders agree; NaN when none was."""
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


def _is_judgment(row: Mapping[str, Any]) -> bool:
    return "first" in row


class PersonaAccuracyTask(PairJudging[PersonaAccuracyLog]):
    """Infer the personas a column does not give, then judge each side's persona in both orders.

    Args:
        records: The preference pairs (record ids must be unique).
        chosen_column: A record column holding the chosen-side persona; None: infer it.
        rejected_column: The same for the rejected side.
        infer_lm: The model that infers the personas of a side without a column (default: the run's).
        program: The persona-inference program (default :class:`PersonaInference`, e.g. a compiled
            one loaded with ``PersonaInference().load(path)``); only its demos and instructions
            matter, it runs for the sides that need inferring.
        source: The data source named in the log; ``extra``: more configuration to keep there.
        state: What else the rows depend on (the data's file and columns): part of the ledger's
            fingerprint. A change of the judge's LM invalidates only the judgments, never the
            inferred personas.
    """

    name = "eval-personas"
    stages = ("inference", "judging")

    def __init__(self, records: Sequence[PreferenceRecord], *, chosen_column: str | None = None,
                 rejected_column: str | None = None, infer_lm: dspy.BaseLM | None = None,
                 program: PersonaInference | None = None, source: str | None = None,
                 extra: Mapping[str, Any] | None = None, state: Mapping[str, Any] | None = None) -> None:
        ids = [r.record_id for r in records]
        if len(set(ids)) != len(ids):
            raise DataError("record ids repeat; cannot tell the pairs apart", source=source or "<records>",
                            field="record_id")
        self.records, self.source, self.extra = list(records), source or "", dict(extra or {})
        self.columns: dict[str, str | None] = {"chosen": chosen_column, "rejected": rejected_column}
        self.to_infer: tuple[Side, ...] = tuple(side for side in SIDES if not self.columns[side])
        self.infer_lm, self.state = infer_lm, dict(state or {})
        self.program = (copy.deepcopy(program) if program is not None else PersonaInference()).with_attempts(1)
        if self.to_infer:
            self.program.sides = self.to_infer
        self.persona_rows: list[PersonaRow] = []
        self.unjudged: list[Judgment] = []

    @override
    def fingerprint(self, lm: dspy.BaseLM) -> Mapping[str, Any]:
        infer = lm_fingerprint(self.infer_lm) if self.infer_lm is not None else None
        return {**self.state, "judge": lm_fingerprint(lm), "infer": infer}

    @override
    def dependent(self) -> Mapping[str, Callable[[Mapping[str, Any]], bool]]:
        return {key: _is_judgment for key in ("judge", "judge_model", "judge_api_base")}

    @override
    def start(self, spec: RunSpec, lm: dspy.BaseLM) -> PersonaAccuracyLog:
        infer_lm = self.infer_lm or lm
        config = PersonaAccuracyConfig(
            judge_model=_lm_name(lm), infer_model=_lm_name(infer_lm) if self.to_infer else None,
            chosen_column=self.columns["chosen"], rejected_column=self.columns["rejected"],
            inferred_sides=list(self.to_infer), seed=spec.seed, concurrency=spec.resolved_concurrency(),
            max_attempts=spec.max_attempts, confidence=spec.confidence, resamples=spec.resamples,
            data_source=self.source, records=len(self.records), extra=self.extra)
        return PersonaAccuracyLog(command="eval-personas", config=config, versions=package_versions(),
                                  results=PersonaAccuracyResults())

    @override
    def stage_lm(self, stage: str) -> dspy.BaseLM | None:
        return self.infer_lm if stage == "inference" else None

    @override
    def label(self, stage: str) -> str:
        return "infer personas" if stage == "inference" else "judge personas"

    @override
    def items(self, stage: str, done: Finished) -> Sequence[Any]:
        if stage == "inference":
            return self.records if self.to_infer else []
        inferred = {row["record_id"]: row for row in done.rows.get("inference", [])}
        items: list[PairItem] = []
        self.persona_rows, self.unjudged = [], []
        for record in self.records:
            row = PersonaRow(record_id=record.record_id)
            result = inferred.get(record.record_id)
            if result is not None:
                row.error, row.attempts = result.get("error"), int(result.get("attempts") or 0)
            for side in SIDES:
                column = self.columns[side]
                if column:
                    persona, origin = persona_column(record, column), f"column:{column}"
                    reason = f"no persona: column '{column}' is missing or empty"
                else:
                    value = (result.get("personas") or {}).get(side) if result is not None else None
                    persona, origin = (value if isinstance(value, str) else None), "inferred"
                    reason = f"no persona: inference failed: {result.get('error') if result else 'not run'}"
                setattr(row, f"{side}_persona", persona)
                setattr(row, f"{side}_source", origin)
                if persona is None:
                    self.unjudged += [Judgment(record_id=record.record_id, method="persona", side=side, first=first,
                                               error=reason, kind="no_persona") for first in ("chosen", "rejected")]
                    continue
                digest = content_digest(persona)
                items += [
                    item.with_earlier(f"judge/{item.pair_id}/{side}/{digest}/{item.first}")
                    for item in record_items(record, PersonaAccuracyJudge(persona, attempts=1), method="persona",
                                            scope=side, judge_id=digest, truth=side, side=side, persona=persona)]
            self.persona_rows.append(row)
        # One record's two personas back to back in each order: their prompts differ only from
        # the persona on, so a server's prompt cache reads the record once per order.
        order = {r.record_id: i for i, r in enumerate(self.records)}
        items.sort(key=lambda item: (order[item.record_id], item.first != "chosen", item.side != "chosen"))
        return items

    @override
    def key(self, item: Any) -> str:
        if isinstance(item, PreferenceRecord):
            return f"infer/{record_key(item)}/{'+'.join(self.to_infer)}"
        return super().key(item)

    @override
    def earlier_key(self, item: Any) -> str | None:
        return None if isinstance(item, PreferenceRecord) else super().earlier_key(item)

    @override
    def call(self, item: Any) -> Any:
        if not isinstance(item, PreferenceRecord):
            return super().call(item)
        prediction = self.program.for_record(item)
        personas: dict[str, str] = {}
        for side in self.to_infer:
            value = prediction.get(f"{side}_persona")
            if not isinstance(value, str) or not value.strip():
                raise ContentError(f"the model wrote no {side}-side persona")
            personas[side] = value.strip()
        return personas

    @override
    def row(self, item: Any, outcome: Outcome[Any]) -> dict[str, Any]:
        if isinstance(item, PreferenceRecord):
            return {"record_id": item.record_id, "personas": outcome.value}
        return super().row(item, outcome)

    @override
    def decided(self, stage: str, done: Finished) -> list[dict[str, Any]]:
        return [j.model_dump(mode="json") for j in self.unjudged] if stage == "judging" else []

    @override
    def summary(self, started: PersonaAccuracyLog, done: Finished) -> PersonaAccuracyLog:
        config = started.config
        slots = {(j.record_id, j.side, j.first): j for j in self.judgments(done.rows["judging"])}
        judgments = [slots[(r.record_id, side, first)] for r in self.records for side in SIDES
                     for first in ("chosen", "rejected")]
        summaries = [summarise_side(side, judgments, seed=config.seed, confidence=config.confidence,
                                    resamples=config.resamples) for side in SIDES]
        results = PersonaAccuracyResults(summary=summaries, orders_agreed=sum(s.orders_agreed for s in summaries),
                                         records_both_scored=sum(s.records_both_scored for s in summaries),
                                         personas=self.persona_rows)
        return started.model_copy(update={"results": results, "judgments": judgments})


def _lm_name(lm: dspy.BaseLM) -> str:
    return str(getattr(lm, "model", type(lm).__name__))


def evaluate_persona_accuracy(
    records: Sequence[PreferenceRecord], *, lm: dspy.BaseLM, chosen_column: str | None = None,
    rejected_column: str | None = None, infer_lm: dspy.BaseLM | None = None, program: PersonaInference | None = None,
    concurrency: int = 1, max_attempts: int = 3, seed: int = 0, confidence: float = 0.95, resamples: int = 2000,
    source: str | None = None, extra: Mapping[str, Any] | None = None, ledger: Ledger | None = None,
    executor: Executor | None = None, progress: Progress | None = None,
    on_judgment: Callable[[Judgment], None] | None = None, log_path: str | os.PathLike[str] | None = None,
) -> PersonaAccuracyRun:
    """:class:`PersonaAccuracyTask` run by :func:`personae.runs.run` in one call: ``lm`` judges, the
    task's arguments, the run's settings (``concurrency`` ... ``resamples``; each side's interval
    from ``Random(f"{seed}/{side}")``), and where it writes (``ledger``: personas and judgments as
    they are made, and reused from it; ``log_path``: the run log). ``lm`` is never modified."""
    task = PersonaAccuracyTask(records, chosen_column=chosen_column, rejected_column=rejected_column,
                               infer_lm=infer_lm, program=program, source=source, extra=extra)
    spec = RunSpec(concurrency=concurrency, max_attempts=max_attempts, seed=seed, confidence=confidence,
                   resamples=resamples)
    def on_row(row: dict[str, Any]) -> None:
        if on_judgment is not None and _is_judgment(row):
            on_judgment(Judgment.model_validate(row))

    return PersonaAccuracyRun(run(task, spec, lm=lm, ledger=ledger, log_path=log_path, executor=executor,
                                  progress=progress, on_row=on_row))
