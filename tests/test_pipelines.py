from __future__ import annotations

import json

import dspy
import pytest

from helpers import record
from personae.data import load_preferences
from personae.lm import ScriptedLM
from personae.pipelines import demo_data_path, infer_personas, judge_records, progress_path, run_demo
from personae.programs import DefaultJudge


@pytest.fixture(autouse=True)
def _json_adapter():
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


def _persona_lm(fail_on: str | None = None) -> ScriptedLM:
    def answer(call):
        if fail_on and fail_on in call.user:
            return "unparseable"
        return {"persona": "who likes " + (call.field("chosen") or "")}

    return ScriptedLM(answer)


def test_infer_personas_writes_every_record_with_both_personas(tmp_path) -> None:
    records = [record(i) for i in range(5)]
    out = tmp_path / "out.jsonl"
    report = infer_personas(records, out, lm=_persona_lm())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["record_id"] for r in rows] == [f"r{i}" for i in range(5)]
    assert rows[2]["chosen_persona"] == "who likes good answer 2"
    assert rows[2]["rejected_persona"] == "who likes bad answer 2"
    assert report.inferred == 5 and report.failed == 0 and report.cost.lm_calls == 10
    ledger = [json.loads(line) for line in progress_path(out).read_text().splitlines()]
    assert ledger[0]["fingerprint"]["model"] == "scripted/fake" and ledger[0]["kind"] == "infer"
    assert [r["record_id"] for r in ledger[1:]] == [f"r{i}" for i in range(5)]
    assert report.counts.line("records") == "5 records: 5 succeeded, 0 resumed, 0 failed"


def test_infer_personas_resumes_without_redoing_finished_records(tmp_path) -> None:
    records = [record(i) for i in range(6)]
    out = tmp_path / "out.parquet"
    # a first run of an earlier version that stopped after three records (one of which had failed)
    from personae.programs import PersonaInference, program_digest
    from personae.runs import content_digest, lm_fingerprint

    def _record_digest(r):
        return content_digest(r.prompt, r.chosen, r.rejected)

    lm = _persona_lm()
    progress = progress_path(out)
    lines: list[dict] = [{"personae_ledger": 1, **lm_fingerprint(lm), "program": program_digest(PersonaInference())}]
    lines += [{"record_id": f"r{i}", "digest": _record_digest(records[i]), "chosen_persona": f"old {i}",
               "rejected_persona": f"old-r {i}", "error": None} for i in range(2)]
    lines.append({"record_id": "r2", "digest": _record_digest(records[2]), "chosen_persona": None,
                  "rejected_persona": None, "error": "Timeout", "attempts": 3})
    progress.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"record_id": "r3", "chos')
    report = infer_personas(records, out, lm=lm)
    asked = {call.field("chosen") for call in lm.calls}
    assert asked == {f"{kind} answer {i}" for i in (2, 3, 4, 5) for kind in ("good", "bad")}
    assert report.resumed == 2 and report.inferred == 4
    import pyarrow.parquet as pq

    table = pq.read_table(out).to_pylist()
    assert [r["record_id"] for r in table] == [f"r{i}" for i in range(6)]  # each exactly once, in order
    assert table[0]["chosen_persona"] == "old 0" and table[3]["chosen_persona"] == "who likes good answer 3"


def test_infer_personas_records_failures_with_their_reason(tmp_path) -> None:
    records = [record(i) for i in range(3)]
    out = tmp_path / "out.jsonl"
    report = infer_personas(records, out, lm=_persona_lm(fail_on="question 1"), max_attempts=2)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and report.failed == 1
    assert rows[1]["chosen_persona"] is None and "Parse" in rows[1]["persona_error"]
    assert report.failures[0][0] == "r1"


def test_judge_records_counts_failures_as_unscored_and_wrong() -> None:
    def answer(call):
        if "question 2" in call.user:
            return "garbage"
        return {"reasoning": "r", "preferred": "A"}

    records = [record(i) for i in range(4)]
    report = judge_records(records, lambda r: DefaultJudge(), lm=ScriptedLM(answer), max_attempts=2)
    assert report.total == 8
    assert report.unscored == 2
    assert report.correct == 3  # chosen-first order of the three parseable records
    assert report.accuracy == pytest.approx(3 / 8)
    failed = [r for r in report.rows if r["error"]]
    assert all(r["correct"] is None and r["record_id"] == "r2" and r["kind"] == "parse" for r in failed)
    assert report.counts.failures == {"parse": 2}


def test_demo_data_has_distinct_users() -> None:
    data = load_preferences(demo_data_path())
    users = data.by_user()
    assert len(users) >= 4
    assert all(len(u.records) >= 12 for u in users.values())
    tastes = {u.records[0].metadata.get("taste") for u in users.values()}
    assert len(tastes) == len(users)


def test_run_demo_on_a_scripted_model() -> None:
    def answer(call):
        if call.field("preference_history") is not None:
            return {"reasoning": "r", "persona": "The user wants short answers."}
        if call.field("chosen") is not None:
            return {"persona": "p"}
        persona = call.field("persona")
        first, second = call.field("response_a"), call.field("response_b")
        shorter = "A" if len(first) <= len(second) else "B"
        return {"reasoning": "r", "preferred": shorter if persona else "A"}

    results = run_demo(lm=ScriptedLM(answer), users=1)
    user = results[0]
    assert user.user_id == "ana"
    assert user.persona == "The user wants short answers."
    assert user.with_persona.total == user.without_persona.total == 2 * user.n_test
    assert user.with_persona.accuracy > user.without_persona.accuracy
    assert user.cost.lm_calls > 0


def test_run_demo_samples_again_when_inference_echoes_an_example() -> None:
    from personae.signatures import PERSONA_INFERENCE_DEMOS

    seen: set[str] = set()

    def answer(call):
        if call.field("chosen") is not None:  # the worked example first, then its own words
            key = str(call.field("prompt"))  # echo on the record's first call only
            echo = key not in seen
            seen.add(key)
            return {"persona": PERSONA_INFERENCE_DEMOS[0]["persona"] if echo else "The user likes lists."}
        if call.field("preference_history") is not None:
            return {"reasoning": "r", "persona": "The user wants short answers."}
        return {"reasoning": "r", "preferred": "A"}

    user = run_demo(lm=ScriptedLM(answer), users=1)[0]
    assert user.inferred and all(e.get("chosen_persona") == "The user likes lists." for e in user.inferred)
    assert len(seen) == len(user.inferred)
