"""A throwaway PostgreSQL server for tests: its own cluster in a temporary folder.

:class:`PostgresServer` finds the server binaries (the newest ``/usr/lib/postgresql/*/bin``,
else ``initdb`` on PATH), runs ``initdb`` into a fresh temporary folder and starts ``postgres``
on 127.0.0.1 (a free port) and on a unix socket in that folder, tuned for tests (no fsync,
300 connections, trust authentication). :attr:`PostgresServer.url` is an SQLAlchemy URL
(``postgresql+psycopg://postgres@127.0.0.1:PORT/test``); :meth:`PostgresServer.create_database`
makes another empty database. Leaving the ``with`` block (or interpreter exit, as a fallback)
stops the server and deletes the folder.

initdb and postgres refuse to run as root. As root, both run as the ``postgres`` system user
(``nobody`` where there is none), through ``subprocess``'s own ``user=``/``group=`` switch,
and the folder is handed to that user. Creating databases and waiting for the server to
accept connections need psycopg (v3).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from personae.errors import PersonaeError

SUPERUSER = "postgres"
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "300",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
}
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresUnavailable(PersonaeError, RuntimeError):
    """No PostgreSQL binaries were found, or the server could not be set up or started."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def find_bindir() -> Path:
    """The folder with initdb and postgres: the newest Debian version, else the one on PATH."""

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", Path(path).parents[1].name))

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version, reverse=True)
    on_path = shutil.which("initdb")
    for initdb in [*candidates, *([on_path] if on_path else [])]:
        bindir = Path(initdb).resolve().parent
        if os.access(bindir / "postgres", os.X_OK):
            return bindir
    raise PostgresUnavailable("no initdb/postgres found under /usr/lib/postgresql/*/bin or on PATH")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _world_traversable(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


class PostgresServer:
    """A PostgreSQL cluster of its own, running while the ``with`` block lasts."""

    def __init__(self, dbname: str = "test", startup_timeout_s: float = 30.0,
                 settings: dict[str, str] | None = None) -> None:
        """``settings`` override :data:`SETTINGS` (which trade durability for speed: pass
        ``{"synchronous_commit": "on"}`` where a commit must survive a crash of the server)."""
        self.dbname = dbname
        self.startup_timeout_s = startup_timeout_s
        self.settings = {**SETTINGS, **(settings or {})}
        self.port = 0
        self.base: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}  # user=/group=/extra_groups= for subprocess, as root

    @property
    def url(self) -> str:
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        """The SQLAlchemy URL of database ``dbname`` on this server."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def socket_dir(self) -> Path:
        assert self.base is not None, "the server is not started"
        return self.base

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Make a cluster in a fresh folder and start it on a free port; :class:`PostgresUnavailable`
        says why when this machine cannot."""
        if self.base is not None:
            raise RuntimeError("this PostgresServer is already started")
        bindir = find_bindir()
        try:
            import psycopg
        except ImportError as error:
            raise PostgresUnavailable(f"psycopg is not installed ({error})") from None
        atexit.register(self.stop)
        try:
            self._setup(bindir)
            for _ in range(3):  # a free port can be taken between choosing and binding it
                self.port = _free_port()
                if self._launch(bindir):
                    break
            else:
                raise PostgresUnavailable("postgres found no free port on 127.0.0.1 in 3 tries")
            try:
                self.create_database(self.dbname)
            except psycopg.Error as error:
                raise PostgresUnavailable(f"could not create database {self.dbname!r}: {error}") from error
        except BaseException:
            self.stop()
            raise

    def _setup(self, bindir: Path) -> None:
        parent = None
        if os.geteuid() == 0:
            user = next((name for name in ("postgres", "nobody") if _has_user(name)), None)
            if user is None:
                raise PostgresUnavailable("running as root and there is no 'postgres' or 'nobody' user")
            entry = pwd.getpwnam(user)
            self._as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
            if not _world_traversable(Path(tempfile.gettempdir())):
                parent = "/tmp"  # that user must reach the folder
        self.base = Path(tempfile.mkdtemp(prefix="personae-pg-", dir=parent))
        if self._as:
            os.chown(self.base, self._as["user"], self._as["group"])
        command = [str(bindir / "initdb"), "-D", str(self.base / "data"), "-U", SUPERUSER, "--auth=trust"]
        command += ["--encoding=UTF8", "--locale=C", "--no-sync"]
        done = self._run(command)
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({done.returncode}):\n{_tail(done.stdout)}")

    def _launch(self, bindir: Path) -> bool:
        """Start postgres; True once it accepts connections, False if it exited (port taken?)."""
        assert self.base is not None
        command = [str(bindir / "postgres"), "-D", str(self.base / "data"), "-p", str(self.port)]
        settings = {**self.settings, "unix_socket_directories": str(self.base)}
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        log = self.base / "postgres.log"
        with open(log, "wb") as out:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.base, env=_env(), start_new_session=True, **self._as,
            )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._proc = None
                text = log.read_bytes()
                if b"could not bind" in text or b"already in use" in text:
                    return False
                raise PostgresUnavailable(f"postgres exited at start-up:\n{_tail(text)}")
            if self._accepts():
                return True
            time.sleep(0.05)
        raise PostgresUnavailable(
            f"postgres did not accept connections in {self.startup_timeout_s:.0f}s:\n{_tail(log.read_bytes())}"
        )

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(**self._connect_args("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def _connect_args(self, dbname: str) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "user": SUPERUSER, "dbname": dbname}

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` (lower-case letters, digits, _) and return its URL."""
        import psycopg
        from psycopg import sql

        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(**self._connect_args("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        return self.url_for(name)

    def restart(self, mode: str = "fast") -> float:
        """Stop the server and start it again on the same port and data: ``fast`` (a clean
        shutdown that ends every connection) or ``immediate`` (as if it crashed: recovery from
        the WAL at start). Returns the seconds it was down."""
        if mode not in ("fast", "immediate"):
            raise ValueError(f"mode is fast or immediate, not {mode!r}")
        proc = self._proc
        if proc is None or self.base is None:
            raise RuntimeError("the server is not running")
        start = time.monotonic()
        proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        self._proc = None
        for _ in range(100):   # the port is ours again once the old process has let go of it
            if self._launch(find_bindir()):
                return time.monotonic() - start
            time.sleep(0.1)
        raise PostgresUnavailable(f"postgres did not start again on port {self.port}")

    def stop(self) -> None:
        """Stop the server (fast shutdown, then harder) and delete its folder; safe to repeat."""
        atexit.unregister(self.stop)
        proc, self._proc = self._proc, None
        if proc is not None:
            for sig, wait_s in ((signal.SIGINT, 15.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
                proc.send_signal(sig)
                try:
                    proc.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[bytes]:
        assert self.base is not None
        return subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=self.base, env=_env(), check=False, **self._as,
        )  # fmt: skip


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _env() -> dict[str, str]:
    """The environment for initdb/postgres: no PG* settings of the caller's, C messages."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    return env


def _tail(output: bytes, lines: int = 30) -> str:
    return "\n".join(output.decode(errors="replace").splitlines()[-lines:])
