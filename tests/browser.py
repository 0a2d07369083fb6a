"""A real browser for the pages' tests: Debian's Chromium driven by Playwright (which cannot
download its own browsers here, so it is given Chromium's path). ``.ci/run`` installs Chromium
when it is absent. Screenshots go to ``build/screenshots/`` (look at them after a run)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parent.parent / "build" / "screenshots"


def chromium_path() -> str | None:
    """Chromium's executable: ``$PERSONAE_CHROMIUM``, else Debian's."""
    return os.environ.get("PERSONAE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the module's tests."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra has it)")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: apt-get install chromium (.ci/run installs it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


def shot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot of ``page`` as ``build/screenshots/NAME.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
