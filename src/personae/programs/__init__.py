"""DSPy programs: persona inference, verified reasoning, persona synthesis and judges."""

from personae.programs._copying import DemoCopyError, NotAPersonaError, copies_demo, not_a_persona
from personae.programs._digest import program_digest, stable_coin
from personae.programs.judges import (
    DefaultJudge,
    Judge,
    MemoryJudge,
    PairVerdict,
    PersonaAccuracyJudge,
    PersonaJudge,
    ProfileJudge,
    check_preferred,
    first_probability,
    judge_digest,
    judge_pair,
)
from personae.programs.persona_inference import PersonaInference
from personae.programs.synthesis import PersonaRevision, PersonaSynthesis
from personae.programs.tailoring import CRITERIA, TailoringJudge
from personae.programs.verified_reasoning import Trace, VerifiedReasoning, check_reached

__all__ = [
    "CRITERIA",
    "DefaultJudge",
    "DemoCopyError",
    "Judge",
    "MemoryJudge",
    "NotAPersonaError",
    "PersonaInference",
    "PersonaAccuracyJudge",
    "PersonaJudge",
    "PersonaRevision",
    "PersonaSynthesis",
    "ProfileJudge",
    "TailoringJudge",
    "Trace",
    "PairVerdict",
    "VerifiedReasoning",
    "check_preferred",
    "check_reached",
    "copies_demo",
    "first_probability",
    "judge_digest",
    "judge_pair",
    "not_a_persona",
    "program_digest",
    "stable_coin",
]
