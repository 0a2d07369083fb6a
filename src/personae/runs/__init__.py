"""The run layer: one executor, one retry policy, one ledger, one judgment row, one run log.

Every long command (``infer-personas``, ``judge``, ``fit``, ``evaluate``, ``eval-personas``,
``eval-tailoring``, ``distill``, the ``optimize-*`` commands) is a list of items run through
these pieces:

* :class:`Executor` / :class:`ThreadExecutor` / :class:`RayExecutor`: bounded concurrency,
  on threads (the caller's DSPy context carried into them) or on Ray workers (the LM sent as
  a description, results and costs streamed back);
* :class:`RetryPolicy`: what is retried on a fresh rollout, what is recorded as a failure
  (with its kind), what must surface (bad input, configuration, programming errors);
* :class:`Ledger`: a fingerprinted, append-only record of finished items, for resuming;
* :class:`Progress`: injected display (a bar on a terminal, plain lines in logs, silence);
* :class:`Judgment` and :class:`RunLog`: the row every judging command writes and the
  versioned log of a run;
* :func:`run_batch` and :func:`run_items`: the loop that ties them together.
"""

from personae.lm import Cost
from personae.runs._batch import ItemsRun, run_batch, run_items
from personae.runs._executor import Executor, ThreadExecutor, carry_context
from personae.runs._ledger import (
    JUDGMENTS_FILE,
    LEDGER_VERSION,
    SAMPLING_KEYS,
    Ledger,
    ManifestLedger,
    content_digest,
    describe_changes,
    lm_fingerprint,
    record_key,
)
from personae.runs._log import (
    READABLE_VERSIONS,
    RUN_LOG_VERSION,
    Counts,
    Judgment,
    RunLog,
    RunStatus,
    Tally,
    package_versions,
    read_log,
    record_run,
    write_log,
)
from personae.runs._progress import BarProgress, LineProgress, NullProgress, Progress, progress_for
from personae.runs._ray import KEY_ENV, RayExecutor, WorkerLostError, import_ray, load_payload, worker_payload
from personae.runs._retry import (
    ANSWER_FAILURES,
    CALL_FAILURES,
    FAILURE_KINDS,
    Outcome,
    RetryPolicy,
    describe_error,
    failure_kind,
    redact,
    register_secrets,
)
from personae.runs._task import RUN_FILE, BaseTask, Finished, Task, open_executor, run
from personae.specs import RunSpec

__all__ = [
    "RUN_FILE",
    "BaseTask",
    "Finished",
    "RunSpec",
    "Task",
    "open_executor",
    "run",
    "ANSWER_FAILURES",
    "CALL_FAILURES",
    "FAILURE_KINDS",
    "JUDGMENTS_FILE",
    "KEY_ENV",
    "LEDGER_VERSION",
    "SAMPLING_KEYS",
    "READABLE_VERSIONS",
    "RUN_LOG_VERSION",
    "BarProgress",
    "Cost",
    "Counts",
    "Executor",
    "ItemsRun",
    "Judgment",
    "Ledger",
    "ManifestLedger",
    "LineProgress",
    "NullProgress",
    "Outcome",
    "Progress",
    "RetryPolicy",
    "RunLog",
    "RunStatus",
    "Tally",
    "RayExecutor",
    "ThreadExecutor",
    "WorkerLostError",
    "carry_context",
    "content_digest",
    "describe_changes",
    "lm_fingerprint",
    "describe_error",
    "redact",
    "register_secrets",
    "failure_kind",
    "import_ray",
    "load_payload",
    "worker_payload",
    "package_versions",
    "progress_for",
    "read_log",
    "record_key",
    "record_run",
    "run_batch",
    "run_items",
    "write_log",
]
