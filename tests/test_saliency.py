from __future__ import annotations

import argparse
import json

import pytest

from personae.errors import ConfigError
from personae.evaluation.saliency import (
    SalientWord,
    persona_saliency,
    saliency_table,
    saliency_tokens,
    write_saliency_report,
)

FILLER = ["curious", "thoughtful", "practical", "friendly", "patient"]


def _personas():
    chosen = [f"The user is meticulous and {FILLER[i % 5]}, and prefers answers with citations." for i in range(30)]
    rejected = [f"The user is blunt and {FILLER[i % 5]}, and prefers short answers." for i in range(30)]
    chosen += ["The user is blunt.", None, ""]  # the planted words are not perfectly separated
    rejected += ["", None, "The user is rare-word lover."]  # blanks and missing personas are ignored
    return chosen, rejected


def test_tokens_drop_stopwords_short_tokens_and_possessives() -> None:
    assert saliency_tokens("The user's AI is a detail-oriented, no-nonsense pro with 2 dogs!") == [
        "user", "detail-oriented", "no-nonsense", "pro", "dogs"]


def test_planted_words_lead_each_side() -> None:
    chosen, rejected = _personas()
    words = persona_saliency(chosen, rejected, top=3, min_count=3)
    by_side = {side: [w for w in words if w.side == side] for side in ("chosen", "rejected")}
    assert [w.word for w in by_side["chosen"]][:2] == ["citations", "meticulous"]  # equal scores: a-z
    assert by_side["rejected"][0].word in {"blunt", "short"}
    assert {w.word for w in by_side["rejected"][:2]} == {"blunt", "short"}
    assert len(by_side["chosen"]) <= 3 and len(by_side["rejected"]) <= 3
    meticulous = by_side["chosen"][1]
    assert meticulous == SalientWord("meticulous", "chosen", meticulous.score, 30, 0) and meticulous.score > 1.96
    blunt = next(w for w in words if w.word == "blunt")
    assert (blunt.chosen_count, blunt.rejected_count) == (1, 30) and blunt.score < -1.96
    everything = persona_saliency(chosen, rejected, top=100, min_count=3)
    names = {w.word for w in everything}
    assert not names & {"the", "and", "is"}  # stopwords
    assert "rare-word" not in names  # below min_count
    assert all(abs(w.score) < 0.1 for w in everything if w.word in FILLER)  # as common on both sides
    assert all(w.side == ("chosen" if w.score > 0 else "rejected") for w in everything)


def test_invalid_options() -> None:
    with pytest.raises(ConfigError):
        persona_saliency(["a"], ["b"], top=0)


def test_report_writes_markdown_and_png(tmp_path) -> None:
    chosen, rejected = _personas()
    words = persona_saliency(chosen, rejected, top=5)
    md = write_saliency_report(words, tmp_path / "report")
    text = md.read_text()
    assert md.name == "saliency.md" and "| meticulous | chosen |" in text and "saliency.png" in text
    png = md.with_name("saliency.png")
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saliency_table(words).count("\n") == len(words) + 1
    empty = write_saliency_report([], tmp_path / "empty")
    assert "No word passed" in empty.read_text() and empty.with_name("saliency.png").stat().st_size > 0


def test_persona_saliency_cli(tmp_path, capsys) -> None:
    from personae.cli import saliency

    chosen, rejected = _personas()
    data = tmp_path / "personas.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": "a", "rejected": "b",
                                        "chosen_persona": c, "rejected_persona": r}) + "\n"
                            for i, (c, r) in enumerate(zip(chosen, rejected, strict=True))))
    parser = argparse.ArgumentParser(prog="personae")
    saliency.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["persona-saliency", str(data), "--out", str(tmp_path / "out"), "--top", "4"])
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    assert "| meticulous | chosen |" in printed and "| blunt | rejected |" in printed
    assert "31 chosen-side and 31 rejected-side personas from 33 records" in printed
    assert (tmp_path / "out" / "saliency.png").is_file() and (tmp_path / "out" / "saliency.md").is_file()
    args = parser.parse_args(["persona-saliency", str(data), "--out", str(tmp_path / "x"),
                              "--chosen-column", "missing_column"])
    from personae.errors import DataError

    with pytest.raises(DataError, match="missing_column"):
        args.run(args)
