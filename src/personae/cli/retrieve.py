"""``personae retrieve-personas``: personas for new prompts from the most similar training prompts."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any


def register(sub: Any) -> None:
    """Add ``personae retrieve-personas`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "retrieve-personas",
        help="give each test prompt the personas of the most similar training prompts",
        description="Index the prompts of the training file(s) with their personas, find the most similar "
                    "training prompt for every test record, and write the test records with "
                    "chosen_persona_retrieved and rejected_persona_retrieved columns. When the test file has "
                    "reference columns (chosen_persona_retr, rejected_persona_retr) the match rates are printed.",
    )
    from personae.cli.options import add_config_options
    from personae.specs import RetrieveOptions

    add_config_options(parser, RetrieveOptions)
    parser.set_defaults(run=run)


def _columns(suffix: str | None) -> tuple[str, str]:
    tail = f"_{suffix.strip().lstrip('_')}" if suffix and suffix.strip() else ""
    return f"chosen_persona{tail}", f"rejected_persona{tail}"


def run(args: argparse.Namespace) -> int:
    """Index the training prompts, give every test record the personas of its most similar training
    prompt, write the records to ``--out`` and print the match rates; returns exit status 0."""
    from personae.data import load_preferences, write_rows
    from personae.retrieval import PersonaIndex, measure_retrieval

    train = [record for path in args.train for record in load_preferences(path).records]
    test = load_preferences(args.test, limit=args.limit).records
    index = PersonaIndex.build(train, embedder=args.embedder, persona_columns=_columns(args.train_persona_suffix),
                               model_path=args.model_path, batch_size=args.batch_size)
    report = measure_retrieval(index, test, k=args.k, reference_columns=_columns(args.reference_suffix),
                               exclude_same_prompt=args.exclude_same_prompt)
    rows = []
    for record, found in zip(test, report.results, strict=True):
        row: dict[str, Any] = dict(record.raw) if record.raw else record.to_dict()
        best = found[0] if found else None
        row["chosen_persona_retrieved"] = best.chosen_persona if best else None
        row["rejected_persona_retrieved"] = best.rejected_persona if best else None
        row["retrieval_score"] = best.score if best else None
        row["retrieved_record_id"] = best.record_id if best else None
        if args.k > 1:
            row["retrieved"] = [asdict(hit) for hit in found]
        rows.append(row)
    out = write_rows(rows, args.out)
    print(f"indexed {len(index)} training prompts from {len(args.train)} file(s); wrote {len(rows)} records to {out}")
    print(report.summary())
    return 0
