"""The documentation cannot drift: every code block runs here, or says above it why it cannot.

A ```python block runs: the blocks of one page in order, as one script, in a fresh process, in
a folder holding ``pairs.jsonl`` (the demo data set), with every model the page asks for
(``get_lm(...)``, whatever its name) replaced by a scripted one that answers every personae
program plausibly. A block of another language (shell commands, output) must be preceded by
``<!-- docs: not run: REASON -->``, and every ``personae ...`` command in a shell block is
parsed by the real argument parser, so an option that no longer exists fails here. Blocks of
output (```text, or no language) are not code. The site itself is built with
``mkdocs build --strict`` (the CLI and HTTP references are generated from the code then).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^(?P=indent)```[ ]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!-- docs: not run: (?P<reason>.+?) -->\s*$")
OUTPUT = {"", "text", "console-output"}

PRELUDE = '''
import personae.lm

from personae.lm import ScriptedLM

def _answer(call):
    return {"reasoning": f"The user asked for something short and practical; response A is that ({call.index}).",
            "persona": "Someone who wants short, concrete answers with a clear first step.",
            "revised_persona": "Someone who wants short, concrete answers and examples from daily life.",
            "preferred": "A"}

def _scripted_lm(model="local", **settings):
    return ScriptedLM(_answer, model=f"scripted/{model}")

personae.lm.get_lm = _scripted_lm   # every model a page asks for answers from the script
'''


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    lang: str
    code: str
    reason: str | None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line} ({self.lang or 'no language'})"


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marked = NOT_RUN.search(before)
        found.append(Block(page, text.count("\n", 0, match.start()) + 1, match["lang"],
                           textwrap.dedent(match["code"]), marked["reason"].strip() if marked else None))
    return found


PAGES = sorted(p for p in DOCS.rglob("*.md"))
ALL = [block for page in PAGES for block in blocks(page)]


def test_the_docs_have_code_and_the_pages_are_found() -> None:
    assert len(PAGES) >= 20 and sum(b.lang == "python" and b.reason is None for b in ALL) >= 10


def test_every_code_block_runs_or_says_why_not() -> None:
    silent = [str(b) for b in ALL if b.lang not in OUTPUT and b.lang != "python" and b.reason is None]
    assert not silent, "blocks that neither run nor say why: " + ", ".join(silent)
    vague = [str(b) for b in ALL if b.reason is not None and len(b.reason.split()) < 3]
    assert not vague, "a reason says why in a few words at least: " + ", ".join(vague)


def _commands(code: str) -> list[list[str]]:
    """The ``personae ...`` command lines of a shell block, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        line = re.sub(r"^(\.venv/bin/)?personae\b", "personae", line)
        if line.startswith("personae ") and "..." not in line:
            words = shlex.split(line.rstrip("&").strip())
            commands.append(words[1:])
    return commands


SHELL = [(b, argv) for b in [*ALL, *blocks(ROOT / "README.md")] if b.lang in ("bash", "sh", "shell")
         for argv in _commands(b.code)]


@pytest.mark.parametrize(("block", "argv"), SHELL, ids=[f"{b}:{' '.join(a[:2])}" for b, a in SHELL])
def test_every_personae_command_in_the_docs_parses(block: Block, argv: list[str]) -> None:
    from personae.cli.main import build_parser

    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{block}: personae {' '.join(argv)} does not parse (exit {exc.code})")


RUNNABLE = sorted({b.page for b in ALL if b.lang == "python" and b.reason is None})


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(DOCS)) for p in RUNNABLE])
def test_the_python_of_each_page_runs(page: Path, tmp_path: Path) -> None:
    from personae.pipelines import demo_data_path

    code = "\n".join(b.code for b in blocks(page) if b.lang == "python" and b.reason is None)
    shutil.copy(demo_data_path(), tmp_path / "pairs.jsonl")
    (tmp_path / "page.py").write_text(PRELUDE + "\n" + code, encoding="utf-8")
    env = {**os.environ, "DSPY_CACHEDIR": str(tmp_path / "cache"), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "page.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{page.relative_to(ROOT)}:\n{done.stderr[-3000:]}"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "openapi.json").exists()
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "personae evaluate" in cli and "--max-attempts" in cli
