"""Compilers: SynthesizeMe per-user fitting, demo-set search, and the fitted judge artifact."""

from personae.optimizers._artifact import ARTIFACT_VERSION, PersonalizedJudge, Verdict, judge_path
from personae.optimizers._demo_search import Candidate, DemoSearch, PredictionMemo, SearchResult
from personae.optimizers._persona_inference import (
    PERSONA_INFERENCE_OPTIMIZERS,
    load_persona_inference,
    optimize_persona_inference,
    persona_accuracy_metric,
    persona_inference_examples,
)
from personae.optimizers._persona_prompt import optimize_persona_program, persona_examples, persona_metric
from personae.optimizers._synthesizeme import COST_ONLY_SETTINGS, PRESETS, Preset, SynthesizeMe, preset_overrides

__all__ = [
    "ARTIFACT_VERSION",
    "COST_ONLY_SETTINGS",
    "PERSONA_INFERENCE_OPTIMIZERS",
    "PRESETS",
    "Candidate",
    "DemoSearch",
    "PersonalizedJudge",
    "PredictionMemo",
    "Preset",
    "SearchResult",
    "SynthesizeMe",
    "Verdict",
    "judge_path",
    "load_persona_inference",
    "optimize_persona_inference",
    "optimize_persona_program",
    "persona_accuracy_metric",
    "persona_examples",
    "persona_inference_examples",
    "persona_metric",
    "preset_overrides",
]
