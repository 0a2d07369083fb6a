"""A scripted LM for testing pipelines without a model.

:class:`ScriptedLM` is a real ``dspy.LM`` whose engine answers from a script instead of a
model, so everything around the call (adapters, caching rules, retries, usage tracking,
personae's cost meter and failure bookkeeping) runs exactly as in production::

    from personae.lm import ScriptedLM

    lm = ScriptedLM(lambda call: {"reasoning": "shorter", "preferred": "A"})
    lm = ScriptedLM([{"persona": "a"}, {"persona": "b"}])        # answers in turn
    lm = ScriptedLM(lambda call: "not json")                       # an unparseable answer
    lm = ScriptedLM(lambda call: RateLimitError("slow down"))      # a failing call

A script entry is a ``dict`` of output fields, written in the layout the active adapter
parses (``[[ ## field ## ]]`` sections under DSPy's default ``ChatAdapter``, tags under
``XMLAdapter``, a JSON object under ``JSONAdapter``), as DSPy's own ``DummyLM`` does; a ``str``
is sent verbatim and an exception is raised by the engine. A callable script receives a
:class:`ScriptedCall` describing the request. The LM has a synchronous and an asynchronous
engine, so ``acall``, ``dspy.streamify`` and ``asyncio.gather`` work as they do on a real model.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union

import dspy

__all__ = ["AsyncScriptedEngine", "ScriptedCall", "ScriptedEngine", "ScriptedLM"]

Answer = Union[Mapping[str, Any], str, BaseException]  # noqa: UP007 (a runtime alias on Python 3.10)
Script = Union[Callable[["ScriptedCall"], Answer], Iterable[Answer]]  # noqa: UP007

# DSPy renders each input as "[[ ## name ## ]]\nvalue"; after the last one come its output instructions.
_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## \w+ ## \]\]|\n\nRespond with |\Z)", re.DOTALL)


@dataclass(frozen=True)
class ScriptedCall:
    """What the scripted model was asked: the system prompt, the chat and the request config."""

    system: str
    messages: tuple[dict[str, str], ...]
    config: Any
    index: int

    @property
    def user(self) -> str:
        """The text of the last user message."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")

    @property
    def text(self) -> str:
        """System prompt and every message, joined: handy for substring checks."""
        return "\n".join([self.system, *(m["content"] for m in self.messages)])

    def field(self, name: str) -> str | None:
        """The value of input field ``name`` in the last user message, as DSPy rendered it
        (``[[ ## name ## ]]`` sections, or ``<name>`` tags under ``XMLAdapter``); None when absent."""
        for key, value in _FIELD.findall(self.user):
            if key == name:
                return str(value).strip()
        tagged = re.search(rf"<{re.escape(name)}>\n(.*?)\n</{re.escape(name)}>", self.user, re.DOTALL)
        return tagged.group(1).strip() if tagged else None


class ScriptedEngine:
    """A DSPy engine that answers from a script. Thread-safe."""

    supports_response_schema = True
    supported_params = frozenset({"temperature", "max_tokens", "response_format", "seed", "stop"})

    def __init__(self, script: Script) -> None:
        self._responder: Callable[[ScriptedCall], Answer] | None
        if callable(script):
            self._responder, self._answers = script, None
        else:
            self._responder, self._answers = None, iter(list(script))
        self._lock = threading.Lock()
        self._count = itertools.count()
        self.calls: list[ScriptedCall] = []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_lock"]  # a copy in another process answers from its own copy of the script
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def complete(self, request: Any) -> Any:
        """Answer one ``dspy.lm15.Request`` with the script's next answer (or the responder's answer to
        the :class:`ScriptedCall`, which is kept in ``calls``); an exception in the script is raised."""
        from dspy.lm15 import Message, Response, TextPart, Usage

        system = ""
        if request.system is not None:
            system = request.system if isinstance(request.system, str) else "".join(
                getattr(p, "text", "") for p in request.system
            )
        call = ScriptedCall(
            system=system,
            messages=tuple({"role": m.role, "content": m.text or ""} for m in request.messages),
            config=request.config,
            index=next(self._count),
        )
        with self._lock:
            self.calls.append(call)
            if self._responder is not None:
                answer = self._responder(call)
            else:
                answer = next(self._answers, RuntimeError("the script has no more answers"))  # type: ignore[arg-type]
        if isinstance(answer, BaseException):
            raise answer
        text = answer if isinstance(answer, str) else _render(dict(answer), system, request)
        return Response(
            id=f"scripted-{call.index}",
            model="scripted",
            message=Message.assistant([TextPart(text)]),
            finish_reason="stop",
            usage=Usage(
                input_tokens=len(call.text.split()),
                output_tokens=len(text.split()),
                total_tokens=len(call.text.split()) + len(text.split()),
            ),
        )

    def stream(self, request: Any) -> Any:
        """The response of :meth:`complete`, as stream events."""
        from personae.lm._events import piecewise_events

        return piecewise_events(self.complete(request))

    def close(self) -> None:
        """Nothing to release."""
        pass


def _render(values: dict[str, Any], system: str, request: Any) -> str:
    """A dict answer in the layout the request's adapter will parse (JSON when none is recognised)."""
    from personae.lm._formats import requested_layout

    layout = requested_layout(system, json_schema=bool(request.config.response_format))
    return layout.render(values) if layout is not None else json.dumps(values, ensure_ascii=False)


class AsyncScriptedEngine:
    """The asynchronous counterpart of a :class:`ScriptedEngine`: the same script and call log,
    answered without a thread (a script is a function or a list, never a wait)."""

    def __init__(self, engine: ScriptedEngine) -> None:
        self.engine = engine

    async def complete(self, request: Any) -> Any:
        return self.engine.complete(request)

    async def stream(self, request: Any) -> Any:
        for event in self.engine.stream(request):
            yield event

    async def aclose(self) -> None:
        pass


class ScriptedLM(dspy.LM):
    """A ``dspy.LM`` answering from a script; no network, no model, no cache by default.

    ``script`` is a list of answers (given in turn) or a function of the request, called with a
    :class:`ScriptedCall` (its ``system`` prompt, ``messages``, ``user`` text, ``field(name)`` for
    an input field's value, ``config``). An answer is a dict of output fields, written in the
    layout the active adapter parses (``[[ ## field ## ]]`` sections under DSPy's default
    ``ChatAdapter``, tags under ``XMLAdapter``, a JSON object under ``JSONAdapter``); a ``str``,
    sent verbatim; or an exception, raised as the call's failure. ``calls`` lists every request
    that reached it (cache hits do not). It works synchronously, awaited (``acall``) and streamed.

    Example::

        lm = ScriptedLM(lambda call: {"reasoning": "shorter", "preferred": "A"})
        with dspy.context(lm=lm):
            PersonaJudge("Likes brevity.")(prompt="q", response_a="Yes.", response_b="Well...")
        lm.calls[0].field("persona")   # "Likes brevity."
    """

    def __init__(self, script: Script, *, model: str = "scripted/fake", cache: bool = False,
                 num_retries: int = 0, **kwargs: Any) -> None:
        self.scripted_engine = ScriptedEngine(script)
        super().__init__(model, engine=self.scripted_engine, async_engine=AsyncScriptedEngine(self.scripted_engine),
                         cache=cache, num_retries=num_retries, **kwargs)

    @property
    def calls(self) -> list[ScriptedCall]:
        """Every request the engine received, in order (cache hits never reach it)."""
        return self.scripted_engine.calls
