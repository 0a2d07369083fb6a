"""``personae infer-personas``: both personas for every pair of a preference file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from personae.cli._common import (
    add_data_options,
    add_executor_options,
    add_model_options,
    build_lm,
    executor,
    load_data,
    print_counts,
    progress,
)


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "infer-personas",
        help="infer the chosen-side and rejected-side persona of every pair",
        description="Write the input records with chosen_persona and rejected_persona columns added. "
                    "Results are saved as they come; running the same command again resumes.",
    )
    add_data_options(parser)
    parser.add_argument("--out", required=True,
                        help="output: a .jsonl, .jsonl.gz, .json, .csv or .parquet file, or a name without "
                             "suffix for a datasets folder (Dataset.save_to_disk); per-record results are kept "
                             "in OUT.progress.jsonl, which later runs (also over more records) build on")
    parser.add_argument("--fresh", action="store_true",
                        help="discard the results an earlier run left in OUT.progress.jsonl and infer every record")
    add_program_options(parser)
    add_model_options(parser)
    add_executor_options(parser)
    parser.set_defaults(run=run)


def add_program_options(parser: argparse.ArgumentParser) -> None:
    """``--program`` and ``--demos``: which persona-inference program to run."""
    group = parser.add_argument_group("persona inference program")
    group.add_argument("--program", default=None,
                       help="a compiled persona-inference program saved as DSPy JSON "
                            "(personae optimize-persona-inference) instead of the shipped one")
    group.add_argument("--demos", default=None,
                       help="jsonl of the domain's own few-shot examples, replacing the program's: rows of "
                            "context/preferred_response/other_response/persona, or prompt/chosen/rejected/"
                            "chosen_persona (chosen_persona_gold is read too)")


def inference_program(args: argparse.Namespace) -> Any:
    """The :class:`PersonaInference` that ``--program`` and ``--demos`` ask for (None: the default)."""
    from personae.data import read_persona_demos

    demos = read_persona_demos(args.demos) if args.demos else None
    if args.program:
        from personae.optimizers import load_persona_inference

        return load_persona_inference(args.program, demos=demos)
    if demos is not None:
        from personae.programs import PersonaInference

        return PersonaInference(demos=demos)
    return None


def run(args: argparse.Namespace) -> int:
    from personae.pipelines import infer_personas

    program = inference_program(args)
    data = load_data(args)
    lm = build_lm(args)
    with executor(args, args.concurrency, "infer-personas") as runner:
        report = infer_personas(data.records, Path(args.out), lm=lm, program=program, executor=runner,
                                max_attempts=args.max_attempts, progress=progress(), fresh=args.fresh)
    print(f"wrote {report.records} records to {report.out} "
          f"({report.inferred} inferred now, {report.resumed} from an earlier run, {report.failed} failed)")
    print_counts(report.counts, "records")
    for record_id, reason in report.failures[:5]:
        print(f"  failed {record_id}: {reason}")
    print(f"cost: {report.cost.summary()}")
    return 1 if report.failed else 0
