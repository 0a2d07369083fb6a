"""The one executor interface: run a function over items with bounded concurrency.

An :class:`Executor` maps a function over items and hands each result to a callback as it
finishes, one callback at a time, so the caller can write it down at once. The caller's DSPy
settings (LM, adapter, usage tracker, callbacks) are carried into every worker. The thread
implementation is :class:`ThreadExecutor`; a distributed one implements the same ``map``.

When the function raises (a programming error, bad input: what the retry policy lets through),
no further item is started, the items in flight are left to finish, and the exception
propagates from ``map``. ``KeyboardInterrupt`` does the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Protocol, TypeVar

from dspy.dsp.utils.settings import thread_local_overrides

from personae.errors import ConfigError

__all__ = ["Executor", "ThreadExecutor", "carry_context"]

T = TypeVar("T")
I = TypeVar("I")


def carry_context() -> Callable[[Callable[[], T]], T]:
    """Capture this thread's DSPy settings; the returned runner applies them in a worker thread."""
    parent = thread_local_overrides.get().copy()

    def run(fn: Callable[[], T]) -> T:
        token = thread_local_overrides.set(parent.copy())
        try:
            return fn()
        finally:
            thread_local_overrides.reset(token)

    return run


class Executor(Protocol):
    """Runs ``fn`` over ``items``; ``on_done(index, result)`` is called once per item, serially."""

    concurrency: int

    def map(self, fn: Callable[[I], T], items: Sequence[I], on_done: Callable[[int, T], None]) -> None:
        """Run ``fn`` on every item; ``on_done(index, result)`` is called once per item, one call at a
        time. Returns nothing; an exception ``fn`` raises reaches the caller."""
        ...


class ThreadExecutor:
    """An :class:`Executor` on a pool of ``concurrency`` threads (in the calling thread when 1)."""

    def __init__(self, concurrency: int = 1, *, name: str = "personae") -> None:
        if concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.name = name

    def map(self, fn: Callable[[I], T], items: Sequence[I], on_done: Callable[[int, T], None]) -> None:
        """Run ``fn`` over ``items`` on the threads (in this thread when ``concurrency`` is 1);
        ``on_done(index, result)`` runs once per item, one call at a time. The first exception ``fn``
        raises stops the run and is raised here."""
        if self.concurrency == 1 or len(items) <= 1:
            for index, item in enumerate(items):
                on_done(index, fn(item))
            return
        runner = carry_context()
        lock = threading.Lock()

        def one(index: int, item: I) -> None:
            result = runner(lambda: fn(item))
            with lock:
                on_done(index, result)

        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=self.name)
        futures: list[Future[None]] = []
        try:
            futures = [pool.submit(one, index, item) for index, item in enumerate(items)]
            finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in finished:
                future.result()  # raises the first error
        finally:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
