"""The Ray executor on a local cluster (``ray.init(num_cpus=2)``), against OpenAI-compatible servers on 127.0.0.1.

The same runs on threads and on Ray give the same rows and the same cost; the key stays in the
workers' environment; a bug in a worker surfaces as itself; a killed worker, or a killed driver,
loses and duplicates nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import dspy
import pytest

pytest.importorskip("ray")

from helpers import record  # noqa: E402
from personae.errors import ConfigError  # noqa: E402
from personae.lm import default_adapter, get_lm  # noqa: E402
from personae.pipelines import infer_personas, judge_factory, judge_records  # noqa: E402
from personae.runs import RayExecutor, run_batch  # noqa: E402
from personae.testing import stub_server  # noqa: E402
from ray_support import KEY, KEY_ENV, answer, jsonl, ledger_rows, local_ray, wait_for_rows  # noqa: E402


@pytest.fixture(scope="module")
def ray_local():
    with local_ray(num_cpus=2) as ray:
        yield ray


def _lm(stub) -> dspy.LM:
    return get_lm("openai/served", api_base=stub.api_base, api_key=os.environ[KEY_ENV], cache=False, num_retries=0)


def test_ray_judges_as_threads_do_and_counts_the_same_cost(ray_local) -> None:
    from personae.runs import worker_payload

    records = [record(i, user=f"u{i % 3}") for i in range(30)]
    with stub_server(answer) as stub:
        lm = _lm(stub)
        threads = judge_records(records, judge_factory(), lm=lm, concurrency=4)
        served_by_threads = len(stub.requests)
        with RayExecutor(4, workers=2) as executor:
            pids = executor.start()
            on_ray = judge_records(records, judge_factory(), lm=lm, executor=executor)
        headers = stub.headers[served_by_threads:]
    assert len({pid for pid, _ in pids}) == 2 and os.getpid() not in {pid for pid, _ in pids}
    assert on_ray.rows == threads.rows and on_ray.total == 60 and on_ray.unscored == 0
    assert (on_ray.cost.lm_calls, on_ray.cost.prompt_tokens, on_ray.cost.completion_tokens) == \
        (threads.cost.lm_calls, threads.cost.prompt_tokens, threads.cost.completion_tokens) == \
        (60, threads.cost.prompt_tokens, threads.cost.completion_tokens)
    assert len(headers) == 60 and all(h["authorization"] == f"Bearer {KEY}" for h in headers)  # read there
    shipped = worker_payload(lm)
    assert KEY.encode() not in shipped and KEY_ENV.encode() in shipped


def test_a_key_given_directly_does_not_travel(ray_local) -> None:
    with stub_server(answer) as stub:
        lm = get_lm("openai/served", api_base=stub.api_base, api_key="typed-in-directly-0042", cache=False)
        with RayExecutor(2, workers=1) as executor, pytest.raises(ConfigError, match="environment variable"):
            judge_records([record(0)], judge_factory(), lm=lm, executor=executor)
        assert stub.requests == []


def _buggy(item: int) -> int:
    if item == 3:
        raise KeyError("a bug on item 3")
    return item * 2


def test_a_bug_in_a_worker_surfaces_as_itself_after_the_items_in_flight(ray_local) -> None:
    done: list[int] = []
    lm = get_lm("openai/unused", api_base="http://127.0.0.1:9/v1")
    with RayExecutor(2, workers=2) as executor, pytest.raises(KeyError, match="a bug on item 3"):
        run_batch(_buggy, list(range(40)), lm=lm, executor=executor, on_result=lambda o: done.append(o.index))
    assert 3 not in done and len(done) < 40  # nothing started after the error


def test_a_killed_worker_loses_and_duplicates_nothing(ray_local, tmp_path) -> None:
    records = [record(i) for i in range(60)]
    out = tmp_path / "personas.jsonl"
    ledger = tmp_path / "personas.jsonl.progress.jsonl"
    with stub_server(lambda body: answer(body, delay_s=0.05)) as stub, dspy.context(adapter=default_adapter()):
        lm = _lm(stub)
        with RayExecutor(4, workers=2, chunk=2) as executor:  # two records a call: a chunk is lost whole
            executor.start()
            report: list = []
            run = threading.Thread(target=lambda: report.append(infer_personas(records, out, lm=lm,
                                                                               executor=executor)))
            run.start()
            wait_for_rows(ledger, 10)
            ray_local.kill(executor._actors[0])  # mid-run: its items in flight are lost with it
            run.join(timeout=120)
        assert not run.is_alive() and report
    rows = jsonl(out)
    assert [r["record_id"] for r in rows] == [f"r{i}" for i in range(60)]
    assert all(r["chosen_persona"] and r["rejected_persona"] and "persona_error" not in r for r in rows)
    keys = [row["key"] for row in ledger_rows(ledger)]
    assert len(keys) == 60 == len(set(keys))  # each record recorded once
    assert report[0].failed == 0 and report[0].inferred == 60


def test_a_killed_driver_resumes_from_its_ledger(ray_local, tmp_path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(
        f'{{"prompt": "question {i}", "chosen": "good {i}", "rejected": "bad {i}", "record_id": "r{i}"}}\n'
        for i in range(40)))
    out = tmp_path / "personas.jsonl"
    ledger = tmp_path / "personas.jsonl.progress.jsonl"
    address = ray_local.get_runtime_context().gcs_address
    with stub_server(lambda body: answer(body, delay_s=0.1)) as stub:
        command = [sys.executable, "-m", "personae.cli.main", "infer-personas", str(data), "--out", str(out),
                   "--model", "openai/served", "--api-base", stub.api_base, "--no-cache", "--concurrency", "4",
                   "--executor", "ray", "--ray-address", address, "--workers", "2"]
        env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_rows(ledger, 8, timeout_s=120)
        finally:
            driver.send_signal(signal.SIGKILL)
            driver.wait(timeout=30)
        assert not out.exists()
        before = {row["key"] for row in ledger_rows(ledger)}
        served = len(stub.requests)
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = jsonl(out)
    assert [r["record_id"] for r in rows] == [f"r{i}" for i in range(40)]
    keys = [row["key"] for row in ledger_rows(ledger)]
    assert len(keys) == len(set(keys)) == 40 and before <= set(keys)
    assert f"{len(before)} from an earlier run" in again.stdout
    assert len(stub.requests) - served <= 2 * (40 - len(before)) + 2 * 4  # at most the in-flight ones again
    assert not Path(f"{out}.tmp").exists()


def _write_shards(folder: Path, n: int = 20, names: tuple[str, ...] = ("part-a.jsonl", "part-b.jsonl",
                                                                     "part-c.parquet")) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    for k, name in enumerate(names):
        rows = [{"record_id": f"s{k}-{i}", "prompt": f"question {k}-{i}", "chosen": f"good {i}",
                 "rejected": f"bad {i}", "topic": f"t{i % 3}"} for i in range(n)]
        if name.endswith(".parquet"):
            pq.write_table(pa.Table.from_pylist(rows), folder / name)
        else:
            (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_a_folder_of_shards_goes_through_ray_data_and_resumes_shard_by_shard(ray_local, tmp_path, capsys) -> None:
    import pyarrow.dataset as pads

    from personae.cli.main import main

    shards, out = tmp_path / "shards", tmp_path / "personas"
    _write_shards(shards)
    with stub_server(answer) as stub:
        command = ["infer-personas", str(shards), "--out", f"file://{out}", "--model", "openai/served",
                   "--api-base", stub.api_base, "--no-cache", "--concurrency", "4", "--executor", "ray",
                   "--workers", "2"]
        assert main(command) == 0
        first = len(stub.requests)
        assert "3 inferred now, 0 from an earlier run" in capsys.readouterr().out
        assert main(command) == 0  # every shard whole: nothing asked again
        assert len(stub.requests) == first and "0 inferred now, 3 from an earlier run" in capsys.readouterr().out
        rows = (shards / "part-b.jsonl").read_text().replace("question 1-", "question again 1-")
        (shards / "part-b.jsonl").write_text(rows)
        assert main(command) == 0  # only the shard that changed
        assert len(stub.requests) - first == 40 and "1 inferred now, 2 from an earlier run" in capsys.readouterr().out
        assert main([*command[:4], "--model", "openai/other", *command[6:]]) == 2
        assert "other settings" in capsys.readouterr().err
    assert first == 120  # two calls a record
    assert sorted(p.name for p in out.iterdir()) == ["part-a", "part-b", "part-c"]
    assert all((out / name / "_personae.json").exists() for name in ("part-a", "part-b", "part-c"))
    table = pads.dataset(str(out), format="parquet").to_table().to_pylist()
    assert len(table) == 60 and {r["record_id"] for r in table} == {f"s{k}-{i}" for k in range(3) for i in range(20)}
    assert all(r["chosen_persona"] and r["rejected_persona"] and r["persona_error"] is None for r in table)
    assert {r["topic"] for r in table} == {"t0", "t1", "t2"}  # the source columns come along
    assert any("again" in r["prompt"] for r in table)
    manifest = json.loads((out / "part-a" / "_personae.json").read_text())
    assert manifest["rows"] == 20 and manifest["failed"] == 0 and manifest["cost"]["lm_calls"] == 40


def test_a_malformed_row_in_a_shard_names_the_shard_and_field(ray_local, tmp_path, capsys) -> None:
    from personae.cli.main import main

    shards, out = tmp_path / "shards", tmp_path / "personas"
    _write_shards(shards, n=6, names=("part-a.jsonl",))
    lines = (shards / "part-a.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"record_id": "broken", "prompt": "q", "chosen": "", "rejected": "b", "topic": "t0"})
    (shards / "part-a.jsonl").write_text("\n".join(lines) + "\n")
    with stub_server(answer) as stub:
        command = ["infer-personas", str(shards), "--out", str(out), "--model", "openai/served", "--api-base",
                   stub.api_base, "--no-cache", "--executor", "ray", "--workers", "1"]
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "part-a.jsonl" in err and "'broken'" in err and "'chosen'" in err
        assert main([*command, "--skip-invalid"]) == 1  # the row is kept, its error counted
    import pyarrow.dataset as pads

    table = pads.dataset(str(out / "part-a"), format="parquet").to_table().to_pylist()
    broken = next(r for r in table if r["record_id"] == "broken")
    assert broken["chosen_persona"] is None and "invalid record: chosen" in broken["persona_error"]
    assert sum(r["persona_error"] is None for r in table) == 5


def test_judge_and_evaluate_commands_on_ray_give_what_threads_give(ray_local, tmp_path, shared_data) -> None:
    from personae.cli.main import main

    data = str(shared_data / "prism" / "pairs.jsonl")
    with stub_server(answer) as stub:
        remote = ["--model", "openai/served", "--api-base", stub.api_base, "--no-cache", "--concurrency", "4"]
        for executor in ("thread", "ray"):
            assert main(["judge", data, "--limit", "30", "--out", str(tmp_path / f"judge-{executor}.jsonl"),
                         *remote, "--executor", executor]) == 0
            assert main(["evaluate", data, "--method", "default", "--users", "3", "--out",
                         str(tmp_path / f"eval-{executor}"), *remote, "--executor", executor]) == 0
            assert main(["eval-personas", data, "--limit", "10", "--out", str(tmp_path / f"personas-{executor}"),
                         *remote, "--executor", executor]) == 0
    assert (tmp_path / "judge-ray.jsonl").read_bytes() == (tmp_path / "judge-thread.jsonl").read_bytes()
    runs = [json.loads((tmp_path / f"eval-{executor}" / "run.json").read_text()) for executor in ("thread", "ray")]
    summaries = [[{k: v for k, v in row.items() if k != "cost"} for row in run["results"]["summary"]] for run in runs]
    assert summaries[0] == summaries[1] and summaries[0][0]["judgments"] == 80  # the same but for seconds
    assert runs[0]["results"]["users"] == runs[1]["results"]["users"] and runs[0]["counts"] == runs[1]["counts"]
    assert runs[0]["cost"]["lm_calls"] == runs[1]["cost"]["lm_calls"] > 0
    assert [j["raw_output"] for j in runs[0]["judgments"]] == [j["raw_output"] for j in runs[1]["judgments"]]
    personas = [json.loads((tmp_path / f"personas-{executor}" / "run.json").read_text()) for executor in
                ("thread", "ray")]
    assert personas[0]["counts"] == personas[1]["counts"] and personas[0]["counts"]["succeeded"] > 0
    assert [j["raw_output"] for j in personas[0]["judgments"]] == [j["raw_output"] for j in personas[1]["judgments"]]


def test_a_datasets_source_is_cut_into_shards_of_rows(ray_local, tmp_path, capsys) -> None:
    import datasets
    import pyarrow.dataset as pads

    from personae.cli.main import main

    rows = [{"record_id": f"d{i}", "prompt": f"question {i}", "chosen": f"good {i}", "rejected": f"bad {i}"}
            for i in range(25)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "personas"
    with stub_server(answer) as stub:
        command = ["infer-personas", str(tmp_path / "saved"), "--shard-size", "10", "--out", str(out), "--model",
                   "openai/served", "--api-base", stub.api_base, "--no-cache", "--executor", "ray", "--workers", "2"]
        assert main(command) == 0
        assert "3 inferred now" in capsys.readouterr().out and len(stub.requests) == 50
        assert main(command) == 0 and len(stub.requests) == 50  # resumed, shard by shard
        assert main([*command[:2], "--shard-size", "5", *command[4:]]) == 2  # other shards than before
        assert "other settings" in capsys.readouterr().err
        assert main(["infer-personas", str(tmp_path / "saved"), "--shard-size", "10", "--out", str(out)]) == 2
        assert "--executor ray" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["part-00000", "part-00001", "part-00002"]
    table = pads.dataset(str(out), format="parquet").to_table().to_pylist()
    assert sorted(r["record_id"] for r in table) == sorted(f"d{i}" for i in range(25))
    assert all(r["chosen_persona"] and r["persona_error"] is None for r in table)


def test_a_run_without_an_address_starts_its_own_ray_not_one_ray_remembers(tmp_path) -> None:
    """Ray's temp folder can name a cluster that is long gone (a ``ray start`` of an earlier
    session, a test cluster never shut down): a run given no address starts its own Ray for
    the run instead of joining, or failing on, that one."""
    import tempfile

    ray_tmp = Path(tempfile.mkdtemp(prefix="r", dir="/tmp"))  # short: Ray's sockets live under it
    try:
        (ray_tmp / "ray").mkdir()
        (ray_tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")
        script = ("from personae.runs import RayExecutor\n"
                  "with RayExecutor(1, workers=1, init_options={'num_cpus': 1}) as ex:\n"
                  "    print(len(ex.start()))\n")
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        done = subprocess.run([sys.executable, "-c", script], env={**env, "RAY_TMPDIR": str(ray_tmp)},
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip().splitlines()[-1] == "1"
    finally:
        import shutil

        shutil.rmtree(ray_tmp, ignore_errors=True)
