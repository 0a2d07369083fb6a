"""What the Ray tests share: a deterministic OpenAI-compatible answer, and Ray clusters started for a module.

The answer is a function of the request alone (a hash of its messages picks the verdict and
names the persona), so two runs of the same command give the same files whichever executor
ran them, and a result that reached the wrong record would show.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from personae.testing import output_fields

TESTS = Path(__file__).resolve().parent
KEY = "ray-test-key-7f3a9c2e5b1d"  # in the workers' environment only: never in a task
KEY_ENV = "PERSONAE_RAY_TEST_KEY"


def answer(body: dict[str, Any], delay_s: float = 0.0) -> tuple[int, str]:
    if not isinstance(body.get("messages"), list):
        return 400, "not a chat completion (a client killed mid-send)"
    if delay_s:
        time.sleep(delay_s)
    text = json.dumps(body.get("messages"), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    values = {"reasoning": f"reason {digest[:6]}", "preferred": "A" if int(digest[0], 16) % 2 else "B",
              "persona": f"The user {digest[:8]} wants short, direct answers."}
    return 200, json.dumps({name: values.get(name, f"x{digest[:4]}") for name in output_fields(body)})


def worker_environment() -> None:
    """What Ray workers must inherit from the process that starts the cluster: the tests on
    their import path (functions defined here travel by reference) and the key."""
    paths = [str(TESTS), os.environ.get("PYTHONPATH", "")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    os.environ[KEY_ENV] = KEY


@contextmanager
def local_ray(num_cpus: int = 2) -> Iterator[Any]:
    import ray

    worker_environment()
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()


@contextmanager
def two_node_cluster() -> Iterator[Any]:
    """A head node and a second node of one CPU each, on this machine (``ray.cluster_utils.Cluster``)."""
    import ray
    from ray.cluster_utils import Cluster

    worker_environment()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
        try:
            yield cluster
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    """A ledger's result rows (its header line left out)."""
    return [row for row in jsonl(path) if "key" in row]


def wait_for_rows(path: Path, n: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len(ledger_rows(path)) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} rows in {timeout_s} s")
