"""What every personae program shares, so each behaves like one of DSPy's own modules.

- **One body for ``forward`` and ``aforward``.** A program writes its logic once, as a
  generator of :class:`Ask` steps (a predictor and its inputs); :meth:`Program.run` makes the
  calls in this thread and :meth:`Program.arun` awaits them on DSPy's async LM path (a list of
  steps runs concurrently there).
- **Answers checked and retried inside the program.** Each step's answer passes its check;
  an answer DSPy cannot parse, or one the check refuses
  (:class:`~personae.errors.ContentError`), is asked again on a fresh rollout of the LM
  (``lm.copy(rollout_id=k)`` at a temperature of at least 1, as ``dspy.Refine`` and
  ``dspy.BestOfN`` do), up to ``attempts`` times. Only when every attempt failed does the call
  raise: a ``ContentError`` whose ``tried`` says why each answer was refused
  (:class:`~personae.errors.AnswerParseError` when none parsed, DSPy's parse error as its
  cause); with ``attempts=1`` (how the run layer, which retries whole items, runs programs)
  the one answer's error is raised as it came. Failed calls to the model itself (timeouts,
  rate limits) are the LM's to retry (its ``num_retries``) and propagate at once as DSPy's LM
  errors.
- **Settings saved with the state.** Attributes declared as :class:`Setting` (the persona,
  the sides, the attempts) live in a :class:`Settings` parameter that ``save``/``load`` (and
  ``dump_state``/``load_state``, ``dspy.load``) carry beside DSPy's predictor state, also when
  the program is nested in another: a reloaded program is the program that was saved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dspy
from dspy.predict.parameter import Parameter

from personae.data import current_fields
from personae.errors import AnswerParseError, ConfigError, ContentError, DataError

__all__ = ["Ask", "Program", "Setting", "Settings", "Steps", "refuse_unknown", "require_text"]


@dataclass(frozen=True)
class Ask:
    """One call a program's steps want made: ``predictor(**inputs)``, whose answer passes
    ``check`` (it returns the value to send back, or raises ContentError) before the steps see it.

    ``retry`` names the failure kinds asked again on a fresh rollout (by default unusable
    answers; ``None`` for every kind the run layer retries, model failures included). With
    ``outcome``, the steps receive the :class:`~personae.runs.Outcome` itself, failed or not,
    instead of a value or an exception.
    """

    predictor: dspy.Module
    inputs: dict[str, Any]
    check: Callable[[dspy.Prediction], Any] | None = field(default=None, compare=False)
    retry: frozenset[str] | None = frozenset({"parse", "content"})
    outcome: bool = False

    def checked(self, pred: dspy.Prediction) -> Any:
        """``pred`` through the check."""
        return self.check(pred) if self.check is not None else pred


Steps = Generator["Ask | list[Ask]", Any, Any]
"""A program's body: yields steps (or lists of steps), receives their checked answers, returns
the program's result."""


_RENAMED = {"context": "prompt", "first_response": "response_a", "second_response": "response_b",
            "preferred_response": "chosen", "other_response": "rejected"}


def refuse_unknown(program: str, takes: list[str], given: dict[str, Any]) -> None:
    """Raise :class:`~personae.errors.DataError` naming the inputs in ``given`` that the program
    does not take (with today's name of a field an earlier version called otherwise)."""
    unknown = sorted(set(given) - set(takes))
    if unknown:
        hint = "; ".join(f"{k} is now {_RENAMED[k]}" for k in unknown if k in _RENAMED)
        message = f"{program} takes {', '.join(takes)}, not {', '.join(unknown)}" + (f" ({hint})" if hint else "")
        raise DataError(message, source=f"{program} input", field=unknown[0])


def require_text(program: str, **fields: Any) -> None:
    """Raise :class:`~personae.errors.DataError` naming the first field that is not a non-empty string."""
    for name, value in fields.items():
        if not isinstance(value, str):
            got = "nothing" if value is None else f"a {type(value).__name__}"
            raise DataError(f"expected text, got {got}", source=f"{program} input", field=name)
        if not value.strip():
            raise DataError("empty text", source=f"{program} input", field=name)


class Settings(Parameter):
    """A program's own settings (persona, sides, attempts) as a DSPy parameter.

    DSPy saves and loads the state of every parameter it finds in a module, however deeply
    nested, so a program that nests a personae program keeps that program's settings too.
    Optimizers tune predictors only and leave it alone.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def dump_state(self, json_mode: bool = True) -> dict[str, Any]:
        """The settings as JSON values."""
        return dict(self.values)

    def load_state(self, state: dict[str, Any]) -> Settings:
        """Take the saved settings (each is checked when the program reads it)."""
        self.values.update(state)
        return self

    def reset(self) -> None:
        """Nothing to reset: settings are not learned."""


class Setting:
    """A program attribute kept in its :class:`Settings` (saved and loaded with the state).

    ``clean`` checks and normalises a value; it runs when the attribute is set and when it is
    read, so a value that came from a saved file is checked before it is used. ``digest=False``
    marks a setting that changes no answer (how often to retry, what a fit cost): the digest
    that tells whether results came from the same program leaves it out.
    """

    def __init__(self, clean: Callable[[Any], Any] | None = None, *, digest: bool = True) -> None:
        self.clean = clean
        self.digest = digest
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, program: Any, owner: type | None = None) -> Any:
        if program is None:
            return self
        raw = program.program_settings.values.get(self.name)
        return self.clean(raw) if self.clean is not None and raw is not None else raw

    def __set__(self, program: Any, value: Any) -> None:
        cleaned = self.clean(value) if self.clean is not None and value is not None else value
        program.program_settings.values[self.name] = list(cleaned) if isinstance(cleaned, tuple) else cleaned


def _attempts(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"attempts must be a whole number of at least 1, got {value!r}")
    return value


class Program(dspy.Module):
    """Base of personae's DSPy modules (see the module docstring).

    Args:
        attempts: How many answers a step may ask for before the call raises (fresh rollouts
            after the first); at least 1.
    """

    attempts = Setting(_attempts, digest=False)

    def __init__(self, *, attempts: int = 3) -> None:
        super().__init__()
        self.program_settings = Settings()
        self.program_settings.values["program"] = type(self).__name__  # what the saved state belongs to
        self.attempts = attempts

    @classmethod
    def undigested(cls) -> set[str]:
        """The settings that change no answer (left out of :func:`~personae.programs.program_digest`)."""
        return {name for klass in cls.__mro__ for name, value in vars(klass).items()
                if isinstance(value, Setting) and not value.digest}

    def with_attempts(self, attempts: int) -> Any:
        """A copy of this program that asks ``attempts`` times per step. The run layer retries
        whole items itself (and counts every attempt), so it runs programs with ``attempts=1``."""
        if attempts == self.attempts:
            return self
        copy = self.deepcopy()
        copy.attempts = attempts
        return copy

    # -- state ---------------------------------------------------------------------------
    def load(self, path: Any, allow_pickle: bool = False, allow_unsafe_lm_state: bool = False) -> Any:
        """DSPy's ``load`` (the state saved at ``path`` into this program), returning the program."""
        super().load(path, allow_pickle=allow_pickle, allow_unsafe_lm_state=allow_unsafe_lm_state)
        return self

    def load_state(self, state: dict[str, Any], **kwargs: Any) -> None:
        """DSPy's ``load_state``, for states of earlier versions too: a state saved before
        settings were kept keeps the current ones; demonstrations written with earlier field
        names are read in today's, and so are the fields' descriptions (the saved instructions
        and demonstrations stay)."""
        state = dict(state)
        saved = state.get("program_settings")
        program = saved.get("program") if isinstance(saved, dict) else None
        if program is not None and program != type(self).__name__:
            raise DataError(f"the state of a {program}, not of a {type(self).__name__}: load it into a {program}",
                            source="load_state")
        for name, param in self.named_parameters():
            if isinstance(param, Settings) and name not in state:
                state[name] = param.dump_state()
            elif isinstance(param, dspy.Predict):
                if not isinstance(state.get(name), dict):
                    raise DataError(f"not the state of a {type(self).__name__} (it has no {name!r} predictor)",
                                    source="load_state")
                state[name] = _current_predictor(state[name], param)
        super().load_state(state, **kwargs)

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "program_settings" not in state:
            raise DataError(f"a {type(self).__name__} pickled by an earlier version of personae, whose fields had "
                            "other names; load its JSON state instead (program.load(path)), or save it again",
                            source="dspy.load")
        super().__setstate__(state)

    # -- running the steps ---------------------------------------------------------------
    def run(self, steps: Steps) -> Any:
        """Make the steps' calls in this thread (``forward``)."""
        try:
            ask = next(steps)
            while True:
                answer = [self._ask(a) for a in ask] if isinstance(ask, list) else self._ask(ask)
                ask = steps.send(answer)
        except StopIteration as stop:
            return stop.value

    async def arun(self, steps: Steps) -> Any:
        """Await the steps' calls on DSPy's async LM path (``aforward``); a list of steps runs at once."""
        try:
            ask = next(steps)
            while True:
                if isinstance(ask, list):
                    answer: Any = await _all(self._aask(a) for a in ask)
                else:
                    answer = await self._aask(ask)
                ask = steps.send(answer)
        except StopIteration as stop:
            return stop.value

    def _policy(self) -> Any:
        from personae.runs import RetryPolicy

        return RetryPolicy(max_attempts=self.attempts, rollout_offset=PROGRAM_ROLLOUTS)

    def _ask(self, ask: Ask) -> Any:
        own = _own_lm(ask.predictor)

        def once() -> Any:
            with _kept_if_checked() as keep:
                return keep(ask.checked(ask.predictor(**ask.inputs, **({"lm": dspy.settings.lm} if own else {}))))

        return self._settle(ask, self._policy().attempt(once, lm=own, retry=ask.retry))

    async def _aask(self, ask: Ask) -> Any:
        own = _own_lm(ask.predictor)

        async def once() -> Any:
            with _kept_if_checked() as keep:
                pred = await ask.predictor.acall(**ask.inputs, **({"lm": dspy.settings.lm} if own else {}))
                return keep(ask.checked(pred))

        return self._settle(ask, await self._policy().aattempt(once, lm=own, retry=ask.retry))

    def _settle(self, ask: Ask, outcome: Any) -> Any:
        """The step's answer, the outcome itself for a step that takes failures, or the failure raised."""
        if ask.outcome or outcome.error is None:
            return outcome if ask.outcome else outcome.value
        last = outcome.last_exception
        if last is not None and (outcome.kind not in ("parse", "content") or outcome.attempts == 1):
            raise last  # the model failed, or one attempt was all there was: the error as it came
        parsed = any(t.startswith("content:") for t in outcome.tried)  # some answer parsed, then was refused
        cls = type(last) if isinstance(last, ContentError) else ContentError if parsed else AnswerParseError
        error = cls.__new__(cls)
        ContentError.__init__(error, f"{type(self).__name__}: no usable answer in {outcome.attempts} attempt"
                                     f"{'s' if outcome.attempts != 1 else ''}; the last: {outcome.error}",
                              tried=outcome.tried)
        raise error from last


PROGRAM_ROLLOUTS = 10_000
"""Where a program's own retries number their rollouts (see ``RetryPolicy.rollout_offset``)."""


@contextmanager
def _kept_if_checked() -> Iterator[Callable[[Any], Any]]:
    """Record an attempt's predictor calls in DSPy's trace (what optimizers bootstrap demos
    from) only once its answer passed the check: a refused answer never becomes a demo."""
    outer = dspy.settings.trace
    if outer is None:
        yield lambda value: value
        return
    mine: list[Any] = []

    def keep(value: Any) -> Any:
        outer.extend(mine)
        return value

    with dspy.context(trace=mine):
        yield keep


async def _all(calls: Iterable[Coroutine[Any, Any, Any]]) -> list[Any]:
    """The calls' answers, run at once; when one fails, the others are cancelled and it raises."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()


def _own_lm(predictor: dspy.Module) -> dspy.BaseLM | None:
    """The LM a predictor was given with ``set_lm`` (it wins over the configured one), if any."""
    return next((p.lm for _, p in predictor.named_predictors() if p.lm is not None), None)


_EARLIER_PREFIXES = {"Context:", "First Response:", "Second Response:", "Preferred Response:", "Other Response:"}


def _current_predictor(state: dict[str, Any], predictor: dspy.Predict) -> dict[str, Any]:
    """A predictor's saved state in today's field names: its demonstrations renamed, and the
    fields' prefixes and descriptions of an earlier version's signature replaced by today's."""
    state = dict(state)
    if isinstance(state.get("demos"), list):
        state["demos"] = [current_fields(d) if isinstance(d, dict) else d for d in state["demos"]]
    signature = state.get("signature")
    if not isinstance(signature, dict):
        return state
    fields = signature.get("fields")
    if isinstance(fields, list) and any(isinstance(f, dict) and f.get("prefix") in _EARLIER_PREFIXES for f in fields):
        state["signature"] = {**signature, "fields": predictor.dump_state()["signature"]["fields"]}
    return state


