"""``personae distill``: train small models from preference data.

``personae distill reward-model``  a persona-conditioned reward model (TRL RewardTrainer)
``personae distill tailor``        a persona-tailored generator (SFT then DPO with LoRA)
``personae distill export``        a saved reward model for ONNX Runtime

The options come from the config dataclasses of :mod:`personae.distill` (their ``help``
metadata), so each option is documented in one place.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TypeVar

from personae.cli._common import (
    add_data_options,
    load_data,
    print_counts,
)
from personae.cli.options import add_config_options, config_from_args, quiet_libraries

__all__ = ["register"]

C = TypeVar("C")


def register(sub: Any) -> None:
    """Add ``personae distill`` and its options to ``sub``, the main parser's subcommands (its models
    ``reward-model`` and ``tailor``, each with one option per field of its configuration)."""
    from personae.distill import RewardModelConfig, TailorConfig
    from personae.pipelines.distill import RewardModelScript, TailorScript

    parser = sub.add_parser("distill", help="train small models: a persona-conditioned reward model, "
                                            "a persona-tailored generator (needs personae[distill])",
                            description="Distil personas into small models (torch, transformers, TRL, peft: "
                                        "pip install 'personae[distill]'). The GPU is used when there is one.")
    commands = parser.add_subparsers(dest="distill_command", required=True, metavar="MODEL")

    reward = commands.add_parser(
        "reward-model", help="a reward model scoring (persona, context, response), Bradley-Terry loss",
        description="Train a small reward model with TRL's RewardTrainer on pairwise preferences, the persona in "
                    "its input; save a standard transformers model folder plus personae_reward.json. With "
                    "--evaluate, hold out each user's test prompts and report accuracy by the judges' protocol.")
    add_data_options(reward)
    add_config_options(reward, RewardModelConfig, title="model and training")
    add_config_options(reward, RewardModelScript, title="run")
    reward.set_defaults(run=run_reward_model)

    tailor = commands.add_parser(
        "tailor", help="a generator that writes for a persona: SFT then DPO with LoRA",
        description="Train a small generator on Prompt / Persona / Response data (e.g. the persona_tailoring "
                    "sets, gold or retrieved personas) with TRL: SFT on --sft, then DPO on --dpo.")
    add_config_options(tailor, TailorConfig, title="model and training")
    add_config_options(tailor, TailorScript, title="data and output")
    tailor.set_defaults(run=run_tailor)

    from personae.specs import ExportOptions

    export = commands.add_parser(
        "export", help="a saved reward model for ONNX Runtime (--onnx, --int8)",
        description="Export a reward model folder to ONNX (RM_DIR/onnx/, stamped with the weights it came from), "
                    "fp32 and with --int8 also int8; score it with --runtime onnx or onnx-int8.")
    add_config_options(export, ExportOptions)
    export.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Write the export and say where; exit status 0 (2 without a format)."""
    from personae.distill import export_onnx
    from personae.errors import ConfigError
    from personae.specs import ExportOptions

    options = config_from_args(ExportOptions, args)
    if not options.onnx:
        raise ConfigError("name the format to export to: --onnx")
    out = export_onnx(options.path, int8=options.int8, opset=options.opset)
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}")
    return 0


def _print_log(entry: dict[str, Any]) -> None:
    if "loss" in entry:
        print(f"  step {entry['step']}: loss {entry['loss']:.4f}", file=sys.stderr, flush=True)


def run_reward_model(args: argparse.Namespace) -> int:
    from personae.distill import RewardModelConfig, require_distill
    from personae.evaluation import summary_table
    from personae.pipelines.distill import RewardModelScript, distill_reward_model

    require_distill("personae distill reward-model")
    quiet_libraries(getattr(args, "verbose", 0))
    config = config_from_args(RewardModelConfig, args)
    script = config_from_args(RewardModelScript, args)
    data = load_data(args)
    result = distill_reward_model(data, config, script, on_log=_print_log)
    t = result.training
    loss = f", final loss {t.losses[-1]:.4f}" if t.losses else ""
    print(f"trained on {t.pairs} pairs: {t.steps} steps in {t.seconds:.0f} s{loss}; "
          f"length weight {t.model.length_weight:.3f}; saved to {t.path}")
    if result.run is not None:
        print(summary_table(result.run, markdown=False))
        if config.flip_persona is not None:  # each test pair on both sides: the figures per side
            from personae.distill import side_figures

            for method in result.run.config.methods:
                figures = side_figures(result.run, method)
                print(f"{method}: " + ", ".join(
                    f"{side} {stats.accuracy:.1%} [{stats.ci_low:.1%}, {stats.ci_high:.1%}]"
                    for side, stats in figures.items()))
        print_counts(result.run.counts, "judgments")
        print(f"run log: {script.out}/run.json, report: {script.out}/report.md")
    return 0


def run_tailor(args: argparse.Namespace) -> int:
    from personae.distill import TailorConfig, require_distill
    from personae.pipelines.distill import TailorScript, distill_tailor

    require_distill("personae distill tailor", ("torch", "transformers", "trl", "peft"))
    quiet_libraries(getattr(args, "verbose", 0))
    result = distill_tailor(config_from_args(TailorConfig, args), config_from_args(TailorScript, args),
                            on_log=_print_log)
    for stage in result.stages:
        losses = f", loss {stage.losses[0]:.4f} -> {stage.losses[-1]:.4f}" if stage.losses else ""
        print(f"{stage.stage}: {stage.examples} examples, {stage.steps} steps in {stage.seconds:.0f} s{losses}")
    print(f"saved to {result.path}")
    return 0
