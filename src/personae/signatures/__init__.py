"""Every DSPy signature of personae. All prompt text of the package lives in this folder."""

from personae.signatures.demos import PERSONA_INFERENCE_DEMOS, PERSONA_SYNTHESIS_DEMOS
from personae.signatures.judge import (
    Choice,
    JudgeForPersona,
    JudgeWithHistory,
    JudgeWithPersona,
    JudgeWithProfile,
    PairwiseJudge,
)
from personae.signatures.persona import InferPersona, RevisePersona, SynthesizePersona
from personae.signatures.personalized import generation_system_prompt, personalized_instructions
from personae.signatures.render import clip, render_history, render_trace, render_traces
from personae.signatures.tailoring import (
    TAILORED_PROMPT,
    TailoringPersonalizationJudge,
    TailoringQualityJudge,
    tailored_prompt,
)

__all__ = [
    "PERSONA_INFERENCE_DEMOS",
    "PERSONA_SYNTHESIS_DEMOS",
    "Choice",
    "InferPersona",
    "JudgeWithHistory",
    "JudgeForPersona",
    "JudgeWithPersona",
    "JudgeWithProfile",
    "PairwiseJudge",
    "RevisePersona",
    "SynthesizePersona",
    "TAILORED_PROMPT",
    "TailoringPersonalizationJudge",
    "TailoringQualityJudge",
    "clip",
    "generation_system_prompt",
    "personalized_instructions",
    "render_history",
    "render_trace",
    "render_traces",
    "tailored_prompt",
]
