"""Compilers: SynthesizeMe per-user fitting, demo-set search, cross-user prompt optimization.

The fitted judge they produce, :class:`~personae.programs.PersonalizedJudge`, is a program and
lives in :mod:`personae.programs`; it is re-exported here with :class:`~personae.programs.Verdict`.
The metrics they compile against are in :mod:`personae.evaluation.metrics`.
"""

from personae.optimizers._demo_search import Candidate, DemoSearch, PredictionMemo, SearchResult
from personae.optimizers._persona_inference import (
    PERSONA_INFERENCE_OPTIMIZERS,
    load_persona_inference,
    optimize_persona_inference,
)
from personae.optimizers._persona_prompt import (
    SynthesisExamplesTask,
    optimize_persona_program,
    verify_synthesis_examples,
)
from personae.optimizers._synthesizeme import COST_ONLY_SETTINGS, PRESETS, Preset, SynthesizeMe, preset_overrides
from personae.programs import ARTIFACT_VERSION, PersonalizedJudge, Verdict, judge_path

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
    "preset_overrides",
    "verify_synthesis_examples",
    "SynthesisExamplesTask",
]
