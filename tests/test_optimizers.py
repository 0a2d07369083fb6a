from __future__ import annotations

import json

import dspy
import pytest

from helpers import record
from personae.data import UserHistory, select_users
from personae.errors import ConfigError, DataError
from personae.lm import ScriptedLM
from personae.optimizers import DemoSearch, PersonalizedJudge, PredictionMemo, SynthesizeMe, judge_path
from personae.pipelines import fit_users
from personae.programs import DefaultJudge, judge_pair


@pytest.fixture(autouse=True)
def _json_adapter():
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


def _shorter_wins(call):
    """A judge that prefers the shorter response, and writes a fixed persona."""
    if call.field("preference_history") is not None:
        return {"reasoning": "r", "persona": "The user wants short answers."}
    first, second = call.field("response_a"), call.field("response_b")
    return {"reasoning": "shorter wins", "preferred": "A" if len(first) <= len(second) else "B"}


def _user(n: int = 10, uid: str = "u1") -> UserHistory:
    return UserHistory(uid, [record(i, chosen=f"ok {i}", rejected=f"a much longer answer number {i}", user=uid)
                             for i in range(n)])


def _pool(n: int) -> list[dict[str, str]]:
    return [{"prompt": f"c{i}", "response_a": "a", "response_b": "b", "reasoning": f"why {i}",
             "preferred": "A"} for i in range(n)]


def test_candidates_are_seeded_and_distinct() -> None:
    a = DemoSearch(num_candidates=6, max_demos=3, seed=1).candidates(_pool(8), [])
    b = DemoSearch(num_candidates=6, max_demos=3, seed=1).candidates(_pool(8), [])
    c = DemoSearch(num_candidates=6, max_demos=3, seed=2).candidates(_pool(8), [])
    assert a == b and a != c
    assert len(a) == 6 and len({tuple(d["reasoning"] for d in x.demos) for x in a}) == 6
    assert any(len(x.demos) == 0 for x in a)  # zero-shot is always a candidate
    assert all(len(x.demos) <= 3 for x in a)


def test_search_stops_at_target_and_reuses_predictions() -> None:
    lm = ScriptedLM(_shorter_wins)
    valset = [record(i, chosen="ok", rejected="a long answer") for i in range(4)]
    memo = PredictionMemo()
    with dspy.context(lm=lm):
        result = DemoSearch(num_candidates=5, max_demos=2, target=0.75, num_threads=1, memo=memo).search(
            DefaultJudge(), valset, pool=_pool(4))
        assert result.stopped == "target" and result.candidates_tried == 1 and result.score == 1.0
        assert len(lm.calls) == 4
        again = DemoSearch(num_candidates=1, max_demos=2, target=0.75, num_threads=1, memo=memo).search(
            DefaultJudge(), valset, pool=_pool(4))
    assert len(lm.calls) == 4  # every prediction came from the memo
    assert again.reused_predictions == 4 and again.cost.lm_calls == 0


def test_pruning_stops_hopeless_candidates_and_keeps_the_exhaustive_choice() -> None:
    def script(call):  # right only when demo "why 2" is shown, otherwise always "B"
        if "why 2" in call.text:
            return {"reasoning": "r", "preferred": "A" if len(call.field("response_a")) <= len(
                call.field("response_b")) else "B"}
        return {"reasoning": "r", "preferred": "B"}

    valset = [record(i, chosen="ok", rejected="a long answer") for i in range(8)]
    results, calls = {}, {}
    for prune in (False, True):
        lm = ScriptedLM(script)
        with dspy.context(lm=lm):
            results[prune] = DemoSearch(num_candidates=8, max_demos=3, num_threads=1, prune=prune, seed=3).search(
                DefaultJudge(), valset, pool=_pool(5))
        calls[prune] = len(lm.calls)
    full, pruned = results[False], results[True]
    assert pruned.demos == full.demos and pruned.score == full.score == 1.0
    assert any(d["reasoning"] == "why 2" for d in pruned.demos)
    assert full.pruned == 0 and calls[False] == 8 * len(valset)
    assert pruned.pruned > 0 and calls[True] < calls[False]
    assert pruned.candidates_tried == full.candidates_tried == 8
    for row, exhaustive in zip(pruned.scores, full.scores, strict=True):
        if "pruned" in row:  # dropped early, and rightly: its full score could not have won
            assert row["score"] is None and row["pruned"]["asked"] < len(valset)
            assert exhaustive["score"] <= row["pruned"]["upper_bound"] <= full.score


def test_search_respects_the_call_budget_and_runs_threads() -> None:
    lm = ScriptedLM(lambda call: {"reasoning": "r", "preferred": "B"})
    valset = [record(i) for i in range(6)]
    with dspy.context(lm=lm):
        result = DemoSearch(num_candidates=6, max_demos=2, max_lm_calls=8, num_threads=3).search(
            DefaultJudge(), valset, pool=_pool(5))
    assert result.stopped == "budget"
    assert len(lm.calls) <= 8 + 3  # at most one call in flight per thread past the budget


def test_failed_judgments_count_wrong_in_search() -> None:
    lm = ScriptedLM(lambda call: "not json")
    with dspy.context(lm=lm):
        result = DemoSearch(num_candidates=1, max_demos=0, num_threads=1, max_attempts=2).search(
            DefaultJudge(), [record(1), record(2)])
    assert result.score == 0.0 and len(lm.calls) == 4


def test_synthesizeme_fits_a_judge_and_it_round_trips(tmp_path) -> None:
    lm = ScriptedLM(_shorter_wins)
    judge = SynthesizeMe("default").fit(_user(10), lm=lm)
    assert judge.persona == "The user wants short answers."
    assert "The user wants short answers." in judge.instructions
    assert judge.val_accuracy == 1.0 and judge.n_train == 5 and judge.n_val == 2
    assert judge.cost["lm_calls"] == len(lm.calls) and judge.cost["verified_traces"] == 5
    test_prompts = {r.prompt for r in _user(10).records[7:]}
    assert not any(p in call.text for call in lm.calls for p in test_prompts)  # test pairs never seen
    assert all(d["preferred"] in ("A", "B") and d["reasoning"] for d in judge.demos)
    path = judge.save(tmp_path / "j.json")
    assert PersonalizedJudge.load(path).to_dict() == judge.to_dict()
    messages = judge.judge_messages("q", "a", "b")
    assert messages[0]["role"] == "system" and "short answers" in messages[0]["content"]
    assert len(messages) == 2 + 2 * len(judge.demos)
    assert "short answers" in judge.generation_messages()[0]["content"]


def test_a_persona_that_echoes_the_example_is_left_out_with_its_reason() -> None:
    from personae.signatures import PERSONA_SYNTHESIS_DEMOS

    def echo(call):
        if call.field("preference_history") is not None:
            return {"reasoning": "r", "persona": PERSONA_SYNTHESIS_DEMOS[0]["persona"]}
        return _shorter_wins(call)

    judge = SynthesizeMe("default").fit(_user(10), lm=ScriptedLM(echo))
    assert judge.persona == "" and "repeats a worked example" in judge.cost["persona_error"]
    assert "budget" not in judge.instructions


def test_verification_keeps_only_traces_that_match_the_choice() -> None:
    lm = ScriptedLM(lambda call: {"reasoning": "first is best", "preferred": "A"}
                    if call.field("preference_history") is None else {"reasoning": "r", "persona": "p"})
    judge = SynthesizeMe("default", verify_attempts=1).fit(_user(10), lm=lm)
    assert 0 < judge.cost["verified_traces"] < 5  # only pairs shown chosen-first survive
    assert all(d["preferred"] == "A" for d in judge.demos)


def test_saved_judge_gives_the_same_predictions_on_cached_calls(tmp_path) -> None:
    fit_lm = ScriptedLM(_shorter_wins)
    path = SynthesizeMe("default").fit(_user(8), lm=fit_lm).save(tmp_path / "j.json")
    lm = ScriptedLM(_shorter_wins, cache=True)
    pairs = [("how to nap?", "Short.", "A very long winded answer."), ("tea?", "Long long long text.", "Yes.")]
    before = [PersonalizedJudge.load(path).compare(*p, lm=lm) for p in pairs]
    calls = len(lm.calls)
    after = [PersonalizedJudge.load(path).compare(*p, lm=lm) for p in pairs]
    assert after == before and [v.preferred for v in before] == ["A", "B"]
    assert len(lm.calls) == calls  # the reloaded judge built the same prompts: all cache hits


def test_a_judge_can_be_awaited_from_an_async_application() -> None:
    import asyncio
    import threading

    threads = set()

    def script(call):
        threads.add(threading.current_thread().name)
        return _shorter_wins(call)

    judge = PersonalizedJudge("u1", "The user wants short answers.")
    pairs = [(f"q{i}?", "Short.", "A very long winded answer.") if i % 2 else (f"q{i}?", "Long long text.", "Ok.")
             for i in range(4)]

    async def app():
        with dspy.context(lm=ScriptedLM(script)):  # the coroutine's context reaches DSPy's async LM path
            return await asyncio.gather(*(judge.acompare(*p) for p in pairs))

    loop = asyncio.new_event_loop()  # not asyncio.run: that would drop a loop another library set up
    try:
        verdicts = loop.run_until_complete(app())
    finally:
        loop.close()
    assert [v.preferred for v in verdicts] == ["B", "A", "B", "A"]
    assert threads == {threading.main_thread().name}  # awaited on the event loop: no thread per judgment
    assert verdicts == [judge.compare(*p, lm=ScriptedLM(_shorter_wins)) for p in pairs]


def _shorter_wins_mostly(call):
    """Like :func:`_shorter_wins`, but wrong on every third question, as a real judge would be."""
    answer = _shorter_wins(call)
    question = call.field("prompt") or ""
    if "preferred" in answer and question.split()[-1:] and int(question.split()[-1]) % 3 == 0:
        answer["preferred"] = "B" if answer["preferred"] == "A" else "A"
    return answer


def test_paper_preset_costs_more_than_default() -> None:
    lm_default, lm_paper = ScriptedLM(_shorter_wins_mostly), ScriptedLM(_shorter_wins_mostly)
    default = SynthesizeMe("default").fit(_user(20), lm=lm_default)
    paper = SynthesizeMe("paper").fit(_user(20), lm=lm_paper)
    assert len(lm_paper.calls) > 2 * len(lm_default.calls)
    assert paper.candidates_tried > default.candidates_tried
    lm_full = ScriptedLM(_shorter_wins_mostly)
    full = SynthesizeMe("paper", prune=False).fit(_user(20), lm=lm_full)
    assert paper.cost["pruned_candidates"] > 0 and full.cost["pruned_candidates"] == 0
    assert len(lm_full.calls) > len(lm_paper.calls)
    assert (full.demos, full.val_accuracy, full.persona) == (paper.demos, paper.val_accuracy, paper.persona)


def test_bad_artifacts_and_presets_are_reported(tmp_path) -> None:
    with pytest.raises(ConfigError):
        SynthesizeMe("fastest")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 99, "user_id": "u", "persona": "p"}))
    with pytest.raises(DataError, match="version"):
        PersonalizedJudge.load(bad)
    with pytest.raises(ConfigError):  # one pair: no validation side, and here one is required
        SynthesizeMe().fit(_user(1), lm=ScriptedLM(_shorter_wins), require_validation=True)
    with pytest.raises(ConfigError, match="no LM"):
        SynthesizeMe().fit(_user(4))


def test_fit_users_resumes_and_survives_a_failing_user(tmp_path) -> None:
    def answer(call):
        if "user-b" in call.text:
            raise TimeoutError("the model timed out")
        return _shorter_wins(call)

    users = [_user(8, "user-a"), _user(8, "user-b"), _user(8, "user-c")]
    for u in users:  # make user ids visible in the prompts so the script can fail one user
        for r in u.records:
            r.context[0] = type(r.context[0])("user", f"{u.user_id}: {r.context[0].content}")
    done = PersonalizedJudge("user-a", "already fitted")
    done.save(judge_path(tmp_path, "user-a"))
    lm = ScriptedLM(answer)
    report = fit_users(users, tmp_path, lm=lm, user_concurrency=2)
    assert report.skipped == ["user-a"]
    assert [j.user_id for j in report.fitted] == ["user-c"]
    assert report.failed and report.failed[0][0] == "user-b"
    assert not any("user-a" in c.text for c in lm.calls)
    ledger = [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()]
    assert ledger[0]["kind"] == "fit" and ledger[0]["fingerprint"]["model"] == "scripted/fake"
    failed = [row for row in ledger[1:] if row["error"]]
    assert [row["user_id"] for row in failed] == ["user-b"] and failed[0]["kind"] == "timeout"
    assert "timed out" in failed[0]["error"]
    assert {row["user_id"] for row in ledger[1:] if not row["error"]} == {"user-a", "user-c"}  # user-a adopted
    assert (report.counts.succeeded, report.counts.resumed, report.counts.failed) == (1, 1, 1)
    assert PersonalizedJudge.load(judge_path(tmp_path, "user-a")).persona == "already fitted"
    assert judge_path(tmp_path, "user-c").exists() and not judge_path(tmp_path, "user-b").exists()

    other = ScriptedLM(_shorter_wins, model="scripted/other")
    with pytest.raises(ConfigError, match="other settings .*model 'scripted/fake' there, 'scripted/other' now"):
        fit_users(users[2:], tmp_path, lm=other)
    assert not other.calls
    again = fit_users(users[2:], tmp_path, lm=other, fresh=True)
    assert [j.model for j in again.fitted] == ["scripted/other"] and other.calls
    # pruning changes what a fit costs, not the judge: a run with it reuses judges fitted without
    calls = len(other.calls)
    unpruned = fit_users(users[2:], tmp_path, lm=other, fitter=SynthesizeMe(prune=False))
    assert unpruned.skipped == ["user-c"] and len(other.calls) == calls
    assert PersonalizedJudge.load(judge_path(tmp_path, "user-c")).settings["prune"] is True


def test_select_users_and_judge_paths(tmp_path) -> None:
    users = [_user(3, "a"), _user(9, "b"), _user(5, "c"), _user(9, "d")]
    assert [u.user_id for u in select_users(users, top=2)] == ["b", "d"]
    assert [u.user_id for u in select_users(users, min_pairs=5)] == ["b", "c", "d"]
    assert judge_path(tmp_path, "a/b") != judge_path(tmp_path, "a_b")
    assert judge_path(tmp_path, "prism_43cb").name == "prism_43cb.json"


def _generic(call):
    """Answers any signature: judges by persona, writes personas, fills optimizer fields."""
    import re

    section = call.system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
    fields = re.findall(r"`(\w+)`", section)
    if "preferred" in fields:
        persona = call.field("persona") or ""
        first, second = call.field("response_a"), call.field("response_b")
        shorter = "A" if len(first) <= len(second) else "B"
        return {"reasoning": "r", "preferred": shorter if "short" in persona else "A"}
    if "persona" in fields:
        return {"reasoning": "r",
                "persona": "The user likes short answers." if "BREVITY" in call.system else "The user is kind."}
    return {f: ("Write the persona. Focus on BREVITY." if "instruction" in f else "x") for f in fields}


@pytest.mark.parametrize("optimizer", ["mipro", "gepa"])
def test_persona_prompt_optimization_improves_the_metric(optimizer, tmp_path) -> None:
    from personae.evaluation import HeldOutAccuracy
    from personae.optimizers import optimize_persona_program, verify_synthesis_examples
    from personae.programs import PersonaSynthesis

    users = [_user(10, f"user{k}") for k in range(4)]
    for u in users:
        for r in u.records:
            r.context[0] = type(r.context[0])("user", f"{u.user_id} {r.context[0].content}")
    lm = ScriptedLM(_generic)
    examples = verify_synthesis_examples(users, lm=lm)
    assert len(examples) == 4 and all(e.val for e in examples)
    persona_metric = HeldOutAccuracy(lm)
    with dspy.context(lm=lm):
        baseline = sum(persona_metric(e, PersonaSynthesis()(preference_history=e.preference_history))
                       for e in examples)
    from personae.lm import CostMeter

    meter = CostMeter()
    with meter.track():  # as the CLI runs it: DSPy's workers must keep counting on this meter
        program = optimize_persona_program(examples, lm=lm, optimizer=optimizer, max_metric_calls=30,
                                           num_threads=2)
    assert meter.cost.lm_calls > 0
    assert "BREVITY" in program.synthesize.predict.signature.instructions
    with dspy.context(lm=lm):
        tuned = sum(persona_metric(e, program(preference_history=e.preference_history)) for e in examples)
    assert tuned > baseline
    program.save(str(tmp_path / "p.json"))
    reloaded = PersonaSynthesis()
    reloaded.load(str(tmp_path / "p.json"))
    assert "BREVITY" in reloaded.synthesize.predict.signature.instructions


def test_fit_users_fits_again_a_user_whose_pairs_changed(tmp_path) -> None:
    lm = ScriptedLM(_shorter_wins)
    first = fit_users([_user(8, "u1"), _user(8, "u2")], tmp_path, lm=lm)
    assert len(first.fitted) == 2
    calls = len(lm.calls)
    grown = [_user(12, "u1"), _user(8, "u2")]  # u1's history grew (a larger --limit): its judge is stale
    again = fit_users(grown, tmp_path, lm=lm)
    assert [j.user_id for j in again.fitted] == ["u1"] and again.skipped == ["u2"] and len(lm.calls) > calls
    assert PersonalizedJudge.load(judge_path(tmp_path, "u1")).n_train > first.fitted[0].n_train


def test_a_fit_the_model_never_answered_is_a_failure_not_a_judge(tmp_path) -> None:
    def down(call):
        raise TimeoutError("the server is down")

    report = fit_users([_user(8, "u1")], tmp_path, lm=ScriptedLM(down))
    assert report.failed and report.counts.failures == {"timeout": 1} and not judge_path(tmp_path, "u1").exists()
    examples_runs: list = []
    from personae.optimizers import verify_synthesis_examples

    assert verify_synthesis_examples([_user(10, "u1")], lm=ScriptedLM(down), runs=examples_runs) == []
    assert examples_runs[0].counts.failures == {"timeout": 1}  # recorded as failed, so a re-run tries again


def test_an_engine_that_raises_a_bug_or_a_configuration_error_stops_the_run() -> None:
    from personae.programs import DefaultJudge
    from personae.runs import run_batch

    def buggy(call):
        return {"reasoning": "r"}["preferred"]  # a KeyError in the engine's own code

    def misconfigured(call):
        raise ConfigError("the embedded model is not installed")

    records = [record(i) for i in range(2)]
    for script, error in ((buggy, KeyError), (misconfigured, ConfigError)):
        lm = ScriptedLM(script)
        with pytest.raises(error):
            run_batch(lambda r: judge_pair(DefaultJudge(attempts=1), r, chosen_first=True), records, lm=lm,
                      max_attempts=3)
        assert len(lm.calls) == 1  # not retried
