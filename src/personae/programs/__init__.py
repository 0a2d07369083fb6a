"""DSPy programs: persona inference, verified reasoning, persona synthesis and judges."""

from personae.programs._batch import (
    Outcome,
    carry_context,
    describe_error,
    program_digest,
    rollouts,
    run_batch,
    stable_coin,
)
from personae.programs._copying import DemoCopyError, NotAPersonaError, copies_demo, not_a_persona
from personae.programs.judges import (
    DefaultJudge,
    Judge,
    Judgment,
    MemoryJudge,
    PersonaAccuracyJudge,
    PersonaJudge,
    ProfileJudge,
    judge_pair,
)
from personae.programs.persona_inference import PersonaInference
from personae.programs.synthesis import PersonaSynthesis
from personae.programs.verified_reasoning import Trace, VerifiedReasoning

__all__ = [
    "DefaultJudge",
    "DemoCopyError",
    "Judge",
    "Judgment",
    "MemoryJudge",
    "NotAPersonaError",
    "Outcome",
    "PersonaInference",
    "PersonaAccuracyJudge",
    "PersonaJudge",
    "PersonaSynthesis",
    "ProfileJudge",
    "Trace",
    "VerifiedReasoning",
    "carry_context",
    "copies_demo",
    "describe_error",
    "judge_pair",
    "not_a_persona",
    "program_digest",
    "rollouts",
    "run_batch",
    "stable_coin",
]
