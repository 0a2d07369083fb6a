"""What the run layer promises, tried at full size on the real command line; prints what held.

    python benchmarks/reliability.py [--kills 20] [--fault-rate 0.2] [--seed 0]

Every run is ``personae ...`` in a child process forked from this one, against a
fault-injecting OpenAI-compatible server on 127.0.0.1 (``tests/fault_server.py``), no request
cache. Five areas:

* **SIGKILL**: ``--kills`` kills at random moments spread over ``infer-personas``, ``judge --out``,
  ``fit``, ``evaluate`` and ``eval-personas``; after resuming, each output must equal that of
  an uninterrupted run, no ledger key may repeat, and the LM calls made again must stay within
  those that can have been in flight (kills x concurrency x calls per item);
* **faults**: ``--fault-rate`` of requests fail (HTTP 500, HTTP 429, answers slower than the
  1 s timeout, non-JSON, truncated JSON, a value outside the Literal, dropped connections): every
  run completes and succeeded + failed = total, with the failures counted by kind;
* **malformed input**: every file of the corpus in ``tests/test_malformed_input.py`` (jsonl,
  gzipped jsonl, json, csv, parquet, datasets folders) exits 2 with one line naming the file,
  record and field, never a traceback; ``--skip-invalid`` lists each skip;
* **secrets**: an API key given by flag and another in the environment appear in no file any
  command wrote (outputs, ledgers, run logs, judges, a saved program, logs at -v, the request
  cache);
* **prompt injection**: records whose texts carry answer-format markers, JSON objects and
  "ignore previous instructions" (and a model that quotes them back) are all scored, and no
  user's text reaches another user's judge or judgments.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from personae.testing import FAULT_KINDS, Faults, fault_server
from personae.testing import malformed as corpus
from personae.testing import reliability as rel


def _table(header: list[str], rows: list[list[object]]) -> str:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def kills(root: Path, data: Path, total: int, seed: int) -> bool:
    print(f"\n## SIGKILL: {total} kills at random moments over five commands, then resume")
    rng = random.Random(seed)
    per = [total // len(rel.COMMANDS) + (i < total % len(rel.COMMANDS)) for i in range(len(rel.COMMANDS))]
    rows, reports = [], []
    with fault_server(Faults(delay_s=0.03)) as server:
        for command, n in zip(rel.COMMANDS, per, strict=True):
            report = rel.kill_and_resume(command, data, root / "kills", server, kills=n, rng=rng)
            reports.append(report)
            rows.append([command, report.kills, report.sequences, f"{report.seconds_baseline:.1f}",
                         report.calls_baseline, report.calls_again, report.bound, report.duplicate_rows,
                         "same" if report.same_output else "DIFFERENT", "held" if report.held else "FAILED"])
    print(_table(["command", "kills", "runs to the end", "s uninterrupted", "calls uninterrupted", "calls again",
                  "in-flight bound", "repeated keys", "output", ""], rows))
    landed = sum(r.kills for r in reports)
    print(f"kills landed: {landed}; outputs equal to the uninterrupted run's: "
          f"{sum(r.same_output for r in reports)}/{len(reports)}")
    return rel.check_all(reports) and landed >= total


def faults(root: Path, data: Path, rate: float, seed: int) -> bool:
    print(f"\n## faults: {rate:.0%} of requests fail, kinds {', '.join(FAULT_KINDS)}; 3 attempts, 1 s timeout")
    rows, reports = [], []
    injected_all: dict[str, int] = {}
    with fault_server(Faults(rate=rate, seed=seed, slow_s=1.5)) as server:
        for command in rel.COMMANDS:
            report = rel.under_faults(command, data, root / "faults", server)
            reports.append(report)
            for kind, n in report.injected.items():
                injected_all[kind] = injected_all.get(kind, 0) + n
            injected = ", ".join(f"{n} {k}" for k, n in sorted(report.injected.items()))
            failures = ", ".join(f"{n} {k}" for k, n in report.failures.items()) or "-"
            rows.append([command, report.status, report.total, report.succeeded, report.failed, failures,
                         injected, "held" if report.held else "FAILED"])
    print(_table(["command", "exit", "items", "succeeded", "failed", "failed by kind", "faults injected", ""],
                 rows))
    print("faults injected in all: " + ", ".join(f"{n} {k}" for k, n in sorted(injected_all.items())))
    return rel.check_all(reports) and set(injected_all) == set(FAULT_KINDS)


def malformed(root: Path) -> bool:
    print(f"\n## malformed input: {len(corpus.CASES)} broken files, each run through `personae judge`")
    import datasets

    datasets.disable_progress_bars()
    folder = root / "malformed"
    folder.mkdir(parents=True)
    held = tried = listed = listed_ok = 0
    failures = []
    formats: dict[str, int] = {}
    for case in corpus.CASES:
        path = folder / case.name
        case.build(path)
        formats[case.format] = formats.get(case.format, 0) + 1
        base = ["judge", str(path), "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1", "--lm-retries", "0",
                "--max-attempts", "1", *case.args]
        run = rel.run_child(base, root / "malformed-logs")
        tried += 1
        source = corpus.source_of(case, path)
        expected = corpus.where(source, case.record, case.field)
        lines = run.stderr.splitlines()
        ok = (run.status == 2 and len(lines) == 1 and lines[0].startswith(f"personae: error: {expected}: ")
              and "Traceback" not in run.stdout + run.stderr)
        held += ok
        if not ok:
            failures.append(f"{case.id}: exit {run.status}, {lines[:2]}")
        if case.skips and case.good:
            run = rel.run_child([*base, "--skip-invalid"], root / "malformed-logs")
            listed += 1
            skipped = [line for line in run.stderr.splitlines() if line.startswith("personae: skipped ")][1:]
            want = [corpus.where(source, record, field) for record, field in case.skips]
            listed_ok += len(skipped) == len(want) and all(w in line for w, line in zip(want, skipped, strict=True))
    print("files by format: " + ", ".join(f"{n} {k}" for k, n in sorted(formats.items())))
    print(f"exit 2 with one line naming file, record and field, no traceback: {held}/{tried}")
    print(f"--skip-invalid listing every skipped record: {listed_ok}/{listed} files with good and bad records")
    for line in failures[:10]:
        print(f"  FAILED {line}")
    return held == tried and listed_ok == listed


def secrets(root: Path, data: Path) -> bool:
    print("\n## secrets: a key by --api-key and another in OPENAI_API_KEY, request cache on, -v logs")
    with fault_server() as server:
        report = rel.secrets_stay_secret(data, root, server)
    print(f"commands: {', '.join(rel.SECRET_COMMANDS)}; files written and searched: {report.files}; "
          f"files holding a key: {len(report.leaks)}")
    for leak in report.leaks[:10]:
        print(f"  LEAK {leak}")
    return report.held


def injection(root: Path, users: int) -> bool:
    print("\n## prompt injection: answer markers, JSON objects and instructions in every record, quoted back")
    data = rel.write_data(root / "injected.jsonl", users=users, pairs=8, inject=True)
    with fault_server(Faults(echo_input=True)) as server:
        report = rel.injection_holds(data, root, server, users=users)
    print(f"fit + evaluate (default, memory) over {users} users: {report.judgments} judgments, "
          f"{report.unscored} unscored; another user's text found in {len(report.crossed)} artifacts")
    for line in report.crossed[:10]:
        print(f"  CROSSED {line}")
    return report.held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rel.prepare_children()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="personae-reliability-") as tmp:
        root = Path(tmp)
        data = rel.write_data(root / "pairs.jsonl", users=args.users, pairs=8)
        results = {
            "SIGKILL": kills(root, data, args.kills, args.seed),
            "faults": faults(root, data, args.fault_rate, args.seed),
            "malformed input": malformed(root),
            "secrets": secrets(root, data),
            "prompt injection": injection(root, args.users),
        }
    print(f"\n## summary ({time.monotonic() - started:.0f} s)")
    for area, held in results.items():
        print(f"{area}: {'held' if held else 'FAILED'}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
