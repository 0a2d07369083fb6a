"""Demo-set search: pick the few-shot demonstrations that make a judge best on validation.

:class:`DemoSearch` is a DSPy ``Teleprompter``. It builds candidate demo sets from a pool
(verified reasoning traces, optionally a few labelled pairs without reasoning), scores each
candidate by the judge's accuracy on the validation pairs, and returns the judge with the best
set. Unlike a plain random search it

- evaluates candidates in parallel on a bounded number of threads, each re-entering the
  caller's DSPy context (no global setting is changed from a thread);
- is seeded: the same seed, pool and validation set give the same candidates;
- stops early: once a candidate reaches ``target``, no further candidate starts and the
  running ones stop at their next call;
- honours a budget of LM calls (``max_lm_calls``);
- drops a candidate as soon as it can no longer win (``prune``): once its correct answers
  plus the validation pairs it has left cannot beat the best finished score (ties go to
  fewer demos, then to the earlier candidate), the rest of its pairs are not asked. The
  chosen demo set and its score are the ones an exhaustive search returns; only the table
  of scores loses the pruned candidates' final scores (it keeps how far they got);
- never asks the LM twice for the same (instructions, demos, pair, order): predictions are
  kept in a :class:`PredictionMemo` that several searches may share.

Each validation pair is shown once, in an order fixed by a seeded coin, so a judge that
always answers "First" scores about 50% rather than 100%.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import dspy
from dspy.teleprompt.teleprompt import Teleprompter

from personae.data import PreferenceRecord
from personae.errors import ConfigError
from personae.lm import Cost, CostMeter
from personae.programs import Judge, Trace, VerifiedReasoning, judge_pair, stable_coin
from personae.runs import CALL_FAILURES, RetryPolicy, ThreadExecutor, record_key
from personae.signatures import clip

__all__ = ["Candidate", "DemoSearch", "PredictionMemo", "SearchResult", "as_demo", "labeled_demo"]

logger = logging.getLogger(__name__)


DEMO_MAX_CHARS = 800  # per text in a demonstration, so a few demos fit a small context window


def as_demo(trace: Trace) -> dict[str, str]:
    """A verified trace as a judge's demonstration (texts clipped so a few fit a small context)."""
    return {"prompt": clip(trace.prompt, DEMO_MAX_CHARS),
            "response_a": clip(trace.response_a, DEMO_MAX_CHARS),
            "response_b": clip(trace.response_b, DEMO_MAX_CHARS),
            "reasoning": clip(trace.reasoning, DEMO_MAX_CHARS), "preferred": trace.preferred}


def labeled_demo(record: PreferenceRecord) -> dict[str, str]:
    """A pair as a labelled demonstration without reasoning (the chosen response shown as A)."""
    return {"prompt": record.prompt, "response_a": record.chosen, "response_b": record.rejected,
            "preferred": "A"}


def _demo_key(demo: dict[str, Any]) -> str:
    text = "\x1f".join(f"{k}={demo.get(k, '')}" for k in sorted(demo))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


class PredictionMemo:
    """Thread-safe store of judgments already made, keyed by prompt-defining inputs."""

    def __init__(self) -> None:
        self._store: dict[tuple[str, ...], tuple[bool, str | None]] = {}
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: tuple[str, ...]) -> tuple[bool, str | None] | None:
        """The judgment stored under ``key`` (whether it was right, and the error when it failed), or
        None; a hit is counted in ``hits``."""
        with self._lock:
            found = self._store.get(key)
            if found is not None:
                self.hits += 1
            return found

    def put(self, key: tuple[str, ...], value: tuple[bool, str | None]) -> None:
        """Store the judgment ``value`` (right or wrong, and the error when it failed) under ``key``."""
        with self._lock:
            self._store[key] = value


@dataclass(frozen=True)
class Candidate:
    index: int
    label: str
    demos: tuple[dict[str, str], ...]


@dataclass
class SearchResult:
    """What a search found and what it cost."""

    demos: list[dict[str, str]]
    score: float | None
    scores: list[dict[str, Any]] = field(default_factory=list)
    candidates_tried: int = 0
    stopped: str = "exhausted"          # "exhausted" | "target" | "budget"
    pruned: int = 0                     # candidates dropped once they could no longer win
    reused_predictions: int = 0
    cost: Cost = field(default_factory=Cost)


def _instructions(student: Judge) -> str:
    return str(student.predict.predict.signature.instructions)


class DemoSearch(Teleprompter):
    """Search demo sets for a pairwise judge (see the module docstring)."""

    def __init__(
        self,
        *,
        num_candidates: int = 4,
        max_demos: int = 3,
        max_labeled: int = 0,
        target: float | None = None,
        max_lm_calls: int | None = None,
        num_threads: int = 2,
        max_attempts: int = 2,
        seed: int = 0,
        memo: PredictionMemo | None = None,
        prune: bool = True,
    ) -> None:
        super().__init__()
        if num_candidates < 1 or max_demos < 0 or num_threads < 1 or max_attempts < 1:
            raise ConfigError("num_candidates, num_threads and max_attempts must be >= 1, max_demos >= 0")
        self.num_candidates = num_candidates
        self.max_demos = max_demos
        self.max_labeled = max_labeled
        self.target = target
        self.max_lm_calls = max_lm_calls
        self.num_threads = num_threads
        self.max_attempts = max_attempts
        self.seed = seed
        self.memo = memo
        self.prune = prune

    # -- candidates -----------------------------------------------------------------
    def candidates(self, pool: Sequence[dict[str, str]], labeled: Sequence[dict[str, str]]) -> list[Candidate]:
        """Zero-shot, labelled-only, the pool's first demos, then seeded random subsets."""
        rng = random.Random(self.seed)
        out: list[Candidate] = []
        seen: set[tuple[str, ...]] = set()

        def add(label: str, demos: Sequence[dict[str, str]]) -> None:
            key = tuple(_demo_key(d) for d in demos)
            if key not in seen and len(out) < self.num_candidates:
                seen.add(key)
                out.append(Candidate(len(out), label, tuple(demos)))

        labeled = list(labeled)[: self.max_labeled]
        k = min(self.max_demos, len(pool))
        if k:
            add("first", list(pool)[:k])
        add("zero-shot", [])
        if labeled:
            add("labeled", labeled)
        attempts = 0
        while len(out) < self.num_candidates and k and attempts < 20 * self.num_candidates:
            attempts += 1
            size = rng.randint(1, k)
            add("random", rng.sample(list(pool), size) + labeled)
        return out

    # -- evaluation -----------------------------------------------------------------
    def shows_chosen_first(self, record: PreferenceRecord) -> bool:
        """Whether validation shows ``record``'s chosen response first (a seeded coin per pair)."""
        return stable_coin(self.seed, "val", record.record_id, record.prompt)

    def _judge_once(self, student: Judge, demos: Sequence[dict[str, str]], record: PreferenceRecord,
                    memo: PredictionMemo) -> tuple[bool, str | None]:
        chosen_first = self.shows_chosen_first(record)
        key = (_instructions(student), *sorted(_demo_key(d) for d in demos), record_key(record), str(chosen_first))
        found = memo.get(key)
        if found is not None:
            return found
        outcome = RetryPolicy(max_attempts=self.max_attempts).attempt(
            lambda: judge_pair(student, record, chosen_first=chosen_first).preferred)
        if outcome.kind in CALL_FAILURES:  # the model gave no answer: no score can be trusted, fit again later
            raise outcome.exception(f"demo search on {record.record_id}")
        # an answer that kept failing to parse counts as wrong, with its reason
        result = (False, outcome.error) if outcome.value is None else ((outcome.value == "A") == chosen_first, None)
        memo.put(key, result)
        return result

    def search(self, student: Judge, valset: Sequence[PreferenceRecord | dspy.Example], *,
               pool: Sequence[dict[str, str]] = (), labeled: Sequence[dict[str, str]] = ()) -> SearchResult:
        """Score every candidate demo set on ``valset`` (records, or ``dspy.Example`` pairs) and
        return the best one."""
        from personae.data import as_records

        valset = as_records(valset, source="valset")
        memo = self.memo or PredictionMemo()
        hits_before = memo.hits
        candidates = self.candidates(pool, labeled)
        meter = CostMeter()
        stop = threading.Event()
        reason = {"value": "exhausted"}
        scores: dict[int, float] = {}
        pruned: dict[int, dict[str, Any]] = {}
        lock = threading.Lock()
        n = len(valset)
        # The best finished candidate as its ranking key: score, then fewer demos, then earlier.
        best_key: list[tuple[float, int, int]] = []

        def rank(candidate: Candidate, correct: int) -> tuple[float, int, int]:
            return (correct / n if n else 0.0, -len(candidate.demos), -candidate.index)

        def over_budget() -> bool:
            return self.max_lm_calls is not None and meter.cost.lm_calls >= self.max_lm_calls

        def evaluate(candidate: Candidate) -> None:
            if stop.is_set():
                return
            judge = student.deepcopy()
            judge.attempts = 1  # the search retries each judgment itself (max_attempts)
            judge.predict.predict.demos = [dspy.Example(**d) for d in candidate.demos]
            correct = 0
            for asked, record in enumerate(valset):
                if self.prune:
                    with lock:  # the best it can still reach: every pair left answered right
                        if best_key and rank(candidate, correct + n - asked) < best_key[0]:
                            pruned[candidate.index] = {"asked": asked, "upper_bound": (correct + n - asked) / n}
                            return
                if stop.is_set():
                    return  # abandoned: another candidate reached the target, or the budget ran out
                if over_budget():
                    with lock:
                        reason["value"] = "budget"
                    stop.set()
                    return
                ok, _ = self._judge_once(judge, candidate.demos, record, memo)
                correct += ok
            score = correct / len(valset) if valset else 0.0
            with lock:
                scores[candidate.index] = score
                key = rank(candidate, correct)
                if not best_key or key > best_key[0]:
                    best_key[:] = [key]
                if self.target is not None and score >= self.target and not stop.is_set():
                    reason["value"] = "target"
                    stop.set()

        with meter.track():  # the executor carries the meter into its worker threads
            ThreadExecutor(self.num_threads, name="demo-search").map(evaluate, candidates, lambda index, _: None)
        if not scores:
            best: Candidate | None = None
        else:  # best score; ties go to fewer demos, then to the earlier candidate
            best = max((c for c in candidates if c.index in scores),
                       key=lambda c: (scores[c.index], -len(c.demos), -c.index))
        table = [{"candidate": c.index, "label": c.label, "demos": len(c.demos), "score": scores.get(c.index),
                  **({"pruned": pruned[c.index]} if c.index in pruned else {})} for c in candidates]
        logger.info("demo search: %d/%d candidates scored, %d pruned, stopped: %s, best %s", len(scores),
                    len(candidates), len(pruned), reason["value"], None if best is None else scores[best.index])
        return SearchResult(
            demos=[dict(d) for d in best.demos] if best else [],
            score=scores[best.index] if best else None,
            scores=table,
            candidates_tried=len(scores) + len(pruned),
            stopped=reason["value"],
            pruned=len(pruned),
            reused_predictions=memo.hits - hits_before,
            cost=meter.cost,
        )

    def compile(self, student: Judge, *, trainset: Sequence[Any] = (), valset: Sequence[Any] = (),
                pool: Sequence[dict[str, str]] | None = None, labeled: Sequence[dict[str, str]] | None = None,
                **kwargs: Any) -> Judge:
        """The optimizer entry point, as DSPy's: ``student`` with the best demo set found.

        ``trainset`` and ``valset`` hold pairs (``dspy.Example``s with ``prompt``, ``chosen`` and
        ``rejected``, or :class:`~personae.data.PreferenceRecord`s); without a ``valset`` the
        trainset validates too, as in DSPy's random search. Without a ``pool``, the candidates'
        demonstrations are the trainset's verified reasoning traces (one
        :class:`~personae.programs.VerifiedReasoning` pass over it), and ``max_labeled`` of its
        pairs may join them as labelled demonstrations.
        """
        from personae.data import as_records

        train = as_records(trainset, source="trainset")
        val = as_records(valset, source="valset") if valset else train
        if not val:
            raise ConfigError("DemoSearch.compile needs pairs to validate on: give trainset= or valset=")
        if pool is None:
            verifier = VerifiedReasoning(attempts=self.max_attempts, seed=self.seed)
            pool = [as_demo(p.trace) for p in (verifier.for_record(r) for r in train) if p.verified]
        if labeled is None:
            labeled = [labeled_demo(r) for r in train]
        result = self.search(student, val, pool=pool, labeled=labeled)
        program = student.deepcopy()
        program.predict.predict.demos = [dspy.Example(**d) for d in result.demos]
        return cast(Judge, program)
