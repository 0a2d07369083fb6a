"""A persona-conditioned reward model on PRISM, against the same model without the persona.

Users with at least 10 pairs; each user's prompts, in order of first appearance, split
50/20/30 (train/val/test), every pair of a prompt on its prompt's side; the script checks
that no test prompt occurs in that user's training pairs. In one run it trains and evaluates:

- ``longer response``: the longer response wins (no training);
- ``reward model``: all-MiniLM-L6-v2 fine-tuned with TRL's RewardTrainer, no persona;
- ``reward model + persona``: the same, with the user's persona in its input: the persona
  of the user's fitted SynthesizeMe judge (``--judges``), else the profile text.

Both models train on the train and validation pairs (no setting is chosen on them), and by
default also on the pairs of the users with fewer than 10 pairs (never evaluated; a pair
whose prompt is a test prompt is left out), with the same settings and seed. They are
scored on the same test pairs by the protocol of the LLM judges (both orders, ties wrong,
pair-clustered 95% bootstrap interval), so the table can sit beside the judges' tables. It
prints pooled test accuracy, training seconds and scoring speed, and writes ``run.json`` and
``report.md`` to ``--out``.

    python benchmarks/reward_model.py            # the full run (about 15-20 minutes on 2 cores)
    python benchmarks/reward_model.py --smoke    # 4 users, 3 steps: checks the pipeline in a minute

Targets: the persona model reaches at least 68% pooled test accuracy, is not below the model
without persona, and trains in under 15 minutes on 2 CPU cores. Figures to beat on these
pairs (DESIGN.md): the longer response 66.7%; frozen MiniLM embeddings with log-length
features 66.5%.

PRISM profiles repeat "The person is" before every field; ``--compact-profiles`` (on by
default) drops that phrase so the whole profile fits the persona's 64-token budget.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "prism" / "pairs.jsonl"
TARGET_ACCURACY = 0.68
TARGET_TRAIN_SECONDS = 15 * 60


@dataclass
class BenchmarkConfig:
    """The benchmark's own options; the reward model's come from RewardModelConfig."""

    data: str = field(default=str(DEFAULT_DATA), metadata={"help": "PRISM pairs (jsonl)"})
    min_pairs: int = field(default=10, metadata={"help": "users with at least this many pairs"})
    fractions: str = field(default="0.5,0.2,0.3", metadata={"help": "train,val,test shares of each user's prompts"})
    judges: str | None = field(default=None, metadata={
        "help": "folder of fitted SynthesizeMe judges (personae fit): their personas replace the profiles"})
    compact_profiles: bool = field(default=True, metadata={"help": "drop the repeated 'The person is' of profiles"})
    extra_users: bool = field(default=True, metadata={
        "help": "also train on the pairs of the users with fewer than min_pairs pairs, leaving out any pair whose "
                "prompt is a test prompt (they are never evaluated)"})
    users: int | None = field(default=None, metadata={"help": "only the first N eligible users"})
    dev: bool = field(default=False, metadata={
        "help": "hold out each user's validation (dev) prompts too: train on the train split alone (and the small "
                "users' pairs whose prompt is no dev or test prompt), for scoring.py to score dev pairs"})
    persona_only: bool = field(default=False, metadata={
        "help": "train and score only the persona model (enough to compare settings such as --layers)"})
    smoke: bool = field(default=False, metadata={"help": "4 users, 3 training steps: a quick check of the pipeline"})
    out: str = field(default=str(ROOT / "runs" / "reward_model"), metadata={"help": "folder for run.json, report"})


def compact_profile(text: str) -> str:
    """``The person is male. The person is 25-34 years old.`` -> ``male. 25-34 years old.``"""
    return re.sub(r"\s+", " ", re.sub(r"\b[Tt]he person(?:'s| is)\s+", "", text)).strip()


def persona_map(users: list[Any], judges: str | None, compact: bool) -> tuple[dict[str, str], int]:
    """Each user's persona: the fitted judge's when there is one, else the profile text."""
    from personae.optimizers import PersonalizedJudge, judge_path

    personas, inferred = {}, 0
    for user in users:
        text = ""
        if judges:
            path = judge_path(judges, user.user_id)
            if path.exists():
                text = PersonalizedJudge.load(path).persona.strip()
                inferred += bool(text)
        if not text and user.profile:
            text = compact_profile(user.profile) if compact else user.profile.strip()
        personas[user.user_id] = text
    return personas, inferred


def main(bench: BenchmarkConfig, model_config: Any) -> int:
    from personae.data import load_preferences, parse_fractions, select_users, split_user
    from personae.distill import check_prompt_split, config_values, evaluate_scorers, length_scorer, train_reward_model
    from personae.evaluation import summary_table, write_report, write_run_log

    fractions = parse_fractions(bench.fractions)
    data = load_preferences(bench.data)
    histories = data.by_user()
    users = select_users(histories, min_pairs=bench.min_pairs)
    if bench.smoke:
        users = users[:4]
        bench = replace(bench, extra_users=False)
        model_config = replace(model_config, max_steps=3, logging_steps=1)
    elif bench.users:
        users = users[: bench.users]
    splits = {user.user_id: split_user(user.records, fractions) for user in users}
    n_test = check_prompt_split(splits)
    print(f"{len(users)} users with >= {bench.min_pairs} pairs; split by prompt {bench.fractions}; "
          f"checked: none of the {n_test} test pairs has a prompt from its user's train/val pairs", flush=True)
    train = [r for split in splits.values() for r in split.train + ([] if bench.dev else split.val)]
    if bench.extra_users:
        evaluated = {user.user_id for user in users}
        small = [h for h in histories.values() if len(h.records) < bench.min_pairs and h.user_id not in evaluated]
        test_prompts = {r.prompt.strip() for split in splits.values()
                        for r in split.test + (split.val if bench.dev else [])}
        extra = [r for history in small for r in history.records if r.prompt.strip() not in test_prompts]
        print(f"plus {len(extra)} pairs of {len(small)} users with fewer than {bench.min_pairs} pairs "
              "(no test prompt among them)", flush=True)
        train += extra
    personas, inferred = persona_map(list(histories.values()), bench.judges, bench.compact_profiles)
    print(f"personas: {inferred} inferred (SynthesizeMe), the others the profile text", flush=True)

    def persona_of(record: Any) -> str:
        return personas.get(record.user_id or "", "")

    models: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for name, spec in (("reward model", "none"), ("reward model + persona", "profile")):
        if bench.persona_only and spec == "none":
            continue
        config = replace(model_config, persona=spec)
        print(f"training {name!r} on {len(train)} pairs ...", flush=True)
        training = train_reward_model(train, config, personas=personas if spec != "none" else None,
                                      out=Path(bench.out) / name.replace(" ", "_").replace("+", "with"))
        models[name], timings[name] = training, training.seconds
        loss = f"loss {training.losses[0]:.3f} -> {training.losses[-1]:.3f}" if training.losses else ""
        print(f"  {training.steps} steps in {training.seconds:.0f} s; length weight "
              f"{training.model.length_weight:.3f}; {loss}", flush=True)

    def scorer(name: str) -> Any:
        model = models[name].model
        lookup = persona_of if model.uses_persona else (lambda record: "")
        return lambda records: model.score_records(records, lookup)

    run = evaluate_scorers(
        splits, {"longer response": length_scorer, **{name: scorer(name) for name in models}},
        fractions=fractions, seed=model_config.seed, model=model_config.model, source=bench.data,
        extra={"benchmark": vars(bench), "reward_model": config_values(model_config), "train_pairs": len(train),
               "train_seconds": {k: round(v, 1) for k, v in timings.items()}})
    out = Path(bench.out)
    write_run_log(run, out / "run.json")
    write_report(run, out)
    print()
    print(summary_table(run, markdown=False))
    print()
    print("method                  train s   scoring pairs/s")
    for summary in run.results.summary:
        speed = summary.pairs / summary.cost.seconds if summary.cost.seconds else float("inf")
        print(f"{summary.method:<22}  {timings.get(summary.method, 0.0):>7.0f}   {speed:>12,.1f}")
    persona = run.results.method("reward model + persona")
    baseline = "reward model" if "reward model" in models else "longer response"   # --persona-only: no model
    acc, base = persona.accuracy or 0.0, run.results.method(baseline).accuracy or 0.0
    print()
    print(f"target: persona model >= {TARGET_ACCURACY:.0%}: {'met' if acc >= TARGET_ACCURACY else 'NOT met'} "
          f"({acc:.1%}); not below the {baseline}: {'met' if acc >= base else 'NOT met'} "
          f"({acc - base:+.1%}); trained in under 15 minutes: "
          f"{'met' if timings['reward model + persona'] < TARGET_TRAIN_SECONDS else 'NOT met'}"
          + (" [smoke run: figures mean nothing]" if bench.smoke else ""))
    print(f"run log: {out / 'run.json'}; report: {out / 'report.md'}")
    return 0


def run_cli(argv: list[str] | None, *, doc: str | None, bench_type: type, run: Any,
            skip: tuple[str, ...] = ("persona",), title: str = "reward model (both models)",
            defaults: dict[str, Any] | None = None) -> int:
    """Parse ``bench_type``'s and RewardModelConfig's options, set up logging, run ``run(bench, model_config)``
    and print the total time: the command line of the reward-model benchmarks."""
    sys.path.insert(0, str(ROOT / "src"))
    from personae.cli.options import add_config_options, config_from_args, quiet_libraries
    from personae.distill import RewardModelConfig

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_options(parser, bench_type, title="benchmark")
    add_config_options(parser, RewardModelConfig, skip=skip, title=title, defaults=defaults)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log training steps (-v)")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries(args.verbose)
    start = time.perf_counter()
    code = int(run(config_from_args(bench_type, args), config_from_args(RewardModelConfig, args)))
    print(f"total {time.perf_counter() - start:.0f} s")
    return code


def cli(argv: list[str] | None = None) -> int:
    return run_cli(argv, doc=__doc__, bench_type=BenchmarkConfig, run=main)


if __name__ == "__main__":
    sys.exit(cli())
