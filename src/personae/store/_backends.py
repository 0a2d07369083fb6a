"""What judges inside the store: an LLM (any ``dspy.LM``) or a distilled reward model.

A backend answers three questions for one user, given the user's fitted judge (None before the
first persona) and, for cold start, the user's raw preferences:

- ``compare``: which of two responses the user prefers, with the probability, from both
  orders (position-debiased), from token log-probabilities when the LM returns them;
- ``prequential``: one stored preference judged by a given version, as a
  :class:`personae.runs.Judgment` row (right or wrong, or unscored with why);
- ``scores``: a score per candidate when the backend has one (the reward model), for ranking
  without pairwise comparisons.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import dspy

from personae.data import PreferenceRecord
from personae.errors import ConfigError
from personae.programs import (
    DefaultJudge,
    Judge,
    MemoryJudge,
    PersonalizedJudge,
    Verdict,
    judge_pair,
    stable_coin,
)
from personae.runs import Judgment, RetryPolicy

if TYPE_CHECKING:
    from personae.distill import PersonalizedRewardModel

__all__ = ["JudgeBackend", "LLMJudgeBackend", "RewardModelBackend"]


class JudgeBackend(Protocol):
    """The judging side of a :class:`~personae.store.PersonaStore` (see the module docstring)."""

    name: str
    lm: dspy.BaseLM | None  # the LM the backend calls, if any (the store's updates may use it)

    def compare(self, fitted: PersonalizedJudge | None, history: Sequence[PreferenceRecord], prompt: str,
                response_a: str, response_b: str) -> Verdict:
        """Which of ``response_a`` and ``response_b`` the user prefers, judged by ``fitted`` (or,
        before the first persona, from ``history``): a :class:`~personae.programs.Verdict` with its
        probability and personalization."""
        ...

    def prequential(self, fitted: PersonalizedJudge | None, history: Sequence[PreferenceRecord],
                    record: PreferenceRecord, *, record_id: str, seed: int) -> Judgment:
        """One stored preference ``record`` judged by the given version, as a
        :class:`~personae.runs.Judgment` row (``seed`` and ``record_id`` fix the order it is shown in)."""
        ...

    def scores(self, fitted: PersonalizedJudge | None, prompt: str, candidates: Sequence[str]) -> list[float] | None:
        """A score per candidate, for ranking without pairwise comparisons; None when the
        backend has no scores (the store then runs a knockout of comparisons)."""
        ...


class LLMJudgeBackend:
    """Judges with an LLM: the user's fitted judge (persona and demonstrations), the memory judge
    over the raw preferences before the first persona (``memory=True``), else the default judge.

    With ``logprobs=True`` the LM is asked for token log-probabilities (OpenAI-compatible servers
    return them), and the probability is the average of P(A) over the two orders; without, each
    order votes 0 or 1. Failed or unusable answers are retried by the run layer's
    :class:`~personae.runs.RetryPolicy`; one that keeps failing raises
    :class:`~personae.errors.LMCallError`.
    """

    name = "llm"

    def __init__(self, lm: dspy.BaseLM, *, logprobs: bool = False, top_logprobs: int = 5, memory: bool = True,
                 memory_budget: int = 8000, max_attempts: int = 3) -> None:
        self.lm = lm
        self.logprobs = logprobs
        self.memory = memory
        self.memory_budget = memory_budget
        self.retry = RetryPolicy(max_attempts=max_attempts)
        self._asking_lm = lm.copy(logprobs=True, top_logprobs=top_logprobs) if logprobs else lm
        self._programs: dict[str, Judge] = {}
        self._lock = threading.Lock()

    def _program(self, fitted: PersonalizedJudge | None, history: Sequence[PreferenceRecord]) -> tuple[Judge, str]:
        if fitted is not None:
            key = json.dumps([fitted.instructions, fitted.demos], ensure_ascii=False)  # the program's content
            with self._lock:
                program = self._programs.get(key)
                if program is None:
                    if len(self._programs) > 1024:
                        self._programs.clear()
                    program = self._programs[key] = fitted.with_attempts(1)  # retried here
            return program, "persona"
        if self.memory and history:
            return MemoryJudge(history, budget=self.memory_budget, attempts=1), "memory"
        return DefaultJudge(attempts=1), "none"

    def _ask(self, program: Judge, prompt: str, response_a: str, response_b: str) -> Verdict:
        from personae.lm import default_adapter

        def once() -> Verdict:
            verdict: Verdict = program(prompt=prompt, response_a=response_a, response_b=response_b)
            if verdict.probability is None:  # no log-probabilities to weigh: the answer votes
                verdict.probability = 1.0 if verdict.preferred == "A" else 0.0
            return verdict

        with dspy.context(adapter=dspy.settings.adapter or default_adapter()):
            return self.retry.call(once, lm=self._asking_lm, item="judgment")

    def compare(self, fitted: PersonalizedJudge | None, history: Sequence[PreferenceRecord], prompt: str,
                response_a: str, response_b: str) -> Verdict:
        """Ask the judge in both orders (concurrently) and average P(A); the reasoning is
        from an order that agrees with the result. Returns a :class:`~personae.programs.Verdict`."""
        from personae.runs import ThreadExecutor

        program, personalization = self._program(fitted, history)
        answers: dict[int, Verdict] = {}
        orders = [(response_a, response_b), (response_b, response_a)]

        def ask(order: tuple[str, str]) -> Verdict:
            return self._ask(program, prompt, *order)

        ThreadExecutor(2, name="judge").map(ask, orders, lambda index, asked: answers.__setitem__(index, asked))
        ab, ba = answers[0], answers[1]
        probability = (ab.probability + (1.0 - ba.probability)) / 2
        if probability != 0.5:
            preferred = "A" if probability > 0.5 else "B"
        else:  # the orders disagree and nothing weighs them: the first order's answer
            preferred = ab.preferred
        agrees = ab if ab.preferred == preferred else ba
        return Verdict(preferred, agrees.reasoning, probability=probability, personalization=personalization)

    def prequential(self, fitted: PersonalizedJudge | None, history: Sequence[PreferenceRecord],
                    record: PreferenceRecord, *, record_id: str, seed: int) -> Judgment:
        """Judge ``record`` once, its order a stable coin of ``seed`` and ``record_id``;
        returns the :class:`~personae.runs.Judgment` (unscored, with why, when the LM kept failing)."""
        from personae.lm import default_adapter

        program, personalization = self._program(fitted, history)
        chosen_first = stable_coin(seed, "prequential", record_id)
        with dspy.context(adapter=dspy.settings.adapter or default_adapter()):
            outcome = self.retry.attempt(lambda: judge_pair(program, record, chosen_first=chosen_first), lm=self.lm)
        names = ("chosen", "rejected") if chosen_first else ("rejected", "chosen")
        return Judgment.of(outcome, record_id=record_id, first=names[0], second=names[1], truth="chosen",
                           user_id=record.user_id, method=f"prequential:{personalization}",
                           persona=fitted.persona if fitted else None)

    def scores(self, fitted: PersonalizedJudge | None, prompt: str, candidates: Sequence[str]) -> list[float] | None:
        """None: an LLM judge has no score per candidate, so ranking compares pairs."""
        return None


@dataclass
class _Scoring:
    """One call's responses waiting for the reward model, and what became of them."""

    items: list[tuple[str, str, str]]
    scores: list[float] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class RewardModelBackend:
    """Judges with a persona-conditioned reward model (``personae distill reward-model``): no LM
    at request time. The probability is ``sigmoid(reward_a - reward_b)`` (the Bradley-Terry
    model it was trained as); before the first persona it judges with an empty persona
    (``personalization="none"``).

    One thread runs the model, one forward pass at a time, so concurrent calls are combined:
    each call queues its responses, and the model's thread scores everything queued in one
    batch (at most ``max_batch`` responses, sorted by length and padded per batch by the
    model). On CPU small batches already give most of the gain and keep each answer prompt
    (the default, 8 responses: 4 judgments); on a GPU a larger ``max_batch`` answers more per second."""

    name = "reward-model"
    lm: dspy.BaseLM | None = None

    def __init__(self, model: PersonalizedRewardModel | str | Any, *, device: str = "auto",
                 max_batch: int = 8, threads: int | None = None, runtime: str = "torch") -> None:
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        if threads is not None and runtime == "torch":   # torch's CPU threads for the model (default: all cores)
            import torch

            torch.set_num_threads(threads)
        if isinstance(model, str) or hasattr(model, "__fspath__"):
            from personae.distill import PersonalizedRewardModel

            # ``runtime``: torch, or the model's ONNX export (onnx, onnx-int8), its threads ``threads``
            model = PersonalizedRewardModel.load(model, device=device, runtime=runtime, threads=threads)
        if not hasattr(model, "score_batch"):
            raise ConfigError("a reward-model backend needs a PersonalizedRewardModel or its folder")
        self.model = model
        self.max_batch = max_batch
        self._queued: list[_Scoring] = []   # calls waiting for the model
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def _rewards(self, persona: str, prompt: str, responses: Sequence[str]) -> list[float]:
        """The reward of each response, each distinct one scored once (a rank's repeated drafts, a
        pair of equal responses)."""
        distinct = list(dict.fromkeys(responses))
        if len(distinct) < len(responses):
            by_response = dict(zip(distinct, self._rewards(persona, prompt, distinct), strict=True))
            return [by_response[r] for r in responses]
        mine = _Scoring([(persona, prompt, r) for r in responses])
        with self._ready:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="reward-model", daemon=True)
                self._thread.start()
            self._queued.append(mine)
            self._ready.notify()
        mine.done.wait()
        if mine.error is not None:
            raise mine.error
        return mine.scores

    def _serve(self) -> None:
        """The model's own thread: one batch at a time of what is queued, in arrival order. One
        thread also keeps the model's allocations in one place (the process's memory stays flat
        however many request threads call)."""
        while True:
            with self._ready:
                while not self._queued:
                    self._ready.wait()
                batch: list[_Scoring] = []
                size = 0
                while self._queued and (not batch or size + len(self._queued[0].items) <= self.max_batch):
                    size += len(self._queued[0].items)
                    batch.append(self._queued.pop(0))
            try:
                scores = list(self.model.score_batch([item for call in batch for item in call.items]))
            except BaseException as exc:   # every call of the batch raises it, in its own thread
                for call in batch:
                    call.error = exc
                    call.done.set()
                continue
            start = 0
            for call in batch:
                call.scores = scores[start:start + len(call.items)]
                start += len(call.items)
                call.done.set()

    def compare(self, fitted: PersonalizedJudge | None, history: Sequence[PreferenceRecord], prompt: str,
                response_a: str, response_b: str) -> Verdict:
        """Score both responses under the user's persona; the probability is
        ``sigmoid(reward_a - reward_b)``. Returns a :class:`~personae.programs.Verdict`."""
        persona = fitted.persona if fitted else ""
        reward_a, reward_b = self._rewards(persona, prompt, [response_a, response_b])
        gap = reward_a - reward_b   # a stable sigmoid: no overflow however far apart the rewards are
        probability = 1.0 / (1.0 + math.exp(-gap)) if gap >= 0 else math.exp(gap) / (1.0 + math.exp(gap))
        return Verdict("A" if reward_a >= reward_b else "B", f"reward {reward_a:.4f} for A, {reward_b:.4f} for B",
                       probability=probability, personalization="persona" if persona else "none")

    def prequential(self, fitted: PersonalizedJudge | None, history: Sequence[PreferenceRecord],
                    record: PreferenceRecord, *, record_id: str, seed: int) -> Judgment:
        """Score the record's chosen and rejected responses; the
        :class:`~personae.runs.Judgment` is correct when the chosen one scores higher."""
        persona = fitted.persona if fitted else ""
        chosen, rejected = self._rewards(persona, record.prompt, [record.chosen, record.rejected])
        picked = "chosen" if chosen > rejected else "rejected"
        return Judgment(record_id=record_id, user_id=record.user_id,
                        method=f"prequential:{'persona' if persona else 'none'}", persona=persona or None,
                        first="chosen", preferred="A" if picked == "chosen" else "B", picked=picked,
                        correct=picked == "chosen", reasoning=f"reward {chosen:.4f} chosen, {rejected:.4f} rejected")

    def scores(self, fitted: PersonalizedJudge | None, prompt: str, candidates: Sequence[str]) -> list[float] | None:
        """The reward of each candidate under the user's persona (empty before the first
        persona)."""
        return self._rewards(fitted.persona if fitted else "", prompt, candidates)
