"""``personae persona-saliency``: the words that set chosen-side personas apart from rejected-side ones."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add ``personae persona-saliency`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "persona-saliency",
        help="rank the words that distinguish chosen-side from rejected-side personas",
        description="Log-odds ratio with an informative Dirichlet prior (Monroe et al. 2008) over the words of "
                    "the two persona columns; writes saliency.md and saliency.png into --out and prints the table.",
    )
    from personae.cli.options import add_config_options
    from personae.specs import SaliencyOptions

    add_config_options(parser, SaliencyOptions)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Rank the words that set the two persona columns apart, write ``saliency.md`` and ``saliency.png``
    into ``--out`` and print the table; returns exit status 0."""
    from personae.data import load_preferences
    from personae.errors import DataError
    from personae.evaluation.saliency import persona_saliency, saliency_table, write_saliency_report
    from personae.retrieval import persona_text

    records = load_preferences(args.data).records
    chosen = [persona_text(r, args.chosen_column) for r in records]
    rejected = [persona_text(r, args.rejected_column) for r in records]
    for column, texts in ((args.chosen_column, chosen), (args.rejected_column, rejected)):
        if not any(texts):
            raise DataError("no record has text in this column", source=args.data, field=column)
    words = persona_saliency(chosen, rejected, top=args.top, min_count=args.min_count)
    path = write_saliency_report(words, args.out)
    n_chosen, n_rejected = sum(map(bool, chosen)), sum(map(bool, rejected))
    print(f"{n_chosen} chosen-side and {n_rejected} rejected-side personas from {len(records)} records")
    print(saliency_table(words) if words else "no word passed the count threshold")
    print(f"wrote {path} and {path.with_name('saliency.png')}")
    return 0
