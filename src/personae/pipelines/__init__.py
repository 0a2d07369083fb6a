"""Running the programs end to end over files and folders: the orchestration behind each command.

``infer_personas`` (file-level persona inference), ``judge_records``, ``fit_users``,
``evaluate_methods``, ``eval_tailoring``, ``distill_reward_model`` / ``distill_tailor`` and the
demo. Each long command is a :class:`~personae.runs.Task` run by :func:`personae.runs.run`: one
executor, one retry policy, one ledger, one run log.
Names load on first use, so the command line can read their option dataclasses cheaply.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from personae.pipelines.compare import TailoringTask, compare_generations
    from personae.pipelines.demo import DemoUser, demo_data_path, demo_run_log, demo_store, run_demo
    from personae.pipelines.distill import (
        RewardModelResult,
        RewardModelScript,
        TailorScript,
        distill_reward_model,
        distill_tailor,
    )
    from personae.pipelines.eval_personas import PersonaAccuracyRun, PersonaAccuracyTask, evaluate_persona_accuracy
    from personae.pipelines.eval_tailoring import TailoringEvalConfig, eval_tailoring
    from personae.pipelines.evaluate import EvaluateTask, EvaluationRun, evaluate_methods
    from personae.pipelines.fit import FitReport, FitTask, fit_users
    from personae.pipelines.infer import InferReport, InferTask, infer_personas, progress_path
    from personae.pipelines.judge import JudgeReport, JudgeTask, judge_factory, judge_records

_EXPORTS: dict[str, str] = {
    "TailoringTask": "personae.pipelines.compare",
    "compare_generations": "personae.pipelines.compare",
    "DemoUser": "personae.pipelines.demo",
    "demo_data_path": "personae.pipelines.demo",
    "demo_run_log": "personae.pipelines.demo",
    "demo_store": "personae.pipelines.demo",
    "run_demo": "personae.pipelines.demo",
    "RewardModelResult": "personae.pipelines.distill",
    "RewardModelScript": "personae.pipelines.distill",
    "TailorScript": "personae.pipelines.distill",
    "distill_reward_model": "personae.pipelines.distill",
    "distill_tailor": "personae.pipelines.distill",
    "EvaluateTask": "personae.pipelines.evaluate",
    "EvaluationRun": "personae.pipelines.evaluate",
    "evaluate_methods": "personae.pipelines.evaluate",
    "PersonaAccuracyRun": "personae.pipelines.eval_personas",
    "PersonaAccuracyTask": "personae.pipelines.eval_personas",
    "evaluate_persona_accuracy": "personae.pipelines.eval_personas",
    "TailoringEvalConfig": "personae.pipelines.eval_tailoring",
    "eval_tailoring": "personae.pipelines.eval_tailoring",
    "FitReport": "personae.pipelines.fit",
    "FitTask": "personae.pipelines.fit",
    "fit_users": "personae.pipelines.fit",
    "InferReport": "personae.pipelines.infer",
    "InferTask": "personae.pipelines.infer",
    "infer_personas": "personae.pipelines.infer",
    "progress_path": "personae.pipelines.infer",
    "JudgeReport": "personae.pipelines.judge",
    "JudgeTask": "personae.pipelines.judge",
    "judge_factory": "personae.pipelines.judge",
    "judge_records": "personae.pipelines.judge",
}

__all__ = [
    "DemoUser",
    "EvaluateTask",
    "EvaluationRun",
    "FitReport",
    "FitTask",
    "InferReport",
    "InferTask",
    "JudgeReport",
    "JudgeTask",
    "PersonaAccuracyRun",
    "PersonaAccuracyTask",
    "RewardModelResult",
    "RewardModelScript",
    "TailorScript",
    "TailoringEvalConfig",
    "TailoringTask",
    "compare_generations",
    "demo_data_path",
    "demo_run_log",
    "demo_store",
    "distill_reward_model",
    "distill_tailor",
    "eval_tailoring",
    "evaluate_methods",
    "evaluate_persona_accuracy",
    "fit_users",
    "infer_personas",
    "judge_factory",
    "judge_records",
    "progress_path",
    "run_demo",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'personae.pipelines' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
