"""Turning a model string into a ``dspy.LM``.

``"local"`` (the default) is the embedded SmolLM2 model, run in-process and offline. Any
other string is a LiteLLM-style model name (``"openai/gpt-4o-mini"``, ``"ollama_chat/llama3.1"``,
``"openai/<name>"`` with ``api_base`` for an OpenAI-compatible server such as vLLM or
llama.cpp). Which engine reaches it (``engine=``):

* ``"http"``: personae's own :class:`~personae.lm.HTTPEngine`, a pooled httpx client for
  OpenAI-compatible servers, a third of LiteLLM's client CPU per call;
* ``"litellm"``: LiteLLM, which knows every hosted provider's own API;
* ``"lm15"``: DSPy's native engine;
* ``"auto"`` (default): ``http`` for ``openai/<name>`` with an ``api_base``, LiteLLM otherwise.

LiteLLM is imported on its first call, never when personae is imported.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import dspy

from personae.errors import ConfigError
from personae.lm._adapter import MAX_STRING_CHARS_ATTR, JSONAdapter
from personae.lm._local import LOCAL_MODEL_NAME, AsyncLlamaCppEngine, LlamaCppEngine
from personae.specs import DEFAULT_MODEL, ENGINES, is_local

__all__ = ["DEFAULT_MODEL", "ENGINES", "default_adapter", "engine_for", "get_lm", "is_local"]

_local_engines: dict[tuple[str | None, int], LlamaCppEngine] = {}
_async_local_engines: dict[LlamaCppEngine, AsyncLlamaCppEngine] = {}
_local_lock = threading.Lock()


def _local_engine(path: str | None, n_ctx: int) -> LlamaCppEngine:
    # One loaded model per process and file: every LM built for "local" shares it.
    with _local_lock:
        key = (path, n_ctx)
        if key not in _local_engines:
            _local_engines[key] = LlamaCppEngine(path, n_ctx=n_ctx)
        return _local_engines[key]


def _async_local_engine(engine: LlamaCppEngine) -> AsyncLlamaCppEngine:
    # One asynchronous counterpart per loaded model: its worker thread is the model's.
    with _local_lock:
        if engine not in _async_local_engines:
            _async_local_engines[engine] = AsyncLlamaCppEngine(engine)
        return _async_local_engines[engine]


def get_lm(
    model: str = DEFAULT_MODEL,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    cache: bool = True,
    num_retries: int = 3,
    timeout: float | None = None,
    structured_output: bool = False,
    max_string_chars: int | None = None,
    engine: str = "auto",
    **kwargs: Any,
) -> dspy.LM:
    """Build the LM for ``model``.

    Args:
        model: ``"local"`` for the embedded model, ``"local:/path/model.gguf"`` for another
            GGUF file run the same way, or any LiteLLM model string.
        api_base: Base URL of an OpenAI-compatible server (e.g. ``http://127.0.0.1:8000/v1``).
        api_key: Key for that server or provider; otherwise LiteLLM reads the provider's
            usual environment variable.
        temperature: Sampling temperature; 0 by default so runs repeat. Retries draw fresh
            samples with ``lm.copy(rollout_id=..., temperature=...)``, never by changing this.
        max_tokens: Completion cap (default 512 for the local model, 1024 otherwise). For the
            embedded model, free-text fields are capped so that an answer always closes within it.
        cache: Use DSPy's request cache (set ``DSPY_CACHEDIR`` to choose its folder).
        num_retries: Retries of transient failures (rate limits, timeouts, 5xx) inside DSPy.
        timeout: Seconds before a remote call is abandoned.
        structured_output: The remote server honours JSON-schema response formats (vLLM,
            llama.cpp and recent hosted models do): typed outputs are then sent as a schema,
            not as free JSON. Tells LiteLLM so for this model name.
        max_string_chars: With ``structured_output``, the most characters of any free-text
            output field, sent as the schema's ``maxLength`` by personae's adapter (a small
            model then closes its JSON instead of running into ``max_tokens``). The embedded
            model caps its fields at 600 characters unless this says otherwise.
        engine: ``"auto"``, ``"http"``, ``"litellm"`` or ``"lm15"`` for a remote model (see the
            module's notes); the embedded model has its own.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigError("model must be a non-empty string such as 'local' or 'openai/gpt-4o-mini'")
    model = model.strip()
    if is_local(model):
        if api_base or api_key:
            raise ConfigError("api_base and api_key apply to remote models, not to the embedded 'local' model")
        path = model.split(":", 1)[1] if model.startswith("local:") else None
        if path is not None and not os.path.exists(path):
            raise ConfigError(f"no GGUF file at {path}")
        local_engine = _local_engine(path, int(kwargs.pop("n_ctx", 8192)))
        name = LOCAL_MODEL_NAME if path is None else f"local/{os.path.basename(path)}"
        lm = dspy.LM(name, engine=local_engine, async_engine=_async_local_engine(local_engine),
                     temperature=temperature, max_tokens=max_tokens or 512,
                     cache=cache, num_retries=num_retries, **kwargs)
        if max_string_chars is not None:
            if max_string_chars < 1:
                raise ConfigError("max_string_chars must be a positive number")
            setattr(lm, MAX_STRING_CHARS_ATTR, max_string_chars)
        return lm
    if "/" not in model:
        raise ConfigError(
            f"model {model!r}: use 'local' or a LiteLLM name with its provider, e.g. 'openai/{model}'"
        )
    if max_string_chars is not None and (not structured_output or max_string_chars < 1):
        raise ConfigError("max_string_chars needs structured_output=True and a positive number")
    chosen = engine_for(model, api_base, engine)
    if chosen == "http":
        from personae.lm._http import DEFAULT_OPENAI_BASE, AsyncHTTPEngine, HTTPEngine

        http = HTTPEngine(api_base or DEFAULT_OPENAI_BASE, model.split("/", 1)[1],
                          api_key=api_key,
                          timeout=timeout, structured_output=structured_output)
        lm = dspy.LM(model, engine=http, async_engine=AsyncHTTPEngine(http), temperature=temperature,
                     max_tokens=max_tokens or 1024, cache=cache, num_retries=num_retries, **kwargs)
        if max_string_chars is not None:
            setattr(lm, MAX_STRING_CHARS_ATTR, max_string_chars)
        return lm
    client: dict[str, Any] = {}
    if api_base:
        client["api_base"] = api_base
    if api_key:
        client["api_key"] = api_key
    if timeout is not None:
        client["timeout"] = timeout
    if structured_output:
        _declare_response_schema(model)
    if api_base and not api_key and model.startswith("openai/"):
        client["api_key"] = os.environ.get("OPENAI_API_KEY", "not-needed")  # local servers ignore it
    lm = dspy.LM(model, engine=chosen, temperature=temperature, max_tokens=max_tokens or 1024,
                 cache=cache, num_retries=num_retries, **client, **kwargs)
    if max_string_chars is not None:
        setattr(lm, MAX_STRING_CHARS_ATTR, max_string_chars)  # read by personae.lm.JSONAdapter
    return lm


def engine_for(model: str, api_base: str | None, engine: str = "auto") -> str:
    """The engine ``get_lm`` uses for a remote ``model``: ``http``, ``litellm`` or ``lm15``."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        return "http" if api_base and model.startswith("openai/") else "litellm"
    if engine == "http" and not (api_base or model.startswith("openai/")):
        raise ConfigError(f"engine 'http' speaks the OpenAI chat API: give api_base for {model!r}, "
                          "or use engine 'litellm'")
    return engine


def _declare_response_schema(model: str) -> None:
    import logging

    from dspy.clients._litellm import get_litellm

    litellm = get_litellm(feature="personae structured output")
    provider = model.split("/", 1)[0]
    previous = logging.getLogger("LiteLLM").level
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)  # it warns about pricing we do not track
    try:
        litellm.register_model({model: {"litellm_provider": provider, "mode": "chat", "supports_response_schema": True,
                                        "input_cost_per_token": 0.0, "output_cost_per_token": 0.0}})
    finally:
        logging.getLogger("LiteLLM").setLevel(previous)


def default_adapter() -> dspy.Adapter:
    """The adapter personae uses unless the caller configured one: JSON output.

    With a model that accepts a response schema (the embedded engine turns it into a
    llama.cpp grammar) every typed field parses; other models get JSON mode.
    """
    return JSONAdapter()
