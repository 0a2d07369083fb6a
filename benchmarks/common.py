"""What several benchmarks share: tables, percentiles, clipped records, a simulated LM server."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

__all__ = ["clip_record", "percentiles", "simulated_server", "table"]


def clip_record(record: Any, chars: int) -> Any:
    """``record`` with every text clipped to ``chars`` characters (0: as it is)."""
    from personae.data import Turn
    from personae.signatures import clip

    if not chars:
        return record
    return replace(record, context=[Turn(t.role, clip(t.content, chars)) for t in record.context],
                   chosen=clip(record.chosen, chars), rejected=clip(record.rejected, chars))


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned, a rule under the header."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """The median and the 99th percentile of ``samples`` (seconds), in milliseconds."""
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000)


def simulated_server(latency: float) -> Any:
    """An OpenAI-compatible server that answers every judgment after ``latency`` seconds: the shorter response."""
    from personae.testing import stub_server

    def answer(body: dict[str, Any]) -> tuple[int, str]:
        time.sleep(latency)
        user = body["messages"][-1]["content"]
        first = user.split("response_a ## ]]\n", 1)[-1].split("\n", 1)[0]
        second = user.split("response_b ## ]]\n", 1)[-1].split("\n", 1)[0]
        preferred = "A" if len(first) <= len(second) else "B"
        return 200, json.dumps({"reasoning": "the shorter one", "preferred": preferred})

    return stub_server(answer)
