"""Malformed input never produces a traceback.

A corpus of broken preference files, written here by code, covers every format the loaders
read (.jsonl, .jsonl.gz, .json, .csv, .parquet, ``datasets`` folders) and every field they
read. Each file goes through the real command line (``personae judge``): it must exit with
status 2 and one ``personae: error:`` line naming the file, and the record and field at fault
where one record is. Files that also hold good records are run again with ``--skip-invalid``:
every skipped record is listed, one line each, and the good ones are used.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import personae.cli.judge as judge_cli
from personae.cli._common import load_data
from personae.cli.main import main
from personae.data import load_preferences
from personae.errors import DataError
from personae.testing.malformed import BY_ID, CASES, GOOD, Case, columns_of, good, jsonl_bytes, source_of, where


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every case's file or folder, built once for the module."""
    import datasets

    folder = tmp_path_factory.mktemp("broken")
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        paths = {}
        for case in CASES:
            path = folder / case.name
            case.build(path)
            paths[case.id] = path
    finally:
        if bars:
            datasets.enable_progress_bars()
    return paths


# --- running the command line ---------------------------------------------------------------


class ReachedTheLM(Exception):
    """Raised where the command would build its LM: the data was accepted."""


@pytest.fixture
def no_lm(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Stop ``judge`` before any LM is built; returns the list the loaded data is appended to."""
    loaded: list[Any] = []

    def load(args: Any) -> Any:
        data = load_data(args)
        loaded.append(data)
        return data

    def build_lm(args: Any) -> Any:
        raise ReachedTheLM

    monkeypatch.setattr(judge_cli, "load_data", load)
    monkeypatch.setattr(judge_cli, "build_lm", build_lm)
    return loaded


def judge(path: Path, *extra: str) -> int:
    return main(["judge", str(path), "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1", *extra])


def no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and 'File "' not in text, text


# --- the tests ------------------------------------------------------------------------------


def test_the_corpus_covers_every_format_and_field() -> None:
    assert len(CASES) >= 30 and len(BY_ID) == len(CASES)
    formats = {case.format for case in CASES}
    assert formats == {".jsonl", ".jsonl.gz", ".json", ".csv", ".parquet", "datasets"}
    fields = {case.field for case in CASES} | {field for case in CASES for _, field in case.skips}
    assert {"prompt", "context", "chosen", "rejected", "user_id", "profile", "user_profile", "id", "pair_id",
            "split"} <= fields
    for case in CASES:
        if case.skips:
            assert case.skips[0] == (case.record, case.field), case.id
            assert case.good > 0, case.id


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_broken_input_gives_one_error_line(case: Case, corpus: dict[str, Path], no_lm: list[Any],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus[case.id]
    capsys.readouterr()
    try:
        code = judge(path, *case.args)
    except ReachedTheLM:
        pytest.fail(f"{case.id}: the input was accepted, judge went on to build its LM")
    out, err = capsys.readouterr()
    no_traceback(out, err)
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"personae: error: {where(source_of(case, path), case.record, case.field)}: "), err
    if case.record is None:  # the whole source is at fault: no record is named
        assert not re.search(r", record \d+", lines[0]), err
    with pytest.raises(DataError) as info:  # the library raises the same, as a DataError
        load_preferences(path, columns=columns_of(case))
    assert (info.value.source, info.value.record, info.value.field) == (source_of(case, path), case.record,
                                                                          case.field)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_skip_invalid_lists_each_skip_and_keeps_the_good_records(
        case: Case, corpus: dict[str, Path], no_lm: list[Any], capsys: pytest.CaptureFixture[str]) -> None:
    path = corpus[case.id]
    source = source_of(case, path)
    capsys.readouterr()
    if not case.skips:  # nothing good to keep: still one error line
        code = judge(path, "--skip-invalid", *case.args)
        out, err = capsys.readouterr()
        no_traceback(out, err)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert err.startswith(f"personae: error: {path}: "), err  # the source's error, or: no valid records
        return
    data = load_preferences(path, skip_invalid=True, columns=columns_of(case))
    assert [(skip.source, skip.record, skip.field) for skip in data.skipped] == [
        (source, record, field) for record, field in case.skips]
    assert len(data) == case.good
    with pytest.raises(ReachedTheLM):  # the good records get as far as the LM
        judge(path, "--skip-invalid", *case.args)
    out, err = capsys.readouterr()
    no_traceback(out, err)
    (used,) = no_lm
    assert [r.record_id for r in used] == [r.record_id for r in data]
    lines = err.splitlines()
    n = len(case.skips)
    assert lines[0].startswith(f"personae: skipped {n} invalid record{'s' if n != 1 else ''}: "), err
    assert len(lines) == 1 + n, err
    for line, (record, field) in zip(lines[1:], case.skips, strict=True):
        assert line.startswith(f"personae: skipped {where(source, record, field)}: "), err


def test_many_skips_are_listed_up_to_twenty(tmp_path: Path, no_lm: list[Any],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "many.jsonl"
    path.write_bytes(jsonl_bytes([GOOD] + [good(chosen=None)] * 25))
    with pytest.raises(ReachedTheLM):
        judge(path, "--skip-invalid")
    out, err = capsys.readouterr()
    no_traceback(out, err)
    lines = err.splitlines()
    assert lines[0].startswith("personae: skipped 25 invalid records: 25 invalid 'chosen'")
    assert len(lines) == 22
    for line, number in zip(lines[1:21], range(2, 22), strict=True):
        assert line.startswith(f"personae: skipped {where(str(path), number, 'chosen')}: "), line
    assert lines[21] == "personae: skipped ... and 5 more"
    assert len(no_lm[0]) == 1
