"""What fitting a SynthesizeMe judge costs: the default preset against the paper preset.

The embedded SmolLM2-135M model is served by llama.cpp's OpenAI-compatible HTTP server on
127.0.0.1, and every call goes to it through LiteLLM (``openai/smollm2`` with ``api_base``),
as a call to a real model server would. For N users of the PRISM pairs with 10 to 50 pairs
(``--min-pairs``, ``--max-pairs``), each preset fits a judge (train and validation sides of the
evaluation split; test pairs unseen) and the script prints, per preset: LM calls, prompt and
completion tokens and seconds per user fit, and mean validation accuracy, then each user's
default/paper ratios.

``--pick longest`` (the default) takes the users with the longest histories, the ones a
personalized judge is fitted for; ``--pick first`` the first users in the file. The paper
preset's cost grows with the history (every train pair verified, 13 candidate demo sets over
every validation pair) while the default's is bounded, so the ratio falls as histories grow
(measured: about a quarter on the first three users in the file, 10-17 pairs; a tenth of the
calls and a twentieth of the time on a 47-pair history).

Validation accuracy is where each preset chose its demo set, so it favours the preset that
tried more candidates (23 against 2); the test accuracy column judges every fitted judge on the
user's unseen test pairs in both orders and compares the presets on equal terms. The script
also prints what a constant judge (always "first", or always "second") scores on validation:
each validation pair is shown in one order, so a position-biased model's candidates start
from that floor. Results are appended to
``--out/results.jsonl`` as they come and a re-run skips (preset, user) pairs already done.

    python benchmarks/fit_cost.py --users 3
    python benchmarks/fit_cost.py --presets default:candidates=4,paper:prune=false

A preset may carry settings of :class:`personae.optimizers.Preset` after colons; every preset
is compared with the last one listed.

PRISM responses run to thousands of characters, and on two CPU cores the embedded model reads
about 180 tokens a second; ``--clip-chars`` (600 by default, 0 for none) shortens every
prompt and response the same way for both presets so the paper preset finishes in minutes.
Free-text output fields carry a ``maxLength`` in the response schema (``--max-field-chars``,
600 by default, the cap the embedded engine applies in-process), so the small model closes
its JSON instead of running into the token cap.

Target: the default preset uses at most a fifth of the paper preset's LM calls and time per
user, at equal or better validation accuracy. (With a 135M model both accuracies are near
chance; the cost figures are the point.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]


def _test_accuracy(judge, user, lm) -> dict:  # type: ignore[no-untyped-def]
    """The fitted judge on the user's unseen test pairs, both orders; a failed call counts wrong.

    Validation accuracy is where each preset picked its demo set, so it flatters the preset
    that tried more candidates; test accuracy compares the two on equal terms.
    """
    from personae.data import split_user

    correct = judgments = 0
    for record in split_user(user.records, (0.5, 0.2, 0.3)).test:
        for chosen_first in (True, False):
            a, b = (record.chosen, record.rejected) if chosen_first else (record.rejected, record.chosen)
            judgments += 1
            try:
                verdict = judge.compare(record.prompt, a, b, lm=lm)
            except Exception:
                continue
            correct += (verdict.preferred == "A") == chosen_first
    return {"test_correct": correct, "test_judgments": judgments}


def _constant_val(user, seed: int = 0) -> float:  # type: ignore[no-untyped-def]
    """Validation accuracy of the better constant judge (always "first" or always "second").

    Each validation pair is shown in one order, so a judge that ignores the texts and answers
    by position scores the share of pairs shown in its favoured order: the floor that demo
    selection on a position-biased model starts from.
    """
    from personae.data import split_user
    from personae.optimizers import DemoSearch

    val = split_user(user.records, (0.5, 0.2, 0.3)).val
    first = sum(DemoSearch(seed=seed).shows_chosen_first(r) for r in val)
    return max(first, len(val) - first) / len(val) if val else float("nan")


def _fitter(spec: str):  # type: ignore[no-untyped-def]
    """``name`` or ``name:field=value:...`` (values read as JSON, else as text)."""
    from personae.optimizers import SynthesizeMe, preset_overrides

    name, *settings = spec.split(":")
    return SynthesizeMe(name, num_threads=1, **preset_overrides(settings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "prism" / "pairs.jsonl"))
    parser.add_argument("--users", type=int, default=3, help="users to fit (default 3)")
    parser.add_argument("--min-pairs", type=int, default=10)
    parser.add_argument("--max-pairs", type=int, default=50,
                        help="skip users with more pairs (default 50; the paper preset on PRISM's longest "
                             "history, 72 pairs, takes most of an hour on two cores)")
    parser.add_argument("--pick", choices=("longest", "first"), default="longest",
                        help="the users with the most pairs (default) or the first ones in the file")
    parser.add_argument("--presets", default="default,paper",
                        help="comma-separated presets; a preset may carry settings, e.g. default:candidates=4")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--max-field-chars", type=int, default=600,
                        help="maxLength of free-text fields in the response schema, as the embedded engine's "
                             "own cap (default 600)")
    parser.add_argument("--no-test", dest="test", action="store_false",
                        help="skip judging each fitted judge on the user's test pairs")
    parser.add_argument("--clip-chars", type=int, default=600, help="clip each text to this length (0: none)")
    parser.add_argument("--out", default=str(ROOT / "runs" / "fit_cost"))
    args = parser.parse_args(argv)
    os.environ.setdefault("DSPY_CACHEDIR", str(Path(args.out) / "dspy_cache"))

    from personae.data import append_jsonl, load_preferences, read_jsonl_rows, select_users
    from personae.lm import LlamaCppEngine, get_lm
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = {(r["preset"], r["user_id"]): r for r in read_jsonl_rows(results_path)}
    users = select_users(load_preferences(args.data), min_pairs=args.min_pairs)
    users = [u for u in users if not args.max_pairs or len(u.records) <= args.max_pairs]
    users = select_users(users, top=args.users) if args.pick == "longest" else users[: args.users]
    if args.clip_chars:
        from dataclasses import replace

        from personae.data import Turn, UserHistory
        from personae.signatures import clip

        def shorten(r):  # type: ignore[no-untyped-def]
            return replace(r, context=[Turn(t.role, clip(t.content, args.clip_chars)) for t in r.context],
                           chosen=clip(r.chosen, args.clip_chars), rejected=clip(r.rejected, args.clip_chars))

        users = [UserHistory(u.user_id, [shorten(r) for r in u.records], u.profile) for u in users]
    engine = LlamaCppEngine(n_ctx=8192)
    lm = get_lm("openai/smollm2", api_base=engine.url, cache=False, structured_output=True,
                max_tokens=args.max_tokens, max_string_chars=args.max_field_chars or None)
    print(f"serving the embedded model at {engine.url}; {len(users)} users", file=sys.stderr)
    for preset in args.presets.split(","):
        for user in users:
            if (preset, user.user_id) in done:
                continue
            judge = _fitter(preset).fit(user, lm=lm)
            judge.save(out / "judges" / preset / f"{user.user_id}.json")
            row = {"preset": preset, "user_id": user.user_id, "pairs": len(user.records),
                   "val_accuracy": judge.val_accuracy, "candidates": judge.candidates_tried, **judge.cost}
            if args.test:
                row.update(_test_accuracy(judge, user, lm))
            append_jsonl(row, results_path)
            done[(preset, user.user_id)] = row
            print(f"{preset:<8} {user.user_id}: {row['lm_calls']} calls, {row['seconds']:.0f} s, "
                  f"val {row['val_accuracy']}", file=sys.stderr, flush=True)

    print(f"{'preset':<8} {'users':>5} {'calls/user':>10} {'prompt tok/user':>15} {'compl tok/user':>14} "
          f"{'s/user':>8} {'val acc':>8} {'test acc (both orders)':>22}")
    summary = {}
    for preset in args.presets.split(","):
        rows = [done[(preset, u.user_id)] for u in users if (preset, u.user_id) in done]
        if not rows:
            continue
        s = {k: statistics.mean(r[k] for r in rows) for k in ("lm_calls", "prompt_tokens", "completion_tokens",
                                                                "seconds")}
        s["val"] = statistics.mean(r["val_accuracy"] or 0.0 for r in rows)
        tested = [r for r in rows if r.get("test_judgments")]
        n_test = sum(r["test_judgments"] for r in tested)
        s["test"] = sum(r["test_correct"] for r in tested) / n_test if n_test else float("nan")
        summary[preset] = s
        test = f"{s['test']:.1%} of {n_test}" if n_test else "-"
        print(f"{preset:<8} {len(rows):>5} {s['lm_calls']:>10.1f} {s['prompt_tokens']:>15,.0f} "
              f"{s['completion_tokens']:>14,.0f} {s['seconds']:>8.1f} {s['val']:>8.1%} {test:>22}")
    specs = args.presets.split(",")
    base = specs[-1]  # every other preset is compared with the last one (the paper preset by default)
    for spec in specs[:-1]:
        for u in users:
            d, p = done.get((spec, u.user_id)), done.get((base, u.user_id))
            if d and p and p["lm_calls"] and p["seconds"]:
                print(f"  {u.user_id} ({len(u.records)} pairs): {spec}/{base} {d['lm_calls'] / p['lm_calls']:.2f} "
                      f"of the calls, {d['seconds'] / p['seconds']:.2f} of the time")
        if spec in summary and base in summary:
            d, p = summary[spec], summary[base]
            print(f"{spec}/{base}: {d['lm_calls'] / p['lm_calls']:.2f} of the calls, "
                  f"{d['seconds'] / p['seconds']:.2f} of the time, validation accuracy "
                  f"{d['val']:.1%} vs {p['val']:.1%}")
    constant = [_constant_val(u) for u in users]
    print(f"a constant judge (always first, or always second, whichever is better) on validation: "
          f"{statistics.mean(constant):.1%} ({', '.join(f'{c:.2f}' for c in constant)})")
    summary["constant_judge_val"] = {"val": statistics.mean(constant)}
    json.dump(summary, open(out / "summary.json", "w"), indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
