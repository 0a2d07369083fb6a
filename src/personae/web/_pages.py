"""What the console and the viewer share: the templates (Jinja2, every value escaped), the static
files shipped in the package, the security headers of every page, and the chart and diff data
the templates draw (Chart.js, vendored under ``static/vendor``: no CDN, works offline)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import jinja2
    from starlette.responses import HTMLResponse
    from starlette.staticfiles import StaticFiles
except ImportError as exc:  # pragma: no cover - the extra is named in the error
    from personae.errors import MissingExtraError

    raise MissingExtraError("service", "the console and the run viewer") from exc

__all__ = ["STATIC_DIR", "chart", "interval_chart", "page", "pct", "static_files", "word_diff"]

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"

# Scripts and styles come from this origin only; no inline script runs (chart data is JSON).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def pct(value: float | None, digits: int = 1) -> str:
    """``0.625`` as ``62.5%``; an en dash for None."""
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def when(value: str | float | datetime | None) -> str:
    """A time as ``2026-12-07 06:49 UTC`` (ISO text, epoch seconds or a datetime)."""
    if value is None or value == "":
        return "–"
    moment: datetime
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


_ENV = jinja2.Environment(loader=jinja2.PackageLoader("personae.web", "templates"),
                          autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["pct"] = pct
_ENV.filters["when"] = when


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page rendered from ``template`` with the security headers."""
    html = _ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def static_files() -> StaticFiles:
    """The package's static files (CSS, the page script, Chart.js)."""
    return StaticFiles(directory=STATIC_DIR)


def chart(kind: str, labels: Sequence[Any], datasets: Sequence[Mapping[str, Any]], *, percent: bool = True,
          x_title: str | None = None, y_title: str | None = None, **options: Any) -> dict[str, Any]:
    """A Chart.js configuration as data (``percent``: the y axis is a share, shown as %)."""
    scales: dict[str, Any] = {}
    if x_title:
        scales["x"] = {"title": {"display": True, "text": x_title}}
    if y_title:
        scales["y"] = {"title": {"display": True, "text": y_title}}
    return {"type": kind, "percent": percent, "data": {"labels": list(labels), "datasets": list(datasets)},
            "options": {"scales": scales, **options}}


def interval_chart(labels: Sequence[str], rows: Sequence[tuple[float | None, float | None, float | None]], *,
                   y_title: str) -> dict[str, Any]:
    """Accuracy per label with its interval: a floating bar from low to high, the accuracy a point."""
    return chart("bar", labels, [
        {"type": "bar", "label": "95% interval", "data": [[lo, hi] if lo is not None and hi is not None else None
                                                           for _, lo, hi in rows],
         "backgroundColor": "rgba(47, 91, 211, 0.25)", "borderColor": "rgba(47, 91, 211, 0.6)", "borderWidth": 1},
        {"type": "line", "label": "accuracy", "data": [acc for acc, _, _ in rows], "showLine": False,
         "pointRadius": 6, "backgroundColor": "#1d2330", "borderColor": "#1d2330"},
    ], y_title=y_title)


_TOKENS = re.compile(r"\s+|[^\s]+")


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """The word-level difference of two texts as ``(op, text)`` runs, ``op`` one of ``same``,
    ``del`` and ``ins`` (the template escapes the text)."""
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            out.append(("del", "".join(a[i1:i2])))
        if op in ("insert", "replace"):
            out.append(("ins", "".join(b[j1:j2])))
    return out
