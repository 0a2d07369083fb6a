"""DSPy programs: persona inference, verified reasoning, persona synthesis and judges.

Every program is a ``dspy.Module`` called with keyword fields in one vocabulary: a preference
pair is ``prompt``, ``chosen``, ``rejected``; a pair to judge is ``prompt``, ``response_a``,
``response_b``, and every judge answers a :class:`Verdict` (``preferred`` ``"A"`` or ``"B"``,
``reasoning``, ``probability``). Programs work under any DSPy adapter, have ``aforward``,
retry unusable answers on fresh rollouts (``attempts``), and save their whole state.
"""

from personae.programs._base import Program
from personae.programs._copying import DemoCopyError, NotAPersonaError, copies_demo, not_a_persona
from personae.programs._digest import program_digest, stable_coin
from personae.programs.judges import (
    DefaultJudge,
    Judge,
    MemoryJudge,
    PersonaAccuracyJudge,
    PersonaJudge,
    ProfileJudge,
    Verdict,
    check_preferred,
    judge_digest,
    judge_pair,
    probability_of_a,
)
from personae.programs.persona_inference import PersonaInference
from personae.programs.personalized import ARTIFACT_VERSION, DEMO_FIELDS, PersonalizedJudge, judge_path
from personae.programs.synthesis import PersonaRevision, PersonaSynthesis
from personae.programs.tailoring import CRITERIA, TailoringJudge
from personae.programs.verified_reasoning import Trace, VerifiedReasoning, check_reached

__all__ = [
    "ARTIFACT_VERSION",
    "CRITERIA",
    "DEMO_FIELDS",
    "DefaultJudge",
    "DemoCopyError",
    "Judge",
    "MemoryJudge",
    "NotAPersonaError",
    "PersonaAccuracyJudge",
    "PersonaInference",
    "PersonaJudge",
    "PersonaRevision",
    "PersonaSynthesis",
    "PersonalizedJudge",
    "ProfileJudge",
    "Program",
    "TailoringJudge",
    "Trace",
    "Verdict",
    "VerifiedReasoning",
    "check_preferred",
    "check_reached",
    "copies_demo",
    "judge_digest",
    "judge_pair",
    "judge_path",
    "not_a_persona",
    "probability_of_a",
    "program_digest",
    "stable_coin",
]
