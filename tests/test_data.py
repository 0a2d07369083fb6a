"""personae.data: loading every supported format, validation, splits, writers."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from typing import Any

import pytest

import personae.data
from personae.data import (
    PreferenceData,
    PreferenceRecord,
    SkippedRecord,
    Turn,
    UserSplit,
    append_jsonl,
    load_preferences,
    read_jsonl_rows,
    split_by_prompt,
    split_user,
    write_rows,
)
from personae.errors import ConfigError, DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TAILORING_COUNTS = {
    "Anthropic_HHH": {
        "fewshot": 5,
        "sft_train": 424,
        "sft_val": 105,
        "dpo_train": 423,
        "dpo_val": 107,
        "test": 500,
    },
    "BeaverTails": {
        "fewshot": 5,
        "sft_train": 977,
        "sft_val": 244,
        "dpo_train": 982,
        "dpo_val": 246,
        "test": 499,
    },
}
SHARED_FILES = {
    "prism/pairs.jsonl": 1872,
    "persona_inference/Anthropic_HHH__train.jsonl": 300,
    "persona_inference/BeaverTails__train.jsonl": 300,
    **{
        f"persona_tailoring/{name}__{part}.jsonl": n
        for name, parts in TAILORING_COUNTS.items()
        for part, n in parts.items()
    },
}


@pytest.fixture
def shared() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"the shared evaluation data is not at {DATA} (it lives beside the repository)")
    return DATA


@pytest.fixture
def prism_rows() -> list[dict[str, Any]]:
    """The first 40 PRISM pairs, or rows shaped like them when the shared data is absent."""
    path = DATA / "prism" / "pairs.jsonl"
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            return [json.loads(next(fh)) for _ in range(40)]
    return [
        {
            "user_id": f"prism_{i % 3}",
            "user_profile": f"The person is {20 + i % 3} years old.",
            "conversation_type": "unguided",
            "prompt": f"Question {i // 2}, ünïcode?",
            "chosen": f'Long answer {i},\nwith a comma and "quotes".',
            "rejected": f"Short {i}.",
        }
        for i in range(40)
    ]


def canonical(data: PreferenceData) -> list[dict[str, Any]]:
    """Records without their source-specific ids, for comparing formats."""
    return [{k: v for k, v in r.to_dict().items() if k != "record_id"} for r in data]


def write_text(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- the shared data ------------------------------------------------------------------------


@pytest.mark.parametrize("relative", sorted(SHARED_FILES))
def test_shared_jsonl_files_load_with_their_counts(shared: Path, relative: str) -> None:
    data = load_preferences(shared / relative)
    assert len(data) == SHARED_FILES[relative]
    assert not data.skipped and data.skipped_summary() == ""
    name = Path(relative).name
    assert [r.record_id for r in data[:2]] == [f"{name}:1", f"{name}:2"]
    for record in data:
        assert record.context and record.context[-1].role == "user" and record.prompt.strip()
        assert record.chosen.strip() and record.rejected.strip()
    if relative.startswith("persona_tailoring"):
        assert all(isinstance(r.metadata["chosen_persona_gold"], str) for r in data)
        assert set(data[0].metadata) == {
            "chosen_persona_gold",
            "rejected_persona_gold",
            "chosen_persona_retr",
            "rejected_persona_retr",
        }
    if relative.startswith("persona_inference"):
        assert data[0].metadata == {} and data[0].user_id is None


def test_prism_users_profiles_and_metadata(shared: Path) -> None:
    data = load_preferences(shared / "prism" / "pairs.jsonl")
    users = data.by_user()
    assert len(users) == 199
    assert sum(len(u.records) >= 10 for u in users.values()) == 102
    assert list(users) == list(dict.fromkeys(r.user_id for r in data))  # order of first appearance
    first = data[0]
    assert first.user_id == first.raw["user_id"] and first.profile == first.raw["user_profile"]
    assert first.profile is not None and first.profile.startswith("The person is")
    assert first.context == [Turn("user", first.raw["prompt"])] and first.prompt == first.raw["prompt"]
    assert set(first.metadata) == {"conversation_type"}
    assert {r.metadata["conversation_type"] for r in data} == {
        "unguided",
        "values guided",
        "controversy guided",
    }
    assert all(u.profile for u in users.values())


def test_hh_rlhf_transcripts_become_turns(shared: Path) -> None:
    path = shared / "hh_rlhf" / "harmless_base_test.jsonl.gz"
    with pytest.raises(DataError) as info:  # 4 of the 2,312 chosen transcripts end in an empty reply
        load_preferences(path)
    assert (info.value.record, info.value.field) == (87, "chosen")
    data = load_preferences(path, skip_invalid=True)
    assert len(data) + len(data.skipped) == 2312
    assert [s.record for s in data.skipped] == [87, 517, 926, 1104]
    assert data.skipped_summary().startswith("skipped 4 invalid records: 4 invalid 'chosen'")
    for record in data:
        assert record.context[-1].role == "user"
        assert {t.role for t in record.context} <= {"user", "assistant"}
        assert not record.chosen.startswith(("Assistant:", " ")) and record.chosen == record.chosen.strip()
        assert not any("\n\nAssistant:" in t.content or "\n\nHuman:" in t.content for t in record.context)
    multi = next(r for r in data if len(r.context) > 1)
    assert multi.prompt.startswith("User: ") and "\n\nAssistant: " in multi.prompt
    # Row 1255: the transcripts part before the chosen one's last turn.
    diverged = next(r for r in data if r.record_id.endswith(":1255"))
    assert diverged.context[-1] == Turn("user", "Isn't that drag kings?")
    assert diverged.rejected.startswith("A drag king is the opposite")


HHH_FILES = sorted(relative for relative in SHARED_FILES if "Anthropic_HHH" in relative)


@pytest.mark.parametrize("relative", HHH_FILES)
def test_hh_style_prompts_in_the_shared_triples(shared: Path, relative: str) -> None:
    data = load_preferences(shared / relative)
    assert len(data) == SHARED_FILES[relative] and not data.skipped
    for record in data:
        assert record.raw["prompt"].lstrip().startswith("Human:")
        assert record.context[-1].role == "user" and record.context[-1].content.strip()
        assert not record.chosen.startswith(("Assistant:", " ")) and record.chosen == record.chosen.strip()
        # Two test rows have a bare "Assistant:" as the rejected reply: kept, so the record loads.
        assert not record.rejected.startswith(("Assistant:", " ")) or record.rejected == "Assistant:"
        assert record.raw["chosen"].startswith("Assistant:")  # the source row is untouched
        assert record.chosen == record.raw["chosen"].removeprefix("Assistant:").strip()
    first = data[0]
    assert first.context == [Turn("user", first.raw["prompt"].strip().removeprefix("Human:").strip())]
    assert first.prompt == first.context[0].content and not first.prompt.startswith("Human:")


def test_hh_style_prompt_edge_rows_in_the_shared_triples(shared: Path) -> None:
    first = load_preferences(shared / "persona_inference" / "Anthropic_HHH__train.jsonl", limit=1)[0]
    assert first.context == [Turn("user", "what do i do about a small crack in a glass table?")]
    assert first.chosen.startswith("Would you like me to know the difference")
    assert first.raw["prompt"] == "\n\nHuman: what do i do about a small crack in a glass table?\n\n"
    sft = load_preferences(shared / "persona_tailoring" / "Anthropic_HHH__sft_train.jsonl")
    assert sft[304].raw["prompt"].endswith("\n\nAssistant:")  # the empty trailing turn is dropped
    assert sft[304].context == [Turn("user", "What is the difference between a rectangle and a square?")]
    test = load_preferences(shared / "persona_tailoring" / "Anthropic_HHH__test.jsonl")
    assert [r.record_id for r in test if r.rejected == "Assistant:"] == [
        "Anthropic_HHH__test.jsonl:150",
        "Anthropic_HHH__test.jsonl:245",
    ]
    # Row 184 ends with an assistant turn: the prompt stays one user turn, as is.
    assert test[183].context == [Turn("user", test[183].raw["prompt"])]
    assert test[183].chosen.startswith("A solar panel should cost")
    beaver = load_preferences(shared / "persona_inference" / "BeaverTails__train.jsonl")
    spaced = [r for r in beaver if r.raw["chosen"].startswith(" ")]
    assert spaced and all(r.chosen == r.raw["chosen"] for r in spaced)  # ordinary prompts: unchanged


def test_hh_style_prompt_strings_become_turns() -> None:
    rows: list[dict[str, Any]] = [
        {
            "prompt": "\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?\n\nHuman: Plan a trip?\n\nAssistant:",
            "chosen": "Assistant:  Day 1: Alfama.\n",
            "rejected": " No.",
        },
        {
            "prompt": "  Human: Fado?\n\n",
            "chosen": "Assistant: Go to Mouraria.",
            "rejected": "Assistant: Music.",
        },
        {
            "prompt": "Human: Cost?\n\nAssistant: Umm...",
            "chosen": "Assistant: $50.",
            "rejected": "Assistant:",
        },
        {"prompt": "Human:\n\nAssistant:", "chosen": "Assistant: a", "rejected": "b"},
        {"prompt": "Humans: who are they?", "chosen": "Assistant: People.", "rejected": " Apes."},
        {"prompt": "Tell me about\n\nHuman: rights", "chosen": "Assistant: Sure.", "rejected": "No."},
    ]
    multi, single, ends_assistant, empty_human, humans, ordinary = load_preferences(rows)
    assert multi.context == [
        Turn("user", "Hi!"),
        Turn("assistant", "Hello, how can I help?"),
        Turn("user", "Plan a trip?"),
    ]
    assert multi.prompt == "User: Hi!\n\nAssistant: Hello, how can I help?\n\nUser: Plan a trip?"
    assert (multi.chosen, multi.rejected) == ("Day 1: Alfama.", "No.")
    assert multi.raw == rows[0] and multi.metadata == {}
    assert single.context == [Turn("user", "Fado?")]
    assert (single.chosen, single.rejected) == ("Go to Mouraria.", "Music.")
    # No human turn last (or an empty one): the prompt stays one user turn; a bare label stays.
    assert ends_assistant.context == [Turn("user", rows[2]["prompt"])]
    assert (ends_assistant.chosen, ends_assistant.rejected) == ("$50.", "Assistant:")
    assert empty_human.context == [Turn("user", "Human:\n\nAssistant:")] and empty_human.chosen == "a"
    # Prompts that do not start with "Human:" are ordinary text, responses left as they are.
    assert humans.context == [Turn("user", "Humans: who are they?")]
    assert (humans.chosen, humans.rejected) == ("Assistant: People.", " Apes.")
    assert ordinary.context == [Turn("user", rows[5]["prompt"])] and ordinary.chosen == "Assistant: Sure."


# --- formats --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json", ".jsonl.gz"])
def test_table_formats_load_the_same_records(
    tmp_path: Path, prism_rows: list[dict[str, Any]], suffix: str
) -> None:
    reference = load_preferences(write_rows(prism_rows, tmp_path / "rows.jsonl"))
    data = load_preferences(write_rows(prism_rows, tmp_path / f"rows{suffix}"))
    assert canonical(data) == canonical(reference)
    assert data[3].record_id == f"rows{suffix}:4"


def test_datasets_folders_load_the_same_records(tmp_path: Path, prism_rows: list[dict[str, Any]]) -> None:
    datasets = pytest.importorskip("datasets")
    reference = load_preferences(prism_rows)
    datasets.Dataset.from_list(prism_rows).save_to_disk(str(tmp_path / "flat"))
    assert canonical(load_preferences(tmp_path / "flat")) == canonical(reference)
    parts = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(prism_rows[:30]),
            "validation": datasets.Dataset.from_list(prism_rows[30:]),
        }
    )
    parts.save_to_disk(str(tmp_path / "dict"))
    data = load_preferences(tmp_path / "dict")
    assert [r.split for r in data] == ["train"] * 30 + ["val"] * 10
    assert data[30].record_id == "dict:validation:1"
    assert [r.to_dict()["chosen"] for r in data] == [r.chosen for r in reference]
    only = load_preferences(tmp_path / "dict", split="validation")
    assert len(only) == 10 and only[0].chosen == prism_rows[30]["chosen"]
    with pytest.raises(DataError, match="no split 'dev'; the splits are train, validation"):
        load_preferences(tmp_path / "dict", split="dev")
    assert len(load_preferences(parts, split="train")) == 30  # a DatasetDict object in memory


PRB_ROWS: list[dict[str, Any]] = [
    {
        "user_id": 7,
        "conversation_id": "c1",
        "split": "train",
        "context": [
            {"role": "user", "content": "Hi, plan a trip?"},
            {"role": "assistant", "content": "Where to?"},
            {"role": "user", "content": "Lisbon, 3 days."},
        ],
        "chosen": {"role": "assistant", "content": "Day 1: Alfama."},
        "rejected": {"role": "assistant", "content": "Lisbon is in Portugal."},
    },
    {
        "user_id": 7,
        "conversation_id": "c2",
        "split": "validation",
        "context": [{"role": "user", "content": "Best coffee?"}],
        "chosen": {"role": "assistant", "content": "A bica at a kiosk."},
        "rejected": {"role": "assistant", "content": "Any coffee."},
    },
    {
        "user_id": 7,
        "conversation_id": "c3",
        "split": "test",
        "context": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Fado?"}],
        "chosen": {"role": "assistant", "content": "Go to Mouraria."},
        "rejected": {"role": "assistant", "content": "It is music."},
    },
]


def check_prb(data: PreferenceData) -> None:
    assert len(data) == 3 and [r.user_id for r in data] == ["7", "7", "7"]
    first = data[0]
    assert [t.role for t in first.context] == ["user", "assistant", "user"]
    assert first.prompt == "User: Hi, plan a trip?\n\nAssistant: Where to?\n\nUser: Lisbon, 3 days."
    assert (first.chosen, first.rejected) == ("Day 1: Alfama.", "Lisbon is in Portugal.")
    assert first.metadata == {"conversation_id": "c1"} and first.prompt_key == "c1"
    assert data[2].prompt == "System: Be brief.\n\nUser: Fado?"
    split = split_user(data.records)
    assert [[r.prompt_key for r in side] for side in (split.train, split.val, split.test)] == [
        ["c1"],
        ["c2"],
        ["c3"],
    ]


def test_personal_reward_bench_rows_in_jsonl_and_datasets(tmp_path: Path) -> None:
    path = write_rows(PRB_ROWS, tmp_path / "prb.jsonl")
    check_prb(load_preferences(path))
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(PRB_ROWS).save_to_disk(str(tmp_path / "prb"))
    check_prb(load_preferences(tmp_path / "prb"))
    assert [r.prompt_key for r in load_preferences(path, split="val")] == ["c2"]  # filter on the column
    pytest.importorskip("pyarrow")
    check_prb(load_preferences(write_rows(PRB_ROWS, tmp_path / "prb.parquet")))
    check_prb(load_preferences(write_rows(PRB_ROWS, tmp_path / "prb.csv")))  # messages as JSON text


def test_hub_ids_go_to_datasets_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls: list[tuple[str, str | None]] = []

    def fake_load_dataset(hub_id: str, split: str | None = None) -> Any:
        calls.append((hub_id, split))
        if hub_id != "MichaelR207/prism_personalized_0125":
            raise FileNotFoundError(f"Dataset '{hub_id}' doesn't exist on the Hub")
        rows = [{k: v for k, v in row.items() if k != "split"} for row in PRB_ROWS]
        whole = datasets.DatasetDict(
            {"train": datasets.Dataset.from_list(rows[:2]), "test": datasets.Dataset.from_list(rows[2:])}
        )
        return whole if split is None else whole[split]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_preferences("MichaelR207/prism_personalized_0125")
    assert [(r.record_id, r.split) for r in data] == [
        ("prism_personalized_0125:train:1", "train"),
        ("prism_personalized_0125:train:2", "train"),
        ("prism_personalized_0125:test:1", "test"),
    ]
    test = load_preferences("MichaelR207/prism_personalized_0125", split="test", format="datasets")
    assert [r.prompt_key for r in test] == ["c3"] and test[0].split == "test"
    assert calls == [
        ("MichaelR207/prism_personalized_0125", None),
        ("MichaelR207/prism_personalized_0125", "test"),
    ]
    with pytest.raises(DataError, match="Hugging Face hub failed") as info:
        load_preferences("someone/missing_set")
    assert info.value.source == "someone/missing_set" and info.value.record is None


def test_message_variants_and_context_as_json_text() -> None:
    rows: list[dict[str, Any]] = [
        {
            "context": json.dumps([{"role": "human", "content": "Q?"}]),
            "chosen": "plain",
            "rejected": [
                {"role": "user", "content": "Q?"},
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": "b"},
            ],
        },
        {
            "context": "just text",
            "chosen": json.dumps({"role": "assistant", "content": "from json"}),
            "rejected": "{not a message}",
        },
    ]
    rows.append({"context": [Turn("user", "T?")], "chosen": "x", "rejected": "y"})
    rows.append({"context": "", "prompt": "P?", "chosen": "x", "rejected": "y"})  # csv with both columns
    first, second, third, fourth = load_preferences(rows)
    assert third.context == [Turn("user", "T?")]
    assert fourth.context == [Turn("user", "P?")] and fourth.metadata == {"context": ""}
    assert first.context == [Turn("user", "Q?")] and (first.chosen, first.rejected) == ("plain", "a\n\nb")
    assert second.context == [Turn("user", "just text")]
    assert (second.chosen, second.rejected) == ("from json", "{not a message}")
    assert first.record_id == "rows:1"


def test_columns_mapping(tmp_path: Path) -> None:
    rows = [{"uid": "u9", "question": "Why?", "good": "Because.", "bad": "No.", "pair_id": "p1", "note": 3}]
    data = load_preferences(
        rows, columns={"prompt": "question", "chosen": "good", "rejected": "bad", "user_id": "uid"}
    )
    record = data[0]
    assert (record.prompt, record.chosen, record.rejected, record.user_id) == (
        "Why?",
        "Because.",
        "No.",
        "u9",
    )
    assert record.record_id == "p1" and record.metadata == {"note": 3}
    with pytest.raises(DataError) as info:
        load_preferences(rows, columns={"chosen": "answer_good"})
    assert info.value.field == "answer_good" and info.value.record == 1
    with pytest.raises(ConfigError, match="unknown field"):
        load_preferences(rows, columns={"answer": "good"})


def test_to_dict_round_trips_through_from_dict_and_files(tmp_path: Path) -> None:
    record = PreferenceRecord(
        [Turn("user", "Olá?")],
        "Sim.",
        "Não.",
        user_id="u1",
        profile="p",
        split="val",
        record_id="x:1",
        metadata={"conversation_id": "c", "score": 0.5},
    )
    assert PreferenceRecord.from_dict(record.to_dict()) == record
    assert json.loads(json.dumps(record.to_dict())) == record.to_dict()
    for suffix in (".jsonl", ".csv"):
        loaded = load_preferences(write_rows([record.to_dict()], tmp_path / f"records{suffix}"))
        assert loaded[0] == record, suffix
    with pytest.raises(DataError, match="field 'chosen'"):
        PreferenceRecord.from_dict({"context": [], "rejected": "r"})


# --- malformed input ------------------------------------------------------------------------


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "bad.jsonl",
        [
            json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}),
            "",
            '{"prompt": "p", "chosen": ',
            "[1, 2]",
        ],
    )
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert (info.value.record, info.value.field) == (3, None)
    assert (
        "bad.jsonl" in str(info.value)
        and "record 3" in str(info.value)
        and "not valid JSON" in str(info.value)
    )
    data = load_preferences(path, skip_invalid=True)
    assert len(data) == 1
    assert [(s.record, s.field) for s in data.skipped] == [(3, None), (4, None)]
    assert data.skipped[1].reason.startswith("not a JSON object")
    assert data.skipped_summary().startswith(
        "skipped 2 invalid records: 1 not valid JSON, 1 not a JSON object"
    )


def test_missing_or_null_fields(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows: list[dict[str, Any]] = [
        {"prompt": "p", "chosen": "a", "rejected": "b"},
        {"prompt": "p", "rejected": "b"},
        {"prompt": "p", "chosen": None, "rejected": "b"},
        {"prompt": "p", "chosen": "a", "rejected": "  "},
        {"chosen": "a", "rejected": "b"},
        {"prompt": "p", "chosen": "a", "rejected": "b", "user_id": 5},
    ]
    path = write_rows(rows, tmp_path / "rows.jsonl")
    with pytest.raises(DataError) as info:
        load_preferences(path)
    assert (info.value.record, info.value.field, info.value.message.split(";")[0]) == (2, "chosen", "missing")
    errors = []
    for row in rows[1:5]:
        with pytest.raises(DataError) as info:
            load_preferences([row])
        errors.append((info.value.field, info.value.message))
    assert errors[1] == ("chosen", "expected a non-empty string, got null")
    assert errors[2] == ("rejected", "expected a non-empty string, got a blank string")
    assert errors[3][0] == "prompt" and errors[3][1].startswith("missing")
    with caplog.at_level(logging.WARNING, logger="personae.data"):
        data = load_preferences(path, skip_invalid=True)
    assert [r.record_id for r in data] == ["rows.jsonl:1", "rows.jsonl:6"] and data[1].user_id == "5"
    assert data.skipped == [
        SkippedRecord(str(path), 2, "chosen", data.skipped[0].reason),
        SkippedRecord(str(path), 3, "chosen", "expected a non-empty string, got null"),
        SkippedRecord(str(path), 4, "rejected", "expected a non-empty string, got a blank string"),
        SkippedRecord(str(path), 5, "prompt", data.skipped[3].reason),
    ]
    assert data.skipped_summary().startswith(
        "skipped 4 invalid records: 1 missing 'chosen', 1 invalid 'chosen', "
        "1 invalid 'rejected', 1 missing 'prompt'"
    )
    assert "record 2" in caplog.text and "skipped 4 invalid records" in caplog.text


def test_bad_context_turns() -> None:
    cases = [
        ([{"role": "user"}], "turn 1: expected string content"),
        ([{"role": "robot", "content": "x"}], "turn 1: expected role"),
        (
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            "last turn must be the user's",
        ),
        ([], "at least one turn"),
    ]
    for context, message in cases:
        with pytest.raises(DataError, match=message) as info:
            load_preferences([{"context": context, "chosen": "a", "rejected": "b"}])
        assert info.value.field == "context"
    with pytest.raises(DataError, match=r"end with an assistant") as info:
        load_preferences([{"prompt": "p", "chosen": [{"role": "user", "content": "x"}], "rejected": "b"}])
    assert info.value.field == "chosen"


def test_missing_sources_and_bad_options(tmp_path: Path) -> None:
    for missing in (tmp_path / "nope.jsonl", tmp_path / "nope", "./not/here.parquet"):
        with pytest.raises(DataError, match="no such file") as info:
            load_preferences(missing)
        assert info.value.record is None
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="save_to_disk"):
        load_preferences(tmp_path / "folder")
    with pytest.raises(ConfigError, match="format"):
        load_preferences(tmp_path / "x.jsonl", format="xml")
    with pytest.raises(DataError, match="single mapping"):
        load_preferences({"prompt": "p", "chosen": "a", "rejected": "b"})  # type: ignore[dict-item]


def test_limit_and_explicit_format(tmp_path: Path, prism_rows: list[dict[str, Any]]) -> None:
    path = write_rows(prism_rows, tmp_path / "rows.jsonl")
    renamed = path.rename(tmp_path / "rows.txt")
    data = load_preferences(renamed, format="jsonl", limit=5)
    assert len(data) == 5 and data[4].record_id == "rows.txt:5"
    assert len(load_preferences(prism_rows, limit=0)) == 0


# --- splits ---------------------------------------------------------------------------------


def rec(i: int, prompt: str, *, user: str = "u", split: str | None = None) -> PreferenceRecord:
    return PreferenceRecord(
        [Turn("user", prompt)], f"c{i}", f"r{i}", user_id=user, split=split, record_id=str(i)
    )


def test_split_groups_prompts_in_order_of_first_appearance() -> None:
    prompts = ["p0", "p1", "p0", "p2", "p3", "p1", "p4", "p5", "p6", "p7", "p8", "p9", "p9", "p3"]
    records = [rec(i, p) for i, p in enumerate(prompts)]
    split = split_user(records)
    sides = [[r.prompt for r in side] for side in (split.train, split.val, split.test)]
    assert sides == [["p0", "p1", "p0", "p2", "p3", "p1", "p4", "p3"], ["p5", "p6"], ["p7", "p8", "p9", "p9"]]
    assert [int(r.record_id) for r in split.train] == sorted(int(r.record_id) for r in split.train)
    assert split_user(records) == split  # deterministic
    assert split_user(records, (0.8, 0.0, 0.2)).val == []
    assert split_user([]) == UserSplit([], [], [])
    with pytest.raises(ConfigError, match="sum to 1"):
        split_user(records, (0.5, 0.5, 0.5))


def test_split_honours_the_source_split_only_when_every_record_has_one() -> None:
    records = [rec(0, "a", split="test"), rec(1, "a", split="train"), rec(2, "b", split="val")]
    split = split_user(records)
    assert (
        [r.record_id for r in split.train],
        [r.record_id for r in split.val],
        [r.record_id for r in split.test],
    ) == (["1"], ["2"], ["0"])
    mixed = split_user([*records, rec(3, "c")], (0.34, 0.33, 0.33))
    assert [r.record_id for r in mixed.train] == ["0", "1"]


def test_prism_split_by_prompt_never_leaks_a_prompt(shared: Path) -> None:
    data = load_preferences(shared / "prism" / "pairs.jsonl")
    splits = split_by_prompt(data)
    assert list(splits) == list(data.by_user())
    assert sum(len(s.train) + len(s.val) + len(s.test) for s in splits.values()) == len(data)
    for user_id, split in splits.items():
        test_keys = {r.prompt_key for r in split.test}
        assert not test_keys & {r.prompt_key for r in split.train + split.val}, user_id
        assert not {r.prompt_key for r in split.val} & {r.prompt_key for r in split.train}, user_id
    assert split_by_prompt(data.records) == splits


# --- writers --------------------------------------------------------------------------------


ROWS = [
    {"id": 1, "text": 'héllo "quoted"\nnext line', "score": 0.5, "none": None},
    {"id": 2, "text": "日本語", "score": 1.5, "none": None},
]


def test_write_rows_round_trips(tmp_path: Path) -> None:
    path = write_rows(ROWS, tmp_path / "deep" / "out.jsonl")
    assert path.read_text(encoding="utf-8").splitlines()[1] == json.dumps(ROWS[1], ensure_ascii=False)
    assert read_jsonl_rows(path) == ROWS
    pq = pytest.importorskip("pyarrow.parquet")
    assert pq.read_table(write_rows(ROWS, tmp_path / "out.parquet")).to_pylist() == ROWS
    assert json.loads(write_rows(ROWS, tmp_path / "out.json").read_text(encoding="utf-8")) == ROWS
    with gzip.open(write_rows(ROWS, tmp_path / "out.jsonl.gz"), "rt", encoding="utf-8") as fh:
        assert [json.loads(line) for line in fh] == ROWS
    import csv

    with open(write_rows(ROWS, tmp_path / "out.csv"), newline="", encoding="utf-8") as fh:
        assert list(csv.DictReader(fh)) == [
            {k: "" if v is None else str(v) for k, v in row.items()} for row in ROWS
        ]
    write_rows(ROWS[:1], path)  # replaces atomically, leaving no temporary file
    assert read_jsonl_rows(path) == ROWS[:1]
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.jsonl"]
    with pytest.raises(ConfigError):
        write_rows(ROWS, tmp_path / "out.txt")


def test_append_jsonl_and_resume_after_a_truncated_line(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "progress.jsonl"
    assert read_jsonl_rows(path) == []
    for row in ROWS:
        append_jsonl(row, path)
    with open(path, "ab") as fh:
        fh.write('{"id": 3, "text": "cut off 日本'.encode()[:-2])  # mid-character, too
    assert read_jsonl_rows(path) == ROWS
    append_jsonl({"id": 4}, path)  # the broken line is dropped, not glued to the new row
    assert read_jsonl_rows(path) == [*ROWS, {"id": 4}]
    with open(path, "ab") as fh:
        fh.write(b'{"id": 5}')  # complete but unterminated: kept
    append_jsonl({"id": 6}, path)
    assert [r["id"] for r in read_jsonl_rows(path)] == [1, 2, 4, 5, 6]
    write_text(path, ['{"id": 1}', "{broken", '{"id": 2}'])
    with pytest.raises(DataError) as info:
        read_jsonl_rows(path)
    assert info.value.record == 2


def test_public_names() -> None:
    assert sorted(personae.data.__all__) == sorted(
        [
            "PERSONA_DEMO_FIELDS",
            "SUFFIXES",
            "read_persona_demos",
            "parse_fractions",
            "PreferenceData",
            "PreferenceRecord",
            "SkippedRecord",
            "Turn",
            "UserHistory",
            "UserSplit",
            "append_jsonl",
            "as_record",
            "as_records",
            "current_fields",
            "load_preferences",
            "read_jsonl_rows",
            "select_users",
            "split_by_prompt",
            "split_user",
            "write_rows",
            "write_text_atomic",
        ]
    )
    for name in personae.data.__all__:
        value = getattr(personae.data, name)
        assert isinstance(value, tuple) or value.__module__.startswith("personae.data")


def test_write_text_atomic_replaces_whole_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    from personae.data import write_text_atomic

    target = tmp_path / "sub" / "f.json"
    write_text_atomic(target, "first")
    write_text_atomic(target, "second")
    assert target.read_text(encoding="utf-8") == "second"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]


def test_a_file_that_opens_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    row = {"prompt": "q", "chosen": "a", "rejected": "b"}
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + (json.dumps(row) + "\n").encode() * 2)
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([row]).encode())
    assert [r.prompt for r in load_preferences(tmp_path / "bom.jsonl")] == ["q", "q"]
    assert [r.chosen for r in load_preferences(tmp_path / "bom.json")] == ["a"]


def test_an_unknown_split_name_is_refused_naming_record_and_field(tmp_path: Path) -> None:
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b", "split": "validation"},
            {"prompt": "q", "chosen": "a", "rejected": "b", "split": "holdout"}]
    path = tmp_path / "splits.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="unknown split 'holdout'") as info:
        load_preferences(path)
    assert info.value.record == 2 and info.value.field == "split"
