"""personae's programs used with nothing but DSPy's own idioms, as a DSPy user writes them.

Every test here configures the LM with ``dspy.configure``/``dspy.context``, builds data as
``dspy.Example(...).with_inputs(...)``, calls modules with keyword fields, and evaluates,
compiles, saves, awaits, streams and batches them with DSPy's own tools, on ``ScriptedLM``.
"""

from __future__ import annotations

import asyncio
import re
import threading

import dspy
import pytest

from personae.evaluation import (
    PersonaAccuracy,
    judge_accuracy,
    judge_accuracy_feedback,
    judge_examples,
    persona_inference_examples,
    trace_verified,
)
from personae.lm import ScriptedLM
from personae.programs import (
    DefaultJudge,
    PersonaInference,
    PersonaJudge,
    PersonalizedJudge,
    PersonaRevision,
    PersonaSynthesis,
    ProfileJudge,
    TailoringJudge,
    Verdict,
    VerifiedReasoning,
)

SHORT = "The user likes short answers."


def _fields(call) -> list[str]:
    """The output fields a call asks for, whatever the adapter."""
    section = call.system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
    return re.findall(r"`(\w+)`", section)


def script(call):
    """A user who prefers the shorter response (a judge told of another taste answers A); a
    persona writer that says so; and answers for the optimizers' own signatures."""
    fields = _fields(call)
    if "preferred" in fields:
        a, b = call.field("response_a") or "", call.field("response_b") or ""
        shorter = "A" if len(a) <= len(b) else "B"
        persona = call.field("persona")
        shown = "is shorter." in call.text.replace(call.user, "")  # a demonstration that explains it
        misled = persona is not None and "short" not in persona and not shown
        return {"reasoning": f"Response {shorter} is shorter.", "preferred": "A" if misled else shorter}
    if fields == ["persona"]:  # persona inference: who would choose this
        return {"persona": f"The user wants answers like {call.field('chosen')!r}, short ones."}
    if "persona" in fields or "revised_persona" in fields:
        return {"reasoning": "Every choice went to the shorter answer.", "persona": SHORT,
                "revised_persona": SHORT + " Still."}
    return {name: ("Judge for this user; prefer BRIEF answers." if "instruction" in name else "x") for name in fields}


def pair(i: int) -> dspy.Example:
    return dspy.Example(prompt=f"question {i}?", chosen=f"Yes, {i}.",
                        rejected=f"It depends on a great many things, {i}, and here is why at length.",
                        record_id=f"r{i}").with_inputs("prompt", "chosen", "rejected")


PAIRS = [pair(i) for i in range(8)]


# -- configuring, calling, evaluating ---------------------------------------------------------------

def test_a_configured_lm_is_all_the_programs_need() -> None:
    lm = ScriptedLM(script)
    dspy.configure(lm=lm)
    try:
        personas = PersonaInference()(**PAIRS[0].inputs())
        verdict = PersonaJudge(SHORT)(prompt="q", response_a="Yes.", response_b="A long, long answer.")
    finally:
        dspy.configure(lm=None)
    assert "short" in personas.chosen_persona and personas.rejected_persona
    assert isinstance(verdict, Verdict) and verdict.preferred == "A" and "shorter" in verdict.reasoning
    assert len(lm.calls) == 3  # one call per step: no fallback call under DSPy's default adapter


@pytest.mark.parametrize("adapter", [None, dspy.ChatAdapter(), dspy.JSONAdapter(), dspy.XMLAdapter()],
                         ids=["default", "chat", "json", "xml"])
def test_every_program_works_under_any_adapter_with_one_call_per_step(adapter) -> None:
    lm = ScriptedLM(script)
    traces = []
    with dspy.context(lm=lm, adapter=adapter):
        verified = [VerifiedReasoning()(**p.inputs()) for p in PAIRS[:4]]
        traces = [p.trace for p in verified if p.verified]
        steps = 4
        persona = PersonaSynthesis()(traces=traces).persona
        revised = PersonaRevision()(persona=persona, traces=traces).persona
        inferred = PersonaInference(sides=("chosen",))(**PAIRS[0].inputs())
        verdicts = [judge(prompt="q", response_a="A much longer answer.", response_b="Yes.")
                    for judge in (DefaultJudge(), PersonaJudge(SHORT), ProfileJudge("A busy nurse."),
                                  PersonalizedJudge("u", SHORT))]
        tailored = TailoringJudge("personalization")(prompt="q", persona=SHORT, response_a="Yes.",
                                                     response_b="A much longer answer.")
        steps += 3 + len(verdicts) + 1
    assert persona == SHORT and revised == SHORT + " Still." and inferred.rejected_persona is None
    assert len(traces) == 4 and [v.preferred for v in verdicts] == ["B"] * 4 and tailored.preferred == "A"
    assert len(lm.calls) == steps  # the DSPy adapter's first parse worked every time


def test_dspy_evaluate_scores_a_judge_with_its_metric() -> None:
    devset = judge_examples(PAIRS, both_orders=True)
    assert {e.preferred for e in devset} == {"A", "B"} and set(devset[0].inputs()) == {"prompt", "response_a",
                                                                                        "response_b"}
    with dspy.context(lm=ScriptedLM(script)):
        evaluate = dspy.Evaluate(devset=devset, metric=judge_accuracy, num_threads=2, display_progress=False)
        assert evaluate(PersonaJudge(SHORT)).score == 100.0
        assert evaluate(PersonaJudge("The user likes long reads.")).score == 50.0  # misled: it answers A
        verified = dspy.Evaluate(devset=PAIRS, metric=trace_verified, display_progress=False)(VerifiedReasoning())
        assert verified.score == 100.0
    feedback = judge_accuracy_feedback(devset[1], Verdict("A", "A is first."))
    assert feedback.score == float(devset[1].preferred == "A") and "user preferred" in feedback.feedback


def test_persona_inference_is_scored_by_persona_accuracy_on_an_explicit_judge() -> None:
    judge_lm = ScriptedLM(script)
    metric = PersonaAccuracy(judge_lm)
    with dspy.context(lm=ScriptedLM(script)):
        result = dspy.Evaluate(devset=persona_inference_examples(PAIRS[:3]), metric=metric,
                               display_progress=False)(PersonaInference())
    # the chosen-side personas say "short" and lead the judge to the chosen response; the
    # rejected-side ones say "short" too and lead it away from the rejected one
    assert result.score == 50.0 and len(judge_lm.calls) == 3 * 4


# -- compiling, saving, loading -------------------------------------------------------------------

class PersonaPipeline(dspy.Module):
    """Who made each earlier choice, condensed into a persona, which judges a new pair."""

    def __init__(self) -> None:
        super().__init__()
        self.infer = PersonaInference(sides=("chosen",))
        self.synthesize = PersonaSynthesis()
        self.judge = PersonaJudge()

    def forward(self, history, prompt, response_a, response_b):
        notes = [f"Choice {i}: {self.infer(**earlier).chosen_persona}" for i, earlier in enumerate(history, 1)]
        persona = self.synthesize(preference_history="\n".join(notes)).persona
        return self.judge(persona=persona, prompt=prompt, response_a=response_a, response_b=response_b)


def _pipeline_example(i: int) -> dspy.Example:
    short, long = f"Yes {i}.", f"Well, it depends on many things, number {i}, and here is the long story."
    history = [dict(prompt=f"q{i}.{k}", chosen=f"ok {i}.{k}", rejected=f"a long winded answer {k}") for k in range(2)]
    a, b = (short, long) if i % 2 else (long, short)
    return dspy.Example(history=history, prompt=f"question {i}", response_a=a, response_b=b,
                        preferred="A" if i % 2 else "B").with_inputs("history", "prompt", "response_a", "response_b")


@pytest.mark.parametrize("optimizer", ["mipro", "gepa"])
def test_a_program_that_nests_personae_modules_compiles_saves_and_reloads(optimizer, tmp_path) -> None:
    trainset, valset = [_pipeline_example(i) for i in range(6)], [_pipeline_example(i) for i in range(6, 10)]
    lm = ScriptedLM(script)
    with dspy.context(lm=lm):
        if optimizer == "mipro":
            compiler = dspy.MIPROv2(metric=judge_accuracy, auto="light", num_threads=2, seed=0, verbose=False)
        else:
            compiler = dspy.GEPA(metric=judge_accuracy_feedback, reflection_lm=lm, max_metric_calls=40,
                                 num_threads=2, seed=0)
        compiled = compiler.compile(PersonaPipeline(), trainset=trainset, valset=valset)
        verdicts = [compiled(**e.inputs()) for e in valset]
        assert dspy.Evaluate(devset=valset, metric=judge_accuracy, display_progress=False)(compiled).score == 100.0
        compiled.save(str(tmp_path / "pipeline.json"))
        reloaded = PersonaPipeline()
        reloaded.load(str(tmp_path / "pipeline.json"))
        compiled.save(str(tmp_path / "whole"), save_program=True)
        whole = dspy.load(str(tmp_path / "whole"), allow_pickle=True)
        for program in (reloaded, whole):
            assert [program(**e.inputs()) for e in valset] == verdicts
    assert reloaded.infer.sides == ("chosen",) and reloaded.judge.persona is None


def test_bootstrap_fewshot_compiles_a_judge_whose_demos_and_persona_reload(tmp_path) -> None:
    trainset = judge_examples(PAIRS[:6], both_orders=True)
    with dspy.context(lm=ScriptedLM(script)):
        compiled = dspy.BootstrapFewShot(metric=judge_accuracy, max_bootstrapped_demos=2,
                                         max_labeled_demos=0).compile(PersonaJudge(SHORT), trainset=trainset)
    assert len(compiled.predict.predict.demos) == 2 and compiled.persona == SHORT
    compiled.save(str(tmp_path / "judge.json"))
    reloaded = PersonaJudge()
    reloaded.load(str(tmp_path / "judge.json"))
    assert reloaded.persona == SHORT and reloaded.dump_state() == compiled.dump_state()


@pytest.mark.parametrize("program", [
    PersonaJudge("The user loves pirate talk.", attempts=2),
    ProfileJudge("A retired sailor.", attempts=1),
    PersonaInference(sides=("chosen",), demos=[], attempts=5),
    PersonaSynthesis(budget=3000, max_chars=200, demos=[]),
    PersonaRevision(budget=2000, attempts=2),
    VerifiedReasoning(attempts=4, seed=7),
    TailoringJudge("quality", attempts=2),
    PersonalizedJudge("u7", SHORT, demos=[{"prompt": "p", "response_a": "a", "response_b": "b", "reasoning": "r",
                                          "preferred": "B"}], val_accuracy=0.75, n_train=5),
], ids=lambda p: type(p).__name__)
def test_save_and_load_round_trip_a_programs_whole_state(program, tmp_path) -> None:
    path = tmp_path / "program.json"
    program.save(str(path))
    blank = {PersonaJudge: lambda: PersonaJudge(), ProfileJudge: lambda: ProfileJudge(),
             TailoringJudge: lambda: TailoringJudge("personalization")}.get(type(program), type(program))()
    blank.load(str(path))
    assert blank.dump_state() == program.dump_state()
    whole = tmp_path / "whole"
    program.save(str(whole), save_program=True)
    assert dspy.load(str(whole), allow_pickle=True).dump_state() == program.dump_state()


def test_a_state_saved_by_an_earlier_version_loads(tmp_path) -> None:
    import json

    state = PersonaInference().dump_state()
    del state["program_settings"]  # earlier versions saved the predictors alone,
    state["infer"]["demos"] = [{"context": "c", "preferred_response": "p", "other_response": "o",  # in their names
                                "persona": "The user likes p."}]
    state["metadata"] = {"dependency_versions": {}}
    (tmp_path / "old.json").write_text(json.dumps(state))
    program = PersonaInference(sides=("rejected",))
    program.load(str(tmp_path / "old.json"))
    assert program.sides == ("rejected",)  # settings it did not save stay as built
    assert dict(program.infer.demos[0]) == {"prompt": "c", "chosen": "p", "rejected": "o",
                                            "persona": "The user likes p."}


# -- async, streaming, batches, usage --------------------------------------------------------------

def test_acall_with_asyncio_gather() -> None:
    lm = ScriptedLM(script)
    devset = judge_examples(PAIRS, both_orders=True)

    async def judge_all():
        with dspy.context(lm=lm):
            judge = PersonaJudge(SHORT)
            verdicts = await asyncio.gather(*(judge.acall(**e.inputs()) for e in devset))
            personas = await PersonaInference().acall(**PAIRS[0].inputs())
            traces = [p.trace for p in await asyncio.gather(*(VerifiedReasoning().acall(**p.inputs())
                                                                for p in PAIRS[:3])) if p.verified]
            synthesized = await PersonaSynthesis().acall(traces=traces)
            return verdicts, personas, synthesized

    verdicts, personas, synthesized = asyncio.run(judge_all())
    assert [v.preferred for v in verdicts] == [e.preferred for e in devset]
    assert personas.chosen_persona and personas.rejected_persona and synthesized.persona == SHORT


def test_gather_over_32_judgments_runs_them_concurrently_against_a_server() -> None:
    from personae.lm import get_lm
    from personae.testing import stub_server

    together = threading.Condition()
    in_flight, most = [0], [0]

    def answer(body):  # each request waits (at most 5 s) until 16 are in flight together
        with together:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            together.notify_all()
            together.wait_for(lambda: most[0] >= 16, timeout=5)
            in_flight[0] -= 1
        return 200, "[[ ## reasoning ## ]]\nshorter\n\n[[ ## preferred ## ]]\nA\n\n[[ ## completed ## ]]"

    async def judge_all(lm):
        with dspy.context(lm=lm):
            judge = PersonaJudge(SHORT)
            return await asyncio.gather(*(judge.acall(prompt=f"q{i}", response_a="a", response_b="b")
                                          for i in range(32)))

    with stub_server(answer) as server:
        lm = get_lm("openai/stub", api_base=server.api_base, api_key="k", cache=False)
        threads_before = threading.active_count()
        verdicts = asyncio.run(judge_all(lm))
    assert [v.preferred for v in verdicts] == ["A"] * 32 and len(server.requests) == 32
    assert most[0] >= 16  # in flight together, on the event loop
    assert threading.active_count() <= threads_before + 2  # no thread per call (the server's own aside)


def test_streamify_streams_a_judges_reasoning() -> None:
    judge = PersonaJudge(SHORT)
    stream = dspy.streamify(judge, stream_listeners=[dspy.streaming.StreamListener(signature_field_name="reasoning")])

    async def read():
        chunks, final = [], None
        with dspy.context(lm=ScriptedLM(script)):
            async for item in stream(prompt="q", response_a="A much longer answer than B.", response_b="Short."):
                if isinstance(item, dspy.streaming.StreamResponse):
                    chunks.append(item.chunk)
                elif isinstance(item, dspy.Prediction):
                    final = item
        return chunks, final

    chunks, final = asyncio.run(read())
    assert len(chunks) > 2 and "".join(chunks).strip() == "Response B is shorter."
    assert isinstance(final, Verdict) and final.preferred == "B"


def test_streamify_streams_from_an_openai_compatible_server_too() -> None:
    from personae.lm import get_lm
    from personae.testing import stub_server

    answer = "[[ ## reasoning ## ]]\nThe second one is shorter.\n\n[[ ## preferred ## ]]\nB\n\n[[ ## completed ## ]]"
    stream = dspy.streamify(PersonaJudge(SHORT),
                            stream_listeners=[dspy.streaming.StreamListener(signature_field_name="reasoning")])

    async def read(lm):
        chunks = []
        with dspy.context(lm=lm):
            async for item in stream(prompt="q", response_a="A long answer.", response_b="Short."):
                if isinstance(item, dspy.streaming.StreamResponse):
                    chunks.append(item.chunk)
        return chunks

    with stub_server(lambda body: (200, answer)) as server:
        chunks = asyncio.run(read(get_lm("openai/stub", api_base=server.api_base, api_key="k", cache=False)))
    assert len(chunks) > 2 and "".join(chunks).strip() == "The second one is shorter."


def test_batch_and_track_usage() -> None:
    devset = judge_examples(PAIRS[:4])
    with dspy.context(lm=ScriptedLM(script), track_usage=True):
        judge = PersonaJudge(SHORT)
        verdicts = judge.batch(devset, num_threads=2, disable_progress_bar=True)
        usage = judge(**devset[0].inputs()).get_lm_usage()
    assert [v.preferred for v in verdicts] == [e.preferred for e in devset]
    assert usage["scripted/fake"]["prompt_tokens"] > 0 and usage["scripted/fake"]["completion_tokens"] > 0


# -- unusable answers, bad input --------------------------------------------------------------------

def test_an_echoed_persona_is_retried_inside_the_program_then_raised_with_what_was_tried() -> None:
    from personae.errors import ContentError
    from personae.programs import DemoCopyError
    from personae.signatures import PERSONA_INFERENCE_DEMOS

    echo = PERSONA_INFERENCE_DEMOS[0]["persona"]
    answers = iter([echo, "The user wants the short one."])
    lm = ScriptedLM(lambda call: {"persona": next(answers, echo)})
    with dspy.context(lm=lm):
        assert PersonaInference(sides=("chosen",))(**PAIRS[0].inputs()).chosen_persona.endswith("short one.")
        assert lm.calls[1].config.temperature == 1.0  # a fresh rollout, not the cached echo
        with pytest.raises(DemoCopyError) as raised:
            PersonaInference(sides=("chosen",), attempts=2)(**PAIRS[0].inputs())
    assert isinstance(raised.value, ContentError) and len(raised.value.tried) == 2 and len(lm.calls) == 4
    with dspy.context(lm=ScriptedLM(lambda call: {"persona": echo})):  # dspy.Evaluate counts it, and goes on
        evaluate = dspy.Evaluate(devset=PAIRS[:2], metric=lambda e, p, t=None: 1.0, display_progress=False,
                                 max_errors=5)
        assert evaluate(PersonaInference(sides=("chosen",), attempts=1)).score == 0.0


def test_bad_input_is_a_clear_personae_error() -> None:
    from personae.errors import ConfigError, DataError

    with dspy.context(lm=ScriptedLM(script)):
        with pytest.raises(DataError, match="traces.*no verified traces"):
            PersonaSynthesis()(traces=[])
        with pytest.raises(DataError, match="field 'traces'.*got text"):
            PersonaSynthesis()(traces="Choice 1 ...")
        with pytest.raises(DataError, match="field 'traces'"):
            PersonaSynthesis()(traces=["not a trace"])
        with pytest.raises(DataError, match="field 'rejected'.*got nothing"):
            PersonaInference()(prompt="q", chosen="a")
        with pytest.raises(DataError, match="field 'response_b'.*empty"):
            DefaultJudge()(prompt="q", response_a="a", response_b="  ")
        with pytest.raises(DataError, match="field 'persona'"):
            PersonaJudge()(prompt="q", response_a="a", response_b="b")
    with pytest.raises(ConfigError, match="non-empty"):
        PersonaJudge("")
    with pytest.raises(ConfigError, match="attempts"):
        PersonaSynthesis(attempts=0)


# -- trainsets of dspy.Examples ------------------------------------------------------------------

def _user_pairs(n: int) -> list[dspy.Example]:
    return [dspy.Example(prompt=f"question {i}?", chosen=f"Yes {i}.", rejected=f"A long, long answer about {i}.",
                         user_id="u1", record_id=f"r{i}").with_inputs("prompt", "chosen", "rejected")
            for i in range(n)]


def test_fitting_and_searching_take_examples_and_the_configured_lm() -> None:
    from personae.optimizers import DemoSearch, SynthesizeMe

    lm = ScriptedLM(script)
    with dspy.context(lm=lm):
        judge = SynthesizeMe().fit(_user_pairs(10))  # no lm=: the configured one
        assert judge.persona == SHORT and judge.val_accuracy == 1.0 and judge.n_train == 5
        compiled = SynthesizeMe().compile(trainset=_user_pairs(6), valset=_user_pairs(8)[6:])
        assert compiled.n_train == 6 and compiled.n_val == 2
        misled = PersonaJudge("The user likes long reads.")  # right only when a demonstration explains it
        searched = DemoSearch(num_candidates=2, max_demos=2, seed=0).compile(misled, trainset=_user_pairs(6))
        assert searched.predict.predict.demos and searched.persona == misled.persona  # the trainset's traces
        assert all("is shorter." in d["reasoning"] for d in searched.predict.predict.demos)


def test_a_user_without_a_validation_side_is_fitted_and_says_so() -> None:
    from personae.optimizers import SynthesizeMe

    for prompts in (1, 2):
        few = [dspy.Example(prompt=f"prompt {i % prompts}", chosen=f"Yes {i}.", rejected=f"A long answer {i}.",
                            record_id=f"r{i}").with_inputs("prompt", "chosen", "rejected") for i in range(3)]
        with dspy.context(lm=ScriptedLM(script)):
            judge = SynthesizeMe().fit(few, user_id="u1")
        assert judge.val_accuracy is None and judge.n_val == 0 and "no validation side" in judge.note
        assert judge.persona == SHORT and judge.demos and judge.n_train >= 1


def test_the_store_uses_the_configured_lm(tmp_path) -> None:
    from personae.data import PreferenceRecord, Turn
    from personae.store import PersonaStore

    with dspy.context(lm=ScriptedLM(script)):
        with PersonaStore(tmp_path / "s.db", background=False) as store:
            store.add_preferences("u1", [PreferenceRecord([Turn("user", "q")], "Yes.", "A long answer.",
                                                          record_id="e1")])
            verdict = store.judge("u1", "q", "A longer answer.", "Short.")
    assert isinstance(verdict, Verdict) and verdict.personalization == "memory" and verdict.probability is not None


# -- what earlier versions wrote, and what optimizers see ---------------------------------------------

def test_a_refused_answer_never_reaches_the_trace_optimizers_bootstrap_from() -> None:
    from personae.signatures import PERSONA_INFERENCE_DEMOS

    echo = PERSONA_INFERENCE_DEMOS[0]["persona"]
    answers = iter([echo, "The user wants the short one."])
    trace: list = []
    with dspy.context(lm=ScriptedLM(lambda call: {"persona": next(answers, echo)}), trace=trace):
        PersonaInference(sides=("chosen",))(**PAIRS[0].inputs())
    assert len(trace) == 1 and trace[0][2].persona == "The user wants the short one."


def test_an_earlier_versions_judge_state_loads_in_todays_words(tmp_path) -> None:
    import json

    state = DefaultJudge().dump_state()
    del state["program_settings"]
    fields = state["predict.predict"]["signature"]["fields"]
    fields[0]["prefix"], fields[1]["prefix"] = "Context:", "First Response:"
    fields[-1]["description"] = "First if the user prefers the first response, Second if they prefer the second"
    state["predict.predict"]["demos"] = [{"context": "c", "first_response": "a", "second_response": "b",
                                          "reasoning": "r", "preferred": "Second"}]
    state["metadata"] = {"dependency_versions": {}}
    (tmp_path / "old.json").write_text(json.dumps(state))
    judge = DefaultJudge()
    judge.load(str(tmp_path / "old.json"))
    assert judge.dump_state()["predict.predict"]["signature"] == DefaultJudge().dump_state()["predict.predict"][
        "signature"]
    assert dict(judge.predict.predict.demos[0]) == {"prompt": "c", "response_a": "a", "response_b": "b",
                                                    "reasoning": "r", "preferred": "B"}
    old_pickle = DefaultJudge.__new__(DefaultJudge)
    with pytest.raises(Exception, match="earlier version of personae"):
        old_pickle.__setstate__({"predict": judge.predict})  # what dspy.load of an old folder does


def test_examples_without_ids_are_distinct_pairs_to_a_search() -> None:
    from personae.optimizers import DemoSearch

    examples = [dspy.Example(prompt=f"question {i}?", chosen=f"Yes {i}.", rejected=f"A long answer {i}.")
                .with_inputs("prompt", "chosen", "rejected") for i in range(6)]
    lm = ScriptedLM(script)
    with dspy.context(lm=lm):
        result = DemoSearch(num_candidates=1, max_demos=0).search(DefaultJudge(), [e for e in examples], pool=[])
    assert len(lm.calls) == 6 and result.score == 1.0  # every pair asked: none taken for another's answer


def test_verdicts_copy_with_changes_and_judges_refuse_fields_they_do_not_take() -> None:
    from personae.errors import DataError

    verdict = Verdict("A", "because", probability=0.8, version=2)
    assert verdict.copy(preferred="B").preferred == "B" and verdict.copy(preferred="B").version == 2
    with dspy.context(lm=ScriptedLM(script)):
        with pytest.raises(DataError, match="context is now prompt"):
            DefaultJudge()(context="q", first_response="a", second_response="b")
        with pytest.raises(DataError, match="DefaultJudge takes prompt, response_a, response_b, not persona"):
            DefaultJudge()(prompt="q", response_a="a", response_b="b", persona="A pirate.")


def test_a_programs_digest_follows_its_prompts_not_its_bookkeeping() -> None:
    from personae.programs import program_digest

    fitted = PersonalizedJudge("u", SHORT, cost={"lm_calls": 3})
    again = PersonalizedJudge("u", SHORT, cost={"lm_calls": 9}, created="2026-01-01T00:00:00+00:00", attempts=1)
    assert program_digest(fitted) == program_digest(again)
    assert program_digest(PersonaJudge(SHORT)) != program_digest(PersonaJudge("The user likes long reads."))


def test_a_state_loads_only_into_the_program_it_belongs_to(tmp_path) -> None:
    from personae.errors import DataError

    PersonaJudge(SHORT).save(str(tmp_path / "judge.json"))
    PersonaInference().save(str(tmp_path / "inference.json"))
    assert PersonaJudge().load(str(tmp_path / "judge.json")).persona == SHORT  # load returns the program
    with pytest.raises(DataError, match="state of a PersonaJudge, not of a PersonalizedJudge"):
        PersonalizedJudge.load(tmp_path / "judge.json")
    with pytest.raises(DataError, match="state of a PersonaInference, not of a PersonaSynthesis"):
        PersonaSynthesis().load(str(tmp_path / "inference.json"))


def test_every_program_names_the_fields_it_takes_when_given_others() -> None:
    from personae.errors import DataError

    with dspy.context(lm=ScriptedLM(script)):
        with pytest.raises(DataError, match="PersonaInference takes prompt, chosen, rejected, not response_a"):
            PersonaInference()(prompt="q", response_a="a", response_b="b")
        with pytest.raises(DataError, match="preferred_response is now chosen"):
            VerifiedReasoning()(prompt="q", preferred_response="a", other_response="b")
        with pytest.raises(DataError, match="PersonaSynthesis takes traces, preference_history, not history"):
            PersonaSynthesis()(history="...")


def test_an_answer_that_never_parses_is_an_answer_parse_error_counted_as_parse() -> None:
    from personae.errors import AnswerParseError, ContentError
    from personae.runs import failure_kind

    lm = ScriptedLM(lambda call: {"reasoning": "r", "preferred": "C"})
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()), pytest.raises(AnswerParseError) as raised:
        PersonaJudge(SHORT, attempts=2)(prompt="q", response_a="a", response_b="b")
    assert isinstance(raised.value, ContentError) and len(raised.value.tried) == 2 and len(lm.calls) == 2
    assert failure_kind(raised.value) == "parse" and "Parse" in str(raised.value)


def test_judge_metrics_read_labels_and_carry_what_a_pair_says_of_its_user() -> None:
    from personae.errors import DataError

    assert judge_accuracy(dspy.Example(preferred="First"), Verdict("a", "")) == 1.0
    assert judge_accuracy(dspy.Example(preferred="B"), Verdict("A", "")) == 0.0
    with pytest.raises(DataError, match="no preferred answer"):
        judge_accuracy(dspy.Example(preferred="A"), dspy.Prediction(chosen_persona="p"))
    pairs = [dspy.Example(prompt="q", chosen="Yes.", rejected="A long answer.", persona=SHORT)
             .with_inputs("prompt", "chosen", "rejected", "persona")]
    [example] = judge_examples(pairs)
    assert example.inputs().toDict() == {"prompt": "q", "response_a": example.response_a,
                                         "response_b": example.response_b, "persona": SHORT}
    assert example.labels().toDict() == {"preferred": example.preferred}
    with dspy.context(lm=ScriptedLM(script)):
        assert judge_accuracy(example, PersonaJudge()(**example.inputs())) == 1.0
