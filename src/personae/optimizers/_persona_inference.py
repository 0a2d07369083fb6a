"""Compiling persona inference against persona accuracy (bootstrap random search or MIPROv2).

Each preference record is one example (inputs ``context``, ``chosen``, ``rejected``). The
metric is the persona accuracy of the personas the program infers for it: a
:class:`~personae.programs.PersonaJudge` (on ``judge_lm``, which may differ from the model
being compiled) judges each side's persona, and a side scores when the judge picks that
side's response. By default every side is judged in both orders (4 judge calls per
example), as persona accuracy is reported; ``both_orders=False`` judges one order per side,
chosen by a seeded coin per record and side (2 calls), for speed. A failed or unparseable
judgment, or a missing persona, scores 0. The score of an example is the mean over its
judgments.

``"bootstrap"`` runs DSPy's bootstrap random search: demos are the program's own inferences
on training records whose personas scored at least ``threshold``; candidate demo sets (and
zero-shot) are scored on the validation records. ``"mipro"`` runs MIPROv2, which also
proposes instructions. Either way the result is compared with the program it started from
(by default the shipped 3-shot program) on the validation records, and the better one is
returned, so compiling never makes the metric worse there. The program is saved with
``program.save("program.json")``; ``PersonaInference().load(path)`` (or
:func:`load_persona_inference`) reads it back, and ``personae infer-personas --program`` uses it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dspy
from dspy.utils.usage_tracker import UsageTracker

from personae.data import PreferenceRecord, as_records, current_fields
from personae.errors import ConfigError, DataError
from personae.evaluation.metrics import PersonaAccuracy, persona_inference_examples
from personae.lm import default_adapter
from personae.programs import PersonaInference
from personae.runs import Tally

__all__ = ["PERSONA_INFERENCE_OPTIMIZERS", "load_persona_inference", "optimize_persona_inference"]

logger = logging.getLogger(__name__)

PERSONA_INFERENCE_OPTIMIZERS = ("bootstrap", "mipro")


class _SharedUsage(UsageTracker):
    """Forwards every thread's LM usage to one tracker (e.g. a :class:`~personae.lm.CostMeter`).

    DSPy's parallel executor (used by ``Evaluate`` inside the optimizers) deep-copies the
    usage tracker for each worker thread: a meter holding a lock then fails to copy, which
    fails every item silently, and a copy would lose the counts anyway. This proxy is its
    own deep copy.
    """

    def __init__(self, target: Any) -> None:
        super().__init__()
        self.target = target

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedUsage:
        return self

    def add_usage(self, lm: str, usage_entry: dict[str, Any]) -> None:
        self.target.add_usage(lm, usage_entry)


def _score(program: dspy.Module, valset: Sequence[dspy.Example], metric: Callable[..., Any],
           num_threads: int) -> float:
    evaluate = dspy.Evaluate(devset=list(valset), metric=metric, num_threads=num_threads, display_progress=False,
                             display_table=False, max_errors=len(valset) + 1)
    return float(evaluate(program).score)


def optimize_persona_inference(
    records: Sequence[PreferenceRecord | dspy.Example],
    *,
    lm: dspy.BaseLM | None = None,
    judge_lm: dspy.BaseLM | None = None,
    optimizer: str = "bootstrap",
    valset: Sequence[PreferenceRecord | dspy.Example] | None = None,
    student: PersonaInference | None = None,
    both_orders: bool = True,
    max_demos: int = 4,
    num_candidates: int = 4,
    threshold: float = 1.0,
    auto: str = "light",
    num_threads: int = 1,
    seed: int = 0,
    tally: Tally | None = None,
) -> PersonaInference:
    """Compile a :class:`PersonaInference` whose metric is the persona accuracy of its personas.

    Args:
        records: Training pairs (records, or ``dspy.Example``s with ``prompt``, ``chosen`` and
            ``rejected``); without ``valset`` the first half trains and the rest validates.
        lm: The model whose prompts are compiled (it infers the personas; MIPROv2 also
            proposes instructions with it); by default the LM configured in DSPy.
        judge_lm: The judge of the metric (default ``lm``).
        optimizer: ``"bootstrap"`` (bootstrap random search over demo sets) or ``"mipro"`` (MIPROv2).
        student: The program to start from (default: the shipped 3-shot program).
        both_orders: Judge each persona in both orders (True) or one seeded order (False).
        max_demos: The most bootstrapped demos per candidate.
        num_candidates: Random demo sets tried by ``bootstrap``, besides zero-shot and the
            unshuffled set.
        threshold: The metric a training record's personas must reach for their inference to
            become a demo (1.0: every judgment right).
        auto: MIPROv2's budget (``light``, ``medium``, ``heavy``).
    """
    lm = lm or dspy.settings.lm
    if lm is None:
        raise ConfigError("no LM: pass lm= or configure one with dspy.configure(lm=...)")
    records = as_records(records, source="records")
    valset = None if valset is None else as_records(valset, source="valset")
    if optimizer not in PERSONA_INFERENCE_OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; choose {' or '.join(PERSONA_INFERENCE_OPTIMIZERS)}")
    if max_demos < 1 or num_candidates < 0 or num_threads < 1:
        raise ConfigError("max_demos and num_threads must be at least 1, num_candidates at least 0")
    if valset is None:
        if len(records) < 2:
            raise ConfigError("optimizing persona inference needs at least two records")
        half = max(1, len(records) // 2)
        train_records, val_records = list(records[:half]), list(records[half:])
    else:
        train_records, val_records = list(records), list(valset)
        if not train_records or not val_records:
            raise ConfigError("optimizing persona inference needs training and validation records")
    trainset, devset = persona_inference_examples(train_records), persona_inference_examples(val_records)
    student = student or PersonaInference()
    metric = PersonaAccuracy(judge_lm or lm, both_orders=both_orders, seed=seed, sides=student.sides, tally=tally)
    tracker = dspy.settings.usage_tracker
    shared = {"usage_tracker": _SharedUsage(tracker)} if tracker is not None else {}
    with dspy.context(lm=lm, adapter=dspy.settings.adapter or default_adapter(), **shared):
        compiled: PersonaInference
        if optimizer == "bootstrap":
            search = dspy.BootstrapFewShotWithRandomSearch(
                metric=metric, max_bootstrapped_demos=max_demos, max_labeled_demos=0,
                num_candidate_programs=num_candidates, num_threads=num_threads, metric_threshold=threshold,
                max_errors=len(trainset) + len(devset) + 1, stop_at_score=100.0,
            )
            restrict = [-3, *range(-1, num_candidates)]  # -2 (labeled demos only) is zero-shot again here
            compiled = search.compile(student, trainset=trainset, valset=devset, restrict=restrict)
        else:
            mipro = dspy.MIPROv2(metric=metric, auto=auto, num_threads=num_threads, seed=seed,
                                 max_bootstrapped_demos=max_demos, max_labeled_demos=0,
                                 metric_threshold=threshold, verbose=False)
            compiled = mipro.compile(student, trainset=trainset, valset=devset)
        tuned, before = _score(compiled, devset, metric, num_threads), _score(student, devset, metric, num_threads)
    logger.info("persona accuracy on %d validation records: %.1f compiled, %.1f before", len(devset), tuned, before)
    if tuned < before:
        logger.warning("the compiled program scored %.1f < %.1f of the starting program on the validation "
                       "records; returning the starting program", tuned, before)
        compiled = student.deepcopy()
    for attribute in ("candidate_programs", "trial_logs", "score"):  # search bookkeeping, not program state
        if attribute in vars(compiled):
            delattr(compiled, attribute)
    return compiled


def load_persona_inference(path: str | os.PathLike[str], *,
                           demos: Sequence[Mapping[str, str]] | None = None) -> PersonaInference:
    """A :class:`PersonaInference` with the state saved at ``path`` (DSPy JSON).

    ``demos``, when given, replace the saved program's demonstrations.
    """
    path = Path(path)
    program = PersonaInference()
    if not path.is_file():
        raise DataError("no such file" if not path.exists() else "not a file", source=str(path))
    try:
        program.load(str(path))
    except KeyError as exc:
        raise DataError(f"not a saved persona-inference program (no {exc} predictor)", source=str(path)) from None
    except (ValueError, TypeError) as exc:
        raise DataError(f"not a saved DSPy program: {exc}", source=str(path)) from None
    if demos is not None:
        program.infer.demos = [dspy.Example(**current_fields(dict(d))) for d in demos]
    return program
