"""SynthesizeMe: fit one user's personalized judge from their preference history.

1. Split the user's pairs in order, by prompt (every pair of one prompt on one side), with the
   evaluation protocol's fractions (50% train, 20% validation, 30% test by default; a
   ``split`` column is honoured when present). Fitting reads train and validation only: the
   test pairs stay unseen, so ``personae evaluate`` can score the judge on them.
2. Verified reasoning on the train pairs: explanations kept only when they predict the choice.
3. (``paper`` preset) search demo sets for the judge without a persona.
4. Persona synthesis from the verified traces.
5. Search demo sets again with the persona in the judge's instructions.

The ``paper`` preset follows the reference settings. The ``default`` preset is built to cost
a fraction of it: it skips step 3 (its result feeds nothing the final judge keeps), verifies
at most the first six train pairs with one attempt each, and scores two demo sets (the first
verified traces, and none) with early stopping at 80% and shared predictions. Validation
sides hold a handful of pairs, so further random candidates mostly fit noise; its cost is
bounded by six verifications, one synthesis and two passes over validation, while the paper
preset's grows with every train pair and 13 passes over validation. Both presets prune: a
demo set stops being scored once it can no longer beat the best one, which changes the cost,
never the choice (``prune=False`` scores every set on every pair).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import dspy

from personae.data import PreferenceRecord, UserHistory, as_records, split_user
from personae.errors import ConfigError, ItemError
from personae.lm import CostMeter, default_adapter
from personae.optimizers._demo_search import DemoSearch, PredictionMemo, SearchResult, as_demo, labeled_demo
from personae.programs import (
    DefaultJudge,
    PersonalizedJudge,
    PersonaSynthesis,
    Trace,
    VerifiedReasoning,
    check_reached,
    program_digest,
)
from personae.runs import CALL_FAILURES, RetryPolicy
from personae.signatures import PairwiseJudge, personalized_instructions

__all__ = ["COST_ONLY_SETTINGS", "PRESETS", "Preset", "SynthesizeMe", "preset_overrides"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preset:
    """Settings of one SynthesizeMe fit. ``None`` for a demo cap means "up to the pool size"."""

    name: str
    fractions: tuple[float, float, float] = (0.5, 0.2, 0.3)
    verify_attempts: int = 2
    max_verified: int | None = None          # verify at most this many train pairs (in order)
    first_candidates: int = 0                # step 3; 0 skips it
    first_max_demos: int | None = None
    first_labeled: int = 0
    first_target: float | None = None
    candidates: int = 2                      # step 5
    max_demos: int | None = 3
    target: float | None = 0.8
    prune: bool = True                       # stop scoring a demo set once it cannot win


# Settings that change what a fit costs, never the judge it returns.
COST_ONLY_SETTINGS = frozenset({"prune"})


def preset_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as preset settings for :class:`SynthesizeMe`; values are read as
    JSON (``4``, ``null``, ``false``), anything else as text."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"preset setting {item!r}: expected KEY=VALUE, e.g. candidates=4")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


PRESETS: dict[str, Preset] = {
    "default": Preset("default", verify_attempts=1, max_verified=6),
    "paper": Preset(
        "paper", verify_attempts=3, first_candidates=10, first_max_demos=None, first_labeled=4,
        first_target=0.8, candidates=13, max_demos=None, target=None,
    ),
}


SYNTHESIS_ATTEMPTS = 3  # fresh samples of the persona before the judge goes without one


class SynthesizeMe:
    """Fits :class:`PersonalizedJudge` artifacts. Holds settings only, never run state."""

    def __init__(self, preset: str | Preset = "default", *, seed: int = 0, num_threads: int = 2,
                 max_lm_calls: int | None = None, synthesis: PersonaSynthesis | None = None, **overrides: object):
        if isinstance(preset, str):
            if preset not in PRESETS:
                raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
            preset = PRESETS[preset]
        unknown = sorted(set(overrides) - {f.name for f in fields(Preset)} - {"name"})
        if unknown or "name" in overrides:
            allowed = ", ".join(f.name for f in fields(Preset) if f.name != "name")
            raise ConfigError(f"unknown preset setting {', '.join(unknown or ['name'])}; settings are {allowed}")
        self.preset = replace(preset, **overrides) if overrides else preset  # type: ignore[arg-type]
        self.seed = seed
        self.num_threads = num_threads
        self.max_lm_calls = max_lm_calls
        # the fit asks SYNTHESIS_ATTEMPTS times itself, counting each attempt in its cost
        self.synthesis = (synthesis or PersonaSynthesis()).with_attempts(1)

    def settings(self) -> dict[str, Any]:
        """What a fitted judge depends on besides the user's pairs and the LM, as JSON values:
        the preset's settings, the seed and a digest of the persona-synthesis program."""
        values = {**asdict(self.preset), "seed": self.seed, "persona_program": program_digest(self.synthesis)}
        return dict(json.loads(json.dumps(values)))

    def compile(self, student: PersonalizedJudge | None = None, *,
                trainset: Sequence[PreferenceRecord | dspy.Example],
                valset: Sequence[PreferenceRecord | dspy.Example] | None = None, **options: Any) -> PersonalizedJudge:
        """DSPy's optimizer entry point: :meth:`fit` on ``trainset`` (one user's pairs), validated on
        ``valset`` when given instead of the preset's split. ``student`` is not used: the judge is
        built from the fit. ``options`` go to :meth:`fit` (``lm=``, ``user_id=``)."""
        return self.fit(trainset, valset=valset, **options)

    def fit(self, user: UserHistory | Sequence[PreferenceRecord | dspy.Example], *, lm: dspy.BaseLM | None = None,
            user_id: str | None = None, require_validation: bool = False,
            valset: Sequence[PreferenceRecord | dspy.Example] | None = None) -> PersonalizedJudge:
        """Fit one user's judge from their pairs (a :class:`~personae.data.UserHistory`, or a list of
        records or ``dspy.Example``s with ``prompt``, ``chosen`` and ``rejected``), on ``lm`` or the
        LM configured in DSPy. The pairs are split by the preset (by prompt, in order) unless
        ``valset`` gives the validation pairs. Returns the :class:`~personae.programs.PersonalizedJudge`.

        A history whose pairs come from too few prompts for a validation side still gets a
        persona from its train pairs, and the judge keeps the first verified traces as its
        demonstrations without a demo search: ``val_accuracy`` is then None and the judge's
        ``note`` says so. ``require_validation=True`` refuses such a user with
        :class:`~personae.errors.ItemError` instead.
        """
        lm = lm or dspy.settings.lm
        if lm is None:
            raise ConfigError("no LM: pass lm= or configure one with dspy.configure(lm=...)")
        records = list(user.records) if isinstance(user, UserHistory) else as_records(user, source="fit")
        uid = user_id or (user.user_id if isinstance(user, UserHistory) else records[0].user_id if records else None)
        uid = uid or "user"  # pairs that name no user
        if not records:
            raise ItemError(f"user {uid!r} has no preference pairs to fit", item=str(uid))
        p = self.preset
        if valset is None:
            split = split_user(records, p.fractions)
            train, val = split.train, split.val
            if not train and not require_validation:  # one prompt: too few to split, all of it trains
                train, val = [r for r in records if r not in split.test] or records, []
        else:  # the caller's own split
            train, val = records, as_records(valset, source="valset")
        if not train or (not val and require_validation):
            raise ItemError(f"user {uid!r}: {len(records)} pairs are too few for a train and a validation side",
                            item=str(uid))
        prompts = len({r.prompt_key for r in records})
        note = "" if val else (f"no validation side: {len(records)} pair{'s' * (len(records) != 1)} on {prompts} "
                               f"prompt{'s' * (prompts != 1)}; the first verified traces are the demonstrations, "
                               "unscored")
        meter = CostMeter()
        memo = PredictionMemo()
        tried = pruned = 0
        with meter.track(), dspy.context(lm=lm, adapter=dspy.settings.adapter or default_adapter()):
            verifier = VerifiedReasoning(attempts=p.verify_attempts, seed=self.seed)
            verified = [verifier.for_record(record) for record in train[: p.max_verified]]
            traces: list[Trace] = [pred.trace for pred in verified if pred.verified]
            check_reached(verified, f"user {uid}: verified reasoning")
            pool = [as_demo(t) for t in traces]
            if p.first_candidates:
                first = DemoSearch(num_candidates=p.first_candidates, max_demos=p.first_max_demos or len(pool),
                                   max_labeled=p.first_labeled, target=p.first_target, seed=self.seed,
                                   num_threads=self.num_threads, memo=memo, max_lm_calls=self._budget_left(meter),
                                   prune=p.prune)
                first_result = first.search(DefaultJudge(attempts=1), val, pool=pool,
                                            labeled=[labeled_demo(r) for r in train])
                tried += first_result.candidates_tried
                pruned += first_result.pruned
            persona, persona_error = "", None
            if traces:
                synthesized = RetryPolicy(max_attempts=SYNTHESIS_ATTEMPTS).attempt(lambda: self.synthesis(traces))
                persona = "" if synthesized.value is None else str(synthesized.value.persona)
                persona_error = synthesized.error
                if synthesized.kind in CALL_FAILURES:  # the model gave no answer: fit again later
                    raise synthesized.exception(f"user {uid}: persona synthesis")
            if persona_error:
                logger.warning("user %s: no persona (%s); the judge works without one", uid, persona_error)
            instructions = personalized_instructions(PairwiseJudge.instructions, persona)
            student = PersonalizedJudge(str(uid), persona, instructions=instructions, attempts=1)
            if val:
                search = DemoSearch(num_candidates=p.candidates, max_demos=p.max_demos or len(pool),
                                    target=p.target, seed=self.seed, num_threads=self.num_threads, memo=memo,
                                    max_lm_calls=self._budget_left(meter), prune=p.prune)
                result = search.search(student, val, pool=pool)
                tried += result.candidates_tried
                pruned += result.pruned
            else:  # nothing to validate on: the first verified traces, as the search's first candidate
                result = SearchResult(demos=pool[: p.max_demos or len(pool)], score=None, stopped="no validation")
        cost = meter.cost
        logger.info("fitted %s: %d/%d verified, val %.2f, %s", uid, len(traces), len(train),
                    result.score or 0.0, cost.summary())
        return PersonalizedJudge(
            user_id=str(uid), persona=persona, demos=result.demos, instructions=instructions,
            val_accuracy=result.score, n_train=len(train), n_val=len(val), seed=self.seed,
            model=str(getattr(lm, "model", "")), preset=p.name, settings=self.settings(), candidates_tried=tried,
            note=note,
            cost={**cost.to_dict(), "verified_traces": len(traces), "reused_predictions": memo.hits,
                  "pruned_candidates": pruned,
                  **({"persona_error": persona_error} if persona_error else {})},
        )

    def _budget_left(self, meter: CostMeter) -> int | None:
        if self.max_lm_calls is None:
            return None
        return max(0, self.max_lm_calls - meter.cost.lm_calls)
