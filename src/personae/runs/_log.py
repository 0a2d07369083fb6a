"""The one judgment row and the one run log.

:class:`Judgment` is a judge's answer about one pair shown in one order, kept with the
messages sent and the raw output, or *unscored* with the kind and reason of its failure.
Every command that judges (``judge``, ``evaluate``, ``eval-personas``, ``eval-tailoring``)
writes these rows to its ledger and into its :class:`RunLog`.

:class:`RunLog` is one versioned log per run (after inspect_ai's ``EvalLog``): the command,
its status (``started``, ``success``, ``error``, ``interrupted``), the resolved configuration,
package versions, cost, item counts with failures by kind, the command's results and every
judgment. It is generic in its configuration and results types; each command names its own
(``RunLog[RunConfig, EvaluationResults]``, ...).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, computed_field, model_validator
from typing_extensions import Self

from personae.data import current_fields
from personae.errors import DataError
from personae.lm import Cost
from personae.runs._retry import Outcome

__all__ = ["RUN_LOG_VERSION", "Counts", "Judgment", "RunLog", "RunStatus", "Tally",
           "package_versions", "read_log", "record_run", "write_log"]

RUN_LOG_VERSION = 3
"""The run-log version written today (3: judgments answer A/B); version 2 logs are read too."""
READABLE_VERSIONS = (2, 3)
RunStatus = Literal["started", "success", "error", "interrupted"]


class Counts(BaseModel):
    """Items of a run: made now, reused from an earlier run, failed (by kind). They add up to ``total``."""

    total: int = 0
    succeeded: int = 0
    resumed: int = 0
    failed: int = 0
    failures: dict[str, int] = Field(default_factory=dict)

    def add(self, other: Counts) -> Counts:
        """The counts of two runs (or stages) together, failure kinds most common first."""
        kinds = Counter(self.failures) + Counter(other.failures)
        return Counts(total=self.total + other.total, succeeded=self.succeeded + other.succeeded,
                      resumed=self.resumed + other.resumed, failed=self.failed + other.failed,
                      failures=dict(kinds.most_common()))

    def line(self, noun: str = "items") -> str:
        """``"12 items: 9 succeeded, 2 resumed, 1 failed (1 timeout)"``."""
        text = f"{self.total} {noun}: {self.succeeded} succeeded, {self.resumed} resumed, {self.failed} failed"
        if self.failures:
            text += " (" + ", ".join(f"{n} {kind}" for kind, n in self.failures.items()) + ")"
        return text


class Tally:
    """Counts outcomes as they come, from any thread (for loops the run layer does not drive, such
    as a DSPy optimizer's metric): ``counts`` then reads like a run's."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._succeeded = 0
        self._failures: Counter[str] = Counter()

    def add(self, outcome: Outcome[Any]) -> None:
        """Count one outcome: succeeded, or failed by its kind (``lm`` when it names none)."""
        with self._lock:
            if outcome.error is None:
                self._succeeded += 1
            else:
                self._failures[outcome.kind or "lm"] += 1

    @property
    def counts(self) -> Counts:
        """The outcomes so far, as a run's :class:`Counts`."""
        with self._lock:
            failed = sum(self._failures.values())
            return Counts(total=self._succeeded + failed, succeeded=self._succeeded, failed=failed,
                          failures=dict(self._failures.most_common()))


class Judgment(BaseModel):
    """One judgment: a pair shown to a judge in one order, and what came back.

    ``first`` names the response shown first, as ``A`` (``chosen``/``rejected`` for a preference
    pair, ``A``/``B`` for two generators), ``preferred`` the judge's answer (``A`` or ``B``: the
    position it preferred) and ``picked`` the response that was. ``correct`` is
    whether the pick was the right one (None when the judgment is unscored, or when there is
    no right answer, as between two generators). An unscored judgment has ``error`` (why)
    and ``kind`` (the failure kind, or ``no_judge`` when nothing could judge it); summaries
    count it as wrong. ``prompt`` holds the chat messages sent on the last attempt and
    ``raw_output`` the model's answer (None when no call was made or no answer came).
    ``method`` names the judge (an evaluation method, ``persona`` for persona accuracy, a
    tailoring criterion); ``side`` and ``persona`` which persona it was given, if any.
    """

    record_id: str
    user_id: str | None = None
    method: str = "default"
    side: Literal["chosen", "rejected"] | None = None
    persona: str | None = None
    first: str = "chosen"
    preferred: Literal["A", "B"] | None = None
    picked: str | None = None
    correct: bool | None = None
    reasoning: str | None = None
    error: str | None = None
    kind: str | None = None
    attempts: int = 0
    prompt: list[dict[str, Any]] | None = None
    raw_output: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _earlier_rows(cls, data: Any) -> Any:
        """Rows written before version 2 said ``chosen_first``/``a_first`` and ``item_id``; before
        version 3, ``preferred`` was ``First``/``Second``."""
        if isinstance(data, dict) and data.get("preferred") in ("First", "Second"):
            data = current_fields(data)
        if isinstance(data, dict) and "first" not in data:
            data = dict(data)
            if "chosen_first" in data:
                data["first"] = "chosen" if data.pop("chosen_first") else "rejected"
            elif "a_first" in data:
                data["first"] = "A" if data.pop("a_first") else "B"
            if "item_id" in data and "record_id" not in data:
                data["record_id"] = data.pop("item_id")
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def chosen_first(self) -> bool:
        """Whether the chosen response (or generator A's) was shown first."""
        return self.first in ("chosen", "A")

    @property
    def scored(self) -> bool:
        return self.error is None

    @classmethod
    def of(cls, outcome: Outcome[Any], *, record_id: str, first: str, second: str, truth: str | None,
           **fields: Any) -> Judgment:
        """The row of a judging outcome: its value is a :class:`~personae.programs.Verdict`
        (``.preferred`` A or B, and ``.reasoning``), ``first``/``second`` name the responses shown
        as A and B, ``truth`` the right one (None: there is none). ``fields`` fill the rest
        (user, method, side, persona)."""
        value = outcome.value
        preferred: Literal["A", "B"] | None = None
        if value is not None:
            preferred = "A" if str(value.preferred) == "A" else "B"
        picked = None if preferred is None else first if preferred == "A" else second
        return cls(record_id=record_id, first=first, preferred=preferred, picked=picked,
                   correct=None if picked is None or truth is None else picked == truth,
                   reasoning=None if value is None else str(value.reasoning), error=outcome.error,
                   kind=outcome.kind, attempts=outcome.attempts, prompt=outcome.prompt,
                   raw_output=outcome.raw_output, **fields)


C = TypeVar("C")
R = TypeVar("R")


class RunLog(BaseModel, Generic[C, R]):
    """Everything about one run (see the module docstring)."""

    version: int = RUN_LOG_VERSION
    command: str
    status: RunStatus = "started"
    config: C
    versions: dict[str, str | None] = Field(default_factory=dict)
    started: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    finished: datetime | None = None
    cost: Cost = Field(default_factory=Cost)
    costs: dict[str, Cost] = Field(default_factory=dict)
    counts: Counts = Field(default_factory=Counts)
    results: R
    judgments: list[Judgment] = Field(default_factory=list)
    error: str | None = None

    def ended(self, status: RunStatus, *, error: str | None = None) -> Self:
        """This log with its end recorded."""
        return self.model_copy(update={"status": status, "finished": datetime.now(timezone.utc), "error": error})


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


def write_log(log: BaseModel, path: str | os.PathLike[str]) -> Path:
    """Write a run log as JSON, atomically (a kill never leaves half a log)."""
    from personae.data import write_text_atomic

    return write_text_atomic(path, log.model_dump_json(indent=1) + "\n")


LogT = TypeVar("LogT", bound=BaseModel)
L = TypeVar("L", bound=RunLog[Any, Any])


def record_run(log: L, path: str | os.PathLike[str] | None, body: Callable[[], L]) -> L:
    """Run ``body`` (which returns the finished log) with ``log``'s status kept at ``path``.

    ``path`` gets ``log`` with status ``started`` at once, then the finished log; if ``body`` is
    interrupted or raises, ``log`` with status ``interrupted`` or ``error`` (and the error) is
    written instead, and the exception propagates. Without a ``path`` this just runs ``body``.
    """
    if path is None:
        return body()
    write_log(log, path)
    try:
        finished = body()
    except KeyboardInterrupt:
        write_log(log.ended("interrupted"), path)
        raise
    except BaseException as exc:
        from personae.runs._retry import describe_error

        write_log(log.ended("error", error=describe_error(exc)), path)
        raise
    write_log(finished, path)
    return finished


def read_log(path: str | os.PathLike[str], model: type[LogT], *, what: str = "run log",
             versions: Iterable[int] = READABLE_VERSIONS) -> LogT:
    """Read a JSON run log of type ``model``; a missing, invalid or other-version file is a DataError."""
    import json

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError("no such file", source=str(path)) from None
    try:
        found = json.loads(text).get("version")
    except (ValueError, AttributeError):
        raise DataError(f"not a {what}: not a JSON object", source=str(path)) from None
    if found not in tuple(versions):
        raise DataError(f"unsupported {what} version {found}", source=str(path), field="version")
    try:
        return model.model_validate_json(text)
    except ValueError as exc:
        raise DataError(f"not a {what}: {exc}", source=str(path)) from None
