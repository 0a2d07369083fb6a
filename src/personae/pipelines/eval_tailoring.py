"""``personae eval-tailoring`` without the CLI: test items from data, each side's responses, the run.

A side (generator A or B) is a ``.jsonl`` of generations in data order, ``column:NAME`` (a
column of the test data, e.g. ``column:chosen``), or ``model:PATH`` (a generator folder,
``smollm2`` or a ``.gguf`` file, run now; needs the ``distill`` extra). The judging is
:class:`~personae.pipelines.TailoringTask`, run by :func:`personae.runs.run`: its judgments go to
the ledger ``OUT/judgments.jsonl`` as they are made (the same command resumes), its run log to
``OUT/run.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from personae.errors import ConfigError, DataError

if TYPE_CHECKING:
    import dspy

    from personae.evaluation import TailoringEvalLog
    from personae.runs import Executor, Progress

__all__ = ["RUN_FILE", "TailoringEvalConfig", "eval_tailoring", "persona_column",
           "read_generations", "responses_from"]

RUN_FILE = "run.json"


@dataclass
class TailoringEvalConfig:
    """What to compare (the options of ``personae eval-tailoring``, less the judge's model options)."""

    data: str = field(default="", metadata={
        "positional": True, "help": "test prompts with personas, e.g. persona_tailoring/BeaverTails__test.jsonl"})
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
        "help": "output folder: run.json and judgments.jsonl, plus generations_a/b.jsonl for generated sides"})
    fresh: bool = field(default=False, metadata={
        "help": "discard the judgments an earlier run left in OUT instead of reusing them"})


def persona_column(persona: str) -> str:
    """``gold`` / ``retr`` -> the chosen side's persona column of the persona_tailoring sets; else as given."""
    return f"chosen_persona_{persona}" if persona in ("gold", "retr") else persona


def read_generations(path: str) -> list[dict[str, Any]]:
    """Rows of a generations file, each with a text ``response`` (``generation``/``output`` accepted)."""
    from personae.data import read_jsonl_rows

    if not Path(path).is_file():
        raise DataError("no such file", source=path)
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
    if source.startswith("column:"):
        column = source.split(":", 1)[1]
        out = []
        for number, record in enumerate(records, start=1):
            value = {"chosen": record.chosen, "rejected": record.rejected}.get(column,
                                                                               record.metadata.get(column))
            if not isinstance(value, str):
                raise DataError("no such text column", source=source, record=number, field=column)
            out.append(value)
        return out, None
    if source.startswith("model:"):
        from personae.distill import TailoredGenerator, require_distill

        require_distill("generating with model:PATH", ("torch", "transformers"))
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


def eval_tailoring(config: TailoringEvalConfig, lm: dspy.BaseLM, *, concurrency: int = 1, max_attempts: int = 3,
                   executor: Executor | None = None, progress: Progress | None = None) -> TailoringEvalLog:
    """Build the items from ``config``, judge them with ``lm``, write ``OUT/run.json`` (resumable)."""
    from personae.data import load_preferences, write_rows
    from personae.evaluation import TailoringItem
    from personae.pipelines.compare import TailoringTask
    from personae.runs import RunSpec, run

    if not (config.data and config.a and config.b and config.out):
        raise ConfigError("data, a, b and out are required")
    records = load_preferences(config.data, limit=config.limit).records
    column = persona_column(config.persona)
    personas = []
    for number, record in enumerate(records, start=1):
        value = record.metadata.get(column)
        if not isinstance(value, str) or not value.strip():
            raise DataError("no persona text", source=config.data, record=number, field=column)
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
    task = TailoringTask(items, criteria=[c.strip() for c in config.criteria.split(",") if c.strip()],
                         a=config.a, b=config.b, config=asdict(config))
    spec = RunSpec(concurrency=concurrency, max_attempts=max_attempts, out=config.out, fresh=config.fresh)
    return run(task, spec, lm=lm, executor=executor, progress=progress)
