from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import browser  # noqa: F401 - the pages' tests' Chromium, a fixture
from personae.testing import PostgresServer, PostgresUnavailable

# Before DSPy is imported anywhere: tests never read or write the user's caches, and
# LiteLLM never reaches for the network.
os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="personae-test-cache-")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the whole session (see tests/postgres.py)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[postgres]')")
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as error:
        pytest.skip(f"no PostgreSQL server could be started: {error.reason}")
    try:
        yield server
    finally:
        server.stop()


_database_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """An SQLAlchemy URL to a fresh, empty database of its own on the session's server."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    return postgres_server.create_database(f"t{next(_database_numbers)}_{slug}")
