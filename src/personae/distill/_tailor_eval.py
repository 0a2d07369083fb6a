"""``personae eval-tailoring`` without the CLI: test items from data, each side's responses, the log file.

A side (generator A or B) is a ``.jsonl`` of generations in data order, ``column:NAME`` (a
column of the test data, e.g. ``column:chosen``), or ``model:PATH`` (a generator folder,
``smollm2`` or a ``.gguf`` file, run now; needs the ``distill`` extra). The judging itself is
:func:`personae.distill._tailor_judge.compare_generations`; this module imports no LM code
until :func:`main` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from personae.errors import ConfigError

if TYPE_CHECKING:
    import dspy

    from personae.distill._tailor_judge import TailoringEvalLog

__all__ = ["EVAL_FILE", "TailoringEvalConfig", "main", "persona_column", "read_generations", "responses_from"]

EVAL_FILE = "tailoring_eval.json"


@dataclass
class TailoringEvalConfig:
    """What to compare (the options of ``personae eval-tailoring``, less the judge's model options)."""

    data: str = field(default="", metadata={
        "help": "test prompts with personas, e.g. persona_tailoring/*__test.jsonl"})
    a: str = field(default="", metadata={
        "required": True,
        "help": "generator A: a .jsonl file of generations (a 'response' per row, in data order), "
                "column:NAME (a column of the data), or model:PATH (a generator folder, smollm2 or a .gguf: "
                "generate now)"})
    b: str = field(default="", metadata={"required": True, "help": "generator B, the baseline, given like A"})
    persona: str = field(default="gold", metadata={
        "help": "the persona of each prompt: gold or retr (column chosen_persona_gold / _retr) or a column name"})
    criteria: str = field(default="personalization,quality", metadata={"help": "comma-separated criteria"})
    limit: int | None = field(default=None, metadata={"help": "use only the first N test prompts"})
    max_new_tokens: int = field(default=256, metadata={"help": "response length cap when generating"})
    device: str = field(default="auto", metadata={"help": "device for generating: auto, cpu or cuda"})
    out: str = field(default="", metadata={
        "required": True,
        "help": "output folder: tailoring_eval.json, plus generations_a/b.jsonl for generated sides"})


def persona_column(persona: str) -> str:
    """``gold`` / ``retr`` -> the chosen side's persona column of the persona_tailoring sets; else as given."""
    return f"chosen_persona_{persona}" if persona in ("gold", "retr") else persona


def read_generations(path: str) -> list[dict[str, Any]]:
    """Rows of a generations file, each with a text ``response`` (``generation``/``output`` accepted)."""
    from personae.data import read_jsonl_rows
    from personae.errors import DataError

    rows = []
    for number, row in enumerate(read_jsonl_rows(path), start=1):
        text = next((row[k] for k in ("response", "generation", "output") if isinstance(row.get(k), str)), None)
        if text is None:
            raise DataError("expected a text 'response'", source=path, record=number, field="response")
        rows.append({**row, "response": text})
    return rows


def responses_from(source: str, records: Sequence[Any], personas: Sequence[str], *, max_new_tokens: int = 256,
                   device: str = "auto") -> tuple[list[str], list[dict[str, Any]] | None]:
    """One response per record from a source (file, ``column:NAME`` or ``model:PATH``).

    Returns the responses and, when they were generated now, rows to save.
    """
    from personae.errors import DataError

    if source.startswith("column:"):
        column = source.split(":", 1)[1]
        out = []
        for record in records:
            value = {"chosen": record.chosen, "rejected": record.rejected}.get(column,
                                                                               record.metadata.get(column))
            if not isinstance(value, str):
                raise DataError("no such text column", source=source, field=column)
            out.append(value)
        return out, None
    if source.startswith("model:"):
        from personae.distill._tailor import TailoredGenerator

        generator = TailoredGenerator.load(source.split(":", 1)[1], device=device)
        items = [(record.prompt, persona) for record, persona in zip(records, personas, strict=True)]
        texts = generator.generate_batch(items, max_new_tokens=max_new_tokens)
        rows = [{"record_id": r.record_id, "prompt": r.prompt, "persona": p, "response": t}
                for r, p, t in zip(records, personas, texts, strict=True)]
        return texts, rows
    rows = read_generations(source)
    if len(rows) < len(records):
        raise DataError(f"{len(rows)} generations for {len(records)} test prompts", source=source)
    for number, (row, record) in enumerate(zip(rows, records, strict=False), start=1):
        given = row.get("prompt")
        if isinstance(given, str) and given.strip() != record.prompt.strip():
            raise DataError("its prompt differs from the test prompt at the same position", source=source,
                            record=number, field="prompt")
    return [row["response"] for row in rows[: len(records)]], None


def main(config: TailoringEvalConfig, lm: dspy.BaseLM, *, concurrency: int = 1, max_attempts: int = 3,
         on_progress: Callable[[int, int], None] | None = None) -> TailoringEvalLog:
    """Build the items from ``config``, judge them with ``lm``, write ``OUT/tailoring_eval.json``."""
    from pathlib import Path

    from personae.data import load_preferences, write_rows
    from personae.distill._tailor_judge import TailoringItem, compare_generations
    from personae.errors import DataError

    if not (config.data and config.a and config.b and config.out):
        raise ConfigError("data, a, b and out are required")
    records = load_preferences(config.data, limit=config.limit).records
    column = persona_column(config.persona)
    personas = []
    for record in records:
        value = record.metadata.get(column)
        if not isinstance(value, str) or not value.strip():
            raise DataError("no persona text", source=config.data, field=column)
        personas.append(value.strip())
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    sides = {}
    for name, source in (("a", config.a), ("b", config.b)):
        texts, generated = responses_from(source, records, personas, max_new_tokens=config.max_new_tokens,
                                          device=config.device)
        if generated is not None:
            write_rows(generated, out / f"generations_{name}.jsonl")
        sides[name] = texts
    items = [TailoringItem(record.record_id, record.prompt, persona, a, b)
             for record, persona, a, b in zip(records, personas, sides["a"], sides["b"], strict=True)]
    log = compare_generations(items, lm=lm, criteria=[c.strip() for c in config.criteria.split(",") if c.strip()],
                              concurrency=concurrency, max_attempts=max_attempts, a=config.a, b=config.b,
                              config=asdict(config), on_progress=on_progress)
    (out / EVAL_FILE).write_text(log.model_dump_json(indent=1) + "\n", encoding="utf-8")
    return log

