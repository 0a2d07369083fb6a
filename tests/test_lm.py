from __future__ import annotations

import threading

import dspy
import pytest

from personae.errors import ConfigError
from personae.lm import CostMeter, LlamaCppEngine, ScriptedLM, get_lm
from personae.runs import RetryPolicy, run_batch
from personae.signatures import PairwiseJudge


def test_scripted_lm_answers_parse_and_are_metered() -> None:
    lm = ScriptedLM(lambda call: {"reasoning": f"saw {call.field('response_a')}", "preferred": "B"})
    meter = CostMeter()
    with meter.track(), dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        pred = dspy.ChainOfThought(PairwiseJudge)(prompt="q", response_a="alpha", response_b="beta")
    assert pred.preferred == "B"
    assert pred.reasoning == "saw alpha"
    cost = meter.cost
    assert cost.lm_calls == 1
    assert cost.prompt_tokens == len(lm.calls[0].text.split())
    assert cost.completion_tokens > 0


def test_scripted_lm_list_script_runs_in_order_then_fails() -> None:
    lm = ScriptedLM([{"persona": "a"}, {"persona": "b"}])
    sig = dspy.Signature("context -> persona")
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        assert dspy.Predict(sig)(context="x").persona == "a"
        assert dspy.Predict(sig)(context="y").persona == "b"
        with pytest.raises(Exception, match="no more answers"):
            dspy.Predict(sig)(context="z")


def test_rollouts_copy_the_lm_and_leave_it_unchanged() -> None:
    lm = ScriptedLM(lambda call: {"persona": "x"}, temperature=0.0)
    lms = list(RetryPolicy(max_attempts=3).rollouts(lm))
    assert lms[0] is lm
    assert [m.kwargs.get("rollout_id") for m in lms[1:]] == [1, 2]
    assert all(m.kwargs["temperature"] == 1.0 for m in lms[1:])
    assert lm.kwargs["temperature"] == 0.0 and "rollout_id" not in lm.kwargs


def test_run_batch_retries_with_fresh_rollouts_and_records_failures() -> None:
    seen_temperatures: list[float | None] = []

    def answer(call):  # item "bad" never parses; item "flaky" parses on the second try
        seen_temperatures.append(call.config.temperature)
        text = call.field("context")
        if text == "bad" or (text == "flaky" and call.config.temperature == 0.0):
            return "this is not JSON"
        return {"persona": f"p-{text}"}

    lm = ScriptedLM(answer, temperature=0.0)
    sig = dspy.Signature("context -> persona")
    meter = CostMeter()
    with meter.track(), dspy.context(adapter=dspy.JSONAdapter()):
        outcomes = run_batch(lambda item: dspy.Predict(sig)(context=item).persona,
                             ["ok", "bad", "flaky"], lm=lm, max_attempts=3)
    assert [o.value for o in outcomes] == ["p-ok", None, "p-flaky"]
    assert [o.attempts for o in outcomes] == [1, 3, 2]
    assert outcomes[1].error is not None and "Parse" in outcomes[1].error
    assert meter.cost.lm_calls == 6
    assert lm.kwargs["temperature"] == 0.0  # the caller's LM was never changed
    assert 1.0 in seen_temperatures


def test_run_batch_threads_keep_order_and_settings() -> None:
    threads: set[str] = set()

    def answer(call):
        threads.add(threading.current_thread().name)
        return {"persona": call.field("context")}

    lm = ScriptedLM(answer)
    sig = dspy.Signature("context -> persona")
    meter = CostMeter()
    items = [str(i) for i in range(12)]
    with meter.track(), dspy.context(adapter=dspy.JSONAdapter()):
        outcomes = run_batch(lambda item: dspy.Predict(sig)(context=item).persona, items, lm=lm, concurrency=4)
    assert [o.value for o in outcomes] == items
    assert meter.cost.lm_calls == 12  # the usage tracker reached the worker threads
    assert any(name.startswith("personae") for name in threads)


def test_run_batch_rejects_bad_options() -> None:
    lm = ScriptedLM(lambda call: {})
    with pytest.raises(ConfigError):
        run_batch(lambda x: x, [1], lm=lm, concurrency=0)
    with pytest.raises(ConfigError):
        run_batch(lambda x: x, [1], lm=lm, max_attempts=0)


@pytest.mark.parametrize("model", ["", "gpt-4o", "local:/no/such/model.gguf"])
def test_get_lm_rejects_unusable_model_strings(model: str) -> None:
    with pytest.raises(ConfigError):
        get_lm(model)


def test_get_lm_local_refuses_server_options() -> None:
    with pytest.raises(ConfigError, match="api_base"):
        get_lm("local", api_base="http://127.0.0.1:1/v1")


def test_get_lm_remote_uses_litellm_with_client_settings() -> None:
    lm = get_lm("openai/some-model", api_base="http://127.0.0.1:9/v1", api_key="k", temperature=0.3,
                engine="litellm")
    assert lm.model == "openai/some-model"
    assert lm.engine == "litellm"
    assert lm.kwargs["api_base"] == "http://127.0.0.1:9/v1" and lm.kwargs["api_key"] == "k"
    assert lm.kwargs["temperature"] == 0.3
    hosted = get_lm("anthropic/claude-x")
    assert hosted.engine == "litellm"  # a provider only LiteLLM speaks


def test_get_lm_sends_openai_compatible_servers_through_the_lean_engine(monkeypatch) -> None:
    import copy
    import pickle

    from personae.lm import HTTPEngine

    lm = get_lm("openai/served-model", api_base="http://127.0.0.1:9/v1/", timeout=7, temperature=0.2)
    engine = lm.engine
    assert isinstance(engine, HTTPEngine)
    assert (engine.api_base, engine.model, engine.timeout) == ("http://127.0.0.1:9/v1", "served-model", 7)
    assert "api_key" not in lm.kwargs and lm.kwargs["temperature"] == 0.2
    assert lm.copy(rollout_id=1).engine is engine and copy.deepcopy(lm).engine is engine  # one pool
    with pytest.raises(ConfigError, match="engine must be one of"):
        get_lm("openai/served-model", api_base="http://127.0.0.1:9/v1", engine="fast")
    with pytest.raises(ConfigError, match="api_base"):
        get_lm("anthropic/claude-x", engine="http")
    # A pickled engine names the variable that holds the key, never the key itself.
    monkeypatch.setenv("SERVED_MODEL_KEY", "a-key-of-some-length-1234")
    keyed = get_lm("openai/served-model", api_base="http://127.0.0.1:9/v1", api_key="a-key-of-some-length-1234")
    data = pickle.dumps(keyed.engine)
    assert b"a-key-of-some-length-1234" not in data and b"SERVED_MODEL_KEY" in data
    assert pickle.loads(data)._key == "a-key-of-some-length-1234"
    direct = get_lm("openai/served-model", api_base="http://127.0.0.1:9/v1", api_key="typed-on-the-command-line")
    with pytest.raises(ConfigError, match="environment variable"):
        pickle.dumps(direct.engine)


def test_local_engine_turns_the_output_schema_into_a_capped_grammar() -> None:
    from dspy.lm15 import Config, Message, Request

    schema = {"type": "object", "properties": {"reasoning": {"type": "string"},
                                                "preferred": {"type": "string", "enum": ["A", "B"]}}}
    request = Request(model="local", messages=(Message.user("hi"),), system="sys",
                      config=Config(max_tokens=7, temperature=0.0,
                                    response_format={"type": "json_schema", "schema": schema}))
    engine = LlamaCppEngine("/unused.gguf", max_string_chars=99)  # nothing loads until a call
    body = engine.build_body(request)
    assert body["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert body["max_tokens"] == 7 and body["temperature"] == 0.0
    props = body["response_format"]["json_schema"]["schema"]["properties"]
    assert props["reasoning"]["maxLength"] == 99
    assert "maxLength" not in props["preferred"]
    assert "maxLength" not in schema["properties"]["reasoning"]  # the request's schema is not mutated


def test_local_engine_bounds_llama_cpps_host_prompt_cache(monkeypatch) -> None:
    import xllamacpp

    started = []
    monkeypatch.setattr(xllamacpp, "Server", lambda params: started.append(params) or object())
    LlamaCppEngine("/unused.gguf")._ensure_server()
    LlamaCppEngine("/unused.gguf", cache_ram_mib=64)._ensure_server()
    assert [p.cache_ram_mib for p in started] == [256, 64]  # llama.cpp's own default is 8192
    assert xllamacpp.CommonParams().cache_ram_mib > 256


def test_cost_meters_nest() -> None:
    lm = ScriptedLM(lambda call: {"persona": "x"})
    sig = dspy.Signature("context -> persona")
    outer, inner = CostMeter(), CostMeter()
    with outer.track(), dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        dspy.Predict(sig)(context="a")
        with inner.track():
            dspy.Predict(sig)(context="b")
            dspy.Predict(sig)(context="c")
    assert inner.cost.lm_calls == 2
    assert outer.cost.lm_calls == 3
    assert outer.cost.prompt_tokens == sum(len(c.text.split()) for c in lm.calls)


def test_cache_hits_are_not_counted_as_calls(tmp_path) -> None:
    lm = ScriptedLM(lambda call: {"persona": "x"}, cache=True)
    sig = dspy.Signature("context -> persona")
    meter = CostMeter()
    with meter.track(), dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        dspy.Predict(sig)(context=f"same question {tmp_path}")
        dspy.Predict(sig)(context=f"same question {tmp_path}")
    assert len(lm.calls) == 1
    assert meter.cost.lm_calls == 1


def test_the_embedded_engines_grammar_follows_the_adapters_layout() -> None:
    import copy

    from personae.lm import LlamaCppEngine
    from personae.signatures import JudgeWithPersona

    engine = LlamaCppEngine()  # nothing loads until a request comes
    assert copy.deepcopy(engine) is engine and copy.copy(engine) is engine  # copies share the loaded model
    judge = dspy.ChainOfThought(JudgeWithPersona).predict.signature
    inputs = {"persona": "p", "prompt": "q", "response_a": "a", "response_b": "b"}

    def body(adapter, signature=judge, values=inputs, max_tokens=512):
        messages = adapter.format(signature, [], values)
        from dspy.lm15 import Config, Message, Request

        request = Request(model="m", messages=(Message.user(messages[1]["content"]),), system=messages[0]["content"],
                          config=Config(max_tokens=max_tokens))
        return engine.build_body(request)

    chat = body(dspy.ChatAdapter())
    assert '("A" | "B")' in chat["grammar"] and "[[ ## completed ## ]]" in chat["grammar"]
    assert "text ::= [^[]{1,4" in chat["grammar"]  # the reasoning capped so the answer closes within 512 tokens
    assert "<preferred>" in body(dspy.XMLAdapter())["grammar"]
    assert "grammar" not in body(dspy.JSONAdapter())  # a response schema does that job
    listing = dspy.Signature("question -> answers: list[str]")
    assert "grammar" not in body(dspy.ChatAdapter(), listing, {"question": "q"})  # no grammar for a list


def test_an_outcome_travels_without_its_exception() -> None:
    import pickle

    from personae.runs import Outcome

    outcome = Outcome(0, error="parse: bad", kind="parse", last_exception=ValueError("bad"))
    assert outcome.last_exception is not None
    assert pickle.loads(pickle.dumps(outcome)).last_exception is None
