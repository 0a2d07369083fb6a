"""DSPy programs: persona inference, verified reasoning, persona synthesis and judges."""

from personae.programs._batch import Outcome, rollouts, run_batch
from personae.programs.judges import (
    DefaultJudge,
    Judge,
    Judgment,
    MemoryJudge,
    PersonaJudge,
    ProfileJudge,
    judge_pair,
)
from personae.programs.persona_inference import PersonaInference
from personae.programs.synthesis import PersonaSynthesis
from personae.programs.verified_reasoning import Trace, VerifiedReasoning

__all__ = [
    "DefaultJudge",
    "Judge",
    "Judgment",
    "MemoryJudge",
    "Outcome",
    "PersonaInference",
    "PersonaJudge",
    "PersonaSynthesis",
    "ProfileJudge",
    "Trace",
    "VerifiedReasoning",
    "judge_pair",
    "rollouts",
    "run_batch",
]
