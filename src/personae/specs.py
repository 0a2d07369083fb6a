"""Settings as plain data: which model (:class:`LMSpec`) and how to run a task (:class:`RunSpec`).

Every long command's model and run options are these fields, declared once with their help
text: the command line builds its options from them (:func:`personae.cli.options.add_config_options`),
:func:`personae.runs.run` takes a :class:`RunSpec`, and a run log keeps both (the key left out).
This module imports neither DSPy nor LiteLLM, so the command line reads it before they load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from personae.distill import RUNTIMES
from personae.errors import ConfigError

__all__ = ["DEFAULT_MODEL", "ENGINES", "LOCAL_ALIASES", "DataSpec", "DemoOptions", "EvalPersonasOptions",
           "EvaluateOptions", "FitOptions", "InferOptions", "InferenceProgramSpec", "JudgeModelSpec", "JudgeOptions",
           "LMSpec", "McpOptions", "OptimizeInferenceOptions", "OptimizePersonaOptions", "RetrieveOptions", "RunSpec",
           "SaliencyOptions", "ServeApiOptions", "ServeOptions", "ServiceSettings", "StoreAdminOptions",
           "StoreConsoleOptions", "StoreVerbArgs", "TokenOptions", "ViewOptions", "is_local"]

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


# -- what each command reads and writes ------------------------------------------------------------
# The options of each command beside its model and run options. The command line is built from
# these fields (``personae.cli.options.add_config_options``) and gives them back as the dataclass.

@dataclass
class DataSpec:
    """Which preference data to read, and how (``personae.data.load_preferences``)."""

    data: str = field(default="", metadata={
        "positional": True, "help": "preference data: .jsonl(.gz), .json, .csv, .parquet, a datasets folder or hub id"})
    columns: str | None = field(default=None, metadata={
        "help": "column mapping, e.g. prompt=question,chosen=good,rejected=bad"})
    split: str | None = field(default=None, metadata={"help": "split of a datasets source to read"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N valid records"})
    skip_invalid: bool = field(default=False, metadata={
        "help": "skip malformed records (reported with their reasons) instead of stopping"})


_JUDGE_GROUP = "judge model (default: the --model options)"


@dataclass
class JudgeModelSpec:
    """A second model for judging (default: the ``--model`` options)."""

    judge_model: str | None = field(default=None, metadata={
        "group": _JUDGE_GROUP, "help": "LiteLLM model string or 'local' for the judge"})
    judge_api_base: str | None = field(default=None, metadata={
        "group": _JUDGE_GROUP, "help": "base URL of the judge's OpenAI-compatible server"})
    judge_api_key: str | None = field(default=None, repr=False, metadata={
        "group": _JUDGE_GROUP, "help": "API key of the judge's server"})


@dataclass
class InferenceProgramSpec:
    """Which persona-inference program to run."""

    program: str | None = field(default=None, metadata={
        "group": "persona inference program",
        "help": "a compiled persona-inference program saved as DSPy JSON (personae optimize-persona-inference) "
                "instead of the shipped one"})
    demos: str | None = field(default=None, metadata={
        "group": "persona inference program",
        "help": "jsonl of the domain's own few-shot examples, replacing the program's: rows of prompt/chosen/rejected "
                "with the chosen side's persona in persona (or chosen_persona, chosen_persona_gold)"})


@dataclass
class InferOptions:
    """``personae infer-personas``."""

    out: str = field(default="", metadata={
        "required": True,
        "help": "output: a .jsonl, .jsonl.gz, .json, .csv or .parquet file, or a name without suffix for a datasets "
                "folder (Dataset.save_to_disk); per-record results are kept in OUT.progress.jsonl, which later runs "
                "(also over more records) build on; for sharded input, a folder or fsspec URL (s3://bucket/path)"})
    fresh: bool = field(default=False, metadata={
        "help": "discard the results an earlier run left in OUT.progress.jsonl and infer every record"})
    shard_size: int | None = field(default=None, metadata={
        "help": "with --executor ray: read DATA (a datasets folder, a .jsonl/.parquet file or a hub id) through Ray "
                "Data in shards of this many rows, written and resumed as a folder of shards is"})
    batch_size: int | None = field(default=None, metadata={
        "help": "sharded input: rows per Ray Data batch (default: four times each worker's share of --concurrency)"})


@dataclass
class JudgeOptions:
    """``personae judge``."""

    persona: str | None = field(default=None, metadata={
        "exclusive": "who", "help": "a persona text used for every pair"})
    persona_column: str | None = field(default=None, metadata={
        "exclusive": "who", "help": "a column holding each record's persona (e.g. chosen_persona)"})
    profile: bool = field(default=False, metadata={
        "exclusive": "who", "help": "use each record's user profile (demographics)"})
    one_order: bool = field(default=False, metadata={"help": "judge only with the chosen response first"})
    out: str | None = field(default=None, metadata={
        "help": "write every judgment to this .jsonl file, with its run log in OUT.run.json; judgments are kept in "
                "OUT.progress.jsonl as they are made, and the same command resumes from there"})
    fresh: bool = field(default=False, metadata={
        "help": "discard the judgments an earlier run left in OUT.progress.jsonl"})


@dataclass
class FitOptions:
    """``personae fit``."""

    out: str = field(default="", metadata={"required": True, "help": "folder for the fitted judges"})
    preset: str = field(default="default", metadata={
        "choices": ("default", "paper"), "help": "default (cheap) or paper (the reference settings)"})
    settings: list[str] = field(default_factory=list, metadata={
        "flag": "--set", "metavar": "KEY=VALUE",
        "help": "change one setting of the preset, e.g. --set candidates=4 --set target=null (repeatable; values "
                "are read as JSON)"})
    fresh: bool = field(default=False, metadata={
        "help": "fit every user again, replacing judges already in --out (by default they are kept, and judges "
                "fitted with other settings stop the run)"})
    users: int | None = field(default=None, metadata={"help": "only the N users with the most pairs"})
    min_pairs: int = field(default=4, metadata={"help": "skip users with fewer pairs"})
    user_concurrency: int = field(default=1, metadata={
        "help": "users fitted at once (with --executor ray, over all workers)"})
    max_lm_calls: int | None = field(default=None, metadata={"help": "LM call budget per user"})
    seed: int = field(default=0, metadata={"help": "seed for orders and demo candidates"})
    persona_program: str | None = field(default=None, metadata={
        "help": "a persona-synthesis program saved by optimize-persona-prompt (default: the shipped one)"})


@dataclass
class EvaluateOptions:
    """``personae evaluate``."""

    method: str = field(default="default", metadata={
        "help": "comma-separated methods: default, profile, memory, persona, synthesizeme"})
    judges: str | None = field(default=None, metadata={
        "help": "folder of fitted judges (personae fit), needed by synthesizeme"})
    personas: str | None = field(default=None, metadata={
        "help": "jsonl file of {user_id, persona} rows for the persona method (default: the records' 'persona' "
                "column)"})
    users: int | None = field(default=None, metadata={"help": "evaluate only the N users with the most pairs"})
    min_pairs: int = field(default=0, metadata={"help": "skip users with fewer than K pairs"})
    fractions: str = field(default="0.5,0.2,0.3", metadata={"help": "train,val,test shares of each user's prompts"})
    seed: int = field(default=0, metadata={"help": "seed of the bootstrap intervals"})
    out: str = field(default="", metadata={
        "required": True, "help": "output folder for run.json, report.md and plots"})
    fresh: bool = field(default=False, metadata={
        "help": "ignore judgments left in OUT by an earlier run instead of reusing them"})


@dataclass
class EvalPersonasOptions:
    """``personae eval-personas``."""

    out: str = field(default="", metadata={"required": True, "help": "output folder for run.json and report.md"})
    persona_column: str | None = field(default=None, metadata={
        "help": "column holding the chosen-side persona (e.g. chosen_persona_gold); the rejected side is then read "
                "from the same name with 'chosen' replaced by 'rejected' when that column exists. Sides without a "
                "column are inferred with --model"})
    rejected_persona_column: str | None = field(default=None, metadata={
        "help": "column holding the rejected-side persona"})
    seed: int = field(default=0, metadata={"help": "seed of the bootstrap intervals"})
    fresh: bool = field(default=False, metadata={
        "help": "ignore judgments left in OUT by an earlier run instead of reusing them"})


@dataclass
class OptimizePersonaOptions:
    """``personae optimize-persona-prompt``."""

    out: str = field(default="", metadata={"required": True, "help": "where to save the compiled program (.json)"})
    optimizer: str = field(default="mipro", metadata={"choices": ("mipro", "gepa"), "help": "the DSPy optimizer"})
    auto: str = field(default="light", metadata={"choices": ("light", "medium", "heavy"), "help": "search budget"})
    users: int | None = field(default=None, metadata={"help": "only the N users with the most pairs"})
    min_pairs: int = field(default=10, metadata={"help": "skip users with fewer pairs"})
    seed: int = field(default=0, metadata={"help": "seed of the optimizer and of the validation orders"})
    fresh: bool = field(default=False, metadata={
        "help": "verify every user again instead of reusing OUT.progress.jsonl from an earlier run"})


@dataclass
class OptimizeInferenceOptions:
    """``personae optimize-persona-inference``."""

    out: str = field(default="", metadata={"required": True, "help": "where to save the compiled program (.json)"})
    optimizer: str = field(default="bootstrap", metadata={
        "choices": ("bootstrap", "mipro"),
        "help": "bootstrap: random search over bootstrapped demo sets; mipro: MIPROv2, which also rewrites the "
                "instructions"})
    max_demos: int = field(default=4, metadata={"help": "most demos in the program"})
    candidates: int = field(default=4, metadata={
        "help": "random demo sets tried by bootstrap, besides zero-shot and the unshuffled set"})
    auto: str = field(default="light", metadata={"choices": ("light", "medium", "heavy"), "help": "MIPROv2 budget"})
    one_order: bool = field(default=False, metadata={
        "help": "judge each persona in one seeded order instead of both (half the judge calls)"})
    demos: str | None = field(default=None, metadata={
        "help": "jsonl of the domain's own few-shot examples to start from (see infer-personas --demos)"})
    seed: int = field(default=0, metadata={"help": "seed of the demo sets and orders"})


@dataclass
class RetrieveOptions:
    """``personae retrieve-personas``."""

    train: list[str] = field(default_factory=list, metadata={
        "positional": True, "metavar": "TRAIN",
        "help": "training preference file(s) holding personas; several are indexed together"})
    test: str = field(default="", metadata={
        "positional": True, "metavar": "TEST", "help": "preference file whose prompts get personas"})
    out: str = field(default="", metadata={"required": True, "help": "output file: .jsonl, .json, .csv or .parquet"})
    k: int = field(default=1, metadata={
        "help": "training prompts retrieved per test prompt; the best fills the persona columns, all k go to a "
                "'retrieved' column and the hit-within-k figures"})
    embedder: str = field(default="auto", metadata={
        "choices": ("auto", "minilm", "bm25"),
        "help": "minilm: all-MiniLM-L6-v2 embeddings (needs personae[retrieval]); bm25: word matching, no extra; "
                "auto: minilm when installed, else bm25"})
    model_path: str | None = field(default=None, metadata={
        "help": "another sentence-transformers model folder (or cached hub id) instead of the packaged "
                "all-MiniLM-L6-v2"})
    train_persona_suffix: str | None = field(default=None, metadata={
        "metavar": "SUFFIX",
        "help": "read the training personas from chosen_persona_SUFFIX/rejected_persona_SUFFIX (e.g. gold) instead "
                "of chosen_persona/rejected_persona"})
    reference_suffix: str = field(default="retr", metadata={
        "metavar": "SUFFIX",
        "help": "compare with the test file's chosen_persona_SUFFIX/rejected_persona_SUFFIX columns when present"})
    exclude_same_prompt: bool = field(default=False, metadata={
        "help": "never retrieve a training record whose prompt is exactly the test prompt"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N test records"})
    batch_size: int = field(default=64, metadata={"help": "texts encoded per batch"})


@dataclass
class SaliencyOptions:
    """``personae persona-saliency``."""

    data: str = field(default="", metadata={
        "positional": True, "metavar": "FILE",
        "help": "preference file with persona columns (e.g. the output of infer-personas)"})
    chosen_column: str = field(default="chosen_persona", metadata={"help": "column of the chosen-side personas"})
    rejected_column: str = field(default="rejected_persona", metadata={"help": "column of the rejected-side personas"})
    out: str = field(default="", metadata={
        "required": True, "metavar": "DIR", "help": "folder for saliency.md and saliency.png"})
    top: int = field(default=20, metadata={"help": "words shown per side"})
    min_count: int = field(default=3, metadata={"help": "leave out words seen fewer times over both columns"})


@dataclass
class DemoOptions:
    """``personae demo``."""

    data: str | None = field(default=None, metadata={"help": "another preference file to run the demo on"})
    users: int | None = field(default=None, metadata={"help": "only the first N users"})
    train_fraction: float = field(default=2 / 3, metadata={
        "help": "share of each user's prompts (in order) used to build the persona (default: 2/3)"})
    out: str = field(default="personae-demo", metadata={
        "metavar": "DIR", "help": "where the run log (run.json, for personae view) and the persona store the users' "
                                  "pairs were fed to (store.db, for personae store console) go"})
    store: bool = field(default=True, metadata={
        "help": "feed the users' pairs to a persona store in DIR/store.db; --no-store skips it"})


@dataclass
class ServeOptions:
    """``personae serve``."""

    port: int = field(default=8080, metadata={"help": "port on 127.0.0.1"})
    gguf: str | None = field(default=None, metadata={"help": "another GGUF model file to serve"})
    n_ctx: int = field(default=8192, metadata={"help": "context window in tokens"})


@dataclass
class ServiceSettings:
    """How the HTTP service guards itself (``personae serve-api``'s options of that kind).

    ``auth``: bearer tokens bound to tenants (off only for a single-tenant service on loopback;
    every request is then the ``default`` tenant). ``max_body_bytes``: larger bodies get 413.
    ``cors_origins``: origins a browser may call from (none by default: CORS stays off).
    ``threads``: request threads for the store's blocking calls. ``rate_limit``, ``rate_burst``,
    ``tenant_concurrency``: a tenant's requests a second, at once in a burst, and in flight (429
    beyond; off by default); ``judge_concurrency``, ``judge_queue``, ``judge_queue_timeout_s``:
    judgments at once, waiting requests per tenant, and their longest wait (503 beyond; see
    :mod:`personae.service._admission`). ``token_cache_s``: how long a
    token lookup is trusted (a revoked token stops working within it). ``secrets``: strings (an LM key)
    that must never appear in a response or log line, besides the environment's keys and tokens.
    ``private_ops``: ``/metrics`` and ``/readyz`` answer only a token holding the ``ops`` scope.
    """

    auth: bool = field(default=True, metadata={
        "help": "bearer tokens bound to tenants; --no-auth: every request is tenant 'default' (only on a loopback "
                "address)"})
    max_body_bytes: int = field(default=1 << 20, metadata={"help": "largest request body"})
    cors_origins: list[str] = field(default_factory=list, metadata={
        "flag": "--cors-origin", "metavar": "ORIGIN",
        "help": "let browsers on this origin call the API (repeatable; default: CORS off)"})
    threads: int = field(default=64, metadata={"help": "threads for the store's blocking calls"})
    rate_limit: float | None = field(default=None, metadata={
        "metavar": "PER_S", "help": "a tenant's /v1 and /mcp requests a second, beyond which it gets 429 (default: "
                                    "no limit)"})
    rate_burst: int | None = field(default=None, metadata={
        "help": "requests a tenant may send at once above --rate-limit (default: one second's worth)"})
    tenant_concurrency: int | None = field(default=None, metadata={
        "help": "a tenant's requests in flight, beyond which it gets 429 (default: no limit)"})
    judge_concurrency: int | None = field(default=None, metadata={
        "help": "judgments (judge, rank, the MCP judging tools) at once, below --threads (default: three quarters "
                "of --threads)"})
    judge_queue: int = field(default=64, metadata={
        "help": "a tenant's judge requests that wait for a slot, served round-robin by tenant; beyond, 503"})
    judge_queue_timeout_s: float = field(default=10.0, metadata={
        "flag": "--judge-queue-timeout", "help": "seconds a judge request may wait for a slot before 503"})
    secrets: tuple[str, ...] = field(default=(), metadata={"cli": False})
    retry_after_s: int = field(default=5, metadata={
        "flag": "--retry-after", "help": "seconds a 503 answer asks the client to wait"})
    token_cache_s: float = field(default=5.0, metadata={
        "flag": "--token-cache", "help": "seconds a token lookup is trusted; a revoked token stops within it"})
    body_timeout_s: float = field(default=30.0, metadata={
        "flag": "--body-timeout", "help": "seconds a request body may take to arrive before 408"})
    root_path: str = field(default="", metadata={
        "help": "the path prefix a proxy serves the API under (e.g. /personae)"})
    console: bool = field(default=True, metadata={
        "help": "serve the store console at /console (sign-in with a tenant token holding the admin scope); "
                "--no-console: API only"})
    private_ops: bool = field(default=False, metadata={
        "help": "/metrics and /readyz only for a bearer token with the ops scope (/healthz stays open)"})


RUNTIME_OPTION = {
    "choices": RUNTIMES,
    "help": "reward model: torch, or its ONNX export on ONNX Runtime (personae distill export DIR --onnx "
            "[--int8]; pip install 'personae[onnx]')"}


@dataclass
class ServeApiOptions:
    """``personae serve-api``: the store, the judge, where to listen, and how updates run."""

    store: str = field(default="personae.db", metadata={"help": "an SQLite file or a postgresql:// URL"})
    judge: str = field(default="local", metadata={
        "help": "'reward-model:DIR' (a model from 'personae distill reward-model', no LM at request time) or a model "
                "string judged by the LLM ('local', openai/gpt-4o-mini; the model options below apply)"})
    logprobs: bool = field(default=False, metadata={
        "help": "with an LLM judge, read probabilities from token log-probabilities"})
    device: str = field(default="auto", metadata={"help": "reward-model device: auto, cpu, cuda"})
    runtime: str = field(default="torch", metadata=RUNTIME_OPTION)
    torch_threads: int | None = field(default=None, metadata={
        "help": "reward model: CPU threads for its runtime (default: the runtime's, all cores; fewer leave cores "
                "to the HTTP work)"})
    max_batch: int = field(default=8, metadata={
        "help": "reward model: most responses scored in one forward pass when requests arrive together (larger "
                "answers more per second on a GPU, each answer later)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "port (0 picks a free one)"})
    limit_concurrency: int | None = field(default=None, metadata={
        "help": "answer 503 beyond this many connections in flight (default: no limit)"})
    debounce: float | None = field(default=None, metadata={
        "help": "seconds after a user's last preference before its update runs (default: 2; an update never waits "
                "more than 30 s after the first new preference)"})
    update_workers: int | None = field(default=None, metadata={"help": "update jobs run at once (default: 2)"})
    lease: float | None = field(default=None, metadata={
        "help": "seconds an update job's lease lasts (renewed while it runs): a job whose worker was killed is "
                "taken up again this long after (default: 60)"})
    durability: str | None = field(default=None, metadata={
        "choices": ("normal", "full"),
        "help": "SQLite: 'normal' keeps acknowledged writes through a crash of the process, 'full' through a power "
                "cut too (a disk sync per write) (default: normal on SQLite; PostgreSQL's is the server's setting)"})
    access_log: bool = field(default=False, metadata={"help": "log every request line"})
    service: ServiceSettings = field(default_factory=ServiceSettings, metadata={"group": "service"})


@dataclass
class TokenOptions:
    """``personae serve-api tokens create|list|revoke``: which tenant, which token."""

    tenant: str | None = field(default=None, metadata={"help": "the tenant the token may see (list: only its)"})
    name: str = field(default="", metadata={"help": "a label for the token (who or what uses it)"})
    scopes: list[str] = field(default_factory=list, metadata={
        "flag": "--scope", "metavar": "SCOPE",
        "help": "what the token may do: read, write, admin (export, forget, the console; also all read and write "
                "do), ops (/metrics and /readyz under --private-ops); repeatable or a comma list (default: "
                "read,write,admin, all a tenant's token could do before scopes)"})
    expires: str | None = field(default=None, metadata={
        "help": "when the token stops working: after 90s, 15m, 12h or 30d, or at an ISO date or time (UTC unless "
                "it names a zone) (default: never; revoke it instead)"})
    token_id: str = field(default="", metadata={"positional": True, "help": "the id of the token to revoke"})


@dataclass
class McpOptions:
    """``personae mcp``: the store and judge an MCP client on stdio reaches, as one tenant."""

    store: str = field(default="personae.db", metadata={"help": "an SQLite file or a postgresql:// URL"})
    tenant: str = field(default="default", metadata={"help": "the tenant whose users the client sees"})
    judge: str = field(default="local", metadata={
        "help": "'reward-model:DIR' (a model from 'personae distill reward-model', no LM at request time) or a model "
                "string judged by the LLM ('local', openai/gpt-4o-mini; the model options below apply)"})
    logprobs: bool = field(default=False, metadata={
        "help": "with an LLM judge, read probabilities from token log-probabilities"})
    device: str = field(default="auto", metadata={"help": "reward-model device: auto, cpu, cuda"})
    runtime: str = field(default="torch", metadata=RUNTIME_OPTION)
    debounce: float | None = field(default=None, metadata={
        "help": "seconds after a user's last preference before its update runs (default: 2)"})


@dataclass
class StoreAdminOptions:
    """``personae store VERB``: which store, which tenant, and how to print."""

    store: str = field(default="personae.db", metadata={"help": "an SQLite file or a postgresql:// URL"})
    tenant: str = field(default="default", metadata={"help": "the tenant whose users the command sees"})
    json: bool = field(default=False, metadata={"help": "print JSON for scripts instead of text for a terminal"})


@dataclass
class StoreConsoleOptions:
    """``personae store console``: the console for one operator, on loopback."""

    port: int = field(default=8766, metadata={"help": "port on 127.0.0.1 (0 picks a free one)"})


@dataclass
class ExportOptions:
    """``personae distill export``: a saved reward model to another runtime's format."""

    path: str = field(default="", metadata={
        "positional": True, "metavar": "RM_DIR", "help": "a reward model folder (personae distill reward-model)"})
    onnx: bool = field(default=False, metadata={
        "help": "write RM_DIR/onnx/model.onnx for ONNX Runtime (pip install 'personae[distill,onnx]')"})
    int8: bool = field(default=False, metadata={
        "help": "also write model.int8.onnx: weights quantized to int8 (dynamic quantization)"})
    opset: int = field(default=17, metadata={"help": "the ONNX opset"})


@dataclass
class ViewOptions:
    """``personae view``."""

    path: str = field(default="", metadata={
        "positional": True, "metavar": "PATH",
        "help": "a run log (run.json, OUT.run.json) or the output folder of evaluate, eval-personas, "
                "eval-tailoring, judge or fit"})
    port: int = field(default=8765, metadata={"help": "port on 127.0.0.1 (0 picks a free one)"})


@dataclass
class StoreVerbArgs:
    """The arguments the verbs of ``personae store`` take (each verb declares which)."""

    user_id: str = field(default="", metadata={"positional": True, "help": "the user's id"})
    folder: str = field(default="", metadata={"positional": True, "help": "a folder of fitted judges (personae fit)"})
    limit: int = field(default=100, metadata={"help": "at most this many rows"})
    after: str | None = field(default=None, metadata={"help": "the page after this user id (users are in id order)"})
    out: str | None = field(default=None, metadata={"help": "write the judge's JSON here (a folder gets USER.json)"})
    version: int | None = field(default=None, metadata={"help": "this persona version (default: the newest)"})
    status: str | None = field(default=None, metadata={
        "choices": ("pending", "running", "done", "failed"), "help": "only jobs of this status"})
    yes: bool = field(default=False, metadata={"help": "yes, remove everything stored on the user"})
    erase_now: bool = field(default=False, metadata={
        "help": "PostgreSQL: rewrite the tables now (VACUUM FULL, locks them meanwhile) so no byte of the user stays "
                "in the data files; SQLite erases at once always"})
