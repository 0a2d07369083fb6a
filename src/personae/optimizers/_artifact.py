"""A fitted personalized judge: persona, demonstrations and instructions, saved as JSON.

A :class:`PersonalizedJudge` is what SynthesizeMe produces for one user. It is plain data
(JSON, never pickle) that rebuilds a DSPy judge program on demand, judges a pair for an
application with :meth:`PersonalizedJudge.compare`, and exports its prompt as chat messages
for use outside DSPy.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dspy

from personae.errors import DataError
from personae.programs import DefaultJudge
from personae.signatures import PairwiseJudge, generation_system_prompt, personalized_instructions

__all__ = ["ARTIFACT_VERSION", "PersonalizedJudge", "Verdict", "judge_path"]

ARTIFACT_VERSION = 1
DEMO_FIELDS = ("context", "first_response", "second_response", "reasoning", "preferred")


def judge_path(folder: str | os.PathLike[str], user_id: str) -> Path:
    """Where a user's judge lives in a folder of fitted judges (a filesystem-safe name)."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", user_id).strip("._")[:80] or "user"
    if safe != user_id:  # keep distinct ids distinct after cleaning
        safe += "-" + hashlib.sha1(user_id.encode("utf-8")).hexdigest()[:8]
    return Path(folder) / f"{safe}.json"


@dataclass(frozen=True)
class Verdict:
    """Which of two responses the user would prefer: ``"A"`` (the first given) or ``"B"``.

    A judgment through a :class:`personae.store.PersonaStore` fills the rest: ``probability``
    that the user prefers A (from both orders), the persona ``version`` used (None before the
    first persona), ``personalization`` (``persona``, ``memory`` for the user's raw choices,
    ``none``), and ``abstained`` when the probability fell short of the asked confidence.
    """

    preferred: str
    reasoning: str
    probability: float | None = None
    version: int | None = None
    personalization: str = "persona"
    abstained: bool = False


@dataclass
class PersonalizedJudge:
    """One user's fitted judge. ``demos`` are dicts with the fields of :data:`DEMO_FIELDS`."""

    user_id: str
    persona: str
    demos: list[dict[str, str]] = field(default_factory=list)
    instructions: str = ""
    val_accuracy: float | None = None
    n_train: int = 0
    n_val: int = 0
    seed: int = 0
    model: str = ""
    preset: str = "default"
    settings: dict[str, Any] = field(default_factory=dict)  # SynthesizeMe.settings() of the fit
    candidates_tried: int = 0
    cost: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    version: int = ARTIFACT_VERSION

    def __post_init__(self) -> None:
        if not self.instructions:
            self.instructions = personalized_instructions(PairwiseJudge.instructions, self.persona)

    # -- the DSPy program -----------------------------------------------------------
    def program(self) -> DefaultJudge:
        """A fresh judge module carrying this judge's instructions and demonstrations."""
        judge = DefaultJudge()
        predictor = judge.predict.predict
        predictor.signature = predictor.signature.with_instructions(self.instructions)
        predictor.demos = [dspy.Example(**demo) for demo in self.demos]
        return judge

    def compare(self, context: str, a: str, b: str, *, lm: dspy.BaseLM | None = None) -> Verdict:
        """Which of ``a`` and ``b`` this user would prefer, with the judge's reasoning.

        Uses ``lm`` when given, else the LM configured in DSPy; thread-safe (it changes no
        global setting). A failed or unusable answer is retried on fresh samples by
        :class:`personae.runs.RetryPolicy`; one that keeps failing raises
        :class:`~personae.errors.LMCallError` with its kind.
        """
        from personae.lm import default_adapter
        from personae.programs import check_preferred
        from personae.runs import RetryPolicy

        def judge() -> dspy.Prediction:
            pred = self.program()(context=context, first_response=a, second_response=b)
            check_preferred(pred.preferred)
            return pred

        with dspy.context(adapter=dspy.settings.adapter or default_adapter()):
            pred = RetryPolicy().call(judge, lm=lm, item=f"user {self.user_id}")
        return Verdict("A" if pred.preferred == "First" else "B", str(pred.reasoning))

    async def acompare(self, context: str, a: str, b: str, *, lm: dspy.BaseLM | None = None) -> Verdict:
        """:meth:`compare` for asynchronous applications.

        The judgment runs in a worker thread, so the event loop keeps serving while the LM
        answers; the caller's DSPy context (``dspy.context(lm=...)``) goes with it. Many
        judgments can be awaited together (``asyncio.gather``).
        """
        import asyncio

        return await asyncio.to_thread(self.compare, context, a, b, lm=lm)

    # -- exports ------------------------------------------------------------------------
    def judge_messages(self, context: str, a: str, b: str) -> list[dict[str, Any]]:
        """The judge's full prompt for one pair as chat messages (system, demos, the pair)."""
        from personae.lm import default_adapter

        program = self.program()
        predictor = program.predict.predict
        adapter = dspy.settings.adapter or default_adapter()
        return list(adapter.format(predictor.signature, predictor.demos,
                                   {"context": context, "first_response": a, "second_response": b}))

    def generation_messages(self) -> list[dict[str, str]]:
        """A system prompt (as a one-message list) for generating responses this user prefers."""
        return [{"role": "system", "content": generation_system_prompt(self.persona)}]

    # -- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> PersonalizedJudge:
        version = data.get("version")
        if version != ARTIFACT_VERSION:
            raise DataError(f"unsupported judge artifact version {version!r} (expected {ARTIFACT_VERSION})",
                            source=source, field="version")
        for key in ("user_id", "persona"):
            if not isinstance(data.get(key), str):
                raise DataError("expected a string", source=source, field=key)
        for i, demo in enumerate(data.get("demos") or []):
            missing = [f for f in DEMO_FIELDS if not isinstance(demo.get(f), str)]
            if missing:
                raise DataError(f"demo {i + 1} lacks {', '.join(missing)}", source=source, field="demos")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the judge as JSON, atomically (a crash never leaves half a file)."""
        from personae.data import write_text_atomic

        return write_text_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PersonalizedJudge:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError("no such file", source=str(path)) from None
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc}", source=str(path)) from None
        if not isinstance(data, dict):
            raise DataError("expected a JSON object", source=str(path))
        return cls.from_dict(data, source=str(path))
