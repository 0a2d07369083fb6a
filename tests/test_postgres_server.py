"""The throwaway PostgreSQL server of tests/postgres.py, through SQLAlchemy and psycopg."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from threading import Barrier
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from personae.testing import PostgresServer, PostgresUnavailable


@contextmanager
def engine_for(url: str, **kwargs: Any) -> Iterator[sa.Engine]:
    engine = sa.create_engine(url, **kwargs)
    try:
        yield engine
    finally:
        engine.dispose()


def test_sqlalchemy_round_trip(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    with engine_for(postgres_url) as engine, engine.begin() as conn:
        assert conn.execute(sa.text("select 1")).scalar_one() == 1
        conn.execute(sa.text("create table notes (id serial primary key, body text not null)"))
        conn.execute(sa.text("insert into notes (body) values (:body)"), [{"body": "a"}, {"body": "b"}])
        assert conn.execute(sa.text("select body from notes order by id")).scalars().all() == ["a", "b"]


def test_databases_are_fresh_and_independent(postgres_url: str, postgres_server: PostgresServer) -> None:
    other_url = postgres_server.create_database(f"{sa.make_url(postgres_url).database}_other")
    assert other_url != postgres_url
    with engine_for(postgres_url) as first, engine_for(other_url) as second:
        with first.begin() as conn:
            conn.execute(sa.text("create table t (x int)"))
        for engine in (first, second):
            with engine.connect() as conn:
                tables = sa.inspect(conn).get_table_names()
                assert tables == (["t"] if engine is first else [])


def test_sixty_concurrent_connections(postgres_url: str) -> None:
    opened, counted = Barrier(60), Barrier(60)
    query = sa.text("select count(*) from pg_stat_activity where datname = current_database()")

    def work() -> int:
        with engine.connect() as conn:
            opened.wait(timeout=30)  # all 60 connections are open at once ...
            seen = int(conn.execute(query).scalar_one())
            counted.wait(timeout=30)  # ... and stay open until each has counted
            return seen

    with engine_for(postgres_url, poolclass=NullPool) as engine, ThreadPoolExecutor(60) as pool:
        results = [future.result() for future in [pool.submit(work) for _ in range(60)]]
    assert results == [60] * 60


def test_a_restarted_server_keeps_what_it_committed() -> None:
    """``restart`` (fast, then immediate: a crash as far as PostgreSQL knows) on the same port;
    with ``synchronous_commit=on`` every committed row is there after each."""
    server = PostgresServer(settings={"synchronous_commit": "on"})
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        url = server.create_database("restarts")
        port = server.port
        for n, mode in enumerate(("fast", "immediate"), 1):
            engine = sa.create_engine(url, poolclass=NullPool)
            with engine.begin() as conn:
                if n == 1:
                    conn.execute(sa.text("create table t (n int)"))
                conn.execute(sa.text("insert into t values (:n)"), {"n": n})
            engine.dispose()
            assert server.restart(mode) < 30 and server.port == port
            engine = sa.create_engine(url, poolclass=NullPool)
            with engine.connect() as conn:
                assert conn.execute(sa.text("select count(*) from t")).scalar() == n
                assert conn.execute(sa.text("show synchronous_commit")).scalar() == "on"
            engine.dispose()
    finally:
        server.stop()
