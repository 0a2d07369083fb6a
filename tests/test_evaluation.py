from __future__ import annotations

import argparse
import json
import math
import random

import dspy
import pytest

from helpers import record
from personae.data import PreferenceData, PreferenceRecord, UserHistory, split_user
from personae.errors import ConfigError
from personae.evaluation import (
    METHODS,
    EvaluationLog,
    bootstrap_ci,
    judge_path,
    method_stats,
    read_run_log,
    safe_name,
    write_report,
    write_run_log,
)
from personae.lm import ScriptedLM
from personae.pipelines import evaluate_methods
from personae.programs import PersonalizedJudge
from personae.programs import judge_path as fitted_judge_path


@pytest.fixture(autouse=True)
def _json_adapter():
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


def _user(name: str, n: int, *, profile: str | None = None, pairs_per_prompt: int = 1, **metadata: object
          ) -> UserHistory:
    records = []
    for i in range(n):
        prompt = f"{name} question {i // pairs_per_prompt}"
        rec = record(i, prompt=prompt, chosen=f"{name} good answer {i}", rejected=f"{name} bad answer {i}",
                     user=name, **metadata)
        rec.profile = profile
        records.append(rec)
    return UserHistory(name, records, profile)


def _always_first(call) -> dict[str, str]:
    return {"reasoning": f"about: {call.field('prompt')}", "preferred": "A"}


def _knows_best(call) -> dict[str, str]:
    """Picks the chosen response, whichever side it is on."""
    first = call.field("response_a") or ""
    return {"reasoning": "r", "preferred": "A" if "good" in first else "B"}


def _users() -> dict[str, UserHistory]:
    return {"ana": _user("ana", 10, profile="age 30, Berlin"), "ben": _user("ben", 10)}


def test_every_method_judges_the_same_test_pairs_in_both_orders(tmp_path) -> None:
    users = _users()
    PersonalizedJudge("ana", "Likes short answers.").save(judge_path(tmp_path, "ana"))
    run = evaluate_methods(users, METHODS, lm=ScriptedLM(_always_first), judges_dir=tmp_path,
                           personas={"ana": "Likes short answers.", "ben": "Likes detail."})
    expected = {(uid, r.record_id, order) for uid, h in users.items()
                for r in split_user(h.records).test for order in (True, False)}
    assert len(expected) == 2 * 2 * 3
    for method in METHODS:
        judged = [(j.user_id, j.record_id, j.chosen_first) for j in run.judgments if j.method == method]
        assert len(judged) == len(set(judged)) and set(judged) == expected, method
    assert [u.n_train for u in run.users] == [5, 5] and [u.n_test for u in run.users] == [3, 3]


def test_an_always_first_judge_scores_exactly_half() -> None:
    run = evaluate_methods(_users(), ["default", "memory"], lm=ScriptedLM(_always_first))
    for method in ("default", "memory"):
        s = run.summary[method]
        assert s.accuracy == 0.5 and s.mean_user_accuracy == 0.5 and s.unscored == 0
        assert s.pairs_both_scored == 6 and s.orders_agreed == 0  # pure position bias: the orders never agree
        assert s.ci_low is not None and s.ci_high is not None and s.ci_low <= 0.5 <= s.ci_high
    assert all(u.accuracy == {"default": 0.5, "memory": 0.5} for u in run.users)


def test_a_judge_that_knows_the_answer_agrees_with_itself() -> None:
    run = evaluate_methods(_users(), ["default"], lm=ScriptedLM(_knows_best))
    s = run.summary["default"]
    assert s.accuracy == 1.0 and s.orders_agreed == s.pairs == 6 and (s.ci_low, s.ci_high) == (1.0, 1.0)


def test_unparseable_answers_and_lm_failures_are_unscored_and_wrong() -> None:
    def answer(call):
        context = call.field("prompt") or ""
        if context == "ana question 7":
            return "no json here"
        if context == "ana question 8":
            return RuntimeError("server down")
        return {"reasoning": "r", "preferred": "A"}

    run = evaluate_methods({"ana": _user("ana", 10)}, ["default"], lm=ScriptedLM(answer), max_attempts=2)
    s = run.summary["default"]
    assert s.judgments == 6 and s.unscored == 4 and s.correct == 1  # only r9, chosen first
    assert s.accuracy == pytest.approx(1 / 6)
    failed = {j.record_id: j for j in run.judgments if not j.scored}
    assert set(failed) == {"r7", "r8"} and all(not j.correct and j.attempts == 2 for j in failed.values())
    assert "AdapterParseError" in failed["r7"].error and failed["r7"].raw_output == "no json here"
    assert "server down" in failed["r8"].error and failed["r8"].raw_output is None
    assert failed["r8"].prompt and "ana question 8" in failed["r8"].prompt[-1]["content"]
    assert set(s.unscored_reasons) == {"AdapterParseError", "LMUnexpectedError"}
    assert s.pairs_both_scored == 1


def test_a_user_without_a_profile_is_unscored_for_the_profile_method() -> None:
    lm = ScriptedLM(_always_first)
    run = evaluate_methods(_users(), ["profile"], lm=lm)
    ben = [j for j in run.judgments if j.user_id == "ben"]
    assert len(ben) == 6 and all(j.error == "no profile" and not j.correct and j.prompt is None for j in ben)
    assert len(lm.calls) == 6 and all("age 30, Berlin" in call.text for call in lm.calls)
    s = run.summary["profile"]
    assert s.accuracy == pytest.approx(3 / 12) and s.unscored == 6 and s.unscored_reasons == {"no profile": 6}
    assert run.users[1].accuracy["profile"] == 0.0


def test_persona_comes_from_the_mapping_or_the_persona_column() -> None:
    users = {"ana": _user("ana", 10, persona="Wants bullet points."), "ben": _user("ben", 10)}
    lm = ScriptedLM(_always_first)
    run = evaluate_methods(users, ["persona"], lm=lm)
    assert {j.error for j in run.judgments if j.user_id == "ben"} == {"no persona"}
    assert all("Wants bullet points." in call.text for call in lm.calls) and len(lm.calls) == 6
    lm = ScriptedLM(_always_first)
    run = evaluate_methods(users, ["persona"], lm=lm, personas={"ben": "Wants code."})
    assert run.summary["persona"].unscored == 0
    assert sum("Wants code." in call.text for call in lm.calls) == 6


def test_a_missing_fitted_judge_is_unscored_and_a_fitted_one_is_used(tmp_path) -> None:
    PersonalizedJudge("ana", "Prefers answers under fifty words.").save(judge_path(tmp_path, "ana"))
    lm = ScriptedLM(_always_first)
    run = evaluate_methods(_users(), ["synthesizeme"], lm=lm, judges_dir=tmp_path)
    assert {j.error for j in run.judgments if j.user_id == "ben"} == {"no fitted judge"}
    assert {j.error for j in run.judgments if j.user_id == "ana"} == {None}
    assert len(lm.calls) == 6 and all("Prefers answers under fifty words." in c.system for c in lm.calls)
    with pytest.raises(ValueError, match="judges"):
        evaluate_methods(_users(), ["synthesizeme"], lm=lm)


def test_a_judge_fitted_on_this_splits_test_pairs_is_not_scored(tmp_path) -> None:
    from personae.optimizers import SynthesizeMe

    users = _users()
    for uid, fractions in (("ana", (0.8, 0.1, 0.1)), ("ben", (0.3, 0.2, 0.5))):
        fit_lm = ScriptedLM(_always_first)
        SynthesizeMe("default", fractions=fractions).fit(users[uid], lm=fit_lm).save(judge_path(tmp_path, uid))
    run = evaluate_methods(users, ["synthesizeme"], lm=ScriptedLM(_always_first), judges_dir=tmp_path)
    ana = {j.error for j in run.judgments if j.user_id == "ana"}
    assert len(ana) == 1 and "read 9 pairs, more than the 7 train and validation pairs" in ana.pop()
    assert {j.error for j in run.judgments if j.user_id == "ben"} == {None}  # fitted on fewer: no overlap


def test_the_split_keeps_every_prompt_on_one_side() -> None:
    users = {"ana": _user("ana", 24, pairs_per_prompt=3)}  # 8 prompts, three pairs each
    lm = ScriptedLM(_always_first)
    run = evaluate_methods(users, ["memory"], lm=lm)
    split = split_user(users["ana"].records)
    test_prompts = {r.prompt for r in split.test}
    assert test_prompts and test_prompts.isdisjoint(r.prompt for r in split.train + split.val)
    judged = {r.prompt for r in users["ana"].records if r.record_id in {j.record_id for j in run.judgments}}
    assert judged == test_prompts
    for call in lm.calls:  # the memory judge never sees a test prompt in its history
        history = call.field("history") or ""
        assert history and not any(prompt in history for prompt in test_prompts)


def test_concurrent_judging_keeps_each_prompt_with_its_judgment() -> None:
    users = {f"u{k}": _user(f"u{k}", 10) for k in range(4)}
    run = evaluate_methods(users, ["default", "memory"], lm=ScriptedLM(_always_first), concurrency=6)
    prompts = {(r.user_id, r.record_id): r.prompt for h in users.values() for r in h.records}
    assert len(run.judgments) == 4 * 3 * 2 * 2
    for j in run.judgments:
        prompt = prompts[(j.user_id, j.record_id)]
        assert prompt in j.prompt[-1]["content"] and f"about: {prompt}" in j.raw_output
    assert run.method_cost("default").lm_calls == run.method_cost("memory").lm_calls == 24
    assert run.cost.lm_calls == 48 and run.cost.prompt_tokens > 0


def test_judgments_in_the_ledger_are_reused(tmp_path) -> None:
    from personae.runs import Ledger

    users = _users()
    first = evaluate_methods(users, ["default"], lm=ScriptedLM(_always_first))
    ledger = Ledger(tmp_path / "judgments.jsonl", kind="evaluate", fingerprint={"model": "scripted/fake"})
    evaluate_methods({"ana": users["ana"]}, ["default"], lm=ScriptedLM(_always_first), ledger=ledger)
    lm = ScriptedLM(_always_first)
    seen = []
    ledger = Ledger(tmp_path / "judgments.jsonl", kind="evaluate", fingerprint={"model": "scripted/fake"})
    again = evaluate_methods(users, ["default"], lm=lm, ledger=ledger, on_judgment=seen.append)
    assert len(lm.calls) == 6 and {j.user_id for j in seen} == {"ben"}
    assert again.judgments == first.judgments and again.cost.lm_calls == 6
    assert (again.log.counts.resumed, again.log.counts.succeeded, again.log.counts.failed) == (6, 6, 0)


def test_a_paired_difference_interval_resamples_both_methods_together() -> None:
    """Outcomes ``a - b`` of two methods on the same pairs: the interval of their difference."""
    a = [i % 10 < 7 for i in range(200)]
    b = [i % 10 < 6 for i in range(200)]        # right wherever a is, but on one pair in ten less
    low, high = bootstrap_ci([float(x) - float(y) for x, y in zip(a, b, strict=True)], rng=random.Random(0),
                             clusters=[i // 2 for i in range(200)])
    assert 0.0 < low <= 0.1 <= high < 0.2
    assert bootstrap_ci([float(x) - float(x) for x in a], rng=random.Random(0)) == (0.0, 0.0)
    # unpaired, the same two accuracies could not be told apart
    assert bootstrap_ci(a, rng=random.Random(0))[0] < bootstrap_ci(b, rng=random.Random(0))[1]


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_data() -> None:
    small = [i % 10 < 6 for i in range(50)]
    large = small * 40
    low_s, high_s = bootstrap_ci(small, rng=random.Random(0))
    low_l, high_l = bootstrap_ci(large, rng=random.Random(0))
    assert low_s <= 0.6 <= high_s and low_l <= 0.6 <= high_l
    assert high_l - low_l < (high_s - low_s) / 3
    assert bootstrap_ci(small, rng=random.Random(1)) == bootstrap_ci(small, rng=random.Random(1))
    low_c, high_c = bootstrap_ci(large, rng=random.Random(0), clusters=[i // 2 for i in range(len(large))])
    assert low_c <= 0.6 <= high_c
    assert all(math.isnan(x) for x in bootstrap_ci([], rng=random.Random(0)))
    with pytest.raises(ValueError):
        method_stats([("u", "r", True, True, False)], rng=random.Random(0))


def test_run_log_round_trips_through_json_with_prompts_and_outputs(tmp_path) -> None:
    data = PreferenceData([r for h in _users().values() for r in h.records], source="mem.jsonl")
    run = evaluate_methods(data, ["default", "profile"], lm=ScriptedLM(_always_first), seed=3)
    path = write_run_log(run, tmp_path / "run.json")
    log = EvaluationLog.model_validate_json(path.read_text())
    assert log == run.log and read_run_log(path) == run.log
    raw = json.loads(path.read_text())
    assert raw["version"] == 3 and raw["status"] == "success" and raw["command"] == "evaluate"
    assert raw["config"]["data_source"] == "mem.jsonl" and raw["config"]["seed"] == 3
    assert raw["config"]["model"] == "scripted/fake" and raw["versions"]["dspy"]
    assert len(log.judgments) == 24
    scored = [j for j in log.judgments if j.scored]
    assert all(j.prompt and j.prompt[0]["role"] == "system" and j.raw_output for j in scored)
    assert json.loads(scored[0].raw_output)["preferred"] == "A"
    assert log.cost.lm_calls == 18 and log.results.method("profile").cost.lm_calls == 6


def test_report_writes_markdown_and_plots(tmp_path) -> None:
    users = {f"user {k}": _user(f"user {k}", 4 + k % 5) for k in range(34)}  # more users than bars allow
    run = evaluate_methods(users, ["default", "memory"], lm=ScriptedLM(_knows_best))
    for target, source in ((tmp_path / "many", run), (tmp_path / "few", _small_log())):
        report = write_report(source, target)
        text = report.read_text()
        assert "| default |" in text and "## Per user" in text and "per_user_accuracy.png" in text
        for name in ("per_user_accuracy.png", "accuracy_vs_train.png"):
            png = (target / name).read_bytes()
            assert png.startswith(b"\x89PNG") and len(png) > 1000


def _small_log() -> EvaluationLog:
    return evaluate_methods(_users(), ["default", "profile"], lm=ScriptedLM(_always_first)).log


def test_safe_names_and_user_selection(tmp_path) -> None:
    assert safe_name("user_42") == "user_42"
    odd = ["a/b", "a:b", "../x", "CON", "", "ü", "a b"]
    names = [safe_name(u) for u in odd]
    assert len(set(names)) == len(odd) and all(n and "/" not in n and not n.startswith(".") for n in names)
    assert judge_path(tmp_path, "a/b").parent == tmp_path
    assert judge_path(tmp_path, "a/b") == fitted_judge_path(tmp_path, "a/b")  # where `personae fit` writes


def test_unknown_methods_and_duplicate_record_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        evaluate_methods(_users(), ["oracle"], lm=ScriptedLM(_always_first))
    records: list[PreferenceRecord] = [record(1, user="x"), record(1, user="x", prompt="other")]
    with pytest.raises(ValueError, match="record ids"):
        evaluate_methods({"x": UserHistory("x", records)}, ["default"], lm=ScriptedLM(_always_first))


# -- the command ------------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    from personae.cli import evaluate

    parser = argparse.ArgumentParser(prog="personae")
    evaluate.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", *argv])
    return int(args.run(args))


def test_evaluate_command_writes_run_log_and_report_and_resumes(tmp_path, capsys) -> None:
    from personae.testing import output_fields, stub_server

    rows = [{"prompt": f"{u} q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "user_id": u,
             "profile": "teacher" if u == "ana" else None}
            for u, n in (("ana", 10), ("ben", 6), ("cy", 2)) for i in range(n)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    personas = tmp_path / "personas.jsonl"
    personas.write_text(json.dumps({"user_id": "ben", "persona": "likes brevity"}) + "\n")

    def answer(body):
        values = {"reasoning": "ok", "preferred": "A"}
        return 200, json.dumps({name: values.get(name, "x") for name in output_fields(body)})

    out = tmp_path / "eval"
    argv = [str(data), "--method", "default,profile,persona", "--personas", str(personas), "--min-pairs", "3",
            "--out", str(out), "--model", "openai/stub", "--no-cache", "--lm-retries", "0"]
    with stub_server(answer) as stub:
        assert _cli([*argv, "--api-base", stub.api_base]) == 0
        calls = len(stub.requests)
        printed = capsys.readouterr().out
        assert _cli([*argv, "--api-base", stub.api_base]) == 0  # everything reused
        assert len(stub.requests) == calls
        # new personas: only the persona method's judgments are made again
        personas.write_text(json.dumps({"user_id": "ben", "persona": "likes detail"}) + "\n")
        assert _cli([*argv, "--api-base", stub.api_base]) == 0
        again = stub.requests[calls:]
        assert len(again) == 4  # ben's 2 test pairs, both orders
        assert all("likes detail" in json.dumps(r["messages"]) for r in again)
        assert "20 resumed" in capsys.readouterr().out  # 10 default + 6 profile + 4 persona, less ben's 4
    # ana has 3 test pairs, ben 2 (cy is under --min-pairs): 10 judgments per method, 30 in all, less
    # ben's for profile (no profile) and ana's for persona (no persona)
    assert calls == 30 - 4 - 6
    assert "evaluated 2 users" in printed and "pooled accuracy" in printed and "cost:" in printed
    assert "no profile" in printed and "no persona" in printed
    log = read_run_log(out / "run.json")
    assert log.config.methods == ["default", "profile", "persona"] and log.results.method("default").accuracy == 0.5
    assert (out / "report.md").exists() and (out / "accuracy_vs_train.png").stat().st_size > 0
    # the header, each judgment made, and the four made again for the new persona (the old ones stay, under
    # their own judge's key)
    assert len((out / "judgments.jsonl").read_text().splitlines()) == 1 + 20 + 4
    # another model is another configuration: nothing is reused silently
    with pytest.raises(ConfigError, match="other settings .*model 'openai/stub' there, 'openai/other' now"):
        _cli([*argv[:-5], "--model", "openai/other", "--no-cache", "--api-base", "http://127.0.0.1:9/v1"])


def test_wilson_interval_stays_in_bounds_and_narrows() -> None:
    from personae.evaluation import wilson_interval

    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(6, 6)
    assert low == pytest.approx(0.6097, abs=1e-4) and high == 1.0
    assert wilson_interval(0, 6)[0] == 0.0
    wide, narrow = wilson_interval(5, 10), wilson_interval(50, 100)
    assert wide[0] < narrow[0] < 0.5 < narrow[1] < wide[1]
