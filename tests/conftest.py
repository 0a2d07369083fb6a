from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

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
