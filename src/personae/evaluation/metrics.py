"""Metrics in DSPy's form, one per program, for ``dspy.Evaluate`` and the optimizers.

Each is called as ``metric(example, pred, trace=None)`` and returns a float; the ``*_feedback``
ones take GEPA's extra arguments too (``pred_name``, ``pred_trace``) and return
``dspy.Prediction(score=..., feedback=...)``. Those that make LM calls of their own (a judge
reading a persona) are classes built with that judge's LM, ``judge_lm``, given explicitly:

===============================  =========================================  ===============
program                          metric                                     LM calls
===============================  =========================================  ===============
any judge (``Verdict``)          :func:`judge_accuracy`,                    none
                                 :func:`judge_accuracy_feedback`
``PersonaInference``             :class:`PersonaAccuracy`,                  the judge's
                                 :class:`PersonaAccuracyFeedback`
``VerifiedReasoning``            :func:`trace_verified`                     none
``PersonaSynthesis``/``Revision``  :class:`HeldOutAccuracy`,                  the judge's
                                 :class:`HeldOutAccuracyFeedback`
===============================  =========================================  ===============

The examples they read: a judge's (:func:`judge_examples`): ``prompt``, ``response_a``,
``response_b`` and the label ``preferred``; persona inference's
(:func:`persona_inference_examples`): ``prompt``, ``chosen``, ``rejected``; a synthesis
example: ``preference_history`` with the user's held-out pairs in ``val`` (see
:func:`personae.optimizers.verify_synthesis_examples`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import dspy

from personae.data import PreferenceRecord, as_record, as_records, current_fields
from personae.errors import ConfigError, DataError
from personae.programs import PersonaJudge, judge_pair, stable_coin
from personae.runs import RetryPolicy, Tally

__all__ = [
    "HeldOutAccuracy",
    "HeldOutAccuracyFeedback",
    "PersonaAccuracy",
    "PersonaAccuracyFeedback",
    "judge_accuracy",
    "judge_accuracy_feedback",
    "judge_examples",
    "persona_inference_examples",
    "trace_verified",
    "USER_FIELDS",
]

logger = logging.getLogger(__name__)

_ONE_TRY = RetryPolicy(max_attempts=1)  # inside a metric: a failed judgment counts as wrong


# -- examples ---------------------------------------------------------------------------------

USER_FIELDS = ("persona", "profile", "history")
"""What a pair may say about its user, carried into its judge examples as inputs."""


def judge_examples(pairs: Iterable[Any], *, both_orders: bool = False, seed: int = 0) -> list[dspy.Example]:
    """Judge examples from preference pairs (records, or ``dspy.Example``s/dicts with ``prompt``,
    ``chosen`` and ``rejected``): inputs ``prompt``, ``response_a``, ``response_b`` (and the pair's
    ``persona``, ``profile`` or ``history`` when it has one, for the judge that reads it), label
    ``preferred``. Each pair is shown in an order fixed by a seeded coin (so a judge that always
    answers A scores about half), or in both orders with ``both_orders``. No LM is called."""
    examples = []
    for record in as_records(pairs, source="judge_examples"):
        user = {k: record.metadata[k] for k in USER_FIELDS if isinstance(record.metadata.get(k), str)}
        if record.profile and "profile" not in user:
            user["profile"] = record.profile
        orders = (True, False) if both_orders else (stable_coin(seed, "judge", record.record_id, record.prompt),)
        for chosen_first in orders:
            a, b = (record.chosen, record.rejected) if chosen_first else (record.rejected, record.chosen)
            examples.append(dspy.Example(prompt=record.prompt, response_a=a, response_b=b, **user,
                                         preferred="A" if chosen_first else "B")
                            .with_inputs("prompt", "response_a", "response_b", *user))
    return examples


def persona_inference_examples(records: Sequence[PreferenceRecord]) -> list[dspy.Example]:
    """One example per pair: inputs ``prompt``, ``chosen``, ``rejected`` (and its ``record_id``). No LM is called."""
    return [dspy.Example(prompt=r.prompt, chosen=r.chosen, rejected=r.rejected, record_id=r.record_id)
            .with_inputs("prompt", "chosen", "rejected") for r in as_records(records, source="examples")]


# -- judges -------------------------------------------------------------------------------------

def judge_accuracy(example: dspy.Example, pred: dspy.Prediction, trace: Any = None) -> float:
    """1.0 when the judge's ``preferred`` is the example's (the response the user chose), else 0.0.

    Labels are read as ``A``/``B`` whatever their case (``First``/``Second``, the words of earlier
    versions, too); a prediction with no ``preferred`` (not a judge's) or an example without a
    label is a :class:`~personae.errors.DataError`, not a zero.
    """
    if "preferred" not in example:
        raise DataError("the example has no label: judge examples carry preferred (A or B)",
                        source="judge_accuracy", field="preferred")
    if pred.get("preferred") is None:
        raise DataError(f"the prediction has no preferred answer (fields: {', '.join(pred.keys())}): "
                        "judge_accuracy scores a judge's Verdict", source="judge_accuracy", field="preferred")
    return float(_choice(pred.preferred) == _choice(example.preferred))


def _choice(value: Any) -> str:
    text = str(value).strip()
    return current_fields({"preferred": text.capitalize()})["preferred"].upper() if text else text


def judge_accuracy_feedback(example: dspy.Example, pred: dspy.Prediction, trace: Any = None,
                            pred_name: str | None = None, pred_trace: Any = None) -> dspy.Prediction:
    """:func:`judge_accuracy` with text feedback for GEPA: what the user chose and what the judge argued."""
    score = judge_accuracy(example, pred)
    said = str(pred.get("reasoning") or "")[:400]
    if score:
        feedback = f"Right: the user preferred response {example.preferred}."
    else:
        feedback = (f"Wrong: the user preferred response {example.preferred}, the judge picked "
                    f"{pred.get('preferred')!r}. Its reasoning was: {said!r}. Say what about this user's "
                    f"taste the reasoning missed.")
    return dspy.Prediction(score=score, feedback=feedback)


# -- persona inference --------------------------------------------------------------------------

class PersonaAccuracy:
    """Persona accuracy of a :class:`~personae.programs.PersonaInference` prediction (its
    ``chosen_persona`` and ``rejected_persona``): a :class:`~personae.programs.PersonaJudge` on
    ``judge_lm`` reads each persona and judges the example's pair, and a side scores when the
    judge picks that side's response (the chosen response for the chosen-side persona, the
    rejected one for the other). Each persona is judged in both orders (4 judge calls an
    example), or in one seeded order with ``both_orders=False``; a missing persona or a failed
    judgment scores 0. The score is the mean over the judgments.

    The judge's calls stay out of the optimizer's trace (they never become demos); ``tally``
    counts them, and those that failed by kind.
    """

    def __init__(self, judge_lm: dspy.BaseLM, *, both_orders: bool = True, seed: int = 0,
                 sides: Sequence[str] = ("chosen", "rejected"), tally: Tally | None = None) -> None:
        if judge_lm is None:
            raise ConfigError("PersonaAccuracy needs the judge's LM: PersonaAccuracy(judge_lm=lm)")
        self.judge_lm = judge_lm
        self.both_orders = both_orders
        self.seed = seed
        self.sides = tuple(sides)
        self.tally = tally

    def judgments(self, example: dspy.Example, pred: dspy.Prediction) -> list[tuple[str, bool, bool | None]]:
        """``(side, chosen_first, right)`` for each judgment (``right`` None: it failed or had no persona)."""
        record = as_record(example, source="PersonaAccuracy")
        out: list[tuple[str, bool, bool | None]] = []
        for side in self.sides:
            persona = pred.get(f"{side}_persona")
            orders = (True, False) if self.both_orders else (
                stable_coin(self.seed, record.record_id, record.prompt, side),)
            for chosen_first in orders:
                if not isinstance(persona, str) or not persona.strip():
                    out.append((side, chosen_first, None))
                    continue
                with dspy.context(trace=None):
                    outcome = _ONE_TRY.attempt(
                        lambda p=persona, c=chosen_first: judge_pair(  # type: ignore[misc]
                            PersonaJudge(p, attempts=1), record, chosen_first=c), lm=self.judge_lm)
                if self.tally is not None:
                    self.tally.add(outcome)
                if outcome.value is None:
                    logger.debug("persona-accuracy judgment failed (%s): %s", outcome.kind, outcome.error)
                    out.append((side, chosen_first, None))
                    continue
                picked_chosen = (outcome.value.preferred == "A") == chosen_first
                out.append((side, chosen_first, picked_chosen == (side == "chosen")))
        return out

    def __call__(self, example: dspy.Example, pred: dspy.Prediction, trace: Any = None) -> float:
        """The share of judgments that picked the response each persona was inferred from."""
        made = self.judgments(example, pred)
        return sum(bool(right) for _, _, right in made) / len(made) if made else 0.0


class PersonaAccuracyFeedback(PersonaAccuracy):
    """:class:`PersonaAccuracy` with text feedback for GEPA: which side's persona misled the judge."""

    def __call__(self, example: dspy.Example, pred: dspy.Prediction, trace: Any = None,
                 pred_name: str | None = None, pred_trace: Any = None) -> dspy.Prediction:
        """The :class:`PersonaAccuracy` score as ``dspy.Prediction(score, feedback)``: for each side
        whose persona misled the judge, what to write more specifically."""
        made = self.judgments(example, pred)
        score = sum(bool(right) for _, _, right in made) / len(made) if made else 0.0
        notes = []
        for side in self.sides:
            wrong = [right for s, _, right in made if s == side and not right]
            if not wrong:
                continue
            persona = pred.get(f"{side}_persona")
            if not isinstance(persona, str) or not persona.strip():
                notes.append(f"No {side}-side persona was written.")
            else:
                notes.append(f"A judge given the {side}-side persona {persona[:200]!r} did not pick the {side} "
                             f"response in {len(wrong)} of {sum(1 for s, _, _ in made if s == side)} orders: "
                             "say more specifically what that response offers this person.")
        feedback = " ".join(notes) or "Both personas led the judge to the response they were inferred from."
        return dspy.Prediction(score=score, feedback=feedback)


# -- verified reasoning -------------------------------------------------------------------------

def trace_verified(example: dspy.Example, pred: dspy.Prediction, trace: Any = None) -> float:
    """1.0 when :class:`~personae.programs.VerifiedReasoning` kept a trace (its explanation
    predicted the user's choice), else 0.0."""
    return float(bool(pred.get("verified")))


# -- persona synthesis --------------------------------------------------------------------------

class HeldOutAccuracy:
    """How well a synthesized persona predicts its user: the accuracy of a
    :class:`~personae.programs.PersonaJudge` on ``judge_lm``, given the predicted ``persona``, on
    the example's held-out pairs (``example.val``: records or their dicts), each shown once in
    an order fixed by a seeded coin. A missing persona or a failed judgment counts as wrong.
    For :class:`~personae.programs.PersonaSynthesis` and :class:`~personae.programs.PersonaRevision`.
    """

    def __init__(self, judge_lm: dspy.BaseLM, *, seed: int | None = None) -> None:
        if judge_lm is None:
            raise ConfigError("HeldOutAccuracy needs the judge's LM: HeldOutAccuracy(judge_lm=lm)")
        self.judge_lm = judge_lm
        self.seed = seed

    def score(self, example: dspy.Example, pred: dspy.Prediction) -> tuple[float, list[str]]:
        """The accuracy, and why each wrong judgment went wrong."""
        persona = str(pred.get("persona") or "").strip()
        val = [PreferenceRecord.from_dict(r) if isinstance(r, dict) else as_record(r, source="val")
               for r in example.get("val") or []]
        if not val:
            return 0.0, ["the example has no held-out pairs (val) to score the persona on"]
        if not persona:
            return 0.0, ["no persona was written"]
        seed = int(example.get("seed", 0)) if self.seed is None else self.seed
        judge = PersonaJudge(persona, attempts=1)
        correct, notes = 0, []
        for record in val:
            chosen_first = stable_coin(seed, "val", record.record_id, record.prompt)
            with dspy.context(trace=None):
                outcome = _ONE_TRY.attempt(lambda r=record, c=chosen_first: judge_pair(  # type: ignore[misc]
                    judge, r, chosen_first=c).preferred, lm=self.judge_lm)
            right = outcome.value is not None and (outcome.value == "A") == chosen_first
            if outcome.error:  # counted wrong, with its reason
                notes.append(outcome.error)
            elif not right:
                notes.append(f"the persona did not predict the choice on: {record.prompt[:120]!r}")
            correct += right
        return correct / len(val), notes

    def __call__(self, example: dspy.Example, pred: dspy.Prediction, trace: Any = None) -> float:
        """The held-out accuracy of the persona-guided judge."""
        return self.score(example, pred)[0]


class HeldOutAccuracyFeedback(HeldOutAccuracy):
    """:class:`HeldOutAccuracy` with text feedback for GEPA: which held-out choices the persona missed."""

    def __call__(self, example: dspy.Example, pred: dspy.Prediction, trace: Any = None,
                 pred_name: str | None = None, pred_trace: Any = None) -> dspy.Prediction:
        """The held-out accuracy as ``dspy.Prediction(score, feedback)``, with up to three notes on
        the choices the persona missed."""
        score, notes = self.score(example, pred)
        feedback = f"The persona let a judge predict {score:.0%} of this user's held-out choices. "
        feedback += " ".join(notes[:3])
        return dspy.Prediction(score=score, feedback=feedback.strip())
