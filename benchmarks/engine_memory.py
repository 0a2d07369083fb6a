"""Memory of the embedded engine over a long run of judge calls.

llama.cpp keeps the KV states of earlier prompts in host memory so that a later prompt with
the same prefix is read faster; its own default bound is 8 GiB, under which a long run grows
by megabytes per call. ``LlamaCppEngine`` bounds it (``cache_ram_mib``, 256 MiB by default).
This script judges distinct PRISM pairs with the embedded model, one process, no DSPy cache,
and prints the resident memory (``VmRSS``) and its peak (``VmHWM``) every ``--every`` calls,
then the growth per call over the first and the second half of the run::

    python benchmarks/engine_memory.py --calls 300
    python benchmarks/engine_memory.py --calls 300 --cache-ram-mib 8192   # llama.cpp's default

Target: with the default bound, memory levels off (growth per call in the second half near
zero) instead of growing with the number of calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]


def _memory_mib() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MiB
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "prism" / "pairs.jsonl"))
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--cache-ram-mib", type=int, default=None,
                        help="llama.cpp's host prompt-cache bound (default: the engine's own, 256)")
    parser.add_argument("--clip-chars", type=int, default=1200, help="clip each text to this length")
    args = parser.parse_args(argv)

    import dspy

    from personae.data import load_preferences
    from personae.lm import LOCAL_MODEL_NAME, LlamaCppEngine, default_adapter
    from personae.programs import DefaultJudge
    from personae.signatures import clip

    records = [r for r in load_preferences(args.data)][: args.calls]
    if len(records) < args.calls:
        print(f"only {len(records)} pairs in {args.data}", file=sys.stderr)
    engine = LlamaCppEngine(**({} if args.cache_ram_mib is None else {"cache_ram_mib": args.cache_ram_mib}))
    lm = dspy.LM(LOCAL_MODEL_NAME, engine=engine, temperature=0.0, max_tokens=256, cache=False, num_retries=0)
    judge = DefaultJudge(attempts=1)  # memory of one call a record: no retries
    print(f"cache_ram_mib={engine.cache_ram_mib}; {len(records)} calls")
    print(f"{'calls':>6} {'rss MiB':>9} {'peak MiB':>9} {'s':>7}")
    marks: list[tuple[int, float]] = []
    start = time.perf_counter()
    failed = 0
    with dspy.context(lm=lm, adapter=default_adapter()):
        for i, r in enumerate(records, 1):
            try:
                judge(prompt=clip(r.prompt, args.clip_chars), response_a=clip(r.chosen, args.clip_chars),
                      response_b=clip(r.rejected, args.clip_chars))
            except Exception:  # an unparseable answer still ran the model; memory is the point here
                failed += 1
            if i % args.every == 0 or i == len(records):
                rss, peak = _memory_mib()
                marks.append((i, rss))
                print(f"{i:>6} {rss:>9.0f} {peak:>9.0f} {time.perf_counter() - start:>7.0f}", flush=True)
    half = len(marks) // 2
    if half >= 1 and len(marks) > half + 1:
        (c0, m0), (c1, m1), (c2, m2) = marks[0], marks[half], marks[-1]
        print(f"growth: {(m1 - m0) / (c1 - c0):.2f} MiB/call over calls {c0}-{c1}, "
              f"{(m2 - m1) / (c2 - c1):.2f} MiB/call over calls {c1}-{c2}; {failed} unparsed answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
