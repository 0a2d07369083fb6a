"""The run layer's executor on Ray: the same ``map`` as :class:`ThreadExecutor`, over processes and machines.

:class:`RayExecutor` starts ``workers`` Ray actors (one CPU each, spread over the cluster's
nodes), each running up to ``concurrency / workers`` items at once on its own threads. The
function a run maps is sent to every actor once; then each item goes to the least busy
actor, and every result comes back to the driver as soon as it is ready, where ``on_done``
(the ledger, the progress display) runs one call at a time, as on threads. So the driver
alone writes results, and resuming, ``fresh`` and the ledger's configuration check behave
exactly as with threads.

**LMs travel as descriptions.** A ``dspy.LM`` captured by the function is sent without its
history and without its key: the key stays in the driver's environment variable, and each
worker reads the same variable from its own environment (a local Ray started by the driver
inherits it; on a cluster, set it in the nodes' environment). personae's engines pickle as
what builds them (:class:`~personae.lm.HTTPEngine` its server and the variable's name, the
embedded model its file), so each worker opens its own connections or loads its own model.

**Costs travel back.** Each worker counts the usage of every LM call an item made and
returns it with the item's result; the driver adds it to the usage tracker that was active
when ``map`` was called (a :class:`~personae.lm.CostMeter`), so a run's cost is the same
whichever executor ran it.

**Failures.** An exception raised by the function (bad input, a programming error: what the
retry policy lets through) reaches the caller as itself, after the items in flight finished.
A worker that dies (``ray.kill``, a killed process, a lost node) loses nothing: its items go
to the other workers, a fresh worker takes its place, and only after ``max_worker_deaths`` deaths
does ``map`` give up with :class:`WorkerLostError`, leaving the items not yet done for
the next run to pick up from the ledger.
"""

from __future__ import annotations

import io
import logging
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from personae.errors import ConfigError, MissingExtraError, WorkerLostError

__all__ = ["KEY_ENV", "RayExecutor", "WorkerLostError", "import_ray", "load_payload", "worker_payload"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
I = TypeVar("I")

KEY_ENV = "PERSONAE_API_KEY"
"""Where the command line puts a key given as ``--api-key`` so that local Ray workers inherit it."""


def import_ray() -> Any:
    """The ``ray`` module; :class:`~personae.errors.MissingExtraError` when the ``ray`` extra is not
    installed."""
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError("ray", "the Ray executor") from exc
    return ray


# -- what crosses to a worker ------------------------------------------------------------------

def _key_variable(value: str) -> str:
    """The environment variable that holds ``value`` (a key); ConfigError when none does."""
    preferred = [KEY_ENV, "OPENAI_API_KEY"]
    names = preferred + sorted(n for n in os.environ if n not in preferred)
    for name in names:
        if os.environ.get(name) == value:
            return name
    raise ConfigError("this LM's API key was given directly; to send the LM to Ray workers, put the key in an "
                      f"environment variable the workers have (e.g. {KEY_ENV}): a key never travels with a task")


def _rebuild_lm(cls: Any, state: dict[str, Any], key_env: str | None) -> Any:
    lm = cls.__new__(cls)
    lm.__setstate__(state)
    if key_env is not None:
        key = os.environ.get(key_env)
        if key is None:
            raise ConfigError(f"this Ray worker has no {key_env} in its environment: the LM's key is read there, "
                              "never sent with the task; set it on every node (or in the job's runtime_env)")
        lm.kwargs["api_key"] = key
    return lm


def _reduce_lm(lm: Any) -> tuple[Any, tuple[Any, ...]]:
    state = lm.__getstate__()
    state["history"] = []  # what this process asked is no business of the worker's
    kwargs = dict(state.get("kwargs") or {})
    key = kwargs.pop("api_key", None)
    state["kwargs"] = kwargs
    key_env = _key_variable(key) if key else None
    return (_rebuild_lm, (type(lm), state, key_env))


def worker_payload(obj: Any) -> bytes:
    """``obj`` pickled for a Ray worker (cloudpickle): LMs without their keys and history."""
    import dspy
    from ray import cloudpickle

    base: Any = cloudpickle.CloudPickler

    class _Pickler(base):
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, dspy.LM):
                return _reduce_lm(obj)
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    pickler: Any = _Pickler(buffer, protocol=5)
    pickler.dump(obj)
    return buffer.getvalue()


def load_payload(data: bytes) -> Any:
    """The object :func:`worker_payload` pickled; an LM in it takes its key from this process's
    environment (the variable that held it in the driver)."""
    from ray import cloudpickle

    return cloudpickle.loads(data)


# -- the worker ------------------------------------------------------------------------------

class _Recorder:
    """A usage tracker that keeps each call's usage, to send back with the item's result."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        self.calls.append((lm, dict(usage_entry)))


class _Worker:
    """One Ray actor: holds the function sent to it and runs each call's items on its threads."""

    def __init__(self, threads: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._functions: dict[str, Callable[[Any], Any]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="personae-ray")

    def ready(self) -> tuple[int, str]:
        import socket

        return os.getpid(), socket.gethostname()

    def load(self, name: str, payload: bytes) -> None:
        fn = load_payload(payload)
        with self._lock:
            self._functions = {name: fn}  # one map at a time: the earlier function can go

    def run(self, name: str, items: list[Any]) -> list[tuple[bool, Any, list[tuple[str, dict[str, Any]]]]]:
        """Each item's (succeeded, value or exception, LM usage), the items run at once."""
        fn = self._functions[name]

        def one(item: Any) -> tuple[bool, Any, list[tuple[str, dict[str, Any]]]]:
            import dspy

            recorder = _Recorder()
            with dspy.context(usage_tracker=recorder):
                try:
                    return True, fn(item), recorder.calls
                except Exception as exc:  # what must stop the run: the driver raises it
                    return False, exc, recorder.calls

        return list(self._pool.map(one, items))


# -- the executor ------------------------------------------------------------------------------

class RayExecutor:
    """An :class:`~personae.runs.Executor` on Ray actors (see the module's notes).

    Args:
        concurrency: items in flight at once, over all workers.
        workers: Ray actors to start (default: the cluster's CPUs, at most ``concurrency``).
        address: the Ray cluster to join (``ray://host:10001``, ``host:6379`` or ``auto``);
            ``None`` joins the Ray this process already started, else the one ``RAY_ADDRESS``
            names, else starts a local one for the run (shut down by :meth:`close`), never a
            cluster Ray merely remembers from an earlier ``ray start``.
        max_worker_deaths: worker deaths one ``map`` survives before it gives up.
        chunk: items a call to a worker carries (default: one by one while the items are few
            or take seconds each, else up to 8): a result comes back with its chunk.
        init_options: extra ``ray.init`` options for a Ray started here (e.g. ``num_cpus``).
    """

    def __init__(self, concurrency: int = 8, *, workers: int | None = None, address: str | None = None,
                 max_worker_deaths: int = 8, init_options: dict[str, Any] | None = None, chunk: int | None = None,
                 name: str = "personae") -> None:
        if concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if workers is not None and workers < 1:
            raise ConfigError("workers must be at least 1")
        self.concurrency = concurrency
        self.workers = workers
        self.address = address
        self.max_worker_deaths = max_worker_deaths
        self.init_options = dict(init_options or {})
        if chunk is not None and chunk < 1:
            raise ConfigError("chunk must be at least 1")
        self.chunk = chunk
        self.name = name
        self._started_ray = False
        self._actors: list[Any] = []
        self._maps = 0

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> Any:
        """The ``ray`` module, once this process has joined the cluster (or started a local one)."""
        ray = import_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                                       "log_to_driver": False, **self.init_options}
            # Without an address, Ray would join whatever cluster its temp folder last
            # recorded (a stale one left by an earlier ``ray start`` included); ``local``
            # starts this run's own, as documented. ``RAY_ADDRESS`` still names one.
            options["address"] = self.address or os.environ.get("RAY_ADDRESS") or "local"
            logger.info("starting Ray%s", f" at {self.address}" if self.address else " on this machine")
            ray.init(**options)
            self._started_ray = True
        return ray

    def _spawn(self, ray: Any) -> Any:
        # Each call brings up to a chunk of items, run on the worker's pool of ``threads``.
        actor_class = ray.remote(num_cpus=1, max_restarts=0, max_concurrency=self._threads() + 2,
                                 scheduling_strategy="SPREAD")(_Worker)
        return actor_class.remote(self._threads())

    def _threads(self) -> int:
        return max(1, -(-self.concurrency // self.worker_count()))

    def worker_count(self) -> int:
        """The workers this executor runs: ``workers``, else the cluster's CPUs, at most ``concurrency``."""
        if self.workers is not None:
            return min(self.workers, self.concurrency)
        ray = import_ray()
        cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1
        return max(1, min(cpus, self.concurrency))

    def start(self) -> list[tuple[int, str]]:
        """Start the workers (``map`` does it when needed); their (pid, host) pairs."""
        ray = self.connect()
        while len(self._actors) < self.worker_count():
            self._actors.append(self._spawn(ray))
        return list(ray.get([actor.ready.remote() for actor in self._actors]))

    def worker_pids(self) -> list[int]:
        """The process ids of the live workers (for operators, and for the tests that kill them)."""
        ray = self.connect()
        return [pid for pid, _ in ray.get([actor.ready.remote() for actor in self._actors])]

    def close(self) -> None:
        """Stop the workers, and the Ray this executor started."""
        if not self._actors and not self._started_ray:
            return
        ray = import_ray()
        for actor in self._actors:
            try:
                ray.kill(actor)
            except Exception:  # already gone
                pass
        self._actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # -- map -------------------------------------------------------------------------------
    def map(self, fn: Callable[[I], T], items: Sequence[I], on_done: Callable[[int, T], None]) -> None:
        """Run ``fn`` over ``items`` on the Ray workers; ``on_done(index, result)`` runs in this
        process, once per item, one call at a time. The first exception ``fn`` raised is raised after
        the items in flight finish; :class:`WorkerLostError` when workers died more than
        ``max_worker_deaths`` times."""
        if not items:
            return
        import dspy
        from ray.exceptions import RayActorError, RayTaskError

        ray = self.connect()
        self.start()
        tracker = dspy.settings.usage_tracker
        self._maps += 1
        name = f"{self.name}-{self._maps}"
        payload = ray.put(worker_payload(fn))
        ray.get([actor.load.remote(name, payload) for actor in self._actors])
        pending: deque[int] = deque(range(len(items)))
        inflight: dict[Any, tuple[list[int], int, int]] = {}  # ref -> (item indices, actor slot, its generation)
        busy = [0] * len(self._actors)  # items in flight on each worker
        generation = [0] * len(self._actors)
        deaths = 0
        error: BaseException | None = None
        capacity = self._threads()
        seconds: deque[float] = deque(maxlen=64)  # how long the latest calls took
        sent: dict[Any, float] = {}

        def submit() -> None:
            chunk = self._chunk(len(items), seconds)
            while pending and error is None:
                room = self.concurrency - sum(busy)
                slot = min(range(len(self._actors)), key=busy.__getitem__)
                size = min(chunk, room, capacity - busy[slot], len(pending))
                if size < 1 or (size < chunk and size < len(pending) and sum(busy) > 0):
                    return  # wait for room for a whole chunk while others are in flight
                indices = [pending.popleft() for _ in range(size)]
                ref = self._actors[slot].run.remote(name, [items[i] for i in indices])
                inflight[ref] = (indices, slot, generation[slot])
                sent[ref] = time.perf_counter()
                busy[slot] += size

        try:
            submit()
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    indices, slot, gen = inflight.pop(ref)
                    seconds.append(time.perf_counter() - sent.pop(ref))
                    current = gen == generation[slot]
                    if current:
                        busy[slot] -= len(indices)
                    try:
                        results = ray.get(ref)
                    except RayActorError as exc:  # the worker died (killed, out of memory, node lost)
                        pending.extendleft(reversed(indices))  # nothing of them was recorded: they run again
                        if not current:
                            continue  # a call to a worker already replaced
                        deaths += 1
                        if deaths > self.max_worker_deaths:
                            if error is None:
                                error = WorkerLostError(f"Ray workers died {deaths} times; the items not yet done "
                                                        "stay pending for the next run")
                            continue
                        logger.warning("a Ray worker died (%s); a fresh one takes its place and its items run again",
                                       type(exc).__name__)
                        self._replace(ray, slot)
                        generation[slot] += 1
                        busy[slot] = 0
                        ray.get(self._actors[slot].load.remote(name, payload))
                        continue
                    except RayTaskError as exc:  # the worker itself failed: a bug of this module's
                        if error is None:
                            cause = getattr(exc, "cause", None)
                            error = cause if isinstance(cause, BaseException) else exc
                        continue
                    for index, (succeeded, value, calls) in zip(indices, results, strict=True):
                        if tracker is not None:
                            for lm_name, usage in calls:
                                tracker.add_usage(lm_name, usage)
                        if succeeded:
                            on_done(index, value)
                        elif error is None:
                            error = value  # what the function raised: it stops the run, as on threads
                submit()
        except BaseException:
            for ref in inflight:
                ray.cancel(ref)
            raise
        if error is not None:
            if isinstance(error, WorkerLostError):
                error.pending = len(pending)
            raise error

    def _chunk(self, items: int, seconds: Sequence[float]) -> int:
        """Items a call carries. A chunk's results come back together, so items are sent one by
        one until the calls are known to be short (a median under 2 s over the latest ones, seen on
        every worker), and while they are few; then up to 8 (a quarter of a worker's threads), so
        that Ray's cost per call is shared and each worker keeps several calls in flight."""
        if self.chunk is not None:
            return self.chunk
        if items < 4 * self.concurrency or len(seconds) < 2 * len(self._actors):
            return 1
        if statistics.median(seconds) > 2.0:
            return 1
        return max(1, min(8, self._threads() // 4))

    def _replace(self, ray: Any, slot: int) -> None:
        """A fresh worker in ``slot``, in place of a dead one."""
        try:
            ray.kill(self._actors[slot])
        except Exception:  # noqa: S110 - it is gone already
            pass
        self._actors[slot] = self._spawn(ray)
