"""Settings as plain data: which model (:class:`LMSpec`) and how to run a task (:class:`RunSpec`).

Every long command's model and run options are these fields, declared once with their help
text: the command line builds its options from them (:func:`personae.cli.options.add_config_options`),
:func:`personae.runs.run` takes a :class:`RunSpec`, and a run log keeps both (the key left out).
This module imports neither DSPy nor LiteLLM, so the command line reads it before they load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from personae.errors import ConfigError

__all__ = ["DEFAULT_MODEL", "ENGINES", "LOCAL_ALIASES", "LMSpec", "RunSpec", "is_local"]

DEFAULT_MODEL = "local"
"""The embedded SmolLM2 model, run in-process and offline."""
ENGINES = ("auto", "http", "litellm", "lm15")
"""What reaches a remote model (see :func:`personae.lm.get_lm`)."""
LOCAL_ALIASES = frozenset({"local", "smollm2", "local/smollm2-135m-instruct"})
"""The names of the embedded model (``local:PATH`` names a GGUF file of one's own)."""


def is_local(model: str) -> bool:
    """Whether ``model`` names the embedded llama.cpp model: ``local``, ``smollm2``,
    ``local/smollm2-135m-instruct`` or ``local:<path to a GGUF file>``."""
    return model in LOCAL_ALIASES or model.startswith("local:")


@dataclass
class LMSpec:
    """Which model to call and how: the model options of every command, as one value.

    ``build()`` makes the ``dspy.LM`` (:func:`personae.lm.get_lm`); ``described()`` is the spec
    without its key, for logs. The key is never in ``repr``.
    """

    model: str | None = field(default=DEFAULT_MODEL, metadata={
        "help": "'local' (embedded SmolLM2-135M, offline) or a LiteLLM model string such as openai/gpt-4o-mini"})
    api_base: str | None = field(default=None, metadata={
        "help": "base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"})
    api_key: str | None = field(default=None, repr=False, metadata={
        "help": "API key (default: the provider's usual environment variable)", "shown": False})
    structured_output: bool = field(default=False, metadata={
        "help": "the server honours JSON-schema response formats (vLLM, llama.cpp, ...)"})
    max_field_chars: int | None = field(default=None, metadata={
        "help": "with --structured-output, cap each free-text output field at this many characters in the JSON "
                "schema (keeps a small model's JSON short enough to close)"})
    engine: str = field(default="auto", metadata={
        "choices": tuple(ENGINES),
        "help": "what reaches a remote model: http (personae's lean client for OpenAI-compatible servers), "
                "litellm (every hosted provider), lm15 (DSPy's own); auto: http for openai/NAME with --api-base, "
                "litellm otherwise"})
    temperature: float = field(default=0.0, metadata={"help": "sampling temperature"})
    max_tokens: int | None = field(default=None, metadata={"help": "completion token cap per call"})
    lm_retries: int = field(default=3, metadata={
        "help": "retries of transient LM errors (rate limits, timeouts, 5xx) with backoff"})
    timeout: float | None = field(default=None, metadata={
        "help": "seconds before a call to a remote model is abandoned (then retried as a failure; "
                "default: the provider library's)"})
    cache: bool = field(default=True, metadata={
        "help": "read and write DSPy's request cache (folder: --cache-dir)"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "DSPy request cache folder (default: $DSPY_CACHEDIR or ~/.cache/personae/dspy)"})

    @property
    def local(self) -> bool:
        """Whether this is the embedded model (one call at a time suits it)."""
        return self.model is not None and is_local(self.model)

    def build(self, **overrides: Any) -> Any:
        """The ``dspy.LM`` this describes (``overrides`` replace fields first, e.g. ``model=``)."""
        from personae.lm import get_lm

        spec = replace(self, **overrides) if overrides else self
        if not spec.model:
            raise ConfigError("no model: give --model")
        return get_lm(spec.model, api_base=spec.api_base, api_key=spec.api_key, temperature=spec.temperature,
                      max_tokens=spec.max_tokens, cache=spec.cache, num_retries=spec.lm_retries, timeout=spec.timeout,
                      max_string_chars=spec.max_field_chars, engine=spec.engine,
                      structured_output=spec.structured_output)

    def described(self) -> dict[str, Any]:
        """The fields as JSON values, the key left out: what a run log may keep."""
        return {k: v for k, v in asdict(self).items() if k != "api_key"}


@dataclass
class RunSpec:
    """How to run a task: the same options for every long command, declared once.

    ``lm`` describes the model (None: the LM passed to :func:`run`, else ``dspy.settings.lm``).
    ``out`` is where the task keeps its ledger and run log (None: nowhere, nothing resumes).
    """

    lm: LMSpec | None = field(default=None, metadata={"group": "model"})
    concurrency: int | None = field(default=None, metadata={
        "help": "parallel LM calls (default: 1 for the local model or an LM given in Python, 8 otherwise)"})
    max_attempts: int = field(default=3, metadata={"help": "tries per item before it is recorded as failed"})
    executor: str = field(default="thread", metadata={
        "choices": ("thread", "ray"), "help": "run the items on threads of this process or on Ray workers"})
    ray_address: str | None = field(default=None, metadata={
        "help": "the Ray cluster to join (auto, HOST:6379 or ray://HOST:10001; default: a local Ray started for "
                "the run)"})
    workers: int | None = field(default=None, metadata={
        "help": "Ray worker processes (default: one per CPU of the cluster); --concurrency is shared among them"})
    out: str | None = field(default=None, metadata={"help": "where the run keeps its ledger and run log"})
    fresh: bool = field(default=False, metadata={
        "help": "discard what an earlier run left in the output instead of reusing it"})
    seed: int = field(default=0, metadata={"help": "seed of the bootstrap intervals"})
    confidence: float = field(default=0.95, metadata={"help": "confidence of the bootstrap intervals"})
    resamples: int = field(default=2000, metadata={"help": "bootstrap resamples"})

    def resolved_concurrency(self) -> int:
        """``concurrency``, or its default: 8 for a remote model the spec names, else 1."""
        if self.concurrency is not None:
            return self.concurrency
        return 8 if self.lm is not None and self.lm.model and not self.lm.local else 1

    def check(self) -> None:
        """ConfigError for settings no run can use."""
        if self.resolved_concurrency() < 1 or self.max_attempts < 1:
            raise ConfigError("concurrency and max_attempts must be at least 1")
        if not 0 < self.confidence < 1 or self.resamples < 1:
            raise ConfigError("confidence must lie between 0 and 1 and resamples be at least 1")
