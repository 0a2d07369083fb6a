"""Smoke tests of the embedded model (SmolLM2-135M via llama.cpp): it loads, runs, parses."""

from __future__ import annotations

import dspy
import pytest

from helpers import record
from personae.lm import CostMeter, find_local_model, get_lm
from personae.programs import DefaultJudge, PersonaInference, judge_pair

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def local_lm():
    try:
        find_local_model()
    except Exception as exc:  # pragma: no cover - depends on the install
        pytest.skip(f"embedded model not installed: {exc}")
    return get_lm("local", cache=False, max_tokens=96)


def test_embedded_model_judges_and_infers(local_lm) -> None:
    meter = CostMeter()
    with meter.track(), dspy.context(lm=local_lm, adapter=dspy.JSONAdapter()):
        judgment = judge_pair(DefaultJudge(), record(1, prompt="How long to boil an egg?",
                                                      chosen="About nine minutes.", rejected="Eggs are food."),
                              chosen_first=True)
        personas = PersonaInference()(prompt="How long to boil an egg?", chosen="About nine minutes.",
                                      rejected="Eggs are food.")
    assert judgment.preferred in ("A", "B")  # the grammar makes the Literal parse
    assert isinstance(personas.chosen_persona, str) and personas.chosen_persona.strip()
    assert isinstance(personas.rejected_persona, str) and personas.rejected_persona.strip()
    cost = meter.cost
    assert cost.lm_calls == 3
    assert cost.prompt_tokens > 100 and cost.completion_tokens > 0


@pytest.mark.parametrize("client", ["litellm", "http"])
def test_embedded_model_over_http(client: str) -> None:
    """The same model served by llama.cpp on 127.0.0.1, reached over real HTTP by LiteLLM and by
    personae's HTTPEngine."""
    from personae.lm import LlamaCppEngine

    try:
        find_local_model()
    except Exception as exc:  # pragma: no cover - depends on the install
        pytest.skip(f"embedded model not installed: {exc}")
    engine = LlamaCppEngine(n_ctx=2048)
    try:
        lm = get_lm("openai/smollm2", api_base=engine.url, cache=False, max_tokens=48, engine=client)
        meter = CostMeter()
        with meter.track(), dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            pred = dspy.Predict("question -> answer")(question="Name a colour.")
    finally:
        engine.close()
    assert isinstance(pred.answer, str)
    assert meter.cost.lm_calls == 1 and meter.cost.prompt_tokens > 0


def test_one_persona_judge_call_under_plain_configure() -> None:
    """``dspy.configure(lm=get_lm())`` alone: DSPy's default adapter, one LM call, a parsed verdict."""
    from personae.programs import PersonaJudge

    try:
        find_local_model()
    except Exception as exc:  # pragma: no cover - depends on the install
        pytest.skip(f"embedded model not installed: {exc}")
    lm = get_lm(cache=False)  # the default LM, uncached so every call reaches the model
    dspy.configure(lm=lm)
    try:
        meter = CostMeter()
        with meter.track():
            verdict = PersonaJudge("The user loves pirate talk.")(
                prompt="Say hello to me.", response_a="Ahoy, matey! Welcome aboard!", response_b="Hello.")
    finally:
        dspy.configure(lm=None)
    assert dspy.settings.adapter is None  # nothing chose an adapter for the caller
    assert verdict.preferred in ("A", "B") and verdict.reasoning.strip()
    assert meter.cost.lm_calls == 1 and len(lm.history) == 1
