"""The Ray executor on a simulated two-node cluster (``ray.cluster_utils.Cluster``, one CPU a node).

``fit`` of 20 PRISM users and ``infer-personas`` of 2,000 HH-RLHF records give the same files
on the cluster as on threads, with a worker process SIGKILLed in the middle of the inference.
"""

from __future__ import annotations

import json
import os
import signal
import threading

import dspy
import pytest

pytest.importorskip("ray")

from personae.data import load_preferences, select_users  # noqa: E402
from personae.lm import default_adapter, get_lm  # noqa: E402
from personae.optimizers import SynthesizeMe  # noqa: E402
from personae.pipelines import fit_users, infer_personas  # noqa: E402
from personae.runs import RayExecutor, ThreadExecutor  # noqa: E402
from personae.testing import stub_server  # noqa: E402
from ray_support import KEY_ENV, answer, jsonl, ledger_rows, two_node_cluster, wait_for_rows  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with two_node_cluster() as started:
        yield started


def _lm(stub) -> dspy.LM:
    return get_lm("openai/served", api_base=stub.api_base, api_key=os.environ[KEY_ENV], cache=False, num_retries=0)


def _judge_file(path) -> dict:
    judge = json.loads(path.read_text())
    del judge["cost"], judge["created"]  # what the fit measured (calls, seconds) and when it was written
    return judge


def test_fit_of_20_users_on_two_nodes_writes_the_judges_threads_write(cluster, shared_data, tmp_path) -> None:
    users = select_users(load_preferences(shared_data / "prism" / "pairs.jsonl"), top=20, min_pairs=4)
    assert len(users) == 20
    # One thread per user's demo search: with several, the first candidate to reach the target
    # stops the search, and which one that is depends on timing (on threads as on Ray).
    fitter = SynthesizeMe(num_threads=1)
    with stub_server(answer) as stub:
        lm = _lm(stub)
        threads = fit_users(users, tmp_path / "threads", lm=lm, fitter=fitter, executor=ThreadExecutor(4))
        with RayExecutor(4, workers=2) as executor:
            hosts = executor.start()
            on_ray = fit_users(users, tmp_path / "ray", lm=lm, fitter=fitter, executor=executor)
    assert len(hosts) == 2
    assert threads.counts.succeeded == on_ray.counts.succeeded == 20 and on_ray.counts.failed == 0
    assert on_ray.cost.lm_calls == threads.cost.lm_calls > 0
    assert on_ray.cost.prompt_tokens == threads.cost.prompt_tokens
    files = sorted(p.name for p in (tmp_path / "threads").glob("*.json"))
    assert len(files) == 20 and files == sorted(p.name for p in (tmp_path / "ray").glob("*.json"))
    for name in files:
        assert _judge_file(tmp_path / "ray" / name) == _judge_file(tmp_path / "threads" / name), name
    rows = {r["key"]: r for r in ledger_rows(tmp_path / "ray" / "progress.jsonl")}
    assert len(rows) == 20 and all(r["error"] is None for r in rows.values())


def test_infer_of_2000_records_on_two_nodes_survives_a_killed_worker(cluster, shared_data, tmp_path) -> None:
    records = load_preferences(shared_data / "hh_rlhf" / "harmless_base_test.jsonl.gz", limit=2000,
                               skip_invalid=True).records
    assert len(records) == 2000
    ledger = tmp_path / "ray.jsonl.progress.jsonl"
    with stub_server(answer) as stub, dspy.context(adapter=default_adapter()):
        lm = _lm(stub)
        threads = infer_personas(records, tmp_path / "threads.jsonl", lm=lm, executor=ThreadExecutor(8))
        with RayExecutor(8, workers=2) as executor:
            executor.start()
            report: list = []
            run = threading.Thread(target=lambda: report.append(
                infer_personas(records, tmp_path / "ray.jsonl", lm=lm, executor=executor)))
            run.start()
            wait_for_rows(ledger, 300, timeout_s=120)
            killed = executor.worker_pids()[1]
            os.kill(killed, signal.SIGKILL)  # a worker process dies mid-run
            run.join(timeout=300)
            assert not run.is_alive() and report
            assert killed not in executor.worker_pids() and len(executor.worker_pids()) == 2  # replaced
    assert report[0].inferred == 2000 and report[0].failed == 0 and threads.failed == 0
    assert (tmp_path / "ray.jsonl").read_bytes() == (tmp_path / "threads.jsonl").read_bytes()
    keys = [row["key"] for row in ledger_rows(ledger)]
    assert len(keys) == len(set(keys)) == 2000  # nothing lost, nothing recorded twice
    assert len(jsonl(tmp_path / "ray.jsonl")) == 2000
