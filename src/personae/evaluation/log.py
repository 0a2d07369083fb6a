"""The run log: configuration, versions, cost, summary and every judgment of an evaluation.

A :class:`RunLog` is plain data (pydantic), written as JSON by :func:`write_run_log` and read
back with ``RunLog.model_validate_json(text)`` or :func:`read_run_log`. Each judgment keeps
the judge's prompt (the chat messages sent) and its raw output, so a run can be audited
without re-running it.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from personae.lm import Cost

__all__ = [
    "CostLog",
    "JudgmentBase",
    "JudgmentLog",
    "MethodSummary",
    "RunConfig",
    "RunLog",
    "UserRow",
    "PERSONA_ACCURACY_VERSION",
    "SIDES",
    "PersonaAccuracyConfig",
    "PersonaAccuracyLog",
    "PersonaJudgmentLog",
    "PersonaRow",
    "Side",
    "SideSummary",
    "package_versions",
    "read_persona_accuracy_log",
    "read_run_log",
    "write_run_log",
]

RUN_LOG_VERSION = 1


class CostLog(BaseModel):
    """What some LM calls cost (see :class:`personae.lm.Cost`)."""

    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def of(cls, cost: Cost) -> CostLog:
        return cls(lm_calls=cost.lm_calls, prompt_tokens=cost.prompt_tokens,
                   completion_tokens=cost.completion_tokens, seconds=cost.seconds)

    def to_cost(self) -> Cost:
        return Cost(self.lm_calls, self.prompt_tokens, self.completion_tokens, self.seconds)


class RunConfig(BaseModel):
    """The resolved configuration of a run."""

    model: str
    methods: list[str]
    fractions: tuple[float, float, float]
    seed: int
    concurrency: int
    max_attempts: int
    data_source: str = ""
    judges_dir: str | None = None
    users: int = 0
    confidence: float = 0.95
    resamples: int = 2000
    extra: dict[str, Any] = Field(default_factory=dict)


class JudgmentBase(BaseModel):
    """What every logged judgment holds: the pair shown, in which order, and what came back.

    ``correct`` is False for an unscored judgment (``error`` says why): it counts as wrong.
    ``prompt`` holds the chat messages sent to the model on the last attempt and
    ``raw_output`` what the model answered; both are None when no call was made (or, for
    ``raw_output``, when the call failed without an answer).
    """

    record_id: str
    chosen_first: bool
    preferred: str | None = None
    correct: bool = False
    reasoning: str | None = None
    error: str | None = None
    attempts: int = 0
    prompt: list[dict[str, Any]] | None = None
    raw_output: str | None = None

    @property
    def scored(self) -> bool:
        return self.error is None


class JudgmentLog(JudgmentBase):
    """One judgment of one test pair by one method, in one order (see :class:`JudgmentBase`)."""

    user_id: str
    method: str

    @property
    def key(self) -> tuple[str, str, str, bool]:
        """What identifies the judgment within a run: ``(user, record, method, chosen_first)``."""
        return (self.user_id, self.record_id, self.method, self.chosen_first)


class MethodSummary(BaseModel):
    """One method's results: pooled accuracy with its bootstrap interval, and more."""

    method: str
    judgments: int
    correct: int
    unscored: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    mean_user_accuracy: float | None
    users: int
    pairs: int
    pairs_both_scored: int
    orders_agreed: int
    unscored_reasons: dict[str, int] = Field(default_factory=dict)
    cost: CostLog = Field(default_factory=CostLog)


class UserRow(BaseModel):
    """One user's split sizes (in pairs) and accuracy per method (None: nothing judged)."""

    user_id: str
    n_train: int
    n_val: int
    n_test: int
    accuracy: dict[str, float | None] = Field(default_factory=dict)


class RunLog(BaseModel):
    """Everything about one evaluation run."""

    version: int = RUN_LOG_VERSION
    config: RunConfig
    versions: dict[str, str | None] = Field(default_factory=dict)
    started: datetime
    finished: datetime
    cost: CostLog = Field(default_factory=CostLog)
    summary: list[MethodSummary] = Field(default_factory=list)
    users: list[UserRow] = Field(default_factory=list)
    judgments: list[JudgmentLog] = Field(default_factory=list)

    def method(self, name: str) -> MethodSummary:
        """The summary of method ``name``."""
        for summary in self.summary:
            if summary.method == name:
                return summary
        raise KeyError(name)


def finite(value: float) -> float | None:
    """``value``, or None when it is NaN (JSON has no NaN)."""
    return None if math.isnan(value) else value


def package_versions() -> dict[str, str | None]:
    """Versions of Python and of the packages a run depends on (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("personae", "dspy", "litellm", "pydantic"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    if versions["personae"] is None:
        from personae import __version__

        versions["personae"] = __version__
    return versions


def write_run_log(run: Any, path: str | os.PathLike[str]) -> Path:
    """Write a run (an :class:`~personae.evaluation.EvaluationRun` or a :class:`RunLog`) as JSON, atomically."""
    from personae.data import write_text_atomic

    log: RunLog = run if isinstance(run, RunLog) else run.log
    return write_text_atomic(path, log.model_dump_json(indent=1) + "\n")


LogT = TypeVar("LogT", bound=BaseModel)


def read_log(path: str | os.PathLike[str], model: type[LogT], *, version: int, what: str = "run log") -> LogT:
    """Read a versioned JSON log of type ``model``; a missing, invalid or other-version file is a DataError."""
    from personae.errors import DataError

    path = Path(path)
    try:
        log = model.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no such file", source=str(path)) from None
    except ValueError as exc:
        raise DataError(f"not a {what}: {exc}", source=str(path)) from None
    found = getattr(log, "version", None)
    if found != version:
        raise DataError(f"unsupported {what} version {found}", source=str(path), field="version")
    return log


def read_run_log(path: str | os.PathLike[str]) -> RunLog:
    """Read a run log written by :func:`write_run_log`."""
    return read_log(path, RunLog, version=RUN_LOG_VERSION)


# -- persona accuracy (personae eval-personas) ------------------------------------------------

PERSONA_ACCURACY_VERSION = 1
Side = Literal["chosen", "rejected"]
SIDES: tuple[Side, Side] = ("chosen", "rejected")


class PersonaRow(BaseModel):
    """The two personas of one record and where each came from (``column:<name>`` or ``inferred``).

    ``error`` says why inference failed (the inferred personas are then None).
    """

    record_id: str
    chosen_persona: str | None = None
    rejected_persona: str | None = None
    chosen_source: str = ""
    rejected_source: str = ""
    error: str | None = None
    attempts: int = 0


class PersonaJudgmentLog(JudgmentBase):
    """One judgment: one side's persona of one record, in one order (see :class:`JudgmentBase`).

    ``picked`` is the response the judge chose (``"chosen"`` or ``"rejected"``), ``correct``
    whether that is the persona's own side.
    """

    side: Side
    persona: str | None = None
    picked: Side | None = None


class SideSummary(BaseModel):
    """Accuracy of one side's personas, with its bootstrap interval and order agreement."""

    side: Side
    judgments: int
    correct: int
    unscored: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    records: int
    records_both_scored: int
    orders_agreed: int
    unscored_reasons: dict[str, int] = Field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        """Of the records scored in both orders, the share where both orders picked the same response."""
        return self.orders_agreed / self.records_both_scored if self.records_both_scored else None


class PersonaAccuracyConfig(BaseModel):
    """The resolved configuration of a persona-accuracy run."""

    judge_model: str
    infer_model: str | None = None
    chosen_column: str | None = None
    rejected_column: str | None = None
    inferred_sides: list[Side] = Field(default_factory=list)
    seed: int = 0
    concurrency: int = 1
    max_attempts: int = 3
    confidence: float = 0.95
    resamples: int = 2000
    data_source: str = ""
    records: int = 0
    extra: dict[str, Any] = Field(default_factory=dict)


class PersonaAccuracyLog(BaseModel):
    """Everything about one persona-accuracy run (written as JSON with ``write_run_log``)."""

    version: int = PERSONA_ACCURACY_VERSION
    kind: Literal["persona_accuracy"] = "persona_accuracy"
    config: PersonaAccuracyConfig
    versions: dict[str, str | None] = Field(default_factory=dict)
    started: datetime
    finished: datetime
    cost: CostLog = Field(default_factory=CostLog)
    inference_cost: CostLog = Field(default_factory=CostLog)
    judge_cost: CostLog = Field(default_factory=CostLog)
    summary: list[SideSummary] = Field(default_factory=list)
    orders_agreed: int = 0
    records_both_scored: int = 0
    personas: list[PersonaRow] = Field(default_factory=list)
    judgments: list[PersonaJudgmentLog] = Field(default_factory=list)

    def side(self, name: str) -> SideSummary:
        for summary in self.summary:
            if summary.side == name:
                return summary
        raise KeyError(name)

    @property
    def order_agreement(self) -> float | None:
        """Over both sides, the share of (record, side) pairs scored in both orders whose orders agree."""
        return self.orders_agreed / self.records_both_scored if self.records_both_scored else None


def read_persona_accuracy_log(path: str | os.PathLike[str]) -> PersonaAccuracyLog:
    """Read a persona-accuracy run log written by ``write_run_log``."""
    return read_log(path, PersonaAccuracyLog, version=PERSONA_ACCURACY_VERSION, what="persona-accuracy run log")
