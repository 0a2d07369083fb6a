"""The store's database: engines for an SQLite file or a PostgreSQL URL, and its migrations.

SQLite runs in WAL mode, so readers never wait for the writer, with a busy timeout, and every
write transaction starts with ``BEGIN IMMEDIATE``: a transaction that reads and then writes
takes the write lock first, so writers from several threads and processes queue instead of
failing with "database is locked" (and a busy answer SQLite gives without waiting, as when a
connection opens during another's recovery of the WAL, is waited out and retried here up to the
same timeout). PostgreSQL needs neither.

Durability on SQLite (:data:`DURABILITY`): ``normal`` (``synchronous=NORMAL``, the default) keeps
every acknowledged commit through a crash of the process, but a power cut or an OS crash may
lose the last commits; ``full`` (``synchronous=FULL``) syncs the WAL at every commit and keeps
them through that too, at the cost of a sync per write. Choose with ``durability=`` or the
store URL's ``?durability=full``. PostgreSQL's durability is its server's (``synchronous_commit``,
on by default: a commit it acknowledged is on disk).

Deleted rows are overwritten on SQLite (``secure_delete``), and :meth:`Database.erase` copies the
WAL into the database and truncates it, so a forgotten user's text is gone from the files; on
PostgreSQL :meth:`Database.erase` rewrites the tables (``VACUUM FULL``). The schema is brought to the
newest Alembic revision when the store opens, under a lock (SQLite's write lock, a PostgreSQL
advisory lock), so several processes opening one new database migrate it once.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from personae.errors import ConfigError, MissingExtraError

__all__ = ["DURABILITY", "Database", "store_url"]

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x70657273  # the advisory lock key of migrations on PostgreSQL
BUSY_TIMEOUT_S = 60.0
ERASE_WAIT_S = 1.0   # how long one truncating checkpoint waits for readers before writers go on
DURABILITY = ("normal", "full")
"""The durability settings of an SQLite store: ``synchronous=NORMAL`` or ``synchronous=FULL``."""
T = TypeVar("T")


def _busy(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in text or "database is busy" in text


def _waiting_out_busy(call: Callable[[], T], what: str) -> T:
    """``call()``, tried again while SQLite answers busy, for up to :data:`BUSY_TIMEOUT_S`."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            return call()
        except Exception as exc:   # sqlite3's or SQLAlchemy's OperationalError
            if not _busy(exc) or time.monotonic() + delay > deadline:
                raise
            logger.debug("%s: the database is busy, trying again in %.3f s", what, delay)
            time.sleep(delay)
            delay = min(2 * delay, 0.25)


def store_url(target: str | os.PathLike[str]) -> URL:
    """A database URL for a file path (SQLite) or a URL (``sqlite:///``, ``postgresql://``...).

    A plain ``postgresql://`` URL uses psycopg 3, the driver of the ``postgres`` extra."""
    text = os.fspath(target)
    if "://" not in text:
        if not text.strip():
            raise ConfigError("the persona store needs a file path or a database URL")
        return URL.create("sqlite", database=str(Path(text).expanduser().resolve()))
    try:
        url = make_url(text)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"not a database URL: {exc}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(f"the persona store runs on SQLite or PostgreSQL, not {url.get_backend_name()!r}")
    return url


class Database:
    """Engines for one store database: ``write()`` and ``read()`` give connections in a transaction."""

    def __init__(self, target: str | os.PathLike[str], *, pool_size: int = 10,
                 durability: str | None = None) -> None:
        url = store_url(target)
        asked = url.query.get("durability")
        url = url.difference_update_query(["durability"])
        self.url = url
        self.sqlite = url.get_backend_name() == "sqlite"
        chosen = durability or (asked if isinstance(asked, str) else None)
        if chosen is not None and chosen not in DURABILITY:
            raise ConfigError(f"durability is one of {', '.join(DURABILITY)}, not {chosen!r}")
        if chosen is not None and not self.sqlite:
            raise ConfigError("durability applies to an SQLite store; PostgreSQL's is the server's "
                              "synchronous_commit (on by default: what it acknowledged is on disk)")
        self.durability = chosen or "normal"
        shown = self.url.update_query_dict({k: "***" for k in self.url.query if "password" in k.lower()})
        self.name = shown.render_as_string(hide_password=True)  # for logs and messages: never a password
        self.head: str | None = None  # the newest schema revision, set by migrate()
        if self.sqlite:
            self._writer = self._sqlite_engine(immediate=True)
            self._reader = self._sqlite_engine(immediate=False)
        else:
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise MissingExtraError("postgres", "a PostgreSQL persona store") from None
            engine = sa.create_engine(self.url, pool_size=pool_size, max_overflow=2 * pool_size,
                                      pool_pre_ping=True)
            self._writer = self._reader = engine
        self.migrate()

    def _sqlite_engine(self, *, immediate: bool) -> Engine:
        database = self.url.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(self.url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})
        synchronous = self.durability.upper()

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi: Any, _record: Any) -> None:
            dbapi.isolation_level = None  # transactions begin where the "begin" hook says
            cursor = dbapi.cursor()
            cursor.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            _waiting_out_busy(lambda: cursor.execute("PRAGMA journal_mode=WAL"), "journal mode")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA secure_delete=ON")   # deleted rows are overwritten, not left in free space
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction, committed when the block ends without error."""
        if not self.sqlite:
            with self._writer.begin() as conn:
                yield conn
            return
        def begin() -> tuple[Connection, Any]:
            conn = self._writer.connect()
            try:
                return conn, conn.begin()
            except BaseException:
                conn.close()   # back to the pool, rolled back: the next try starts clean
                raise

        conn, transaction = _waiting_out_busy(begin, "a write transaction")
        try:
            with transaction:
                yield conn
        finally:
            conn.close()

    def erase(self) -> None:
        """Leave no trace of deleted rows in the database's files: on SQLite, copy the WAL into
        the database and truncate it (deleted rows are overwritten already, ``secure_delete``),
        waiting for readers of older snapshots; on PostgreSQL, rewrite the tables
        (``VACUUM FULL``: it locks each table while it runs)."""
        if self.sqlite:
            def checkpoint() -> tuple[int, int, int]:
                with self._writer.connect() as conn:
                    raw = conn.connection.dbapi_connection
                    assert raw is not None
                    # waiting for readers, a truncating checkpoint holds off every writer: briefly, then
                    # it lets them through and tries again
                    raw.execute(f"PRAGMA busy_timeout={int(ERASE_WAIT_S * 1000)}")
                    try:
                        row = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    finally:
                        raw.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
                    return int(row[0]), int(row[1]), int(row[2])

            deadline = time.monotonic() + BUSY_TIMEOUT_S
            while True:
                busy, _, _ = _waiting_out_busy(checkpoint, "erasing")
                if not busy:
                    return
                if time.monotonic() > deadline:   # a reader held an old snapshot all along
                    raise sa.exc.OperationalError("PRAGMA wal_checkpoint(TRUNCATE)", {},
                                                  RuntimeError("database is busy: readers kept the WAL"))
                time.sleep(0.2)
        from personae.store._schema import METADATA

        with self._writer.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in METADATA.sorted_tables:
                conn.exec_driver_sql(f"VACUUM FULL {table.name}")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._reader.begin() as conn:
            yield conn

    def insert(self, table: sa.Table) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_nothing``."""
        if self.sqlite:
            from sqlalchemy.dialects import sqlite

            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)

    def bytewise(self, column: Any) -> Any:
        """``column`` compared and sorted by code point, as Python sorts strings (SQLite does so
        already; PostgreSQL's default collation would not, and pages by id would skip or repeat)."""
        return column if self.sqlite else column.collate("C")

    def lock(self, conn: sa.Connection, *key: str) -> None:
        """Serialize the transactions that take the same ``key`` until they end: adds to one
        user on PostgreSQL (on SQLite every write transaction is serialized already), so that
        concurrent batches with the same pairs neither deadlock nor interleave."""
        if not self.sqlite:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended("\x1f".join(key), 0))))

    def least(self, *values: Any) -> Any:
        """The SQL minimum of several values (SQLite's ``min``, PostgreSQL's ``least``)."""
        return sa.func.min(*values) if self.sqlite else sa.func.least(*values)

    def greatest(self, *values: Any) -> Any:
        return sa.func.max(*values) if self.sqlite else sa.func.greatest(*values)

    def migrate(self) -> None:
        """Bring the schema to the newest revision (a no-op when it is there)."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = self.head = ScriptDirectory.from_config(config).get_current_head()
        with self.read() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return
        with self.write() as conn:
            if not self.sqlite:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            if MigrationContext.configure(conn).get_current_revision() != head:
                logger.info("persona store %s: migrating the schema to revision %s", self.name, head)
                config.attributes["connection"] = conn
                command.upgrade(config, "head")

    def revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.read() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def close(self) -> None:
        self._writer.dispose()
        if self._reader is not self._writer:
            self._reader.dispose()
