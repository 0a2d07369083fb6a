"""The README's Python section runs as written, on the embedded model."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of the README section headed ``## {section}``."""
    text = README.read_text(encoding="utf-8")
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.DOTALL)


@pytest.mark.model
def test_the_python_section_runs_as_written(tmp_path) -> None:
    from personae.lm import find_local_model
    from personae.pipelines import demo_data_path

    try:
        find_local_model()
    except Exception as exc:  # pragma: no cover - depends on the install
        pytest.skip(f"embedded model not installed: {exc}")
    blocks = python_blocks("Python")
    assert len(blocks) >= 2
    shutil.copy(demo_data_path(), tmp_path / "pairs.jsonl")  # the user's data file it reads
    (tmp_path / "readme_python.py").write_text("\n".join(blocks), encoding="utf-8")
    env = {**os.environ, "DSPY_CACHEDIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "readme_python.py"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "judge.json").exists() and (tmp_path / "ana.json").exists()
    printed = done.stdout.splitlines()
    assert re.match(r"^[AB] ", printed[1])  # the verdict: A or B, and why
