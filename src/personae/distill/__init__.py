"""Distillation: a persona-conditioned reward model and a persona-tailored generator.

Training and loading models needs the ``distill`` extra (torch, transformers, TRL, peft)::

    pip install 'personae[distill]'

Importing this package is cheap and never imports torch; a function that needs the extra
raises :class:`~personae.errors.MissingExtraError` naming that command when it is missing.

Reward model (TRL ``RewardTrainer``, Bradley-Terry; default backbone all-MiniLM-L6-v2)::

    from personae.distill import PersonalizedRewardModel, RewardModelConfig, train_reward_model

    training = train_reward_model(records, RewardModelConfig(persona="judges:out/judges,profile"), out="rm")
    rm = PersonalizedRewardModel.load("rm")
    rm.compare(persona, context, response_a, response_b).preferred        # "A", "B" or "tie"
    rm.score_batch([(persona, context, response), ...])

Where the data describes both sides (a persona for the response that won and one for the
one that lost), ``RewardModelConfig(persona="column:chosen_persona_gold",
flip_persona="column:rejected_persona_gold")`` trains each pair both ways, and
``evaluate_sides`` / ``side_figures`` score a model on both sides of held-out pairs.

Tailored generator (TRL ``SFTTrainer`` then ``DPOTrainer`` with LoRA; default SmolLM2-135M)::

    from personae.distill import TailorConfig, TailoredGenerator, tailoring_examples, train_tailored_generator

    train_tailored_generator(tailoring_examples(sft_records), tailoring_examples(dpo_records), out="gen")
    TailoredGenerator.load("gen").generate(prompt, persona)

Comparing two generators with an LLM judge needs no torch and lives in
:mod:`personae.evaluation` (``compare_generations``); the commands' orchestration (loading,
training, writing) is in :mod:`personae.pipelines.distill`.

Modules: ``_extra`` (the extra check, offline settings, device), ``_personas`` (persona
sources), ``_encoding`` (the reward model's input template), ``_reward`` (training),
``_reward_model`` (loading and scoring), ``_protocol`` (evaluation into the judges' run
log), ``_tailor`` (the generator).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # real types for type checkers; at run time names load on first use
    from personae.distill._encoding import InputTemplate, default_template
    from personae.distill._extra import DEFAULT_REWARD_BACKBONE, require_distill
    from personae.distill._onnx import RUNTIMES, export_onnx
    from personae.distill._personas import FLIPPED_SUFFIX, PersonaResolver, flip_pairs
    from personae.distill._protocol import (
        SIDES,
        check_prompt_split,
        evaluate_scorers,
        evaluate_sides,
        length_scorer,
        side_figures,
    )
    from personae.distill._reward import (
        RewardModelConfig,
        RewardTraining,
        config_values,
        fit_length_weight,
        persona_function,
        train_reward_model,
        training_order,
    )
    from personae.distill._reward_model import PersonalizedRewardModel, RewardVerdict
    from personae.distill._tailor import (
        DEFAULT_STUDENT,
        TailorConfig,
        TailoredGenerator,
        TailoringExample,
        TailorTraining,
        tailoring_examples,
        train_tailored_generator,
    )

_EXPORTS: dict[str, str] = {
    # reward model
    "DEFAULT_REWARD_BACKBONE": "personae.distill._extra",
    "InputTemplate": "personae.distill._encoding",
    "default_template": "personae.distill._encoding",
    "FLIPPED_SUFFIX": "personae.distill._personas",
    "PersonaResolver": "personae.distill._personas",
    "flip_pairs": "personae.distill._personas",
    "PersonalizedRewardModel": "personae.distill._reward_model",
    "RewardModelConfig": "personae.distill._reward",
    "RewardTraining": "personae.distill._reward",
    "RewardVerdict": "personae.distill._reward_model",
    "RUNTIMES": "personae.distill._onnx",
    "export_onnx": "personae.distill._onnx",
    "config_values": "personae.distill._reward",
    "fit_length_weight": "personae.distill._reward",
    "persona_function": "personae.distill._reward",
    "train_reward_model": "personae.distill._reward",
    "training_order": "personae.distill._reward",
    # evaluation of reward models
    "SIDES": "personae.distill._protocol",
    "check_prompt_split": "personae.distill._protocol",
    "evaluate_scorers": "personae.distill._protocol",
    "evaluate_sides": "personae.distill._protocol",
    "length_scorer": "personae.distill._protocol",
    "side_figures": "personae.distill._protocol",
    # tailored generator
    "DEFAULT_STUDENT": "personae.distill._tailor",
    "TailorConfig": "personae.distill._tailor",
    "TailorTraining": "personae.distill._tailor",
    "TailoredGenerator": "personae.distill._tailor",
    "TailoringExample": "personae.distill._tailor",
    "tailoring_examples": "personae.distill._tailor",
    "train_tailored_generator": "personae.distill._tailor",
    # the extra
    "require_distill": "personae.distill._extra",
}

__all__ = [
    "DEFAULT_REWARD_BACKBONE",
    "DEFAULT_STUDENT",
    "FLIPPED_SUFFIX",
    "InputTemplate",
    "PersonaResolver",
    "PersonalizedRewardModel",
    "RewardModelConfig",
    "RewardTraining",
    "RUNTIMES",
    "RewardVerdict",
    "SIDES",
    "TailorConfig",
    "TailorTraining",
    "TailoredGenerator",
    "default_template",
    "TailoringExample",
    "check_prompt_split",
    "config_values",
    "evaluate_scorers",
    "evaluate_sides",
    "export_onnx",
    "fit_length_weight",
    "flip_pairs",
    "length_scorer",
    "persona_function",
    "require_distill",
    "side_figures",
    "tailoring_examples",
    "train_reward_model",
    "train_tailored_generator",
    "training_order",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'personae.distill' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
