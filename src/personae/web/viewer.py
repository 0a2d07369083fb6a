"""The run viewer (``personae view PATH``): a run log or an output folder of ``evaluate``,
``eval-personas``, ``eval-tailoring``, ``judge`` or ``fit``, as pages.

:func:`load_run` reads what a command left (its run log, version 2 or 3; else its ledger, as
runs of earlier versions and interrupted runs leave; a ``fit`` folder's judges) into a
:class:`RunView`: the run's spec, status, cost and counts, accuracy per method with its
bootstrap interval and per user (the same :func:`~personae.evaluation.judging.pair_stats` the
commands report with), and every judgment. :func:`viewer_app` serves it read-only.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personae.data import read_jsonl_rows
from personae.errors import DataError
from personae.evaluation.judging import pair_stats
from personae.evaluation.log import finite
from personae.lm import Cost
from personae.runs import JUDGMENTS_FILE, Counts, Judgment, RunLog, read_log

__all__ = ["Group", "RunView", "judgment_fields", "load_run", "viewer_app"]

PAGE = 50
OUTCOMES = ("all", "right", "wrong", "failed")


@dataclass
class Group:
    """The judgments of one method (and persona side, for ``eval-personas``): accuracy with its
    interval when the pairs have a right answer, else which response was picked how often."""

    label: str
    judgments: int
    correct: int
    unscored: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    users: int
    orders_agreed: int
    pairs_both_scored: int
    picks: dict[str, int]
    per_user: dict[str, float]


@dataclass
class RunView:
    """One run as the viewer shows it (see the module docstring)."""

    source: str
    command: str
    status: str
    log_version: int | None
    started: str | None = None
    finished: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, Any] = field(default_factory=dict)
    cost: Cost | None = None
    costs: dict[str, Cost] = field(default_factory=dict)
    counts: Counts | None = None
    error: str | None = None
    judgments: list[Judgment] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    train_sizes: dict[str, int] = field(default_factory=dict)
    judges: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def users(self) -> list[str]:
        """Every user with a judgment, in id order (``(none)`` for judgments without one)."""
        return sorted({user_of(j) for j in self.judgments})


NO_USER = "(none)"


def user_of(judgment: Judgment) -> str:
    """The judgment's user as the viewer lists it."""
    return judgment.user_id or NO_USER


def group_label(judgment: Judgment) -> str:
    """A judgment's method, with the persona side when it has one (``persona · chosen``)."""
    return judgment.method if judgment.side is None else f"{judgment.method} · {judgment.side}"


def summarise(judgments: list[Judgment], *, seed: int = 0, confidence: float = 0.95,
              resamples: int = 2000) -> list[Group]:
    """One :class:`Group` per method (and side), in the order they first appear; the bootstrap
    draws the same stream the commands' summaries do (labelled by side, else by method), so
    the intervals are the ones the command printed."""
    by_label: dict[str, list[Judgment]] = {}
    for judgment in judgments:
        by_label.setdefault(group_label(judgment), []).append(judgment)
    groups = []
    for label, rows in by_label.items():
        truth = any(j.correct is not None for j in rows)
        picks = dict(Counter(j.picked or "unscored" for j in rows).most_common())
        if truth:
            stream = rows[0].side or rows[0].method
            stats, _ = pair_stats(rows, label=stream, seed=seed, confidence=confidence, resamples=resamples)
            groups.append(Group(label, stats.judgments, stats.correct, stats.unscored, finite(stats.accuracy),
                                finite(stats.ci_low), finite(stats.ci_high), stats.users, stats.orders_agreed,
                                stats.pairs_both_scored, picks, dict(stats.per_user)))
        else:
            unscored = sum(not j.scored for j in rows)
            groups.append(Group(label, len(rows), 0, unscored, None, None, None,
                                len({j.user_id for j in rows}), 0, 0, picks, {}))
    return groups


def _ledger_rows(path: Path) -> list[Judgment]:
    """The judgments of a ledger (or a ``judge`` output file): the last row of each key, the
    header, other rows (personas inferred on the way) and a torn last line skipped."""
    rows: dict[str, Judgment] = {}
    for number, row in enumerate(read_jsonl_rows(path), start=1):
        if not isinstance(row, dict) or not {"first", "chosen_first", "a_first", "preferred"} & row.keys():
            continue
        try:
            judgment = Judgment.model_validate(row)
        except ValueError as exc:
            raise DataError(f"not a judgment: {exc}", source=str(path), record=number) from None
        rows[str(row.get("key") or f"{number}")] = judgment
    return list(rows.values())


def _from_log(path: Path) -> RunView:
    log = read_log(path, RunLog[dict[str, Any], dict[str, Any]])
    view = RunView(source=str(path), command=log.command, status=log.status, log_version=log.version,
                   started=log.started.isoformat(timespec="seconds"),
                   finished=None if log.finished is None else log.finished.isoformat(timespec="seconds"),
                   config=dict(log.config), versions=dict(log.versions), cost=log.cost, costs=dict(log.costs),
                   counts=log.counts, error=log.error, judgments=list(log.judgments))
    users = log.results.get("users") if isinstance(log.results, dict) else None
    if isinstance(users, list):
        view.train_sizes = {str(u["user_id"]): int(u.get("n_train", 0)) for u in users
                            if isinstance(u, dict) and "user_id" in u}
    if not view.judgments:   # a run still going, or killed: its ledger holds what it finished
        for ledger in (path.with_name(JUDGMENTS_FILE), path.with_name(path.name.removesuffix(".run.json"))):
            if ledger != path and ledger.is_file() and ledger.suffix == ".jsonl":
                view.judgments = _ledger_rows(ledger)
                view.notes.append(f"judgments read from {ledger.name}: the run log holds none yet")
                break
    return view


def _from_ledger(path: Path) -> RunView:
    header: dict[str, Any] = {}
    with path.open(encoding="utf-8") as handle:
        first = handle.readline()
    try:
        header = json.loads(first) if first.strip() else {}
    except ValueError:
        header = {}
    command = str(header.get("kind") or "judge") if isinstance(header, dict) else "judge"
    view = RunView(source=str(path), command=command, status="unknown", log_version=None,
                   config=dict(header.get("fingerprint") or {}) if isinstance(header, dict) else {},
                   judgments=_ledger_rows(path))
    view.notes.append(f"no run log: read from the ledger {path.name} (a run of an earlier version, or one "
                      "that never finished); status, cost and counts are unknown")
    return view


def _from_judges(folder: Path) -> RunView:
    from personae.programs import PersonalizedJudge

    judges = []
    total = Cost()
    for file in sorted(folder.glob("*.json")):
        if file.name == "run.json":
            continue
        try:
            judge = PersonalizedJudge.load(file)
        except Exception as exc:   # noqa: BLE001 - a file that is not a judge is said, not fatal
            judges.append({"user_id": file.stem, "error": f"{type(exc).__name__}: {exc}"})
            continue
        cost = judge.cost or {}
        total = total + Cost(lm_calls=int(cost.get("lm_calls", 0)), prompt_tokens=int(cost.get("prompt_tokens", 0)),
                             completion_tokens=int(cost.get("completion_tokens", 0)),
                             seconds=float(cost.get("seconds", 0.0)))
        row: dict[str, Any] = {"user_id": judge.user_id, "persona": judge.persona, "n_train": judge.n_train,
                               "n_val": judge.n_val, "val_accuracy": judge.val_accuracy, "preset": judge.preset,
                               "model": judge.model, "demos": len(judge.demos), "created": judge.created,
                               "error": None}
        judges.append(row)
    if not judges:
        raise DataError("no run log, ledger or fitted judges here", source=str(folder))
    return RunView(source=str(folder), command="fit", status="success", log_version=None, cost=total,
                   judges=judges, notes=["a folder of fitted judges (personae fit): one persona per user"])


def load_run(path: str | Path) -> RunView:
    """What a command left at ``path``, as a :class:`RunView` (:class:`DataError` naming the file
    when it is none of them)."""
    target = Path(path)
    if not target.exists():
        raise DataError("no such file or folder", source=str(target))
    if target.is_dir():
        if (target / "run.json").is_file():
            view = _from_log(target / "run.json")
        elif (target / JUDGMENTS_FILE).is_file():
            view = _from_ledger(target / JUDGMENTS_FILE)
        else:
            view = _from_judges(target)
    elif target.name.endswith(".json"):
        view = _from_log(target)
    elif Path(f"{target}.run.json").is_file():   # a judge output file beside its run log
        view = _from_log(Path(f"{target}.run.json"))
    else:
        view = _from_ledger(target)
    seed = view.config.get("seed", 0)
    confidence = view.config.get("confidence", 0.95)
    resamples = int(view.config.get("resamples", 2000) or 2000)
    view.groups = summarise(view.judgments, seed=seed if isinstance(seed, int) else 0,
                            confidence=confidence if isinstance(confidence, float) else 0.95, resamples=resamples)
    return view


_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## \w+ ## \]\]|\Z)", re.S)


def judgment_fields(judgment: Judgment) -> dict[str, str]:
    """The inputs a judge was shown, read back from the last user message it was sent
    (``prompt``, ``response_a``, ``response_b``, ...); empty when the messages were not kept or
    are in another format (the raw messages are shown then)."""
    for message in reversed(judgment.prompt or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            found = {name: text.strip() for name, text in _FIELD.findall(message["content"])}
            if found:
                return found
    return {}


def _outcome(judgment: Judgment) -> str:
    if not judgment.scored:
        return "failed"
    if judgment.correct is None:
        return "no answer key"
    return "right" if judgment.correct else "wrong"


def _charts(view: RunView) -> dict[str, Any]:
    """The CLI's plots as Chart.js configurations: accuracy per method with its interval, per-user
    accuracy by method, and accuracy against the user's training pairs."""
    from personae.web._pages import chart, interval_chart

    scored = [g for g in view.groups if g.accuracy is not None]
    charts: dict[str, Any] = {"methods": None, "users": None, "train": None}
    if scored:
        charts["methods"] = interval_chart([g.label for g in scored], [(g.accuracy, g.ci_low, g.ci_high)
                                                                      for g in scored], y_title="accuracy")
        users = sorted({u for g in scored for u in g.per_user})
        palette = ["#2f5bd3", "#d9822b", "#1f7a3a", "#8e44ad", "#b3261e", "#5b6475"]
        if len(users) <= 60:
            charts["users"] = chart("bar", users, [
                {"label": g.label, "data": [g.per_user.get(u) for u in users],
                 "backgroundColor": palette[k % len(palette)]} for k, g in enumerate(scored)],
                x_title="user", y_title="accuracy (both orders)")
        else:   # too many users for bars: each method's users sorted by accuracy
            charts["users"] = chart("line", list(range(1, len(users) + 1)), [
                {"label": g.label, "data": sorted(g.per_user.values()), "pointRadius": 0,
                 "borderColor": palette[k % len(palette)]} for k, g in enumerate(scored)],
                x_title="users, sorted by accuracy", y_title="accuracy (both orders)")
        if view.train_sizes:
            charts["train"] = chart("scatter", [], [
                {"label": g.label, "backgroundColor": palette[k % len(palette)],
                 "borderColor": palette[k % len(palette)], "pointRadius": 5,
                 "data": [{"x": view.train_sizes[u], "y": acc} for u, acc in sorted(g.per_user.items())
                          if u in view.train_sizes]} for k, g in enumerate(scored)],
                x_title="training pairs of the user", y_title="accuracy (both orders)")
    return charts


def viewer_app(view: RunView) -> Any:
    """A read-only app over one run (``personae view``), for loopback only."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Mount, Route

    from personae.web._pages import page, static_files

    charts = _charts(view)
    labels = [g.label for g in view.groups]
    users = view.users
    per_user = {u: {g.label: g.per_user.get("" if u == NO_USER else u) for g in view.groups} for u in users}

    async def overview(request: Request) -> Response:
        return page("run.html", static="static", view=view, charts=charts, users=users, per_user=per_user,
                    labels=labels, tab="overview")

    async def judgments(request: Request) -> Response:
        params = request.query_params
        user = params.get("user", "")
        method = params.get("method", "")
        outcome = params.get("outcome", "all")
        outcome = outcome if outcome in OUTCOMES else "all"
        try:
            number = max(1, int(params.get("page", "1")))
        except ValueError:
            number = 1
        rows = [(i, j) for i, j in enumerate(view.judgments, start=1)
                if (not user or user_of(j) == user) and (not method or group_label(j) == method)
                and (outcome == "all" or _outcome(j) == outcome)]
        pages = max(1, math.ceil(len(rows) / PAGE))
        number = min(number, pages)
        shown = [(i, j, _outcome(j), judgment_fields(j)) for i, j in rows[(number - 1) * PAGE: number * PAGE]]

        def link(to: int) -> str:
            from urllib.parse import urlencode

            return "?" + urlencode({"user": user, "method": method, "outcome": outcome, "page": to})

        return page("judgments.html", static="static", view=view, rows=shown, matched=len(rows), user=user,
                    method=method, outcome=outcome, outcomes=OUTCOMES, users=users, labels=labels, number=number,
                    pages=pages, link=link, tab="judgments")

    return Starlette(routes=[Route("/", overview), Route("/judgments", judgments),
                             Mount("/static", static_files(), name="static")],
                     middleware=[Middleware(TrustedHostMiddleware,
                                            allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"])])
