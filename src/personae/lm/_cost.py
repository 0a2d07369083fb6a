"""Counting what a run costs: LM calls, prompt and completion tokens, seconds.

A :class:`CostMeter` is a DSPy usage tracker: install it with :meth:`CostMeter.track` and
every LM call that reaches a model inside the block, in this thread or in a worker that
re-enters the same DSPy context, is counted. Meters nest: a call counted by an inner meter
is counted by the meters around it too, so a run's total includes its parts. Cache hits
reach no model and are not counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from dspy.utils.usage_tracker import UsageTracker

__all__ = ["Cost", "CostMeter"]


@dataclass(frozen=True)
class Cost:
    """A run's cost. ``lm_calls`` counts requests that reached a model (not cache hits)."""

    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.lm_calls + other.lm_calls,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.seconds + other.seconds,
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict, with ``total_tokens`` added."""
        return {**asdict(self), "total_tokens": self.total_tokens}

    def summary(self) -> str:
        """One line for people: LM calls, prompt and completion tokens, seconds."""
        return (
            f"{self.lm_calls} LM calls, {self.prompt_tokens:,} prompt + {self.completion_tokens:,} "
            f"completion tokens, {self.seconds:.1f} s"
        )


class CostMeter(UsageTracker):
    """A thread-safe DSPy usage tracker that also counts calls and wall time.

    ``entries=False`` keeps the counts only, not DSPy's list of every call's usage: a meter
    that lives as long as a server must not grow with every call it counts.
    """

    def __init__(self, *, entries: bool = True) -> None:
        super().__init__()
        self._entries = entries
        self._lock = threading.Lock()
        self._calls = 0
        self._prompt = 0
        self._completion = 0
        self._elapsed = 0.0
        self._parent: UsageTracker | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> CostMeter:
        # DSPy's parallel executors deep-copy the usage tracker for each worker thread; a
        # meter is thread-safe and must keep counting in one place, so copies are itself.
        return self

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        with self._lock:
            self._calls += 1
            self._prompt += int(usage_entry.get("prompt_tokens") or 0)
            self._completion += int(usage_entry.get("completion_tokens") or 0)
            if self._entries:
                super().add_usage(lm, usage_entry)
            parent = self._parent
        if parent is not None:
            parent.add_usage(lm, usage_entry)

    @contextmanager
    def track(self) -> Iterator[CostMeter]:
        """Count the calls made inside the block (this thread) and time it."""
        import dspy

        outer = dspy.settings.usage_tracker
        if outer is not None and outer is not self:
            self._parent = outer
        start = time.perf_counter()
        try:
            with dspy.context(usage_tracker=self):
                yield self
        finally:
            with self._lock:
                self._elapsed += time.perf_counter() - start

    @property
    def cost(self) -> Cost:
        with self._lock:
            return Cost(self._calls, self._prompt, self._completion, round(self._elapsed, 3))
