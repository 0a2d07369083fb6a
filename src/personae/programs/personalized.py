"""One user's fitted judge: persona, demonstrations and instructions, as a DSPy module.

A :class:`PersonalizedJudge` is what SynthesizeMe produces for one user (and what the persona
store keeps per persona version). It is a judge like the others,
``judge(prompt=..., response_a=..., response_b=...) -> Verdict``, whose predictor carries the
persona in its instructions and the user's verified traces as demonstrations. It saves as
plain JSON (never pickle) that applications read without DSPy, exports its prompt as chat
messages, and a system prompt to write for the user.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar

import dspy

from personae.data import current_fields
from personae.errors import DataError
from personae.programs._base import Setting
from personae.programs.judges import Judge, Verdict
from personae.signatures import PairwiseJudge, generation_system_prompt, personalized_instructions

__all__ = ["ARTIFACT_VERSION", "DEMO_FIELDS", "PersonalizedJudge", "judge_path"]

ARTIFACT_VERSION = 2
"""The artifact format written today (2: demonstrations in the ``prompt``/``response_a``/
``response_b``/``preferred`` A-B vocabulary). Version 1 files load too."""
DEMO_FIELDS = ("prompt", "response_a", "response_b", "reasoning", "preferred")
_READS = (1, 2)
_METADATA = ("user_id", "persona", "val_accuracy", "n_train", "n_val", "seed", "model", "preset", "settings",
             "candidates_tried", "cost", "created", "note")

T = TypeVar("T")


def judge_path(folder: str | os.PathLike[str], user_id: str) -> Path:
    """Where a user's judge lives in a folder of fitted judges (a filesystem-safe name)."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", user_id).strip("._")[:80] or "user"
    if safe != user_id:  # keep distinct ids distinct after cleaning
        safe += "-" + hashlib.sha1(user_id.encode("utf-8")).hexdigest()[:8]
    return Path(folder) / f"{safe}.json"


class _ClassOrInstance(Generic[T]):
    """``PersonalizedJudge.load(path)`` builds a judge from a file; ``judge.load(path)`` (DSPy's
    habit) loads the file into that judge. Both return the judge."""

    def __init__(self, method: Callable[..., T]) -> None:
        self.method = method

    def __get__(self, instance: Any, owner: type) -> Callable[..., T]:
        return functools.partial(self.method, instance if instance is not None else owner())


class PersonalizedJudge(Judge):
    """One user's fitted judge: ``judge(prompt=..., response_a=..., response_b=...) -> Verdict``.

    The persona sits in the judge's instructions and ``demos`` (dicts with the fields of
    :data:`DEMO_FIELDS`) are its demonstrations; the rest describes the fit: validation
    accuracy and split sizes, seed, model, preset and settings, candidates tried, cost, when it
    was made, and ``note`` (e.g. that there was no validation side). ``save``/``load`` write
    and read the judge's JSON file; :meth:`compare` judges with an explicit LM.
    """

    signature = PairwiseJudge
    # What the fit was and cost; what the judge asks is all in its predictor (the persona sits in
    # the instructions), so none of these changes an answer.
    user_id = Setting(digest=False)
    persona = Setting(digest=False)
    val_accuracy = Setting(digest=False)
    n_train = Setting(digest=False)
    n_val = Setting(digest=False)
    seed = Setting(digest=False)
    model = Setting(digest=False)
    preset = Setting(digest=False)
    settings = Setting(digest=False)
    candidates_tried = Setting(digest=False)
    cost = Setting(digest=False)
    created = Setting(digest=False)
    note = Setting(digest=False)

    def __init__(self, user_id: str = "", persona: str = "", demos: Sequence[dict[str, str]] = (),
                 instructions: str = "", val_accuracy: float | None = None, n_train: int = 0, n_val: int = 0,
                 seed: int = 0, model: str = "", preset: str = "default", settings: dict[str, Any] | None = None,
                 candidates_tried: int = 0, cost: dict[str, Any] | None = None, created: str | None = None,
                 note: str = "", *, attempts: int = 3) -> None:
        super().__init__(attempts=attempts)
        self.user_id, self.persona = user_id, persona
        self.val_accuracy, self.n_train, self.n_val = val_accuracy, n_train, n_val
        self.seed, self.model, self.preset, self.settings = seed, model, preset, dict(settings or {})
        self.candidates_tried, self.cost = candidates_tried, dict(cost or {})
        self.created = created or datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.note = note
        self.instructions = instructions or personalized_instructions(PairwiseJudge.instructions, persona)
        self.demos = list(demos)

    # -- the predictor's parts ---------------------------------------------------------------
    @property
    def instructions(self) -> str:
        """The judge's instructions (the default judge's, with the persona appended)."""
        return str(self.predict.predict.signature.instructions)

    @instructions.setter
    def instructions(self, text: str) -> None:
        predictor = self.predict.predict
        predictor.signature = predictor.signature.with_instructions(text)

    @property
    def demos(self) -> list[dict[str, str]]:
        """The judge's demonstrations, as dicts of :data:`DEMO_FIELDS`."""
        return [{k: str(v) for k, v in dict(d.toDict() if hasattr(d, "toDict") else d).items()}
                for d in self.predict.predict.demos]

    @demos.setter
    def demos(self, demos: Sequence[dict[str, str]]) -> None:
        self.predict.predict.demos = [dspy.Example(**current_fields(dict(d))) for d in demos]

    def replace(self, **changes: Any) -> PersonalizedJudge:
        """A copy of this judge with the given artifact fields changed (``persona=``, ``cost=``, ...)."""
        data = {**self.to_dict(), **changes}
        if "persona" in changes and "instructions" not in changes:
            data["instructions"] = personalized_instructions(PairwiseJudge.instructions, changes["persona"])
        return type(self).from_dict(data)

    # -- judging -------------------------------------------------------------------------------
    def compare(self, prompt: str, response_a: str, response_b: str, *, lm: dspy.BaseLM | None = None) -> Verdict:
        """Which of ``response_a`` and ``response_b`` this user would prefer, with the judge's reasoning.

        Uses ``lm`` when given, else the LM configured in DSPy; thread-safe (it changes no
        global setting). Unusable answers are asked again (``attempts``); a call the model keeps
        failing raises :class:`~personae.errors.LMCallError` with its kind.
        """
        from personae.runs import RetryPolicy

        outcome = RetryPolicy(max_attempts=1).attempt(
            lambda: self(prompt=prompt, response_a=response_a, response_b=response_b), lm=lm)
        if outcome.error is not None:
            raise outcome.exception(f"user {self.user_id}")
        return outcome.value  # type: ignore[return-value]

    async def acompare(self, prompt: str, response_a: str, response_b: str, *,
                       lm: dspy.BaseLM | None = None) -> Verdict:
        """:meth:`compare` for asynchronous applications, on DSPy's async LM path."""
        from personae.runs import RetryPolicy

        outcome = await RetryPolicy(max_attempts=1).aattempt(
            lambda: self.acall(prompt=prompt, response_a=response_a, response_b=response_b), lm=lm)
        if outcome.error is not None:
            raise outcome.exception(f"user {self.user_id}")
        return outcome.value  # type: ignore[return-value]

    # -- exports ------------------------------------------------------------------------------
    def judge_messages(self, prompt: str, response_a: str, response_b: str) -> list[dict[str, Any]]:
        """The judge's full prompt for one pair as chat messages (system, demos, the pair), in
        the configured adapter's format (DSPy's default when none is set)."""
        predictor = self.predict.predict
        adapter = dspy.settings.adapter or dspy.ChatAdapter()
        return list(adapter.format(predictor.signature, predictor.demos,
                                   {"prompt": prompt, "response_a": response_a, "response_b": response_b}))

    def generation_messages(self) -> list[dict[str, str]]:
        """A system prompt (as a one-message list) for generating responses this user prefers."""
        return [{"role": "system", "content": generation_system_prompt(self.persona)}]

    # -- the JSON artifact -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The judge as the JSON object of its file (:meth:`from_dict` reads it back)."""
        data = {name: getattr(self, name) for name in _METADATA}
        data["settings"] = dict(data["settings"] or {})
        data["cost"] = dict(data["cost"] or {})
        return {**data, "demos": self.demos, "instructions": self.instructions, "version": ARTIFACT_VERSION}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> PersonalizedJudge:
        """A judge from its JSON object; files of earlier artifact versions are read too."""
        judge = cls()
        judge._read(data, source)
        return judge

    def _read(self, data: Any, source: str) -> None:
        if not isinstance(data, dict):
            raise DataError("expected a JSON object", source=source)
        version = data.get("version")
        if version not in _READS:
            raise DataError(f"unsupported judge artifact version {version!r} (this version reads "
                            f"{', '.join(map(str, _READS))})", source=source, field="version")
        for key in ("user_id", "persona"):
            if not isinstance(data.get(key), str):
                raise DataError("expected a string", source=source, field=key)
        demos = []
        for i, demo in enumerate(data.get("demos") or []):
            demo = current_fields(dict(demo)) if isinstance(demo, dict) else {}
            missing = [f for f in DEMO_FIELDS if not isinstance(demo.get(f), str)]
            if missing:
                raise DataError(f"demo {i + 1} lacks {', '.join(missing)}", source=source, field="demos")
            demos.append(demo)
        for name in _METADATA:
            if name in data:
                setattr(self, name, data[name])
        self.settings = dict(self.settings or {})
        self.cost = dict(self.cost or {})
        self.instructions = data.get("instructions") or personalized_instructions(PairwiseJudge.instructions,
                                                                                  self.persona)
        self.demos = demos

    def save(self, path: str | os.PathLike[str], save_program: bool = False,
             modules_to_serialize: list[Any] | None = None) -> Path:
        """Write the judge's JSON file atomically (a crash never leaves half a file); with
        ``save_program=True``, DSPy's whole-program folder instead (``dspy.load`` reads it)."""
        if save_program:
            super().save(str(path), save_program=True, modules_to_serialize=modules_to_serialize)
            return Path(path)
        from personae.data import write_text_atomic

        return write_text_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2))

    def _load(self, path: str | os.PathLike[str], allow_pickle: bool = False,
              allow_unsafe_lm_state: bool = False) -> PersonalizedJudge:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise DataError("no such file", source=str(path)) from None
        except IsADirectoryError:
            raise DataError("a folder, not a judge file (dspy.load reads a saved program's folder)",
                            source=str(path)) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"not valid JSON: {exc}", source=str(path)) from None
        if isinstance(data, dict) and "program_settings" in data and "version" not in data:  # DSPy's state file
            super().load(str(path), allow_pickle=allow_pickle, allow_unsafe_lm_state=allow_unsafe_lm_state)
        else:
            self._read(data, str(path))
        return self

    load = _ClassOrInstance(_load)
