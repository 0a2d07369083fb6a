from __future__ import annotations

import json

import pytest

from personae.cli.main import main
from personae.testing import output_fields, stub_server


def _answer(body):
    fields = output_fields(body)
    values = {"reasoning": "it fits", "preferred": "A", "persona": "The user wants short answers."}
    return 200, json.dumps({name: values.get(name, "x") for name in fields})


def _remote(stub) -> list[str]:
    return ["--model", "openai/stub-model", "--api-base", stub.api_base, "--no-cache", "--lm-retries", "0"]


def test_malformed_record_gives_a_one_line_error_naming_line_and_field(tmp_path, capsys) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text(
        json.dumps({"prompt": "q1", "chosen": "a", "rejected": "b"}) + "\n"
        + json.dumps({"prompt": "q2", "chosen": None, "rejected": "b"}) + "\n"
    )
    code = main(["infer-personas", str(data), "--out", str(tmp_path / "out.jsonl")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1
    assert "bad.jsonl" in err and "record 2" in err and "'chosen'" in err
    assert not (tmp_path / "out.jsonl").exists()


def test_skip_invalid_reports_what_was_skipped(tmp_path, capsys) -> None:
    data = tmp_path / "mixed.jsonl"
    data.write_text(
        json.dumps({"prompt": "q1", "chosen": "a", "rejected": "b"}) + "\n"
        + "{not json\n"
        + json.dumps({"prompt": "q3", "chosen": "c", "rejected": "d"}) + "\n"
    )
    with stub_server(_answer) as stub:
        code = main(["judge", str(data), "--skip-invalid", *_remote(stub)])
    captured = capsys.readouterr()
    assert code == 0
    assert "skipped 1" in captured.err
    assert "judged 2 pairs, 4 judgments" in captured.out


def test_judge_with_a_persona_column_reports_accuracy_and_cost(tmp_path, capsys, shared_data) -> None:
    out = tmp_path / "judgments.jsonl"
    with stub_server(_answer) as stub:
        code = main(["judge", str(shared_data / "persona_tailoring" / "BeaverTails__test.jsonl"), "--limit", "3",
                     "--persona-column", "chosen_persona_gold", "--out", str(out), *_remote(stub)])
        sent = [m["content"] for body in stub.requests for m in body["messages"] if m["role"] == "user"]
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 6 and {r["chosen_first"] for r in rows} == {True, False}
    assert sum(r["correct"] for r in rows) == 3  # the stub always answers First
    printed = capsys.readouterr().out
    assert "accuracy 50.0%" in printed and "6 LM calls" in printed
    assert any("morally aware" in text for text in sent)  # the first record's gold persona reached the judge


def test_judge_profile_needs_a_profile(tmp_path, capsys) -> None:
    data = tmp_path / "noprofile.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    with stub_server(_answer) as stub:
        code = main(["judge", str(data), "--profile", *_remote(stub)])
    assert code == 2
    assert "profile" in capsys.readouterr().err


def test_demo_prints_its_table_and_leaves_a_run_log_and_a_store(tmp_path, capsys) -> None:
    from personae.store import PersonaStore
    from personae.web.viewer import load_run

    with stub_server(_answer) as stub:
        code = main(["demo", "--users", "2", "--out", str(tmp_path / "demo"), *_remote(stub)])
    out = capsys.readouterr().out
    assert code == 0
    assert "with persona" in out and "calls" in out and "tokens" in out
    lines = [line for line in out.splitlines() if line.startswith(("ana ", "ben "))]
    assert len(lines) == 2 and all("The user wants short answers." in line for line in lines)
    assert f"personae view {tmp_path / 'demo'}" in out and "personae store console --store" in out
    run = load_run(tmp_path / "demo")
    assert run.command == "demo" and run.users == ["ana", "ben"] and [g.label for g in run.groups] == ["default",
                                                                                                       "persona"]
    with PersonaStore(tmp_path / "demo" / "store.db", background=False) as store:
        assert store.users() == ["ana", "ben"]
        assert [v.method for v in store.history("ana")][0] == "imported"


@pytest.mark.parametrize("argv", [["--version"], ["infer-personas", "--help"], ["judge", "--help"], ["demo", "--help"]])
def test_help_and_version(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert capsys.readouterr().out


@pytest.mark.parametrize(("command", "shown"), [
    ("demo", ["(default: 2)", "(default: local)"]),  # the demo tries each item twice
    ("judge", ["(default: 3)", "(default: local)"]),
    ("serve-api", ["(default: the judge's own LM, or 'local' with a reward-model judge)"]),
])
def test_help_shows_the_defaults_each_command_runs_with(command, shown, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(text in out for text in shown), out


def test_fit_writes_one_judge_per_user_and_resumes(tmp_path, capsys) -> None:
    from personae.optimizers import PersonalizedJudge, judge_path
    from personae.pipelines import demo_data_path

    out = tmp_path / "judges"
    with stub_server(_answer) as stub:
        code = main(["fit", str(demo_data_path()), "--out", str(out), "--users", "2", *_remote(stub)])
        first_calls = len(stub.requests)
        again = main(["fit", str(demo_data_path()), "--out", str(out), "--users", "2", *_remote(stub)])
        assert len(stub.requests) == first_calls  # the second run fitted nobody again
    assert code == 0 and again == 0
    judges = sorted(out.glob("*.json"))
    assert len(judges) == 2
    judge = PersonalizedJudge.load(judge_path(out, "ana"))
    assert judge.persona == "The user wants short answers." and judge.cost["lm_calls"] > 0
    printed = capsys.readouterr().out
    assert "2 fitted, 0 already done" in printed and "0 fitted, 2 already done" in printed


def test_fit_fits_a_user_whose_pairs_sit_on_too_few_prompts_and_says_so(tmp_path, capsys) -> None:
    from personae.optimizers import PersonalizedJudge, judge_path

    data = tmp_path / "few.jsonl"
    rows = [{"user_id": "few", "prompt": f"prompt {i % 2}", "chosen": f"short {i}", "rejected": f"long answer {i}"}
            for i in range(4)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with stub_server(_answer) as stub:
        code = main(["fit", str(data), "--out", str(tmp_path / "judges"), *_remote(stub)])
    assert code == 0
    judge = PersonalizedJudge.load(judge_path(tmp_path / "judges", "few"))
    assert judge.val_accuracy is None and judge.n_val == 0 and "no validation side" in judge.note
    printed = capsys.readouterr()
    assert "1 fitted (1 without a validation side: too few prompts), 0 already done, 0 failed" in printed.out
    assert "few: fitted val n/a (no validation side)" in printed.err


def test_fit_resumes_only_judges_fitted_alike_and_takes_preset_settings(tmp_path, capsys) -> None:
    from personae.optimizers import PersonalizedJudge, judge_path
    from personae.pipelines import demo_data_path

    out = tmp_path / "judges"
    fit = ["fit", str(demo_data_path()), "--out", str(out), "--users", "2"]
    with stub_server(_answer) as stub:
        assert main([*fit, *_remote(stub)]) == 0
        calls = len(stub.requests)
        capsys.readouterr()
        assert main([*fit, "--set", "candidates=3", *_remote(stub)]) == 2
        err = capsys.readouterr().err
        assert "other settings" in err and "candidates 2 there, 3 now" in err and "--fresh" in err
        assert len(stub.requests) == calls  # stopped before any call
        assert main([*fit, "--set", "candidates=3", "--fresh", *_remote(stub)]) == 0
        assert len(stub.requests) > calls
        assert main([*fit, "--set", "candidates=3", *_remote(stub)]) == 0  # alike now: nothing to fit
        assert "0 fitted, 2 already done" in capsys.readouterr().out
        assert main([*fit, "--set", "candidate=3", *_remote(stub)]) == 2
        assert "unknown preset setting candidate" in capsys.readouterr().err
    judge = PersonalizedJudge.load(judge_path(out, "ana"))
    assert judge.settings["candidates"] == 3 and judge.settings["max_demos"] == 3 and judge.settings["seed"] == 0


def test_fit_uses_a_saved_persona_program(tmp_path) -> None:
    from personae.pipelines import demo_data_path
    from personae.programs import PersonaSynthesis

    program = PersonaSynthesis()
    predictor = program.synthesize.predict
    predictor.signature = predictor.signature.with_instructions("CUSTOM-PERSONA-INSTRUCTIONS describe the user.")
    program.save(str(tmp_path / "program.json"))
    with stub_server(_answer) as stub:
        code = main(["fit", str(demo_data_path()), "--out", str(tmp_path / "judges"), "--users", "1",
                     "--persona-program", str(tmp_path / "program.json"), *_remote(stub)])
        systems = [m["content"] for body in stub.requests for m in body["messages"] if m["role"] == "system"]
    assert code == 0
    assert any("CUSTOM-PERSONA-INSTRUCTIONS" in s for s in systems)


@pytest.mark.parametrize("command", ["fit", "optimize-persona-prompt", "serve"])
def test_more_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0 and command in capsys.readouterr().out


def test_the_command_lines_defaults_are_the_python_apis() -> None:
    """Options come from the spec dataclasses; where the same setting has a Python default, they agree."""
    import dataclasses
    import inspect

    from personae.cli.main import build_parser
    from personae.data import parse_fractions, split_user
    from personae.evaluation import persona_saliency
    from personae.lm import get_lm
    from personae.optimizers import SynthesizeMe
    from personae.pipelines import EvaluateTask, evaluate_methods
    from personae.runs import RetryPolicy
    from personae.specs import EvaluateOptions, FitOptions, LMSpec, RunSpec, SaliencyOptions

    def default(fn, name):
        return inspect.signature(fn).parameters[name].default

    lm = LMSpec()
    assert (lm.model, lm.temperature, lm.lm_retries, lm.engine, lm.cache) == (
        default(get_lm, "model"), default(get_lm, "temperature"), default(get_lm, "num_retries"),
        default(get_lm, "engine"), default(get_lm, "cache"))
    assert RunSpec().max_attempts == RetryPolicy().max_attempts == default(evaluate_methods, "max_attempts")
    assert RunSpec().confidence == default(evaluate_methods, "confidence")
    fractions = parse_fractions(EvaluateOptions().fractions)
    assert fractions == default(EvaluateTask.__init__, "fractions") == default(split_user, "fractions")
    assert FitOptions().preset == default(SynthesizeMe.__init__, "preset")
    assert (SaliencyOptions().top, SaliencyOptions().min_count) == (default(persona_saliency, "top"),
                                                                   default(persona_saliency, "min_count"))
    parsed = build_parser().parse_args(["evaluate", "data.jsonl", "--out", "o"])
    for name in (f.name for f in dataclasses.fields(EvaluateOptions)):
        assert getattr(parsed, name) == getattr(EvaluateOptions(out="o"), name)


def test_a_settings_error_names_the_options_to_change(tmp_path, capsys) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n", encoding="utf-8")
    assert main(["distill", "reward-model", str(data), "--layers", "2", "--freeze-layers", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("personae: error: freeze_layers=3 must be below layers=2: no kept layer would train")
    assert err.endswith("(options: --freeze-layers, --layers)")
    assert main(["distill", "reward-model", str(data), "--persona", "none", "--paired-batches"]) == 2
    assert "(options: --[no-]paired-batches, --flip-persona)" in capsys.readouterr().err
    from argparse import Namespace

    from personae.cli.options import FLAGS_DEST, flags_named

    flags = {"layers": "--layers", "freeze_layers": "--freeze-layers", "api_base": "--api-base"}
    args = Namespace(**{FLAGS_DEST: flags})
    assert flags_named("freeze_layers=2 leaves none of the 2 layers trainable", args).endswith(
        "(options: --freeze-layers)")   # "layers" here is a word, not the setting
    assert flags_named("layers must be at least 1", args).endswith("(options: --layers)")
    message = "the judge's model (--judge-model, --judge-api-base): api_base is not a URL"
    assert flags_named(message, args) == message   # it names its options already
    # bad input (not a setting) stays as it was
    assert main(["judge", str(tmp_path / "missing.jsonl"), "--persona", "none"]) == 2
    assert "options:" not in capsys.readouterr().err
