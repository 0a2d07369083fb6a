"""A human-readable report of an evaluation: a markdown summary and two plots.

``write_report(run, out_dir)`` writes ``report.md`` (the summary table, the per-user table
and the run's configuration), ``per_user_accuracy.png`` and ``accuracy_vs_train.png``. The
plots are drawn with matplotlib's Agg canvas on a private figure (no pyplot, no global
backend change), so reports can be written from any thread.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from personae.data import write_text_atomic
from personae.evaluation.log import EvaluationLog, MethodSummary, PersonaAccuracyLog, SideSummary
from personae.runs import Cost, RunLog

__all__ = [
    "PLOT_FILES",
    "REPORT_FILE",
    "persona_accuracy_summary",
    "summary_table",
    "user_table",
    "write_persona_accuracy_report",
    "write_report",
]

logger = logging.getLogger(__name__)

REPORT_FILE = "report.md"
PLOT_FILES = ("per_user_accuracy.png", "accuracy_vs_train.png")
_BAR_LIMIT = 30  # above this many users, the per-user plot shows dots per method instead of bars


def _log(run: Any) -> EvaluationLog:
    return run if isinstance(run, RunLog) else run.log


def _as_log(run: Any) -> PersonaAccuracyLog:
    return run if isinstance(run, RunLog) else run.log


def _when(value: Any) -> str:
    return "-" if value is None else str(value.isoformat(timespec="seconds"))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _ci(summary: MethodSummary | SideSummary) -> str:
    if summary.accuracy is None:
        return "n/a"
    if summary.ci_low is None or summary.ci_high is None:
        return _pct(summary.accuracy)
    return f"{summary.accuracy:.1%} ({summary.ci_low:.1%}-{summary.ci_high:.1%})"


def _table(header: list[str], rows: list[list[str]], *, markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in [header, *rows])


def summary_table(run: Any, *, markdown: bool = True) -> str:
    """One row per method: pooled accuracy with its CI, mean per-user accuracy, unscored, cost."""
    log = _log(run)
    confidence = f"{log.config.confidence:.0%} CI"
    header = ["method", f"pooled accuracy ({confidence})", "mean per-user", "judgments", "unscored",
              "orders agree", "LM calls", "tokens", "seconds"]
    rows = []
    for s in log.results.summary:
        agree = f"{s.orders_agreed}/{s.pairs_both_scored}" if s.pairs_both_scored else "-"
        rows.append([s.method, _ci(s), _pct(s.mean_user_accuracy), str(s.judgments), str(s.unscored), agree,
                     str(s.cost.lm_calls), f"{s.cost.total_tokens:,}", f"{s.cost.seconds:.1f}"])
    return _table(header, rows, markdown=markdown)


def user_table(run: Any, *, markdown: bool = True) -> str:
    """One row per user: split sizes (pairs) and accuracy per method."""
    log = _log(run)
    methods = log.config.methods
    header = ["user", "n_train", "n_val", "n_test", *methods]
    rows = [[u.user_id, str(u.n_train), str(u.n_val), str(u.n_test), *(_pct(u.accuracy.get(m)) for m in methods)]
            for u in log.results.users]
    return _table(header, rows, markdown=markdown)


REPORTED_SETTINGS = ("runtime", "train_pairs", "train_seconds")
"""Settings of a run's ``extra`` that its report states, when the run has them."""


def _markdown(log: EvaluationLog) -> str:
    c = log.config
    versions = ", ".join(f"{name} {version}" for name, version in log.versions.items() if version)
    lines = [
        "# Evaluation report",
        "",
        f"- model: `{c.model}`",
        f"- data: `{c.data_source or '(in memory)'}`, {c.users} users",
        (f"- split by prompt: train {c.fractions[0]:g} / val {c.fractions[1]:g} / test {c.fractions[2]:g}; "
         if c.fractions[:2] != (0, 0) else "- held-out pairs as given (no split); ")
        + "every test pair judged in both orders by every method",
        *(f"- {key.replace('_', ' ')}: {c.extra[key]}" for key in REPORTED_SETTINGS if key in c.extra),
        f"- seed {c.seed}, concurrency {c.concurrency}, max attempts {c.max_attempts}",
        f"- started {_when(log.started)}, finished {_when(log.finished)} ({log.status})",
        f"- versions: {versions}",
        "",
        "Unscored judgments (failed calls, unparseable answers, nothing to judge with) count as wrong. "
        f"The interval is a percentile bootstrap ({c.resamples} resamples) over test pairs, both orders "
        "of a pair resampled together. *Orders agree* counts the pairs, scored in both orders, where "
        "the judge picked the same response whichever way round it was shown.",
        "",
        "## Summary",
        "",
        summary_table(log),
        "",
        f"Total LM cost: {log.cost.lm_calls} calls, {log.cost.prompt_tokens:,} prompt + "
        f"{log.cost.completion_tokens:,} completion tokens, {log.cost.seconds:.1f} s.",
        "",
    ]
    reasons = [(s.method, reason, n) for s in log.results.summary for reason, n in s.unscored_reasons.items()]
    if reasons:
        lines += ["## Unscored judgments", "", _table(["method", "reason", "judgments"],
                                                      [[m, r, str(n)] for m, r, n in reasons], markdown=True), ""]
    lines += ["## Per user", "", user_table(log), ""]
    lines += ["## Plots", "", *(f"![{name[:-4].replace('_', ' ')}]({name})" for name in PLOT_FILES), ""]
    return "\n".join(lines)


def _per_user_plot(log: EvaluationLog, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    methods = log.config.methods
    users = [u for u in log.results.users if u.n_test]
    bars = len(users) <= _BAR_LIMIT
    width_in = 0.25 * len(users) * max(1, len(methods)) + 3 if bars else 1.6 * len(methods) + 2
    fig = Figure(figsize=(max(6.0, min(18.0, width_in)), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if bars:
        width = 0.8 / max(1, len(methods))
        for k, method in enumerate(methods):
            xs = [i + (k - (len(methods) - 1) / 2) * width for i in range(len(users))]
            ax.bar(xs, [u.accuracy.get(method) or 0.0 for u in users], width=width, label=method)
        ax.set_xticks(range(len(users)))
        ax.set_xticklabels([u.user_id[:12] for u in users], rotation=60, ha="right", fontsize=7)
        ax.set_xlabel("user")
    else:  # too many users for bars: one column of dots per method, spread evenly
        for k, method in enumerate(methods):
            values = [u.accuracy.get(method) or 0.0 for u in users]
            xs = [k + 0.6 * ((i / max(1, len(values) - 1)) - 0.5) for i in range(len(values))]
            ax.scatter(xs, values, s=8, alpha=0.5, label=method)
            ax.hlines(sum(values) / len(values), k - 0.35, k + 0.35, colors="black")
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("test accuracy (both orders)")
    ax.set_title("Per-user accuracy by method")
    if methods:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _train_plot(log: EvaluationLog, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    users = [u for u in log.results.users if u.n_test]
    fig = Figure(figsize=(6.5, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    methods = log.config.methods
    for k, method in enumerate(methods):  # dodge each method a little so coinciding points stay visible
        dodge = 0.3 * (k - (len(methods) - 1) / 2) / max(1, len(methods))
        ax.scatter([u.n_train + dodge for u in users], [u.accuracy.get(method) or 0.0 for u in users], s=16,
                   alpha=0.6, label=method)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training pairs of the user")
    ax.set_ylabel("test accuracy (both orders)")
    ax.set_title("Accuracy against the number of training pairs")
    if methods:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(run: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.md`` and the two PNG plots into ``out_dir``; return the report's path.

    ``run`` is an :class:`~personae.evaluation.EvaluationRun` or a :class:`RunLog` (e.g. read
    back from ``run.json``).
    """
    log = _log(run)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _per_user_plot(log, out / PLOT_FILES[0])
    _train_plot(log, out / PLOT_FILES[1])
    report = out / REPORT_FILE
    write_text_atomic(report, _markdown(log))
    logger.info("wrote %s", report)
    return report


# -- persona accuracy (personae eval-personas) ------------------------------------------------


def persona_accuracy_summary(run: Any, *, markdown: bool = True) -> str:
    """One row per side: accuracy with its CI, judgments, unscored and order agreement."""
    log = _as_log(run)
    header = ["personas", f"accuracy ({log.config.confidence:.0%} CI)", "judgments", "unscored", "orders agree",
              "source"]
    rows = []
    for s in log.results.summary:
        column = log.config.chosen_column if s.side == "chosen" else log.config.rejected_column
        agree = f"{s.orders_agreed}/{s.records_both_scored}" if s.records_both_scored else "-"
        rows.append([f"{s.side}-side", _ci(s), str(s.judgments), str(s.unscored), agree,
                     f"column {column}" if column else "inferred"])
    return _table(header, rows, markdown=markdown)


def write_persona_accuracy_report(run: Any, out_dir: str | os.PathLike[str], *,
                                  filename: str = "report.md", max_unscored: int = 50) -> Path:
    """Write a short markdown report of a persona-accuracy run into ``out_dir``; return its path."""
    log = _as_log(run)
    c = log.config
    versions = ", ".join(f"{name} {version}" for name, version in log.versions.items() if version)
    sources = []
    for side, column in (("chosen", c.chosen_column), ("rejected", c.rejected_column)):
        sources.append(f"{side}-side from column `{column}`" if column else
                       f"{side}-side inferred by `{c.infer_model}`")
    lines = [
        "# Persona accuracy",
        "",
        f"- data: `{c.data_source or '(in memory)'}`, {c.records} records",
        f"- personas: {'; '.join(sources)}",
        f"- judge: `{c.judge_model}`, every persona judged in both orders",
        f"- seed {c.seed}, concurrency {c.concurrency}, max attempts {c.max_attempts}",
        f"- started {_when(log.started)}, finished {_when(log.finished)} ({log.status})",
        f"- versions: {versions}",
        "",
        "A judge sees the prompt, both responses and one persona and picks the response that persona "
        "prefers. A chosen-side persona is accurate when the judge picks the chosen response, a "
        "rejected-side persona when it picks the rejected one. Unscored judgments (failed calls, "
        "unparseable answers, missing personas) count as wrong. The interval is a percentile bootstrap "
        f"({c.resamples} resamples) over records, both orders of a record resampled together.",
        "",
        "## Summary",
        "",
        persona_accuracy_summary(log),
        "",
        f"Order agreement (both sides): {_pct(log.results.order_agreement)} "
        f"({log.results.orders_agreed}/{log.results.records_both_scored} persona-record pairs scored in both "
        "orders picked "
        "the same response whichever way round it was shown).",
        "",
        f"Cost: inference {log.costs.get('inference', Cost()).lm_calls} calls, judging "
        f"{log.costs.get('judging', Cost()).lm_calls} calls; total "
        f"{log.cost.lm_calls} calls, {log.cost.prompt_tokens:,} prompt + {log.cost.completion_tokens:,} completion "
        f"tokens, {log.cost.seconds:.1f} s.",
        "",
    ]
    unscored = [j for j in log.judgments if not j.scored]
    if unscored:
        rows = [[j.record_id, j.side or "", "chosen first" if j.chosen_first else "rejected first", j.error or ""]
                for j in unscored[:max_unscored]]
        lines += ["## Unscored judgments (counted wrong)", "",
                  _table(["record", "persona", "order", "reason"], rows, markdown=True), ""]
        if len(unscored) > max_unscored:
            lines += [f"... and {len(unscored) - max_unscored} more (see the run log).", ""]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = out / filename
    write_text_atomic(report, "\n".join(lines))
    logger.info("wrote %s", report)
    return report
