"""The demo: personas from each user's earlier choices, tested on their later ones.

For every user of a small data set: infer the personas behind a few of the user's earlier
pairs (persona inference), explain the earlier pairs with verified reasoning and condense
the kept traces into the user's persona (persona synthesis, zero-shot), then judge the user's later
pairs in both orders with the default judge and with the persona-guided judge, on the same
pairs in the same run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import dspy

from personae.data import PreferenceData, UserHistory, load_preferences, split_user
from personae.lm import Cost, CostMeter, default_adapter
from personae.pipelines.judge import JudgeReport, judge_records
from personae.programs import (
    DefaultJudge,
    PersonaInference,
    PersonaJudge,
    PersonaSynthesis,
    VerifiedReasoning,
)
from personae.runs import RetryPolicy, run_batch

__all__ = ["DemoUser", "demo_data_path", "run_demo"]

logger = logging.getLogger(__name__)


def demo_data_path() -> Path:
    """The demo's preference file, shipped inside the package."""
    return Path(str(resources.files("personae") / "resources" / "demo_preferences.jsonl"))


@dataclass
class DemoUser:
    """One demo user: the persona written from the verified reasoning on the train pairs (empty when
    none was verified), the split sizes, the test pairs judged without and with it, the personas
    inferred from the first train pairs, the user's ``taste`` label when the data has one, and the
    cost."""
    user_id: str
    persona: str
    n_train: int
    n_test: int
    verified: int
    without_persona: JudgeReport
    with_persona: JudgeReport
    inferred: list[dict[str, Any]] = field(default_factory=list)
    taste: str | None = None
    cost: Cost = Cost()


def _demo_user(user: UserHistory, *, lm: dspy.BaseLM, train_fraction: float, pi_examples: int,
               max_attempts: int, seed: int) -> DemoUser:
    split = split_user(user.records, (train_fraction, 0.0, 1.0 - train_fraction))
    train, test = split.train, split.test
    meter = CostMeter()
    with meter.track(), dspy.context(lm=lm, adapter=dspy.settings.adapter or default_adapter()):
        infer = PersonaInference(attempts=1)  # run_batch retries each record
        examples = train[:pi_examples]

        def infer_one(record: Any) -> dict[str, Any]:
            pred = infer.for_record(record)
            return {"chosen_persona": pred.chosen_persona, "rejected_persona": pred.rejected_persona}

        # failures and echoed examples are retried on fresh samples, then shown with their reason
        outcomes = run_batch(infer_one, examples, lm=lm, max_attempts=max_attempts)
        inferred = [{"record_id": examples[o.index].record_id,
                     **(o.value if o.value is not None else {"error": o.error})}
                    for o in sorted(outcomes, key=lambda o: o.index)]
        verifier = VerifiedReasoning(attempts=max_attempts, seed=seed)
        traces = [pred.trace for pred in map(verifier.for_record, train) if pred.verified]
        # zero-shot: a small model tends to copy a worked example, and the demo should show
        # the model's own writing
        synthesis = PersonaSynthesis(demos=[], attempts=1)
        persona = ""
        if traces:
            synthesized = RetryPolicy(max_attempts=max_attempts).attempt(lambda: synthesis(traces=traces))
            persona = "" if synthesized.value is None else str(synthesized.value.persona)
            if synthesized.error:
                logger.warning("persona synthesis failed for %s: %s", user.user_id, synthesized.error)
        else:
            logger.warning("no verified traces for %s: no persona", user.user_id)
        default = DefaultJudge(attempts=1)  # judge_records retries each judgment
        plain = judge_records(test, lambda r: default, lm=lm, max_attempts=max_attempts)
        guided_judge = PersonaJudge(persona, attempts=1) if persona else default
        guided = judge_records(test, lambda r: guided_judge, lm=lm, max_attempts=max_attempts)
    taste = next((r.metadata.get("taste") for r in user.records if r.metadata.get("taste")), None)
    return DemoUser(user.user_id, persona, len(train), len(test), len(traces), plain, guided,
                    inferred, taste, meter.cost)


def run_demo(
    data: PreferenceData | None = None,
    *,
    lm: dspy.BaseLM,
    users: int | None = None,
    train_fraction: float = 2 / 3,
    pi_examples: int = 1,
    max_attempts: int = 2,
    seed: int = 0,
    on_user: Callable[[DemoUser], None] | None = None,
) -> list[DemoUser]:
    """Run the demo on ``data`` (the packaged demo set by default); one :class:`DemoUser` each."""
    data = data if data is not None else load_preferences(demo_data_path())
    histories = list(data.by_user().values())[: users or None]
    results = []
    for user in histories:
        result = _demo_user(user, lm=lm, train_fraction=train_fraction, pi_examples=pi_examples,
                            max_attempts=max_attempts, seed=seed)
        results.append(result)
        if on_user:
            on_user(result)
    return results
