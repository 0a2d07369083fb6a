"""personae: infer who prefers what.

From pairwise preference data (a prompt, two responses, the one a person chose) personae
explains each choice, condenses the explanations into a persona, and uses the persona to
judge, generate and train for that person. Every LLM step is a DSPy program.

Importing this package is cheap: DSPy, LiteLLM and torch load only when a name that needs
them is first used (``personae.PersonaJudge`` loads DSPy; LiteLLM loads on the first call
to a remote model; torch only in ``personae.distill``).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# LiteLLM would otherwise fetch its model cost map over the network when it is imported.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # data
    "PreferenceRecord": "personae.data",
    "PreferenceData": "personae.data",
    "Turn": "personae.data",
    "UserHistory": "personae.data",
    "load_preferences": "personae.data",
    "split_user": "personae.data",
    # models
    "Cost": "personae.lm",
    "CostMeter": "personae.lm",
    "ScriptedLM": "personae.lm",
    "get_lm": "personae.lm",
    # programs
    "DefaultJudge": "personae.programs",
    "MemoryJudge": "personae.programs",
    "PersonaInference": "personae.programs",
    "PersonaJudge": "personae.programs",
    "PersonaSynthesis": "personae.programs",
    "ProfileJudge": "personae.programs",
    "VerifiedReasoning": "personae.programs",
    "judge_pair": "personae.programs",
    "PersonalizedJudge": "personae.programs",
    "Verdict": "personae.programs",
    # the run layer
    "RetryPolicy": "personae.runs",
    "run_batch": "personae.runs",
    # fitting and evaluation
    "SynthesizeMe": "personae.optimizers",
    "DemoSearch": "personae.optimizers",
    "evaluate_methods": "personae.pipelines",
    "judge_accuracy": "personae.evaluation",
    # retrieval
    "PersonaIndex": "personae.retrieval",
    "measure_retrieval": "personae.retrieval",
    # errors
    "PersonaeError": "personae.errors",
    "DataError": "personae.errors",
    "ConfigError": "personae.errors",
    "LMCallError": "personae.errors",
    "ContentError": "personae.errors",
    "ItemError": "personae.errors",
    "MissingExtraError": "personae.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'personae' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
