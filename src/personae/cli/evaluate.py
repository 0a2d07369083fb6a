"""``personae evaluate``: compare judging methods on the same held-out pairs of each user.

Writes ``OUT/run.json`` (every judgment, with prompts and raw outputs), ``OUT/report.md`` and
two plots, and prints the summary table and the cost. Judgments are appended to
``OUT/judgments.jsonl`` as they are made; running the same command again reuses the scored
ones and judges only what is missing (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from personae.cli._common import Progress, add_data_options, add_model_options, build_lm, load_data

JUDGMENTS_FILE = "judgments.jsonl"
STATE_FILE = "judgments.config.json"
RUN_FILE = "run.json"


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="compare judges (default, profile, memory, persona, synthesizeme) on each user's test pairs",
        description="Split each user's pairs by prompt (train/val/test), judge every test pair in both "
                    "orders with every method, and report pooled accuracy with a 95 percent bootstrap interval, "
                    "per-user accuracy and LM cost. Unscored judgments count as wrong.",
    )
    add_data_options(parser)
    parser.add_argument("--method", default="default",
                        help="comma-separated methods: default, profile, memory, persona, synthesizeme "
                             "(default: default)")
    parser.add_argument("--judges", help="folder of fitted judges (personae fit), needed by synthesizeme")
    parser.add_argument("--personas", help="jsonl file of {user_id, persona} rows for the persona method "
                                           "(default: the records' 'persona' column)")
    parser.add_argument("--users", type=int, default=None, help="evaluate only the N users with the most pairs")
    parser.add_argument("--min-pairs", type=int, default=0, help="skip users with fewer than K pairs")
    parser.add_argument("--fractions", default="0.5,0.2,0.3",
                        help="train,val,test shares of each user's prompts (default 0.5,0.2,0.3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals (default 0)")
    parser.add_argument("--out", required=True, help="output folder for run.json, report.md and plots")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore judgments left in OUT by an earlier run instead of reusing them")
    add_model_options(parser)
    parser.set_defaults(run=run)


def _fractions(text: str) -> tuple[float, float, float]:
    from personae.errors import ConfigError

    try:
        parts = [float(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"--fractions expects three numbers such as 0.5,0.2,0.3, got {text!r}") from None
    if len(parts) != 3:
        raise ConfigError(f"--fractions expects three numbers such as 0.5,0.2,0.3, got {text!r}")
    return (parts[0], parts[1], parts[2])


def _personas(path: str | None) -> dict[str, str] | None:
    from personae.data import read_jsonl_rows
    from personae.errors import DataError

    if not path:
        return None
    if not Path(path).exists():
        raise DataError("no such file", source=path)
    personas = {}
    for number, row in enumerate(read_jsonl_rows(path), start=1):
        user_id, persona = row.get("user_id"), row.get("persona")
        if user_id is None or not isinstance(persona, str):
            raise DataError("expected a row with user_id and persona (text)", source=path, record=number)
        personas[str(user_id)] = persona
    return personas


def _digest(path: str | None) -> str | None:
    """A fingerprint of a file or of a folder's JSON files: judgments of other contents are not reused."""
    import hashlib

    if not path:
        return None
    target = Path(path)
    files = sorted(target.glob("*.json")) if target.is_dir() else [target] if target.exists() else []
    h = hashlib.sha1()
    for file in files:
        h.update(file.name.encode("utf-8") + b"\0" + file.read_bytes() + b"\0")
    return h.hexdigest()[:16]


# What each fingerprint feeds: when only these change, the other methods' judgments still hold.
_DEPENDENT_METHODS = {"judges": "synthesizeme", "judges_digest": "synthesizeme", "personas": "persona",
                      "personas_digest": "persona"}


def _previous(out: Path, state: dict[str, Any], fresh: bool) -> list[dict[str, Any]]:
    """Judgments an earlier run with the same model, data and split left in ``out``.

    When only the fitted judges or the personas file (path or contents) changed, the judgments
    of the method that reads them are dropped (and made again) and the others are reused.
    """
    from personae.data import read_jsonl_rows
    from personae.errors import ConfigError

    judgments, state_file = out / JUDGMENTS_FILE, out / STATE_FILE
    if fresh or not judgments.exists():
        judgments.unlink(missing_ok=True)
        state_file.write_text(json.dumps(state, indent=1), encoding="utf-8")
        return []
    try:
        earlier = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        earlier = {}
    changed = sorted(k for k in set(state) | set(earlier) if earlier.get(k) != state.get(k))
    if set(changed) - set(_DEPENDENT_METHODS):
        raise ConfigError(f"{out} holds judgments of another configuration ({state_file}; differs in "
                          f"{', '.join(changed)}); use another --out, or --fresh to discard them")
    rows = read_jsonl_rows(judgments)
    if changed:
        stale = {_DEPENDENT_METHODS[k] for k in changed}
        rows = [row for row in rows if row.get("method") not in stale]
        print(f"personae: {', '.join(sorted(stale))} changed since the last run: judging it again",
              file=sys.stderr)
        tmp = judgments.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        os.replace(tmp, judgments)
        state_file.write_text(json.dumps(state, indent=1), encoding="utf-8")
    return rows


def run(args: argparse.Namespace) -> int:
    from personae.data import append_jsonl, select_users
    from personae.evaluation import (
        evaluate_methods,
        summary_table,
        write_report,
        write_run_log,
    )
    from personae.evaluation.methods import check_methods

    methods = check_methods(args.method.split(","), judges_dir=args.judges)
    fractions = _fractions(args.fractions)
    personas = _personas(args.personas)
    data = load_data(args)
    users = {u.user_id: u for u in select_users(data, top=args.users, min_pairs=args.min_pairs)}
    lm = build_lm(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = {"model": args.model, "api_base": args.api_base, "temperature": args.temperature,
             "max_tokens": args.max_tokens, "data": args.data, "columns": args.columns, "split": args.split,
             "fractions": list(fractions), "judges": args.judges, "personas": args.personas,
             "judges_digest": _digest(args.judges), "personas_digest": _digest(args.personas)}
    previous = _previous(out, state, args.fresh)
    progress = Progress("evaluate")
    judgments = out / JUDGMENTS_FILE

    evaluation = evaluate_methods(
        users, methods, lm=lm, fractions=fractions, judges_dir=args.judges, personas=personas,
        concurrency=args.concurrency, max_attempts=args.max_attempts, seed=args.seed, previous=previous,
        source=args.data, extra={**state, "users": args.users, "min_pairs": args.min_pairs},
        on_judgment=lambda row: append_jsonl(row.model_dump(mode="json"), judgments),
        on_progress=progress,
    )
    write_run_log(evaluation, out / RUN_FILE)
    report = write_report(evaluation, out)
    n_test = sum(u.n_test for u in evaluation.users)
    print(f"evaluated {len(users)} users, {n_test} test pairs, both orders, methods: {', '.join(methods)}")
    print(summary_table(evaluation, markdown=False))
    for summary in evaluation.log.summary:
        if summary.unscored_reasons:
            reasons = ", ".join(f"{n} {reason}" for reason, n in summary.unscored_reasons.items())
            print(f"{summary.method}: unscored (counted wrong): {reasons}")
    print(f"cost: {evaluation.cost.summary()}")
    print(f"wrote {out / RUN_FILE} and {report}")
    return 0
