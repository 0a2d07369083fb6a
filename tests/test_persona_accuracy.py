from __future__ import annotations

import json
import re

import dspy
import pytest

from helpers import record
from personae.data import read_persona_demos
from personae.errors import ConfigError, DataError
from personae.evaluation import (
    PersonaAccuracy,
    persona_inference_examples,
    read_persona_accuracy_log,
    write_persona_accuracy_report,
    write_run_log,
)
from personae.lm import CostMeter, ScriptedLM
from personae.optimizers import load_persona_inference, optimize_persona_inference
from personae.pipelines import evaluate_persona_accuracy, infer_personas, progress_path
from personae.programs import PersonaInference
from personae.testing import output_fields, stub_server


@pytest.fixture(autouse=True)
def _json_adapter():
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


@pytest.fixture
def cli(monkeypatch):
    """``personae``'s main, with this feature's commands registered if cli/main.py does not yet list them."""
    import argparse

    from personae.cli import eval_personas, optimize_persona_inference
    from personae.cli import main as cli_main

    original = cli_main.build_parser

    def build() -> argparse.ArgumentParser:
        parser = original()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for command, name in ((eval_personas, "eval-personas"),
                              (optimize_persona_inference, "optimize-persona-inference")):
            if name not in sub.choices:
                command.register(sub)
        return parser

    monkeypatch.setattr(cli_main, "build_parser", build)
    return cli_main.main


def _records(n: int) -> list:
    return [record(i, chosen_persona_gold=f"likes good answer {i}", rejected_persona_gold=f"likes bad answer {i}")
            for i in range(n)]


def _picks_chosen(call) -> dict[str, str]:
    """A judge that always picks the chosen ("good") response, whatever the persona."""
    first = call.field("response_a") or ""
    return {"reasoning": "r", "preferred": "A" if "good" in first else "B"}


def _follows_persona(call) -> dict[str, str]:
    """A judge that picks the response the persona names ("likes <text>"); First otherwise."""
    persona, first = call.field("persona") or "", call.field("response_a") or ""
    second = call.field("response_b") or ""
    if persona.startswith("likes ") and persona[6:] in (first, second):
        return {"reasoning": "r", "preferred": "A" if persona[6:] == first else "B"}
    return {"reasoning": "r", "preferred": "A"}


# -- persona accuracy -----------------------------------------------------------------------------------


def test_both_orders_and_side_bookkeeping_with_a_judge_that_always_picks_chosen(tmp_path) -> None:
    lm = ScriptedLM(_picks_chosen)
    run = evaluate_persona_accuracy(_records(5), lm=lm, chosen_column="chosen_persona_gold",
                                    rejected_column="rejected_persona_gold")
    assert len(lm.calls) == 20 and all(call.field("persona") for call in lm.calls)  # 5 records x 2 sides x 2 orders
    assert {(j.record_id, j.side, j.chosen_first) for j in run.judgments} == {
        (f"r{i}", side, first) for i in range(5) for side in ("chosen", "rejected") for first in (True, False)}
    assert run.accuracy("chosen") == 1.0 and run.accuracy("rejected") == 0.0
    assert (run.chosen.ci_low, run.chosen.ci_high) == (1.0, 1.0) and run.rejected.ci_high == 0.0
    assert run.order_agreement == 1.0 and run.log.results.records_both_scored == 10
    assert run.inference_cost.lm_calls == 0 and run.judge_cost.lm_calls == 20 and run.cost.lm_calls == 20
    assert run.log.config.inferred_sides == [] and run.log.config.infer_model is None
    assert all(j.prompt and j.raw_output and j.persona for j in run.judgments)
    first = run.judgments[0]
    assert first.side == "chosen" and first.picked == "chosen" and "likes good answer 0" in json.dumps(first.prompt)

    path = write_run_log(run, tmp_path / "run.json")
    log = read_persona_accuracy_log(path)
    assert log.version == 3 and log.status == "success" and log == run.log and log.versions["dspy"]
    report = write_persona_accuracy_report(run, tmp_path).read_text()
    assert "100.0% (100.0%-100.0%)" in report and "rejected-side" in report


def test_an_always_first_judge_scores_half_and_never_agrees_across_orders() -> None:
    run = evaluate_persona_accuracy(_records(6), lm=ScriptedLM(lambda call: {"reasoning": "r", "preferred": "A"}),
                                    chosen_column="chosen_persona_gold", rejected_column="rejected_persona_gold")
    assert run.accuracy("chosen") == 0.5 and run.accuracy("rejected") == 0.5
    assert run.order_agreement == 0.0
    assert run.chosen.ci_low == run.chosen.ci_high == 0.5  # every record is exactly half right: clustered by record


def test_one_records_two_personas_are_judged_back_to_back_and_share_the_prompt_up_to_the_persona() -> None:
    lm = ScriptedLM(_picks_chosen)
    run = evaluate_persona_accuracy(_records(3), lm=lm, chosen_column="chosen_persona_gold",
                                    rejected_column="rejected_persona_gold")
    assert run.accuracy("chosen") == 1.0
    calls = lm.calls
    assert len(calls) == 12
    for start in range(0, 12, 2):  # chosen-side, then rejected-side persona, same record and order
        a, b = calls[start], calls[start + 1]
        assert a.field("persona").startswith("likes good") and b.field("persona").startswith("likes bad")
        assert a.field("response_a") == b.field("response_a")
        persona_at = a.user.index(a.field("persona"))
        assert a.user.index(a.field("response_b")) < persona_at
        assert a.system == b.system and b.user[:persona_at] == a.user[:persona_at]
    firsts = [c.field("response_a") for c in calls[::2]]
    assert firsts == ["good answer 0", "bad answer 0", "good answer 1", "bad answer 1", "good answer 2", "bad answer 2"]


def test_unscored_judgments_count_wrong_and_are_listed_with_reasons(tmp_path) -> None:
    records = _records(4)
    del records[3].metadata["rejected_persona_gold"]

    def answer(call):
        if "question 1" in call.user and call.field("response_a") == "good answer 1":
            return "not json"
        if "question 2" in call.user:
            return RuntimeError("server down")
        return _picks_chosen(call)

    run = evaluate_persona_accuracy(records, lm=ScriptedLM(answer), chosen_column="chosen_persona_gold",
                                    rejected_column="rejected_persona_gold", max_attempts=2)
    assert len(run.judgments) == 16
    unscored = {(j.record_id, j.side, j.chosen_first): j.error for j in run.unscored}
    assert len(unscored) == 2 + 4 + 2  # r1 chosen-first (both sides), r2 all, r3 rejected side
    assert all(reason for reason in unscored.values())
    assert "no persona" in unscored[("r3", "rejected", True)] and "server down" in unscored[("r2", "chosen", True)]
    assert run.chosen.judgments == 8 and run.chosen.unscored == 3 and run.chosen.correct == 5
    assert run.accuracy("chosen") == 5 / 8 and run.accuracy("rejected") == 0.0
    assert (run.chosen.records_both_scored, run.rejected.records_both_scored) == (2, 1)  # r0, r3 / r0
    assert run.chosen.unscored_reasons and run.rejected.unscored_reasons
    report = write_persona_accuracy_report(run, tmp_path).read_text()
    assert "Unscored judgments" in report and "server down" in report


def test_personas_are_inferred_and_the_judge_model_can_differ() -> None:
    infer_lm = ScriptedLM(lambda call: {"persona": "likes " + (call.field("chosen") or "")},
                          model="scripted/inferrer")
    judge_lm = ScriptedLM(_follows_persona, model="scripted/judge")
    run = evaluate_persona_accuracy(_records(3), lm=judge_lm, infer_lm=infer_lm)
    assert len(infer_lm.calls) == 6 and all(c.field("chosen") for c in infer_lm.calls)
    assert len(judge_lm.calls) == 12 and all(c.field("persona") for c in judge_lm.calls)
    assert run.accuracy("chosen") == 1.0 and run.accuracy("rejected") == 1.0
    assert run.personas[1].rejected_persona == "likes bad answer 1" and run.personas[1].rejected_source == "inferred"
    config = run.log.config
    assert (config.infer_model, config.judge_model) == ("scripted/inferrer", "scripted/judge")
    assert run.inference_cost.lm_calls == 6 and run.judge_cost.lm_calls == 12

    # only the side without a column is inferred; a failed inference leaves that side unscored
    infer_lm = ScriptedLM(lambda call: "garbage" if "question 0" in call.user else {"persona": "likes bad answer 1"})
    run = evaluate_persona_accuracy(_records(2), lm=judge_lm, infer_lm=infer_lm, chosen_column="chosen_persona_gold",
                                    max_attempts=1)
    assert all("bad answer" in c.field("chosen") for c in infer_lm.calls)
    assert run.accuracy("chosen") == 1.0 and run.accuracy("rejected") == 0.5
    assert "inference failed" in run.unscored[0].error


# -- the eval-personas command -----------------------------------------------------------------------


def _stub_answer(body):
    fields = output_fields(body)
    values = {"reasoning": "it fits", "preferred": "A", "persona": "The user wants short answers."}
    return 200, json.dumps({name: values.get(name, "x") for name in fields})


def _remote(stub, flag: str = "--model", model: str = "openai/stub-model") -> list[str]:
    base = "--api-base" if flag == "--model" else "--judge-api-base"
    return [flag, model, base, stub.api_base]


def test_eval_personas_with_a_persona_column_infers_nothing(cli, tmp_path, capsys, shared_data) -> None:
    out = tmp_path / "acc"
    with stub_server(_stub_answer) as stub:
        code = cli(["eval-personas", str(shared_data / "persona_tailoring" / "BeaverTails__test.jsonl"),
                      "--persona-column", "chosen_persona_gold", "--limit", "3", "--out", str(out),
                      *_remote(stub), "--no-cache", "--lm-retries", "0"])
        asked = [output_fields(body) for body in stub.requests]
        sent = [m["content"] for body in stub.requests for m in body["messages"] if m["role"] == "user"]
    printed = capsys.readouterr().out
    assert code == 0
    assert len(asked) == 12 and all("preferred" in f and "persona" not in f for f in asked)  # no InferPersona call
    assert any("morally aware" in text for text in sent) and any("law-abiding" in text for text in sent)
    assert "chosen from column chosen_persona_gold" in printed
    assert "rejected from column rejected_persona_gold" in printed
    assert "chosen-side" in printed and "rejected-side" in printed and "50.0% (" in printed  # with its CI
    assert "cost: 12 LM calls" in printed and "inference 0 calls" in printed
    log = read_persona_accuracy_log(out / "run.json")
    assert log.config.rejected_column == "rejected_persona_gold" and log.config.inferred_sides == []
    assert (out / "report.md").exists()


def test_eval_personas_resumes_and_grows_with_the_limit(cli, tmp_path, capsys, shared_data) -> None:
    data = str(shared_data / "persona_tailoring" / "BeaverTails__test.jsonl")
    out = tmp_path / "acc"
    with stub_server(_stub_answer) as stub:
        argv = ["eval-personas", data, "--persona-column", "chosen_persona_gold", "--out", str(out), *_remote(stub),
                "--no-cache", "--lm-retries", "0"]
        assert cli([*argv, "--limit", "2"]) == 0
        assert len(stub.requests) == 8
        lines = (out / "judgments.jsonl").read_text().splitlines()
        assert len(lines) == 1 + 8  # the ledger's header, then each judgment
        # an interrupted run: the last three judgments were never written, the one before torn
        (out / "judgments.jsonl").write_text("\n".join(lines[:6]) + "\n" + lines[6][:40])
        assert cli([*argv, "--limit", "3"]) == 0  # 3 lost judgments + record 3's four
        assert len(stub.requests) == 8 + 3 + 4
        assert "12 items: 7 succeeded, 5 resumed, 0 failed" in capsys.readouterr().out
        assert cli([*argv, "--limit", "3"]) == 0  # nothing left to do
        assert len(stub.requests) == 15
        assert cli([*argv, "--limit", "3", "--fresh"]) == 0
        assert len(stub.requests) == 15 + 12
    log = read_persona_accuracy_log(out / "run.json")
    assert len(log.judgments) == 12 and log.config.records == 3
    capsys.readouterr()


def test_eval_personas_infers_with_one_model_and_judges_with_another(cli, tmp_path, capsys) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}"}) + "\n"
                            for i in range(2)))
    with stub_server(_stub_answer) as inferrer, stub_server(_stub_answer) as judge:
        code = cli(["eval-personas", str(data), "--out", str(tmp_path / "o"), *_remote(inferrer),
                      *_remote(judge, "--judge-model", "openai/judge-model"), "--no-cache", "--lm-retries", "0"])
        inferred = [output_fields(b) for b in inferrer.requests]
        judged = [output_fields(b) for b in judge.requests]
        judge_models = {b["model"] for b in judge.requests}
        # another judge: the judgments are made again, the inferred personas are reused
        again = cli(["eval-personas", str(data), "--out", str(tmp_path / "o"), *_remote(inferrer),
                     *_remote(judge, "--judge-model", "openai/other-judge"), "--no-cache", "--lm-retries", "0"])
        assert again == 0 and len(inferrer.requests) == 4 and len(judge.requests) == 16
    assert code == 0, capsys.readouterr().err
    assert len(inferred) == 4 and all(f == ["persona"] for f in inferred)
    assert len(judged) == 8 and all("preferred" in f for f in judged) and judge_models == {"judge-model"}
    printed = capsys.readouterr().out
    assert "inference 4 calls, judging 8 calls" in printed and "inference 0 calls, judging 8 calls" in printed


def test_eval_personas_refuses_an_unknown_column(cli, tmp_path, capsys) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    assert cli(["eval-personas", str(data), "--persona-column", "nope", "--out", str(tmp_path / "o"),
                  "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1"]) == 2
    assert "nope" in capsys.readouterr().err


# -- infer-personas: demos, program, datasets folder -------------------------------------------------


def test_demos_file_reaches_the_prompt(cli, tmp_path, capsys) -> None:
    demos = tmp_path / "demos.jsonl"
    demos.write_text(
        json.dumps({"prompt": "Human: ZEBRA question\n\nAssistant:", "chosen": "Assistant: calm", "rejected": "loud",
                    "chosen_persona_gold": "The user ZEBRA-PERSONA."}) + "\n"
        + json.dumps({"context": "OKAPI ctx", "preferred_response": "p", "other_response": "o",
                      "persona": "The user OKAPI."}) + "\n")
    read = read_persona_demos(demos)
    assert read[0] == {"prompt": "ZEBRA question", "chosen": "calm", "rejected": "loud",
                       "persona": "The user ZEBRA-PERSONA."}
    assert read[1] == {"prompt": "OKAPI ctx", "chosen": "p", "rejected": "o", "persona": "The user OKAPI."}
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    with stub_server(_stub_answer) as stub:
        code = cli(["infer-personas", str(data), "--demos", str(demos), "--out", str(tmp_path / "out.jsonl"),
                      *_remote(stub), "--no-cache", "--lm-retries", "0"])
        texts = [json.dumps(body["messages"]) for body in stub.requests]
    assert code == 0 and len(texts) == 2
    assert all("ZEBRA-PERSONA" in t and "OKAPI" in t and "Sir Bubbles" not in t for t in texts)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(DataError, match="chosen_persona"):
        read_persona_demos(bad)


def test_datasets_folder_output_resumes_with_every_record_once(tmp_path) -> None:
    import datasets

    records = [record(i) for i in range(6)]
    out = tmp_path / "personas"

    def interrupted(call):
        if "question 3" in call.user:
            raise KeyboardInterrupt
        return {"persona": "who likes " + (call.field("chosen") or "")}

    with pytest.raises(KeyboardInterrupt):
        infer_personas(records, out, lm=ScriptedLM(interrupted))
    assert not out.exists() and len(progress_path(out).read_text().splitlines()) == 1 + 3  # header, 3 records
    lm = ScriptedLM(lambda call: {"persona": "who likes " + (call.field("chosen") or "")})
    report = infer_personas(records, out, lm=lm)
    assert report.resumed == 3 and report.inferred == 3 and len(lm.calls) == 6
    rows = datasets.load_from_disk(str(out)).to_list()
    assert [r["record_id"] for r in rows] == [f"r{i}" for i in range(6)]  # every record exactly once, in order
    assert rows[4]["rejected_persona"] == "who likes bad answer 4"
    again = infer_personas(records, out, lm=lm)  # a finished folder is replaced atomically
    assert again.records == 6 and again.resumed == 6 and datasets.load_from_disk(str(out)).num_rows == 6
    assert len(lm.calls) == 6  # the ledger stays, so nothing was inferred again


def test_a_later_run_over_more_records_builds_on_the_ledger(tmp_path) -> None:
    out = tmp_path / "personas.jsonl"

    def likes(call):
        preferred = call.field("chosen") or ""
        if preferred == "good answer 1" and call.config.temperature in (None, 0.0):  # fails until sampled afresh
            raise ValueError("unparseable")
        return {"persona": "who likes " + preferred}

    lm = ScriptedLM(likes)
    first = infer_personas([record(i) for i in range(3)], out, lm=lm, max_attempts=1)
    assert (first.inferred, first.failed) == (2, 1) and len(lm.calls) == 2 + 1 + 2  # r1 fails on its first side
    bigger = [record(i) for i in range(5)]
    bigger[2] = record(2, chosen="a changed answer")  # same id, other text: inferred again
    report = infer_personas(bigger, out, lm=lm, max_attempts=1)
    assert (report.resumed, report.inferred, report.failed) == (1, 4, 0)
    asked = [c.field("chosen") for c in lm.calls[5:]]
    assert sorted(asked) == sorted(["good answer 1", "bad answer 1", "a changed answer", "bad answer 2",
                                    "good answer 3", "bad answer 3", "good answer 4", "bad answer 4"])
    retry = [c for c in lm.calls[5:] if c.field("chosen") == "good answer 1"]
    assert retry[0].config.temperature == 1.0  # the failed record is sampled afresh, not replayed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["record_id"] for r in rows] == [f"r{i}" for i in range(5)]
    assert rows[1]["chosen_persona"] == "who likes good answer 1"
    assert rows[2]["chosen_persona"] == "who likes a changed answer"

    other = ScriptedLM(likes, model="scripted/other")
    with pytest.raises(ConfigError, match="other settings .*model"):
        infer_personas(bigger, out, lm=other)
    longer = ScriptedLM(likes, max_tokens=64)
    with pytest.raises(ConfigError, match=r"other settings .*sampling .*max_tokens"):
        infer_personas(bigger, out, lm=longer)
    ledger = progress_path(out).read_text().splitlines()  # as an earlier version wrote it: no sampling
    header = json.loads(ledger[0])
    del header["fingerprint"]["sampling"]
    progress_path(out).write_text("\n".join([json.dumps(header), *ledger[1:]]) + "\n")
    calls = len(longer.calls)
    assert infer_personas(bigger, out, lm=longer).resumed == 5 and len(longer.calls) == calls
    fresh = infer_personas(bigger[:2], out, lm=other, fresh=True, max_attempts=2)
    assert fresh.resumed == 0 and fresh.inferred == 2 and len(other.calls) == 5  # r1's first call fails once


def test_optimizer_beats_the_default_and_round_trips(cli, tmp_path, capsys) -> None:
    def infer(call):
        better = "easy" in (call.field("prompt") or "") or "LIKES:" in call.text  # a compiled demo teaches it
        preferred = call.field("chosen") or ""
        return {"persona": f"LIKES: {preferred}" if better else "The user is kind."}

    def judge(call):
        persona, first = call.field("persona") or "", call.field("response_a") or ""
        if persona.startswith("LIKES: "):
            return {"reasoning": "r", "preferred": "A" if persona[7:] == first else "B"}
        return {"reasoning": "r", "preferred": "A"}

    records = [record(i, prompt=f"{'easy ' if i % 2 == 0 else ''}question {i}") for i in range(8)]
    infer_lm, judge_lm = ScriptedLM(infer), ScriptedLM(judge)
    metric = PersonaAccuracy(judge_lm)
    val = persona_inference_examples(records[4:])
    with dspy.context(lm=infer_lm):
        before = sum(metric(e, PersonaInference()(**e.inputs())) for e in val) / len(val)
    calls_before = len(infer_lm.calls) + len(judge_lm.calls)
    meter = CostMeter()
    with meter.track():  # worker threads report to the meter (DSPy deep-copies usage trackers per thread)
        program = optimize_persona_inference(records, lm=infer_lm, judge_lm=judge_lm, optimizer="bootstrap",
                                             num_candidates=1, num_threads=2)
    assert meter.cost.lm_calls == len(infer_lm.calls) + len(judge_lm.calls) - calls_before > 0
    assert judge_lm.calls and not any(c.field("persona") for c in infer_lm.calls)  # the judge ran on its own LM
    with dspy.context(lm=infer_lm):
        after = sum(metric(e, program(**e.inputs())) for e in val) / len(val)
    assert before == 0.75 and after == 1.0
    assert program.infer.demos and all(str(d["persona"]).startswith("LIKES:") for d in program.infer.demos)

    path = tmp_path / "program.json"
    program.save(str(path))
    loaded = PersonaInference()
    loaded.load(str(path))
    assert [dict(d)["persona"] for d in loaded.infer.demos] == [d["persona"] for d in program.infer.demos]
    with dspy.context(lm=infer_lm):
        assert sum(metric(e, loaded(**e.inputs())) for e in val) / len(val) == 1.0
    assert [d["persona"] for d in load_persona_inference(path).infer.demos] == \
        [d["persona"] for d in program.infer.demos]
    with pytest.raises(DataError):
        load_persona_inference(tmp_path / "missing.json")

    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    with stub_server(_stub_answer) as stub:
        code = cli(["infer-personas", str(data), "--program", str(path), "--out", str(tmp_path / "o.jsonl"),
                      *_remote(stub), "--no-cache", "--lm-retries", "0"])
        texts = [json.dumps(body["messages"]) for body in stub.requests]
    assert code == 0 and texts and all("LIKES:" in t and "Sir Bubbles" not in t for t in texts)


def test_mipro_rewrites_the_instructions_for_persona_accuracy() -> None:
    import re

    def infer(call):
        section = call.system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
        fields = re.findall(r"`(\w+)`", section)
        if fields == ["persona"]:  # persona inference: good personas once the instructions say BREVITY
            good = "BREVITY" in call.system
            return {"persona": f"likes {call.field('chosen')}" if good else "The user is kind."}
        return {f: ("Infer the persona. Focus on BREVITY." if "instruction" in f else "x") for f in fields}

    program = optimize_persona_inference([record(i) for i in range(6)], lm=ScriptedLM(infer),
                                         judge_lm=ScriptedLM(_follows_persona), optimizer="mipro", both_orders=False)
    assert "BREVITY" in program.infer.signature.instructions


def test_optimize_persona_inference_command_saves_a_loadable_program(cli, tmp_path, capsys) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": f"a{i}", "rejected": f"b{i}"}) + "\n"
                            for i in range(4)))
    out = tmp_path / "program.json"
    with stub_server(_stub_answer) as stub:
        code = cli(["optimize-persona-inference", str(data), "--out", str(out), "--candidates", "0", "--one-order",
                    *_remote(stub), "--no-cache", "--lm-retries", "0"])
    printed = capsys.readouterr().out
    assert code == 0 and "saved to" in printed and "LM calls" in printed
    assert re.search(r"\d+ metric judgments: \d+ succeeded, 0 resumed, \d+ failed", printed)
    loaded = PersonaInference()
    loaded.load(str(out))
    assert cli(["optimize-persona-inference", str(data), "--out", str(tmp_path / "p.txt")]) == 2
