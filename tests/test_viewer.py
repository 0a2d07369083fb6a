"""The run viewer: what it reads (run logs of this and earlier versions, ledgers, fit folders)
and ``personae view`` in a real browser over a real ``personae evaluate`` output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser import shot
from personae.cli.main import main
from personae.errors import DataError
from personae.lm import ScriptedLM
from personae.programs import PersonalizedJudge
from personae.testing import output_fields, stub_server
from personae.web.viewer import judgment_fields, load_run

FIXTURES = Path(__file__).parent / "fixtures" / "previous_runs"
CLI = [sys.executable, "-c", "import sys; from personae.cli.main import main; sys.exit(main())"]


def _answer(body: dict[str, Any]) -> tuple[int, str]:
    """Prefers A, except on ben's last prompt, where the model fails for good."""
    text = json.dumps(body["messages"])
    if "ben q7" in text:
        return 500, "down"
    values = {"reasoning": "A reads better", "preferred": "A"}
    return 200, json.dumps({name: values.get(name, "x") for name in output_fields(body)})


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``personae evaluate`` output: two methods, three users, one judgment failing."""
    folder = tmp_path_factory.mktemp("viewer")
    rows = [{"prompt": f"{u} q{i}", "chosen": f"good {i} <b>not bold</b>", "rejected": f"bad {i}", "user_id": u}
            for u, n in (("ana", 10), ("ben", 8), ("cy", 6)) for i in range(n)]
    data = folder / "pairs.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    personas = folder / "personas.jsonl"
    personas.write_text("".join(json.dumps({"user_id": u, "persona": f"{u} likes brevity"}) + "\n"
                                for u in ("ana", "ben", "cy")))
    out = folder / "eval"
    with stub_server(_answer) as stub:
        code = main(["evaluate", str(data), "--method", "default,persona", "--personas", str(personas),
                     "--min-pairs", "3", "--out", str(out), "--model", "openai/stub", "--api-base", stub.api_base,
                     "--no-cache", "--lm-retries", "0", "--max-attempts", "1"])
    assert code == 1   # a judgment failed: counted, not fatal
    return out


def test_it_reads_an_evaluate_output_with_the_commands_figures(evaluated: Path) -> None:
    view = load_run(evaluated)
    log = json.loads((evaluated / "run.json").read_text())
    assert view.command == "evaluate" and view.status == "success" and view.log_version == 3
    assert [g.label for g in view.groups] == ["default", "persona"]
    for group in view.groups:   # the same figures the command reported
        summary = next(s for s in log["results"]["summary"] if s["method"] == group.label)
        assert (group.accuracy, group.ci_low, group.ci_high, group.judgments, group.unscored) == (
            summary["accuracy"], summary["ci_low"], summary["ci_high"], summary["judgments"], summary["unscored"])
    assert view.cost is not None and view.cost.lm_calls == log["cost"]["lm_calls"] > 0
    assert view.train_sizes == {u["user_id"]: u["n_train"] for u in log["results"]["users"]}
    fields = judgment_fields(view.judgments[0])
    assert fields["prompt"].startswith(view.judgments[0].user_id or "") and "response_a" in fields


def test_it_reads_ledgers_and_logs_of_earlier_versions(tmp_path: Path) -> None:
    for kind, methods in (("evaluate", ["default", "persona"]), ("eval-personas", ["persona · chosen",
                                                                                   "persona · rejected"]),
                          ("eval-tailoring", ["personalization", "quality"])):
        view = load_run(FIXTURES / kind)
        assert view.command == kind and view.log_version is None and [g.label for g in view.groups] == methods
        assert view.judgments and "no run log" in view.notes[0]
    tailoring = load_run(FIXTURES / "eval-tailoring")
    assert tailoring.groups[0].accuracy is None and sum(tailoring.groups[0].picks.values()) == 6   # no answer key
    judged = load_run(FIXTURES / "judge" / "judgments.jsonl.progress.jsonl")
    assert judged.command == "judge" and len(judged.judgments) == 12

    old = {"version": 2, "command": "evaluate", "status": "success", "config": {"model": "m", "seed": 0},
           "results": {}, "judgments": [
               {"item_id": "r1", "user_id": "u", "method": "default", "chosen_first": True, "preferred": "First",
                "picked": "chosen", "correct": True},
               {"item_id": "r1", "user_id": "u", "method": "default", "chosen_first": False, "preferred": "First",
                "picked": "rejected", "correct": False}]}
    (tmp_path / "run.json").write_text(json.dumps(old))
    view = load_run(tmp_path)
    assert view.log_version == 2 and [j.preferred for j in view.judgments] == ["A", "A"]
    assert [j.first for j in view.judgments] == ["chosen", "rejected"] and view.groups[0].accuracy == 0.5


def test_a_fit_folder_and_what_is_not_a_run(tmp_path: Path) -> None:
    PersonalizedJudge(user_id="ana", persona="likes brevity", n_train=6, val_accuracy=0.75).save(tmp_path / "ana.json")
    (tmp_path / "junk.json").write_text("{}")
    view = load_run(tmp_path)
    assert view.command == "fit" and [j["user_id"] for j in view.judges] == ["ana", "junk"]
    assert view.judges[0]["persona"] == "likes brevity" and view.judges[1]["error"]
    with pytest.raises(DataError, match="no such file"):
        load_run(tmp_path / "missing")
    (tmp_path / "bad.jsonl").write_text('{"key": "a", "first": "chosen", "record_id": "r"}\nnot json\n{}\n')
    with pytest.raises(DataError) as error:
        load_run(tmp_path / "bad.jsonl")
    assert "bad.jsonl" in str(error.value) and "2" in str(error.value)


def test_the_demo_leaves_a_run_log_the_viewer_reads(tmp_path: Path) -> None:
    from personae.pipelines import demo_run_log, demo_store, run_demo
    from personae.runs import write_log
    from personae.store import PersonaStore

    def answer(call: Any) -> dict[str, str]:
        if "revised_persona" in call.system:
            return {"reasoning": "r", "revised_persona": "The user wants short answers, and plain ones."}
        if call.field("preference_history") is not None:
            return {"reasoning": "r", "persona": "The user wants short answers."}
        if call.field("chosen") is not None:
            return {"persona": "p"}
        first, second = call.field("response_a"), call.field("response_b")
        return {"reasoning": "shorter", "preferred": "A" if len(first) <= len(second) else "B"}

    lm = ScriptedLM(answer)
    users = run_demo(lm=lm, users=2)
    write_log(demo_run_log(users, model="scripted", train_fraction=2 / 3, data_source="demo"), tmp_path / "run.json")
    view = load_run(tmp_path)
    assert view.command == "demo" and [g.label for g in view.groups] == ["default", "persona"]
    assert len(view.users) == 2 and all(g.judgments == 2 * sum(u.n_test for u in users) for g in view.groups)
    demo_store(users, tmp_path / "store.db", lm=lm)
    with PersonaStore(tmp_path / "store.db", background=False) as store:
        for user in users:
            versions = store.history(user.user_id)
            assert [v.method for v in versions][:1] == ["imported"] and len(versions[0].preference_ids) == user.n_train
            evidence = store.evidence(user.user_id)
            assert sum(e.judged for e in evidence) == user.n_test   # the later pairs, judged before learning
            assert all(e.learned_version is not None for e in evidence)


@pytest.fixture(scope="module")
def viewer(evaluated: Path) -> Iterator[str]:
    with subprocess.Popen([*CLI, "view", str(evaluated), "--port", "0"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True) as process:
        found: list[str] = []
        said: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                said.append(line)
                match = re.search(r"on (http://127\.0\.0\.1:\d+)/", line)
                if match:
                    found.append(match.group(1))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not found and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            assert found, "".join(said)
            yield found[0]
        finally:
            process.terminate()
            process.wait(30)
            reader.join(10)


def test_personae_view_in_a_browser(browser: Any, viewer: str, evaluated: Path) -> None:
    log = json.loads((evaluated / "run.json").read_text())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    page.goto(viewer + "/")
    assert page.inner_text("#status") == "success"
    assert page.inner_text("#lm-calls") == str(log["cost"]["lm_calls"])
    methods = page.locator("#methods tbody td:first-child").all_inner_texts()
    assert methods == ["default", "persona"]
    for chart in ("methods-chart", "users-chart", "train-chart"):
        assert page.get_attribute(f"#{chart}", "data-drawn") == "2", chart
    shot(page, "view-run")

    page.click("text=Judgments")
    total = len(log["judgments"])
    assert page.inner_text("#matched").startswith(f"{total} of {total}")
    page.select_option("#user", "ben")
    page.select_option("#method", "persona")
    page.select_option("#outcome", "failed")
    page.click("#filters button")
    page.wait_for_url(re.compile(r"outcome=failed"))
    failed = [j for j in log["judgments"] if j["user_id"] == "ben" and j["method"] == "persona" and j["error"]]
    assert failed and page.inner_text("#matched").startswith(f"{len(failed)} of {total}")
    page.select_option("#outcome", "right")
    page.click("#filters button")
    page.wait_for_url(re.compile(r"outcome=right"))
    right = [j for j in log["judgments"] if j["user_id"] == "ben" and j["method"] == "persona" and j["correct"]]
    assert page.inner_text("#matched").startswith(f"{len(right)} of {total}")
    page.click("details.judgment >> nth=0")
    opened = page.inner_text("details.judgment >> nth=0")
    assert "response a" in opened.lower() and "ben likes brevity" in opened and "A reads better" in opened
    assert "<b>not bold</b>" in page.inner_text("main") and page.locator("main b").count() == 0
    shot(page, "view-judgments")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(viewer + "/")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 391
    shot(page, "view-run-phone")
    page.close()
