"""The LiteLLM path, end to end over HTTP against an OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json

import dspy
import pytest

from personae.cli.main import main
from personae.errors import ConfigError
from personae.lm import CostMeter, get_lm
from personae.programs import PersonaInference
from personae.testing import output_fields, stub_server


def _answer(body):
    fields = output_fields(body)
    values = {"reasoning": "it is clearer", "preferred": "A", "persona": "The user values clarity."}
    return 200, json.dumps({name: values.get(name, "x") for name in fields})


def test_programs_run_through_litellm_and_count_usage() -> None:
    with stub_server(_answer) as stub:
        lm = get_lm("openai/stub-model", api_base=stub.api_base, api_key="secret-key", cache=False)
        meter = CostMeter()
        with meter.track(), dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            pred = PersonaInference()(prompt="How do I boil an egg?", chosen="Nine minutes.", rejected="Eggs.")
    assert pred.chosen_persona == "The user values clarity."
    assert pred.rejected_persona == "The user values clarity."
    assert len(stub.requests) == 2
    assert stub.requests[0]["model"] == "stub-model"
    assert stub.headers[0]["authorization"] == "Bearer secret-key"
    cost = meter.cost
    assert cost.lm_calls == 2
    expected_prompt = sum(len(str(m["content"]).split()) for r in stub.requests for m in r["messages"])
    assert cost.prompt_tokens == expected_prompt
    assert cost.completion_tokens > 0


def test_cli_infer_personas_over_http(tmp_path, capsys, shared_data) -> None:
    out = tmp_path / "x.jsonl"
    with stub_server(_answer) as stub:
        code = main(["infer-personas", str(shared_data / "persona_inference" / "BeaverTails__train.jsonl"),
                     "--limit", "20", "--out", str(out), "--model", "openai/stub-model",
                     "--api-base", stub.api_base, "--no-cache", "--concurrency", "4"])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 20
    assert all(r["chosen_persona"] and r["rejected_persona"] for r in rows)
    assert {"prompt", "chosen", "rejected"} <= set(rows[0])
    printed = capsys.readouterr().out
    assert "40 LM calls" in printed and "prompt" in printed and "completion tokens" in printed


def test_server_errors_are_retried_then_recorded(tmp_path, capsys, shared_data) -> None:
    def flaky(body):
        if "boil" in json.dumps(body):
            return 500, "the server fell over"
        return _answer(body)

    data = tmp_path / "in.jsonl"
    data.write_text(
        json.dumps({"prompt": "How long to boil an egg?", "chosen": "Nine minutes.", "rejected": "Eggs."}) + "\n"
        + json.dumps({"prompt": "Best tea?", "chosen": "Green.", "rejected": "None."}) + "\n"
    )
    out = tmp_path / "out.jsonl"
    with stub_server(flaky) as stub:
        code = main(["infer-personas", str(data), "--out", str(out), "--model", "openai/stub-model",
                     "--api-base", stub.api_base, "--no-cache", "--max-attempts", "2", "--lm-retries", "0"])
    assert code == 1  # the run finished, but says that a record failed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    assert rows[0]["chosen_persona"] is None and "persona_error" in rows[0]
    assert rows[1]["chosen_persona"] == "The user values clarity."
    assert "1 failed" in capsys.readouterr().out


@pytest.mark.parametrize("status", [429, 503])
def test_transient_statuses_are_retried_by_the_lm(status: int) -> None:
    calls = {"n": 0}

    def once_then_ok(body):
        calls["n"] += 1
        return (status, "try again") if calls["n"] == 1 else _answer(body)

    with stub_server(once_then_ok) as stub:
        lm = get_lm("openai/stub-model", api_base=stub.api_base, cache=False, num_retries=2)
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            pred = dspy.Predict("context -> persona")(context="hello")
    assert pred.persona == "The user values clarity."
    assert calls["n"] == 2


def test_structured_output_sends_the_schema() -> None:
    with stub_server(_answer) as stub:
        plain = get_lm("openai/plain-model", api_base=stub.api_base, cache=False)
        typed = get_lm("openai/typed-model", api_base=stub.api_base, cache=False, structured_output=True)
        for lm in (plain, typed):
            with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
                dspy.ChainOfThought("context -> persona")(context="hi")
    plain_format, typed_format = (r.get("response_format") for r in stub.requests)
    assert plain_format == {"type": "json_object"}
    assert typed_format["type"] == "json_schema"
    assert set(typed_format["json_schema"]["schema"]["properties"]) == {"reasoning", "persona"}


def test_string_cap_goes_into_the_schema() -> None:
    from personae.lm import default_adapter
    from personae.signatures import PairwiseJudge

    def judge_answer(body):
        return 200, json.dumps({"reasoning": "shorter is kinder", "preferred": "B"})

    with stub_server(judge_answer) as stub:
        capped = get_lm("openai/typed-model", api_base=stub.api_base, cache=False, structured_output=True,
                        max_string_chars=300)
        with dspy.context(lm=capped, adapter=default_adapter()):
            pred = dspy.ChainOfThought(PairwiseJudge)(prompt="c", response_a="a", response_b="b")
        uncapped = get_lm("openai/typed-model", api_base=stub.api_base, cache=False, structured_output=True)
        with dspy.context(lm=uncapped, adapter=default_adapter()):
            dspy.ChainOfThought(PairwiseJudge)(prompt="c", response_a="a", response_b="b")
    assert pred.preferred == "B"
    capped_props, plain_props = (r["response_format"]["json_schema"]["schema"]["properties"] for r in stub.requests)
    assert capped_props["reasoning"]["maxLength"] == 300
    assert "maxLength" not in capped_props["preferred"]  # a choice, not free text
    assert "maxLength" not in plain_props["reasoning"]
    with pytest.raises(ConfigError, match="structured_output"):
        get_lm("openai/typed-model", api_base="http://127.0.0.1:9/v1", max_string_chars=300)


def test_cli_max_field_chars_reaches_the_server(tmp_path, shared_data) -> None:
    out = tmp_path / "x.jsonl"
    with stub_server(_answer) as stub:
        code = main(["infer-personas", str(shared_data / "persona_inference" / "BeaverTails__train.jsonl"),
                     "--limit", "1", "--out", str(out), "--model", "openai/typed-model", "--api-base",
                     stub.api_base, "--no-cache", "--structured-output", "--max-field-chars", "200"])
    assert code == 0
    schemas = [r["response_format"]["json_schema"]["schema"] for r in stub.requests]
    assert len(schemas) == 2 and all(s["properties"]["persona"]["maxLength"] == 200 for s in schemas)


def test_the_adapter_builds_a_signatures_system_message_and_schema_once(monkeypatch) -> None:
    from dspy.adapters import json_adapter

    from personae.lm import default_adapter
    from personae.signatures import PairwiseJudge

    built = {"system": 0, "schema": 0}
    real_system = dspy.JSONAdapter.format_system_message
    real_schema = json_adapter._get_structured_outputs_response_format

    def count_system(self, signature):
        built["system"] += 1
        return real_system(self, signature)

    def count_schema(*args, **kwargs):
        built["schema"] += 1
        return real_schema(*args, **kwargs)

    monkeypatch.setattr(dspy.JSONAdapter, "format_system_message", count_system)
    monkeypatch.setattr(json_adapter, "_get_structured_outputs_response_format", count_schema)

    def judge_answer(body):
        return 200, json.dumps({"reasoning": "shorter is kinder", "preferred": "B"})

    adapter = default_adapter()
    with stub_server(judge_answer) as stub:
        plain = get_lm("openai/typed-model", api_base=stub.api_base, cache=False, structured_output=True)
        capped = get_lm("openai/typed-model", api_base=stub.api_base, cache=False, structured_output=True,
                        max_string_chars=120)
        for lm in (plain, plain, plain, capped, capped):
            with dspy.context(lm=lm, adapter=adapter):
                pred = dspy.ChainOfThought(PairwiseJudge)(prompt="c", response_a="a", response_b="b")
            assert pred.preferred == "B"
    assert built == {"system": 1, "schema": 2}  # the cap is a second schema, the system message is shared
    systems = {r["messages"][0]["content"] for r in stub.requests}
    schemas = [r["response_format"]["json_schema"]["schema"]["properties"]["reasoning"] for r in stub.requests]
    assert len(systems) == 1 and "Your output fields are" in systems.pop()
    assert [s.get("maxLength") for s in schemas] == [None, None, None, 120, 120]
