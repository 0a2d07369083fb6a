"""The run layer: retry policy, executor, ledger, progress, judgment rows and run logs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import dspy
import pytest

from helpers import record
from personae.errors import ConfigError, ContentError, DataError, ItemError
from personae.lm import ScriptedLM
from personae.runs import (
    BarProgress,
    Judgment,
    Ledger,
    LineProgress,
    NullProgress,
    RetryPolicy,
    RunLog,
    ThreadExecutor,
    failure_kind,
    progress_for,
    record_run,
    run_batch,
    run_items,
)

SIG = dspy.Signature("context -> persona")


@pytest.fixture(autouse=True)
def _json_adapter():
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


def _predict(item: str) -> str:
    return str(dspy.Predict(SIG)(context=item).persona)


# -- the retry policy -------------------------------------------------------------------------


def test_a_programming_error_is_raised_at_once_never_recorded() -> None:
    lm = ScriptedLM(lambda call: {"persona": "p"})
    calls = []

    def buggy(item: str) -> str:
        calls.append(item)
        _predict(item)
        return {"a": 1}["b"]  # type: ignore[return-value]

    with pytest.raises(KeyError):
        run_batch(buggy, ["x", "y"], lm=lm, max_attempts=3)
    assert calls == ["x"]  # not retried, and no further item started
    with pytest.raises(KeyError):
        run_batch(buggy, [str(i) for i in range(8)], lm=lm, concurrency=4)


def test_content_failures_are_retried_on_fresh_rollouts_then_recorded() -> None:
    temperatures = []

    def answer(call):
        temperatures.append(call.config.temperature)
        return {"persona": "echo"}

    def check(item: str) -> str:
        text = _predict(item)
        if text == "echo":
            raise ContentError("an echo")
        return text

    outcome = RetryPolicy(max_attempts=3).attempt(lambda: check("q"), lm=ScriptedLM(answer, temperature=0.0),
                                                  capture=True)
    assert outcome.value is None and outcome.kind == "content" and outcome.attempts == 3
    assert temperatures == [0.0, 1.0, 1.0] and outcome.raw_output == '{"persona": "echo"}'
    assert outcome.prompt and outcome.prompt[0]["role"] == "system"
    error = outcome.exception("record r1")
    assert error.kind == "content" and error.attempts == 3 and str(error).startswith("record r1: ContentError")


def test_failure_kinds() -> None:
    from dspy.utils import exceptions as dx

    assert failure_kind(dx.LMRateLimitError("slow down")) == "rate_limit"
    assert failure_kind(dx.LMTimeoutError("late")) == "timeout"
    assert failure_kind(dx.LMServerError("500")) == "server"
    assert failure_kind(dx.ContextWindowExceededError(message="long")) == "context_window"
    assert failure_kind(ItemError("too few pairs")) == "input"
    assert failure_kind(KeyError("bug")) is None and failure_kind(DataError("bad", source="f")) is None
    with pytest.raises(ConfigError, match="cannot be used as configured"):
        failure_kind(dx.LMAuthError("bad key"))


def test_an_unusable_request_is_recorded_without_retrying() -> None:
    from dspy.utils import exceptions as dx

    tries = []

    def too_long() -> str:
        tries.append(1)
        raise dx.ContextWindowExceededError(message="prompt too long")

    outcome = RetryPolicy(max_attempts=3).attempt(too_long, lm=ScriptedLM(lambda call: {}))
    assert outcome.kind == "context_window" and len(tries) == 1


def test_a_wrong_api_key_stops_the_batch_as_a_configuration_error() -> None:
    from dspy.utils import exceptions as dx

    lm = ScriptedLM(lambda call: {})

    def denied(item: str) -> str:
        raise dx.LMAuthError("invalid api key")

    with pytest.raises(ConfigError):
        run_batch(denied, ["a", "b"], lm=lm)


def test_the_executor_carries_dspy_settings_and_reports_each_result_once() -> None:
    lm = ScriptedLM(lambda call: {"persona": call.field("context")})
    seen: list[int] = []
    results: dict[int, str] = {}

    def done(index: int, value: str) -> None:
        seen.append(index)
        results[index] = value

    with dspy.context(lm=lm):
        ThreadExecutor(3).map(_predict, [str(i) for i in range(9)], done)
    assert sorted(seen) == list(range(9)) and results == {i: str(i) for i in range(9)}
    with pytest.raises(ConfigError):
        ThreadExecutor(0)


# -- the ledger -------------------------------------------------------------------------------


def test_ledger_resumes_by_key_and_names_what_changed(tmp_path: Path) -> None:
    path = tmp_path / "run" / "ledger.jsonl"
    ledger = Ledger(path, kind="infer", fingerprint={"model": "m1", "fractions": (0.5, 0.2, 0.3)})
    ledger.append("a", {"value": 1, "error": None})
    ledger.append("b", {"value": None, "error": "Timeout", "attempts": 3})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"key": "c", "val')  # a kill in the middle of a write
    again = Ledger(path, kind="infer", fingerprint={"model": "m1", "fractions": [0.5, 0.2, 0.3]})
    assert again.succeeded("a") == {"key": "a", "value": 1, "error": None}
    assert again.succeeded("b") is None and again.attempts("b") == 3 and again.get("c") is None
    again.append("c", {"value": 3, "error": None})  # the torn line is dropped, not glued to this row
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0]["personae_ledger"] == 3 and [r["key"] for r in rows[1:]] == ["a", "b", "c"]
    with pytest.raises(ConfigError, match=r"other settings \(model 'm1' there, 'm2' now\).*--fresh"):
        Ledger(path, kind="infer", fingerprint={"model": "m2", "fractions": [0.5, 0.2, 0.3]})
    with pytest.raises(ConfigError, match="ledger of a 'infer' run"):
        Ledger(path, kind="evaluate", fingerprint={"model": "m1"})
    assert Ledger(path, kind="infer", fingerprint={"model": "m2"}, fresh=True).rows == {}
    earlier = json.dumps({"personae_ledger": 2, "kind": "infer", "fingerprint": {"program": "p1"}}) + "\n"
    path.write_text(earlier + '{"key": "a", "value": 1, "error": null}\n')
    with pytest.raises(ConfigError, match="program 'p1' there, 'p2' now.*earlier version of personae"):
        Ledger(path, kind="infer", fingerprint={"program": "p2"})
    assert set(Ledger(path, kind="infer", fingerprint={"program": "p1"}).rows) == {"a"}  # still read
    path.write_text('{"key": "a"}\n')
    with pytest.raises(DataError, match="not a personae ledger"):
        Ledger(path, kind="infer", fingerprint={})


def test_a_dependent_key_invalidates_only_the_rows_it_feeds(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    ledger = Ledger(path, kind="evaluate", fingerprint={"model": "m", "judges": "d1"})
    ledger.append("1", {"method": "default", "error": None})
    ledger.append("2", {"method": "synthesizeme", "error": None})
    feeds = {"judges": lambda row: row.get("method") == "synthesizeme"}
    again = Ledger(path, kind="evaluate", fingerprint={"model": "m", "judges": "d2"}, dependent=feeds)
    assert set(again.rows) == {"1"} and again.changed == ["judges"] and again.invalidated == 1
    header = json.loads(path.read_text().splitlines()[0])
    assert header["fingerprint"]["judges"] == "d2"  # the file now says what its rows were made with


def test_run_items_reuses_finished_items_and_counts_failures_by_kind(tmp_path: Path) -> None:
    def answer(call):
        if call.field("context") == "bad" and call.config.temperature in (None, 0.0):
            return "not json"
        return {"persona": call.field("context")}

    lm = ScriptedLM(answer, temperature=0.0)
    ledger = Ledger(tmp_path / "l.jsonl", kind="t", fingerprint={})
    items = ["a", "bad", "c"]
    run = run_items(_predict, items, key=str, row=lambda item, o: {"value": o.value}, ledger=ledger, lm=lm,
                    policy=RetryPolicy(max_attempts=1))
    assert (run.counts.succeeded, run.counts.failed, run.counts.failures) == (2, 1, {"parse": 1})
    assert run.rows[1]["kind"] == "parse" and run.rows[1]["attempts"] == 1
    again = run_items(_predict, items, key=str, row=lambda item, o: {"value": o.value},
                      ledger=Ledger(tmp_path / "l.jsonl", kind="t", fingerprint={}), lm=lm,
                      policy=RetryPolicy(max_attempts=1))
    assert (again.counts.resumed, again.counts.succeeded, again.counts.failed) == (2, 1, 0)
    assert [r["value"] for r in again.rows] == ["a", "bad", "c"]
    assert lm.calls[-1].config.temperature == 1.0  # the second try of "bad" is a fresh rollout
    assert again.counts.line("records") == "3 records: 1 succeeded, 2 resumed, 0 failed"
    with pytest.raises(DataError, match="share a key"):
        run_items(_predict, ["a", "a"], key=str, row=lambda item, o: {}, lm=lm)


# -- progress, rows and logs --------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_sparse_lines_otherwise() -> None:
    plain = io.StringIO()
    shown = progress_for(plain)
    assert isinstance(shown, LineProgress)
    shown.start("judge", 3, 1)
    shown.advance()
    shown.advance(failed="timeout")
    lines = plain.getvalue().splitlines()
    assert lines[0] == "judge: 1 of 3 done by an earlier run"
    assert lines[-1].startswith("judge: 3/3, 1 failed, ") and len(lines) == 2  # sparse: only the end
    tty = _Tty()
    bar = progress_for(tty)
    assert isinstance(bar, BarProgress)
    bar.start("infer", 2)
    bar.advance(failed="parse")
    bar.advance()
    bar.close()
    assert "2/2" in tty.getvalue() and "1 failed" in tty.getvalue()
    assert isinstance(progress_for(tty, quiet=True), NullProgress)


def test_judgment_rows_read_rows_of_earlier_versions() -> None:
    assert Judgment.model_validate({"record_id": "r", "chosen_first": False}).first == "rejected"
    old = Judgment.model_validate({"item_id": "i", "criterion": "quality", "a_first": True, "winner": "A"})
    assert old.record_id == "i" and old.first == "A" and old.chosen_first
    row = Judgment(record_id="r", first="rejected").model_dump(mode="json")
    assert row["chosen_first"] is False and Judgment.model_validate(row).first == "rejected"


def test_a_run_log_says_when_a_run_was_interrupted(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Results(BaseModel):
        done: int = 0

    log = RunLog[dict, Results](command="t", config={"model": "m"}, results=Results())
    path = tmp_path / "run.json"

    def interrupted() -> RunLog[dict, Results]:
        assert json.loads(path.read_text())["status"] == "started"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        record_run(log, path, interrupted)
    saved = json.loads(path.read_text())
    assert saved["status"] == "interrupted" and saved["finished"] and saved["config"] == {"model": "m"}
    with pytest.raises(ValueError):
        record_run(log, path, lambda: (_ for _ in ()).throw(ValueError("bug")))
    saved = json.loads(path.read_text())
    assert saved["status"] == "error" and saved["error"] == "ValueError: bug"
    finished = record_run(log, path, lambda: log.model_copy(update={"results": Results(done=3)}).ended("success"))
    assert json.loads(path.read_text())["results"] == {"done": 3} and finished.status == "success"


def test_records_judged_in_threads_are_rows_of_one_shape() -> None:
    from personae.pipelines import judge_records
    from personae.programs import DefaultJudge

    lm = ScriptedLM(lambda call: {"reasoning": "r", "preferred": "Neither" if "question 1" in call.user else "A"})
    report = judge_records([record(i) for i in range(3)], lambda r: DefaultJudge(), lm=lm, concurrency=2,
                           max_attempts=2)
    rows = report.judgments
    assert len(rows) == 6 and {r.first for r in rows} == {"chosen", "rejected"}
    failed = [r for r in rows if not r.scored]
    assert len(failed) == 2 and all(r.kind in ("parse", "content") and r.correct is None for r in failed)
    assert all(r.raw_output and r.prompt for r in rows)


# -- the command line's error contract ------------------------------------------------------------


def test_exit_status_says_what_happened(tmp_path: Path, capsys, monkeypatch) -> None:
    from personae.cli import judge as judge_command
    from personae.cli.main import main
    from personae.errors import LMCallError
    from personae.testing import output_fields, stub_server

    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}"}) + "\n"
                            for i in range(3)))

    def answer(body):
        if "q1" in json.dumps(body["messages"]):
            return 500, "overloaded"
        return 200, json.dumps({name: "A" if name == "preferred" else "r" for name in output_fields(body)})

    out = tmp_path / "judgments.jsonl"
    with stub_server(answer) as stub:
        argv = ["judge", str(data), "--model", "openai/stub", "--api-base", stub.api_base, "--no-cache",
                "--lm-retries", "0", "--max-attempts", "2", "--out", str(out)]
        assert main(argv) == 1  # some judgments failed
        printed = capsys.readouterr().out
        assert "6 judgments: 4 succeeded, 0 resumed, 2 failed (2 server)" in printed
        calls = len(stub.requests)
        assert main(argv) == 1 and len(stub.requests) == calls + 2 * 2  # only the failed ones again
    log = json.loads(Path(f"{out}.run.json").read_text())
    assert log["command"] == "judge" and log["status"] == "success" and log["counts"]["failures"] == {"server": 2}
    assert len(log["judgments"]) == 6 and len(out.read_text().splitlines()) == 6
    capsys.readouterr()

    assert main(["judge", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("personae: error: ") and "missing.jsonl" in err
    assert "Traceback" not in err

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(judge_command, "run", interrupted)
    assert main(["judge", str(data)]) == 130
    assert "run the same command to resume" in capsys.readouterr().err

    def lm_failed(args):
        raise LMCallError("LMTimeoutError: late", kind="timeout", item="record r1", attempts=3)

    monkeypatch.setattr(judge_command, "run", lm_failed)
    assert main(["judge", str(data)]) == 1
    assert capsys.readouterr().err == "personae: error: record r1: LMTimeoutError: late (after 3 attempts)\n"


def test_the_lm_fingerprint_names_model_server_and_sampling_never_the_key() -> None:
    from personae.lm import get_lm
    from personae.runs import lm_fingerprint

    lm = get_lm("openai/m", api_base="http://127.0.0.1:9/v1", api_key="sk-secret-1", temperature=0.3, timeout=5,
                structured_output=True, max_string_chars=600)
    print_ = lm_fingerprint(lm)
    assert print_["model"] == "openai/m" and print_["api_base"] == "http://127.0.0.1:9/v1"
    assert json.loads(str(print_["sampling"])) == {"temperature": 0.3, "max_tokens": 1024, "max_string_chars": 600}
    assert "sk-secret-1" not in json.dumps(print_)
    other = lm_fingerprint(get_lm("openai/m", api_base="http://127.0.0.1:8/v1", api_key="k", temperature=0.3,
                                  structured_output=True, max_string_chars=600))
    assert other["api_base"] != print_["api_base"] and other["sampling"] == print_["sampling"]
