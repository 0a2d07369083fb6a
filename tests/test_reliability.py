"""The run layer's promises, on small runs of the real command line (``benchmarks/reliability.py``
tries the same at full size and prints the figures).

Each run is ``personae ...`` in a forked child process against a fault-injecting server on
127.0.0.1; kills are real SIGKILLs.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from personae.testing import Faults, fault_server
from personae.testing import reliability as rel

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs fork and SIGKILL")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rel.prepare_children()
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="module")
def data(root: Path) -> Path:
    return rel.write_data(root / "pairs.jsonl", users=2, pairs=6)


@pytest.mark.parametrize("command", ["infer-personas", "judge", "evaluate"])
def test_a_killed_run_resumes_to_the_same_output(command: str, root: Path, data: Path) -> None:
    with fault_server(Faults(delay_s=0.02)) as server:
        report = rel.kill_and_resume(command, data, root, server, kills=1, rng=random.Random(command))
    assert report.kills >= 1 and report.same_output and report.duplicate_rows == 0
    assert report.calls_again <= report.bound, report


@pytest.mark.parametrize("command", ["judge", "fit", "eval-personas"])
def test_every_run_completes_and_adds_up_under_faults(command: str, root: Path, data: Path) -> None:
    with fault_server(Faults(rate=0.2, seed=3, slow_s=1.5)) as server:
        report = rel.under_faults(command, data, root, server)
    assert report.injected, "no fault was injected"
    assert report.held, report
    assert set(report.failures) <= {"server", "rate_limit", "timeout", "transport", "parse", "content"}


def test_api_keys_reach_no_file(root: Path, data: Path) -> None:
    with fault_server() as server:
        report = rel.secrets_stay_secret(data, root, server, commands=("judge", "fit", "eval-personas",
                                                                         "optimize-persona-inference"))
    assert report.files >= 10 and not report.leaks, report


def test_injected_markers_break_no_parse_and_stay_with_their_user(root: Path) -> None:
    data = rel.write_data(root / "injected.jsonl", users=2, pairs=6, inject=True)
    with fault_server(Faults(echo_input=True)) as server:
        report = rel.injection_holds(data, root, server, users=2)
    assert report.held, report
