"""Progress as an injected interface: a bar on a terminal, sparse lines in a log, silence in Python.

A run calls ``start(label, total, done)`` once per stage, ``advance(failed=kind)`` per finished
item and ``close()`` at the end. :func:`progress_for` picks the display for a stream: a tqdm bar
(rate, ETA and the failures so far) on a terminal, a plain line every ``interval`` seconds
otherwise. Library calls default to :class:`NullProgress`.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol, TextIO

__all__ = ["BarProgress", "LineProgress", "NullProgress", "Progress", "progress_for"]


class Progress(Protocol):
    """What a run reports its progress to: one stage at a time, item by item (see the module docstring)."""

    def start(self, label: str, total: int, done: int = 0) -> None:
        """Begin a stage named ``label`` of ``total`` items, ``done`` of them already done by an earlier run."""
        ...

    def advance(self, *, failed: str | None = None) -> None:
        """One more item of the stage finished; ``failed`` names the failure's kind when it failed."""
        ...

    def close(self) -> None:
        """The run is over: release the display."""
        ...


class NullProgress:
    """Shows nothing."""

    def start(self, label: str, total: int, done: int = 0) -> None:
        """Nothing to show."""
        pass

    def advance(self, *, failed: str | None = None) -> None:
        """Nothing to show."""
        pass

    def close(self) -> None:
        """Nothing to close."""
        pass


class _Counts:
    def __init__(self) -> None:
        self.label, self.total, self.done, self.failed, self.resumed = "", 0, 0, 0, 0
        self.began = time.perf_counter()

    def reset(self, label: str, total: int, done: int) -> None:
        self.label, self.total, self.done, self.resumed, self.failed = label, total, done, done, 0
        self.began = time.perf_counter()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.began
        new = self.done - self.resumed
        rate = new / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else None
        parts = [f"{self.label}: {self.done}/{self.total}"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{rate:.2f}/s" + ("" if eta is None or self.done >= self.total else f", ETA {eta:.0f} s"))
        return ", ".join(parts) + f" ({elapsed:.0f} s)"


class LineProgress:
    """A plain line on ``stream`` at most every ``interval`` seconds, and at the end of each stage."""

    def __init__(self, stream: TextIO | None = None, *, interval: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self._counts = _Counts()
        self._last = 0.0

    def start(self, label: str, total: int, done: int = 0) -> None:
        """Begin stage ``label`` of ``total`` items, ``done`` of them by an earlier run (said in a
        line)."""
        self._counts.reset(label, total, done)
        self._last = time.perf_counter()
        if done:
            self._write(f"{label}: {done} of {total} done by an earlier run")

    def advance(self, *, failed: str | None = None) -> None:
        """Count one finished item (failed when ``failed`` names a kind); writes a line when
        ``interval`` has passed or the stage is done."""
        counts = self._counts
        counts.done += 1
        counts.failed += failed is not None
        now = time.perf_counter()
        if counts.done >= counts.total or now - self._last >= self.interval:
            self._last = now
            self._write(counts.line())

    def close(self) -> None:
        """Nothing to close: every line is written already."""
        pass

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()


class BarProgress:
    """A tqdm progress bar on ``stream``: count, rate, ETA and failures so far."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._bar: Any = None
        self._failed = 0

    def start(self, label: str, total: int, done: int = 0) -> None:
        """A new bar for stage ``label`` of ``total`` items, ``done`` of them by an earlier run (the
        previous bar is closed)."""
        from tqdm import tqdm

        self.close()
        self._failed = 0
        self._bar = tqdm(total=total, initial=done, desc=label, file=self.stream, unit="item", dynamic_ncols=True,
                         smoothing=0.1)

    def advance(self, *, failed: str | None = None) -> None:
        """Move the bar one item on; a ``failed`` item also counts in the bar's failures."""
        if self._bar is None:
            return
        if failed is not None:
            self._failed += 1
            self._bar.set_postfix_str(f"{self._failed} failed", refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        """Close the bar, if one is showing."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def progress_for(stream: TextIO | None = None, *, quiet: bool = False) -> Progress:
    """The display for ``stream`` (default stderr): a bar on a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    if quiet:
        return NullProgress()
    isatty = getattr(stream, "isatty", None)
    return BarProgress(stream) if isatty is not None and isatty() else LineProgress(stream)
