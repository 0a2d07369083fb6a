"""Output folders left by an earlier version resume: every judgment is reused, no LM call is made.

The ledgers under ``fixtures/previous_runs`` were written by personae 0.1.0 before the judging
commands shared one key format (see ``fixtures/previous_runs/make.py``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import dspy
import pytest

from personae.lm import ScriptedLM
from personae.pipelines import (
    compare_generations,
    evaluate_methods,
    evaluate_persona_accuracy,
    judge_factory,
    judge_records,
    progress_path,
)
from personae.runs import JUDGMENTS_FILE, Ledger, lm_fingerprint

PREVIOUS = Path(__file__).parent / "fixtures" / "previous_runs"
sys.path.insert(0, str(PREVIOUS))

from previous_inputs import personas, records, tailoring_items, users  # noqa: E402


def _silent_lm() -> ScriptedLM:
    """An LM that must not be asked: every call fails, so a judgment made now would be unscored."""
    return ScriptedLM(lambda call: RuntimeError("a resumed run asked the LM"))


@pytest.fixture
def previous(tmp_path: Path):
    def copy(name: str) -> Path:
        shutil.copytree(PREVIOUS / name, tmp_path / name)
        return tmp_path / name
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield copy


def test_judge_resumes_an_earlier_versions_ledger(previous) -> None:
    out = previous("judge") / "judgments.jsonl"
    lm = _silent_lm()
    ledger = Ledger(progress_path(out), kind="judge", fingerprint={**lm_fingerprint(lm), "method": "default"})
    report = judge_records(records(), judge_factory(), lm=lm, ledger=ledger, method="default")
    assert (report.counts.resumed, report.counts.succeeded, report.counts.failed) == (12, 0, 0)
    assert lm.calls == [] and report.correct == 6 and report.unscored == 0


def test_evaluate_resumes_an_earlier_versions_ledger(previous) -> None:
    lm = _silent_lm()
    ledger = Ledger(previous("evaluate") / JUDGMENTS_FILE, kind="evaluate", fingerprint=lm_fingerprint(lm))
    run = evaluate_methods(users(), ["default", "persona"], lm=lm, personas=personas(), ledger=ledger)
    assert (run.log.counts.resumed, run.log.counts.succeeded, run.log.counts.failed) == (8, 0, 0)
    assert lm.calls == [] and run.accuracy("default") == 0.5 and run.accuracy("persona") == 0.5


def test_eval_personas_resumes_an_earlier_versions_ledger(previous) -> None:
    lm = _silent_lm()
    ledger = Ledger(previous("eval-personas") / JUDGMENTS_FILE, kind="eval-personas", fingerprint=lm_fingerprint(lm))
    run = evaluate_persona_accuracy(records(), lm=lm, chosen_column="chosen_persona_gold", ledger=ledger)
    assert (run.log.counts.resumed, run.log.counts.succeeded, run.log.counts.failed) == (30, 0, 0)
    assert lm.calls == [] and run.accuracy("chosen") == 0.5 and run.accuracy("rejected") == 0.5
    assert {p.rejected_persona for p in run.personas} == {"likes the second"}


def test_eval_tailoring_resumes_an_earlier_versions_ledger(previous) -> None:
    lm = _silent_lm()
    ledger = Ledger(previous("eval-tailoring") / JUDGMENTS_FILE, kind="eval-tailoring", fingerprint=lm_fingerprint(lm))
    log = compare_generations(tailoring_items(), lm=lm, ledger=ledger)
    assert (log.counts.resumed, log.counts.succeeded, log.counts.failed) == (12, 0, 0)
    assert lm.calls == [] and log.results.criterion("quality").ties == 3
