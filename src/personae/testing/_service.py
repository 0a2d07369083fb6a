"""``personae serve-api`` as a real process on 127.0.0.1, for the service's tests and benchmark."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

_SERVING = re.compile(r"on (http://127\.0\.0\.1:\d+)")
CLI = [sys.executable, "-c", "import sys; from personae.cli.main import main; sys.exit(main())"]


class ServiceProcess:
    """A running service: its ``url``, the process, and its log (stderr) as text."""

    def __init__(self, process: subprocess.Popen[str], url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path
        self._final_log: str | None = None

    @property
    def log(self) -> str:
        """What the server wrote to stderr (kept after it stopped)."""
        if self._final_log is not None:
            return self._final_log
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the service (a crash, as far as it knows) and keep its log."""
        self.process.kill()
        self.process.wait(30)
        self.stop()

    def stop(self) -> int:
        """Stop the service (SIGTERM, then harder) and keep its log; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)
        if self._final_log is None:
            self._final_log = self.log_path.read_text(errors="replace")
        if self.process.stdout is not None:
            self.process.stdout.close()
        return int(self.process.returncode)


def tokens(store: str | Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``personae serve-api tokens ...`` and return its output."""
    done = subprocess.run([*CLI, "serve-api", "tokens", *args, "--store", str(store)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"tokens {args}: rc {done.returncode}: {done.stderr}")
    return done.stdout


def create_token(store: str | Path, tenant: str, *options: str) -> str:
    """A new bearer token of ``tenant`` on the store at ``store`` (``personae serve-api tokens create``,
    with ``options`` such as ``--scope read`` or ``--expires 1h``)."""
    return tokens(store, "create", "--tenant", tenant, *options).strip().splitlines()[-1]


@contextmanager
def serve_api(store: str | Path, args: Sequence[str], *, env: dict[str, str] | None = None,
              startup_s: float = 120.0) -> Iterator[ServiceProcess]:
    """Start ``personae serve-api --store STORE --port 0 ARGS`` and wait until it is ready."""
    handle, name = tempfile.mkstemp(prefix="serve-api-", suffix=".log")
    os.close(handle)
    log = Path(name)
    environment = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})}
    with log.open("w") as err:
        process = subprocess.Popen([*CLI, "serve-api", "--store", str(store), "--port", "0", *args],
                                   stdout=subprocess.PIPE, stderr=err, text=True, env=environment)
    assert process.stdout is not None
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            match = _SERVING.search(line)
            if match and not found:
                found.append(match.group(1))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + startup_s
    while not found and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not found:
        process.kill()
        process.wait(30)
        raise RuntimeError(f"serve-api did not start (rc {process.returncode}):\n{log.read_text()[-3000:]}")
    service = ServiceProcess(process, found[0], log)
    try:
        for _ in range(100):
            if httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200:
                break
            time.sleep(0.05)
        yield service
    finally:
        service.stop()
        log.unlink(missing_ok=True)
