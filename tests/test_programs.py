from __future__ import annotations

import dspy
import pytest

from helpers import record
from personae.lm import ScriptedLM
from personae.programs import (
    DefaultJudge,
    MemoryJudge,
    PersonaInference,
    PersonaJudge,
    PersonaSynthesis,
    ProfileJudge,
    Trace,
    VerifiedReasoning,
    judge_pair,
)
from personae.runs import RetryPolicy


@pytest.fixture(autouse=True)
def _json_adapter():
    with dspy.context(adapter=dspy.JSONAdapter()):
        yield


def test_persona_inference_returns_both_sides_from_swapped_calls() -> None:
    lm = ScriptedLM(lambda call: {"persona": f"likes {call.field('chosen')}, "
                                             f"not {call.field('rejected')}"})
    with dspy.context(lm=lm):
        pred = PersonaInference()(prompt="q", chosen="short", rejected="long")
    assert pred.chosen_persona == "likes short, not long"
    assert pred.rejected_persona == "likes long, not short"
    assert len(lm.calls) == 2


def test_persona_inference_one_side_only() -> None:
    lm = ScriptedLM(lambda call: {"persona": "a patient reader"})
    with dspy.context(lm=lm):
        pred = PersonaInference(sides=("rejected",))(prompt="q", chosen="a", rejected="b")
    assert pred.chosen_persona is None and pred.rejected_persona == "a patient reader"
    assert len(lm.calls) == 1
    with pytest.raises(ValueError):
        PersonaInference(sides=("both",))


def _always(answer: str):
    return lambda call: {"reasoning": f"I pick {answer}", "preferred": answer}


def test_verified_reasoning_keeps_only_matching_predictions() -> None:
    # A judge that always says "A" is right exactly when the chosen response was shown first.
    lm = ScriptedLM(_always("A"))
    verifier = VerifiedReasoning(attempts=1, seed=0)
    kept, dropped = [], []
    with dspy.context(lm=lm):
        for i in range(16):
            rec = record(i)
            pred = verifier.for_record(rec)
            (kept if pred.verified else dropped).append(pred)
    assert kept and dropped  # the seeded order puts the chosen response on both sides
    for pred in kept:
        trace = pred.trace
        assert trace.preferred == "A" and trace.response_a.startswith("good answer")
        assert trace.reasoning == "I pick A"
    assert all(p.trace is None for p in dropped)


def test_verified_reasoning_order_is_seeded() -> None:
    lm = ScriptedLM(_always("A"))
    with dspy.context(lm=lm):
        a = [VerifiedReasoning(attempts=1, seed=1).for_record(record(i)).verified for i in range(12)]
        b = [VerifiedReasoning(attempts=1, seed=1).for_record(record(i)).verified for i in range(12)]
        c = [VerifiedReasoning(attempts=1, seed=2).for_record(record(i)).verified for i in range(12)]
    assert a == b
    assert a != c


def test_verified_reasoning_retries_on_fresh_rollouts() -> None:
    def answer(call):
        # wrong at temperature 0, right once a fresh rollout samples at temperature 1
        good_first = call.field("response_a").startswith("good")
        right = "A" if good_first else "B"
        wrong = "B" if good_first else "A"
        return {"reasoning": "r", "preferred": right if call.config.temperature == 1.0 else wrong}

    lm = ScriptedLM(answer, temperature=0.0)
    with dspy.context(lm=lm):
        pred = VerifiedReasoning(attempts=3).for_record(record(1))
    assert pred.verified and pred.attempts == 2
    assert lm.kwargs["temperature"] == 0.0


def test_verified_reasoning_reports_parse_failures_without_raising() -> None:
    lm = ScriptedLM(lambda call: "no json here")
    with dspy.context(lm=lm):
        pred = VerifiedReasoning(attempts=3).for_record(record(1))
    assert not pred.verified and pred.attempts == 3
    assert pred.kind == "parse" and "Parse" in pred.error


def test_persona_synthesis_reads_every_trace_and_refuses_none() -> None:
    from personae.errors import DataError

    lm = ScriptedLM(lambda call: {"reasoning": "r", "persona": "The user likes brevity."})
    traces = [Trace(f"r{i}", f"question {i}", "A text", "B text", "A", f"because {i}") for i in range(3)]
    with dspy.context(lm=lm):
        assert PersonaSynthesis()(traces=traces).persona == "The user likes brevity."
        history = lm.calls[0].field("preference_history")
        assert all(f"because {i}" in history for i in range(3))
        with pytest.raises(DataError, match="no verified traces"):
            PersonaSynthesis()(traces=[])
    assert len(lm.calls) == 1


def test_persona_synthesis_fits_its_budget() -> None:
    lm = ScriptedLM(lambda call: {"reasoning": "r", "persona": "The user likes p."})
    traces = [Trace(f"r{i}", "q " * 400, "a " * 400, "b " * 400, "B", f"why {i}") for i in range(30)]
    with dspy.context(lm=lm):
        PersonaSynthesis(budget=5000)(traces)
    history = lm.calls[0].field("preference_history")
    assert len(history) <= 5000 + 2000  # one block may overflow the budget, never the whole history
    assert "why 29" in history and "why 0" not in history  # newest evidence kept


@pytest.mark.parametrize(
    ("judge", "needle"),
    [
        (PersonaJudge("The user loves haiku."), "The user loves haiku."),
        (ProfileJudge("The person is 40 years old."), "The person is 40 years old."),
        (MemoryJudge([record(7, chosen="earlier chosen text")]), "earlier chosen text"),
    ],
)
def test_judges_put_what_they_know_in_the_prompt(judge, needle: str) -> None:
    lm = ScriptedLM(_always("B"))
    with dspy.context(lm=lm):
        judgment = judge_pair(judge, record(1), chosen_first=False)
    assert judgment.preferred == "B"  # the chosen response was shown as B: right
    assert needle in lm.calls[0].user


def test_judge_pair_scores_both_orders() -> None:
    lm = ScriptedLM(_always("A"))
    with dspy.context(lm=lm):
        first = judge_pair(DefaultJudge(), record(1), chosen_first=True)
        second = judge_pair(DefaultJudge(), record(1), chosen_first=False)
    assert first.preferred == second.preferred == "A"  # right when the chosen response was A, wrong after
    assert lm.calls[0].field("response_a") == "good answer 1"
    assert lm.calls[1].field("response_a") == "bad answer 1"


def test_persona_inference_shows_its_demonstrations() -> None:
    from personae.signatures import PERSONA_INFERENCE_DEMOS

    lm = ScriptedLM(lambda call: {"persona": "a patient reader"})
    with dspy.context(lm=lm):
        PersonaInference(sides=("chosen",))(prompt="q", chosen="a", rejected="b")
        PersonaInference(sides=("chosen",), demos=[])(prompt="q", chosen="a", rejected="b")
    with_demos, without = lm.calls
    assert PERSONA_INFERENCE_DEMOS[0]["persona"] in "\n".join(m["content"] for m in with_demos.messages)
    assert len(with_demos.messages) == 1 + 2 * len(PERSONA_INFERENCE_DEMOS)
    assert len(without.messages) == 1


def test_copies_demo_catches_echoes_not_shared_phrases() -> None:
    from personae.programs import copies_demo
    from personae.signatures import PERSONA_SYNTHESIS_DEMOS

    demo = PERSONA_SYNTHESIS_DEMOS[0]["persona"]
    assert copies_demo(demo, [demo])
    assert copies_demo(demo.upper().replace(":", ";"), [demo])  # case and punctuation do not hide it
    assert not copies_demo("The user is budget-conscious and wants the cheapest train ticket to Leeds.", [demo])
    assert not copies_demo("", [demo]) and not copies_demo("anything", [])


def test_persona_synthesis_retries_an_echoed_example() -> None:
    from personae.signatures import PERSONA_SYNTHESIS_DEMOS

    echo = PERSONA_SYNTHESIS_DEMOS[0]["persona"]
    lm = ScriptedLM([{"reasoning": "r", "persona": echo}, {"reasoning": "r", "persona": "The user likes maps."}])
    traces = [Trace("r1", "question", "A text", "B text", "A", "because")]
    with dspy.context(lm=lm):
        pred = PersonaSynthesis()(traces=traces)  # retried inside the program, as dspy.Refine does
    assert pred.persona == "The user likes maps." and len(lm.calls) == 2
    assert lm.calls[1].config.temperature == 1.0  # the retry is a fresh sample, not a cache hit
    lm = ScriptedLM([{"reasoning": "r", "persona": echo}, {"reasoning": "r", "persona": "The user likes maps."}])
    with dspy.context(lm=lm):  # or by the run layer, around a program that asks once
        outcome = RetryPolicy(max_attempts=3).attempt(lambda: PersonaSynthesis(attempts=1)(traces=traces))
    assert outcome.value.persona == "The user likes maps." and outcome.attempts == 2 and outcome.error is None


def test_an_answer_without_words_is_not_taken_as_a_persona() -> None:
    from personae.programs import NotAPersonaError, not_a_persona

    assert all(not_a_persona(t) for t in ("] {", "N/A", "...", "None", "", "p q"))
    assert not any(not_a_persona(t) for t in ("Prefers brevity.", "a patient reader", "Mag gerne Käse."))
    lm = ScriptedLM([{"reasoning": "r", "persona": "] {"}, {"reasoning": "r", "persona": "The user likes maps."}])
    traces = [Trace("r1", "question", "A text", "B text", "A", "because")]
    with dspy.context(lm=lm):
        assert PersonaSynthesis()(traces=traces).persona == "The user likes maps." and len(lm.calls) == 2
    with dspy.context(lm=ScriptedLM(lambda call: {"reasoning": "r", "persona": "N/A"})):
        with pytest.raises(NotAPersonaError, match="not a persona: 'N/A'") as raised:
            PersonaSynthesis()(traces=traces)
        assert len(raised.value.tried) == 3  # every attempt, with why it was refused
        outcome = RetryPolicy(max_attempts=2).attempt(lambda: PersonaSynthesis(attempts=1)(traces=traces))
        assert outcome.value is None and outcome.kind == "content" and "not a persona: 'N/A'" in outcome.error
        with pytest.raises(NotAPersonaError, match="chosen-side answer is not a persona"):
            PersonaInference(sides=("chosen",))(prompt="q", chosen="a", rejected="b")


def test_persona_synthesis_gives_up_with_its_reason() -> None:
    from personae.programs import DemoCopyError
    from personae.signatures import PERSONA_SYNTHESIS_DEMOS

    echo = PERSONA_SYNTHESIS_DEMOS[0]["persona"]
    lm = ScriptedLM(lambda call: {"reasoning": "r", "persona": echo})
    traces = [Trace("r1", "question", "A text", "B text", "A", "because")]
    with dspy.context(lm=lm):
        outcome = RetryPolicy(max_attempts=2).attempt(lambda: PersonaSynthesis(attempts=1)(traces=traces))
    assert outcome.value is None and "repeats a worked example" in outcome.error and outcome.kind == "content"
    assert len(lm.calls) == 2 and outcome.exception("user u").kind == "content"
    with dspy.context(lm=lm), pytest.raises(DemoCopyError, match="no usable answer in 2 attempts") as raised:
        PersonaSynthesis(attempts=2)(traces=traces)
    assert len(lm.calls) == 4 and all("repeats a worked example" in why for why in raised.value.tried)


def test_persona_inference_refuses_an_echoed_example() -> None:
    from personae.programs import DemoCopyError
    from personae.signatures import PERSONA_INFERENCE_DEMOS

    echo = PERSONA_INFERENCE_DEMOS[2]["persona"]
    lm = ScriptedLM(lambda call: {"persona": echo if call.field("chosen") == "b" else "likes a"})
    with dspy.context(lm=lm), pytest.raises(DemoCopyError, match="rejected-side"):
        PersonaInference()(prompt="q", chosen="a", rejected="b")
