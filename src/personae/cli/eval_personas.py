"""``personae eval-personas``: persona accuracy of each record's chosen-side and rejected-side personas.

Personas come from columns (``--persona-column``, ``--rejected-persona-column``) or are
inferred with ``--model`` (optionally a compiled ``--program`` and the domain's ``--demos``).
A judge (``--judge-model``, default ``--model``) picks, in both orders, the response each
persona prefers. Writes ``OUT/run.json`` (config, versions, every judgment with its prompt and
raw output, cost) and ``OUT/report.md``; prints both accuracies with their 95% bootstrap
intervals, the order agreement and the cost. Inferred personas and judgments are appended to
the ledger ``OUT/judgments.jsonl`` as they are made; the same command again (also with a
larger ``--limit``) reuses every persona inferred for the same record and every scored
judgment of the same record, side, order and persona, and makes only the missing ones
(``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from personae.cli._common import (
    add_data_options,
    add_executor_options,
    add_judge_model_options,
    add_model_options,
    add_program_options,
    digest,
    inference_program,
    judge_lm_from_args,
    load_data,
    print_counts,
    progress,
    run_spec,
)
from personae.cli.options import add_config_options
from personae.specs import is_local

REPORT_FILE = "report.md"


def register(sub: Any) -> None:
    """Add ``personae eval-personas`` and its options to ``sub``, the main parser's subcommands."""
    parser = sub.add_parser(
        "eval-personas",
        help="persona accuracy: does a judge given a persona pick the response it was inferred from?",
        description="For every pair, judge the chosen-side and the rejected-side persona, each in both orders: "
                    "a chosen-side persona is accurate when the judge picks the chosen response, a rejected-side "
                    "one when it picks the rejected response. Reports each side's accuracy with a 95 percent "
                    "bootstrap interval over records, the order agreement and the LM cost. Unscored judgments "
                    "count as wrong.",
    )
    from personae.specs import EvalPersonasOptions

    add_data_options(parser)
    add_config_options(parser, EvalPersonasOptions)
    add_judge_model_options(parser)
    add_program_options(parser)
    add_model_options(parser)
    add_executor_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Measure persona accuracy on the data (personas read from columns or inferred), write ``run.json``
    and ``report.md`` into ``--out`` and print the summary; exit status 1 when some items failed,
    else 0."""
    from personae.evaluation import persona_accuracy_summary, resolve_persona_columns, write_persona_accuracy_report
    from personae.pipelines import PersonaAccuracyRun, PersonaAccuracyTask
    from personae.runs import RUN_FILE, run

    program = inference_program(args)
    data = load_data(args)
    chosen, rejected = resolve_persona_columns(data.records, args.persona_column, args.rejected_persona_column,
                                               args.data)
    infers = not (chosen and rejected)
    if (program is not None) and not infers:
        print("personae: --program/--demos unused: both personas are read from columns", file=sys.stderr)
    spec = run_spec(args)
    judge_lm = judge_lm_from_args(args)
    models = ([args.model] if infers or judge_lm is None else []) + ([args.judge_model] if judge_lm else [])
    if spec.concurrency is None:
        spec.concurrency = 1 if any(is_local(m) for m in models) else 8
    infer_lm = spec.lm.build() if infers or judge_lm is None else None
    lm = judge_lm or infer_lm
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    extra = {"model": args.model if infers else None, "api_base": args.api_base if infers else None,
             "judge_model": args.judge_model or args.model, "judge_api_base": args.judge_api_base or args.api_base,
             "temperature": args.temperature, "max_tokens": args.max_tokens, "data": args.data,
             "columns": args.columns, "split": args.split, "limit": args.limit, "program": args.program,
             "demos": args.demos}
    # the judge's settings feed only the judgments: with another judge the inferred personas still hold
    state = {**{k: v for k, v in extra.items() if k != "limit"}, "chosen_column": chosen,
             "rejected_column": rejected, "program_digest": digest(args.program), "demos_digest": digest(args.demos)}
    task = PersonaAccuracyTask(data.records, chosen_column=chosen, rejected_column=rejected, infer_lm=infer_lm,
                               program=program, source=args.data, extra=extra, state=state)
    result = PersonaAccuracyRun(run(task, spec, lm=lm, progress=progress()))
    report = write_persona_accuracy_report(result, out, filename=REPORT_FILE)
    sources = [f"{side} from column {column}" if column else f"{side} inferred"
               for side, column in (("chosen", chosen), ("rejected", rejected))]
    print(f"persona accuracy on {len(data)} records ({', '.join(sources)}), judged in both orders by "
          f"{result.log.config.judge_model}")
    print(persona_accuracy_summary(result, markdown=False))
    results = result.log.results
    agreement = results.order_agreement
    print(f"order agreement: {'n/a' if agreement is None else f'{agreement:.1%}'} "
          f"({results.orders_agreed}/{results.records_both_scored})")
    for summary in results.summary:
        if summary.unscored_reasons:
            reasons = ", ".join(f"{n} {reason}" for reason, n in summary.unscored_reasons.items())
            print(f"{summary.side}-side: unscored (counted wrong): {reasons}")
    print_counts(result.log.counts)
    print(f"cost: {result.cost.summary()} (inference {result.inference_cost.lm_calls} calls, "
          f"judging {result.judge_cost.lm_calls} calls)")
    print(f"wrote {out / RUN_FILE} and {report}")
    return 1 if result.log.counts.failed else 0
