"""The demo: personas from each user's earlier choices, tested on their later ones.

For every user of a small data set: infer the personas behind a few of the user's earlier
pairs (persona inference), explain the earlier pairs with verified reasoning and condense
the kept traces into the user's persona (persona synthesis, zero-shot), then judge the user's later
pairs in both orders with the default judge and with the persona-guided judge, on the same
pairs in the same run.

:func:`demo_run_log` keeps the run as a run log (``personae view`` shows it), and
:func:`demo_store` feeds the same users' pairs, earlier ones first, to a persona store, which
fits, judges each later pair before learning from it, and revises (``personae store console``).
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

__all__ = ["DemoUser", "demo_data_path", "demo_run_log", "demo_store", "run_demo"]

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
    train: list[Any] = field(default_factory=list, repr=False)
    test: list[Any] = field(default_factory=list, repr=False)


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
        guided = judge_records(test, lambda r: guided_judge, lm=lm, max_attempts=max_attempts, method="persona")
    taste = next((r.metadata.get("taste") for r in user.records if r.metadata.get("taste")), None)
    if persona:
        guided.rows = [{**row, "persona": persona} for row in guided.rows]
    return DemoUser(user.user_id, persona, len(train), len(test), len(traces), plain, guided,
                    inferred, taste, meter.cost, train=list(train), test=list(test))


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


def demo_run_log(users: list[DemoUser], *, model: str, train_fraction: float, data_source: str,
                 started: Any = None) -> Any:
    """The demo as a run log (``RunLog``, command ``demo``): its settings, each user's split,
    persona and accuracy without and with it, the cost, and every judgment (methods ``default``
    and ``persona``)."""
    from personae.runs import Counts, RunLog, package_versions

    judgments = [j for u in users for report in (u.without_persona, u.with_persona) for j in report.judgments]
    counts = Counts()
    for u in users:
        counts = counts.add(u.without_persona.counts).add(u.with_persona.counts)
    cost = Cost()
    for u in users:
        cost = cost + u.cost
    results = {"users": [{"user_id": u.user_id, "n_train": u.n_train, "n_val": 0, "n_test": u.n_test,
                          "verified": u.verified, "persona": u.persona,
                          "accuracy": {"default": u.without_persona.accuracy, "persona": u.with_persona.accuracy}}
                         for u in users]}
    config = {"model": model, "methods": ["default", "persona"], "train_fraction": train_fraction,
              "data_source": data_source, "users": len(users)}
    log = RunLog[dict[str, Any], dict[str, Any]](command="demo", config=config, versions=package_versions(),
                                                 results=results, judgments=judgments, cost=cost, counts=counts)
    if started is not None:
        log = log.model_copy(update={"started": started})
    return log.ended("success")


def demo_store(users: list[DemoUser], path: str | Path, *, lm: dspy.BaseLM,
               on_user: Callable[[str, Any], None] | None = None) -> Path:
    """Keep the demo's users in the persona store at ``path``: each user's persona as a first
    version fitted on the earlier pairs (imported with them), then the later pairs added, which
    the store judges with that persona before learning from them (prequential accuracy) and then
    learns from (an incremental revision). A second run over the same store adds nothing and
    runs no update. ``on_user`` gets each user's state."""
    from personae.programs import PersonalizedJudge
    from personae.signatures import PairwiseJudge, personalized_instructions
    from personae.store import PersonaStore, UpdatePolicy

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # no validation side: the store revises the demo's persona instead of refitting it
    policy = UpdatePolicy(min_pairs=4, debounce_s=0.0, memory_judge=False, fractions=(1.0, 0.0, 0.0))
    with PersonaStore(target, lm=lm, policy=policy, background=False) as store:
        for user in users:
            if not store.exists(user.user_id) and user.persona:
                judge = PersonalizedJudge(persona=user.persona, user_id=user.user_id, n_train=user.n_train,
                                          preset="the demo", model=str(getattr(lm, "model", "")),
                                          instructions=personalized_instructions(PairwiseJudge.instructions,
                                                                                 user.persona),
                                          cost=user.cost.to_dict())
                store.import_judges([judge], preferences={user.user_id: user.train})
            store.add_preferences(user.user_id, [*user.train, *user.test])
            store.process_jobs(include_waiting=True)
            if on_user is not None:
                on_user(user.user_id, store.persona(user.user_id))
    return target
