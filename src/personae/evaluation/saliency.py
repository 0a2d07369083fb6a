"""Which words set chosen-side personas apart from rejected-side ones.

Word saliency is the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi and
Quinn 2008, "Fightin' Words"): for word ``w`` with counts ``y_c`` in the chosen personas and
``y_r`` in the rejected ones (``n_c``, ``n_r`` words in all), and prior counts ``a_w`` taken
from both sides pooled (``a_0`` in all),

    delta_w = log((y_c + a_w) / (n_c + a_0 - y_c - a_w)) - log((y_r + a_w) / (n_r + a_0 - y_r - a_w))
    z_w     = delta_w / sqrt(1 / (y_c + a_w) + 1 / (y_r + a_w))

``z_w > 0`` leans to the chosen side, ``< 0`` to the rejected side; |z| above about 1.96 is
unlikely under no difference. The prior shrinks rare words toward zero, so frequent,
lopsided words rank first. Tokens are lowercase words (hyphenated compounds kept whole),
without a small stopword list and without tokens shorter than 3 characters.

::

    words = persona_saliency(chosen_personas, rejected_personas, top=20)
    write_saliency_report(words, "out/")   # out/saliency.md and out/saliency.png
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from personae.errors import ConfigError

__all__ = ["STOPWORDS", "SalientWord", "persona_saliency", "saliency_table", "saliency_tokens",
           "write_saliency_report"]

STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each even ever every few for from further had
has have having he her here hers herself him himself his how however i if in into is it its itself just
may me might more most much must my myself no nor not now of off on once only or other ought our ours
ourselves out over own rather same shall she should so some such than that the their theirs them
themselves then there these they this those through thus to too under until up upon us very was we were
what when where whether which while who whom whose why will with within without would yet you your yours
yourself yourselves
""".split())
"""Common English function words left out of the counts."""

_TOKEN = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")
_MIN_LENGTH = 3
SALIENCY_FILES = ("saliency.md", "saliency.png")


@dataclass(frozen=True)
class SalientWord:
    """A word and the side it leans to; ``score`` is the z-score (positive: chosen, negative: rejected)."""

    word: str
    side: str
    score: float
    chosen_count: int
    rejected_count: int


def saliency_tokens(text: str) -> list[str]:
    """The word tokens counted: lowercase, a trailing ``'s`` dropped, no stopwords, 3+ characters."""
    out = []
    for token in _TOKEN.findall(text.lower()):
        token = re.sub(r"['’]s$", "", token)
        if len(token) >= _MIN_LENGTH and token not in STOPWORDS:
            out.append(token)
    return out


def _counts(texts: Iterable[str | None]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        if isinstance(text, str) and text.strip():
            counts.update(saliency_tokens(text))
    return counts


def persona_saliency(chosen_personas: Iterable[str | None], rejected_personas: Iterable[str | None], *,
                     top: int = 20, min_count: int = 3, prior_scale: float = 1.0) -> list[SalientWord]:
    """The ``top`` most salient words of each side, chosen side first, each side by |z| descending.

    Blank or missing personas are ignored. A word counts only when it occurs at least
    ``min_count`` times over both sides. The prior is the pooled counts times ``prior_scale``.
    Words that do not lean either way (z = 0) are left out.
    """
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    if prior_scale <= 0:
        raise ConfigError(f"prior_scale must be positive, got {prior_scale}")
    chosen, rejected = _counts(chosen_personas), _counts(rejected_personas)
    n_chosen, n_rejected = sum(chosen.values()), sum(rejected.values())
    pooled = chosen + rejected
    alpha_0 = prior_scale * (n_chosen + n_rejected)
    scored: list[SalientWord] = []
    for word, total in pooled.items():
        if total < min_count:
            continue
        y_c, y_r, a_w = chosen[word], rejected[word], prior_scale * total
        delta = (math.log((y_c + a_w) / (n_chosen + alpha_0 - y_c - a_w))
                 - math.log((y_r + a_w) / (n_rejected + alpha_0 - y_r - a_w)))
        z = delta / math.sqrt(1 / (y_c + a_w) + 1 / (y_r + a_w))
        if z != 0:
            scored.append(SalientWord(word, "chosen" if z > 0 else "rejected", z, y_c, y_r))
    chosen_side = sorted((w for w in scored if w.side == "chosen"), key=lambda w: (-w.score, w.word))
    rejected_side = sorted((w for w in scored if w.side == "rejected"), key=lambda w: (w.score, w.word))
    return chosen_side[:top] + rejected_side[:top]


def saliency_table(words: Sequence[SalientWord]) -> str:
    """A markdown table of the words: word, side, z-score, and the count on each side."""
    lines = ["| word | side | z | chosen count | rejected count |", "|---|---|---:|---:|---:|"]
    lines += [f"| {w.word} | {w.side} | {w.score:+.2f} | {w.chosen_count} | {w.rejected_count} |" for w in words]
    return "\n".join(lines)


def write_saliency_report(words: Sequence[SalientWord], out_dir: str | os.PathLike[str]) -> Path:
    """Write ``saliency.md`` (a table) and ``saliency.png`` (a bar chart) into ``out_dir``; return the .md path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = out / SALIENCY_FILES[1]
    _bar_chart(words, png)
    text = ["# Persona word saliency", "",
            "Log-odds ratio with an informative Dirichlet prior (Monroe et al. 2008): z > 0 leans to the "
            "chosen-side personas, z < 0 to the rejected-side ones.", ""]
    text += [saliency_table(words) if words else "No word passed the count threshold.", "",
             f"![word saliency]({png.name})", ""]
    md = out / SALIENCY_FILES[0]
    md.write_text("\n".join(text), encoding="utf-8")
    return md


def _bar_chart(words: Sequence[SalientWord], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ordered = sorted(words, key=lambda w: w.score)  # rejected side at the bottom, chosen at the top
    fig = Figure(figsize=(7.0, max(3.0, 0.28 * len(ordered) + 1.5)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if ordered:
        colors = ["tab:blue" if w.side == "chosen" else "tab:orange" for w in ordered]
        ax.barh(range(len(ordered)), [w.score for w in ordered], color=colors)
        ax.set_yticks(range(len(ordered)))
        ax.set_yticklabels([w.word for w in ordered], fontsize=8)
        ax.axvline(0, color="black", linewidth=0.8)
        for bound in (-1.96, 1.96):
            ax.axvline(bound, color="grey", linestyle=":", linewidth=1)
    else:
        ax.text(0.5, 0.5, "no word passed the count threshold", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("z-score of the log-odds ratio (chosen > 0 > rejected)")
    ax.set_title("Words that set chosen-side personas apart from rejected-side ones")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
