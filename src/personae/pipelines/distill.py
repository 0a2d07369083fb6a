"""``personae distill`` without the CLI: load the data, train, evaluate, write everything.

:func:`distill_reward_model` trains a persona-conditioned reward model (and, with
``evaluate``, scores it by the judges' protocol beside the longer-response heuristic);
:func:`distill_tailor` trains a persona-tailored generator on SFT and DPO files. Their
options besides the training configs are the dataclasses :class:`RewardModelScript` and
:class:`TailorScript`, whose ``help`` metadata the CLI turns into options. Training needs the
``distill`` extra; this module imports no torch until a function runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personae.data import PreferenceRecord
from personae.distill import RUNTIMES
from personae.errors import ConfigError, DataError

if TYPE_CHECKING:
    from personae.distill import RewardModelConfig, RewardTraining, TailorConfig, TailorTraining

__all__ = ["RewardModelResult", "RewardModelScript", "TailorScript", "distill_reward_model", "distill_tailor"]


@dataclass
class RewardModelScript:
    """What ``personae distill reward-model`` does around training (its options besides the config's)."""

    out: str = field(default="reward-model", metadata={"help": "output folder for the model"})
    evaluate: bool = field(default=False, metadata={
        "help": "split each user's prompts (train/val/test, in order of first appearance), train on train+val, "
                "and report test accuracy by the judges' protocol next to the longer-response heuristic "
                "(OUT/run.json, OUT/report.md); with --flip-persona, each test pair is scored on both sides, "
                "the run's two 'users' being the chosen and the rejected side"})
    fractions: str = field(default="0.5,0.2,0.3", metadata={"help": "train,val,test shares of each user's prompts"})
    min_pairs: int = field(default=0, metadata={"help": "use only users with at least this many pairs"})
    runtime: str = field(default="torch", metadata={
        "choices": RUNTIMES,
        "help": "with --evaluate: score the test pairs on this runtime: torch, or the saved model exported to ONNX "
                "(OUT/onnx/, int8 too for onnx-int8) and run by ONNX Runtime (pip install 'personae[onnx]'), the "
                "model a service would load"})


@dataclass
class RewardModelResult:
    """What :func:`distill_reward_model` produced: the training and, with ``evaluate``, the run log."""

    training: RewardTraining
    run: Any = None
    splits: dict[str, Any] = field(default_factory=dict)


@dataclass
class TailorScript:
    """What ``personae distill tailor`` trains on and where it writes (its options besides the config's)."""

    sft: str | None = field(default=None, metadata={
        "help": "SFT data: prompt, chosen, rejected and persona columns (e.g. persona_tailoring/*__sft_train.jsonl)"})
    dpo: str | None = field(default=None, metadata={
        "help": "DPO data, same columns (e.g. persona_tailoring/*__dpo_train.jsonl); with --sft, DPO follows SFT"})
    out: str = field(default="tailored-generator", metadata={"help": "output folder for the generator"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N records of each file"})


def distill_reward_model(data: Sequence[PreferenceRecord], config: RewardModelConfig, script: RewardModelScript,
                         *, on_log: Callable[[dict[str, Any]], None] | None = None) -> RewardModelResult:
    """Train (and with ``script.evaluate``, evaluate) a reward model; write everything to ``script.out``."""
    from personae.data import PreferenceData, parse_fractions, select_users, split_user
    from personae.distill import (
        PersonaResolver,
        check_prompt_split,
        config_values,
        evaluate_scorers,
        evaluate_sides,
        length_scorer,
        persona_function,
        require_distill,
        train_reward_model,
    )
    from personae.evaluation import write_report, write_run_log

    require_distill("personae distill reward-model")
    source = data.source if isinstance(data, PreferenceData) else ""
    users = select_users(data if isinstance(data, PreferenceData) else PreferenceData(data),
                         min_pairs=script.min_pairs)
    if not script.evaluate:
        records = [r for user in users for r in user.records]
        return RewardModelResult(train_reward_model(records, config, out=script.out, on_log=on_log))
    fractions = parse_fractions(script.fractions)
    splits = {user.user_id: split_user(user.records, fractions) for user in users}
    check_prompt_split(splits)
    train = [r for split in splits.values() for r in split.train + split.val]
    training = train_reward_model(train, config, out=script.out, on_log=on_log)
    model = training.model
    if script.runtime != "torch":  # the export a service would load, scored on ONNX Runtime
        from personae.distill import PersonalizedRewardModel, export_onnx

        export_onnx(script.out, int8=script.runtime == "onnx-int8")
        model = PersonalizedRewardModel.load(script.out, runtime=script.runtime, threads=config.threads)
    extra = {"reward_model": config_values(config), "train_pairs": training.pairs,
             "train_seconds": round(training.seconds, 2), "runtime": script.runtime}
    if config.flip_persona is None:
        personas = persona_function(training.model)
        scorers = {"longer response": length_scorer,
                   "reward model": lambda records: model.score_records(records, personas)}
        run = evaluate_scorers(splits, scorers, fractions=fractions, seed=config.seed, model=config.model,
                               source=source, extra=extra)
    else:  # both sides of each test pair, each under its own persona (flip_pairs puts it in the metadata)
        def side_persona(record: PreferenceRecord) -> str:
            return str(record.metadata["persona"])

        scorers = {"longer response": length_scorer,
                   "reward model": lambda records: model.score_records(records, side_persona)}
        run = evaluate_sides([r for split in splits.values() for r in split.test], scorers,
                             persona=persona_function(training.model), flip=PersonaResolver(config.flip_persona),
                             fractions=fractions, seed=config.seed, model=config.model, source=source, extra=extra)
    write_run_log(run, Path(script.out) / "run.json")
    write_report(run, script.out)
    return RewardModelResult(training, run, splits)


def distill_tailor(config: TailorConfig, script: TailorScript, *,
                   on_log: Callable[[dict[str, Any]], None] | None = None) -> TailorTraining:
    """Load the SFT and DPO files, build persona-augmented examples, train, save to ``script.out``."""
    from personae.data import load_preferences
    from personae.distill import TailoringExample, require_distill, tailoring_examples, train_tailored_generator

    if not script.sft and not script.dpo:
        raise ConfigError("give SFT data, DPO data, or both (--sft, --dpo)")
    config.check()
    require_distill("personae distill tailor", ("torch", "transformers", "trl", "peft"))
    examples: dict[str, list[TailoringExample]] = {}
    for stage, path in (("sft", script.sft), ("dpo", script.dpo)):
        examples[stage] = []
        if path:
            records = load_preferences(path, limit=script.limit).records
            examples[stage] = tailoring_examples(records, persona=config.persona, sides=config.sides)
            if not examples[stage]:
                raise DataError(f"no example has a persona ({config.persona})", source=path)
    return train_tailored_generator(examples["sft"], examples["dpo"], config, out=script.out, on_log=on_log)
