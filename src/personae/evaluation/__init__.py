"""Evaluation: judging methods, the one pair-judging base, bootstrap intervals, run logs and reports.

The runs themselves are tasks in :mod:`personae.pipelines` (``evaluate_methods``,
``evaluate_persona_accuracy``, ``compare_generations``)::

    from personae.evaluation import write_report
    from personae.pipelines import evaluate_methods

    run = evaluate_methods(data, ["default", "profile", "memory"], lm=lm)
    print(run.accuracy("default"), run.summary["memory"].ci_low)
    write_report(run, "out")

Each user's pairs are split by prompt; every method judges the same test pairs, each in both
orders; unscored judgments count as wrong; pooled accuracy comes with a 95% bootstrap
interval resampled over pairs.

:mod:`personae.evaluation.metrics` has a metric in DSPy's form for each program (for
``dspy.Evaluate``, ``MIPROv2`` and ``GEPA``).
"""

from __future__ import annotations

from personae.evaluation.log import (
    EvaluationLog,
    EvaluationResults,
    MethodSummary,
    PersonaAccuracyConfig,
    PersonaAccuracyLog,
    PersonaAccuracyResults,
    PersonaRow,
    RunConfig,
    SideSummary,
    UserRow,
    read_persona_accuracy_log,
    read_run_log,
    summarise_method,
    summarise_side,
    write_run_log,
)
from personae.evaluation.methods import (
    METHODS,
    check_methods,
    judge_for,
    judge_path,
    persona_column,
    read_personas,
    resolve_persona_columns,
    safe_name,
)
from personae.evaluation.metrics import (
    HeldOutAccuracy,
    HeldOutAccuracyFeedback,
    PersonaAccuracy,
    PersonaAccuracyFeedback,
    judge_accuracy,
    judge_accuracy_feedback,
    judge_examples,
    persona_inference_examples,
    trace_verified,
)
from personae.evaluation.report import (
    persona_accuracy_summary,
    summary_table,
    user_table,
    write_persona_accuracy_report,
    write_report,
)
from personae.evaluation.saliency import SalientWord, persona_saliency, saliency_table, write_saliency_report
from personae.evaluation.stats import MethodStats, bootstrap_ci, method_stats, wilson_interval
from personae.evaluation.tailoring import (
    CriterionSummary,
    TailoringConfig,
    TailoringEvalLog,
    TailoringItem,
    TailoringResults,
    delta_pq,
    item_outcome,
    tailoring_results,
)

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
    "CriterionSummary",
    "TailoringConfig",
    "TailoringEvalLog",
    "TailoringItem",
    "TailoringResults",
    "delta_pq",
    "item_outcome",
    "tailoring_results",
    "SalientWord",
    "persona_saliency",
    "saliency_table",
    "write_saliency_report",
    "METHODS",
    "EvaluationLog",
    "EvaluationResults",
    "MethodStats",
    "MethodSummary",
    "PersonaAccuracyConfig",
    "PersonaAccuracyLog",
    "PersonaAccuracyResults",
    "PersonaRow",
    "RunConfig",
    "SideSummary",
    "UserRow",
    "bootstrap_ci",
    "check_methods",
    "judge_for",
    "judge_path",
    "method_stats",
    "persona_accuracy_summary",
    "persona_column",
    "read_persona_accuracy_log",
    "read_personas",
    "read_run_log",
    "resolve_persona_columns",
    "safe_name",
    "summarise_method",
    "summarise_side",
    "summary_table",
    "user_table",
    "wilson_interval",
    "write_persona_accuracy_report",
    "write_report",
    "write_run_log",
]

_MOVED = {"EvaluationRun": "personae.pipelines", "evaluate_methods": "personae.pipelines",
          "PersonaAccuracyRun": "personae.pipelines", "evaluate_persona_accuracy": "personae.pipelines",
          "compare_generations": "personae.pipelines"}


def __getattr__(name: str) -> object:
    """Names that moved to :mod:`personae.pipelines` still import from here, with a warning."""
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'personae.evaluation' has no attribute {name!r}")
    import importlib
    import warnings

    warnings.warn(f"personae.evaluation.{name} moved to {module}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), name)
