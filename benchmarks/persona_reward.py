"""Does the reward model read the persona? Both sides of the persona-tailoring pairs.

Each pair of ``persona_tailoring/{BeaverTails,Anthropic_HHH}`` comes with a persona that
explains the choice (``chosen_persona_gold``) and one that explains the opposite choice
(``rejected_persona_gold``). Every evaluation pair is scored twice: on its chosen side (the
chosen persona; ``chosen`` must win) and on its rejected side (the rejected persona;
``rejected`` must win). A scorer that ignores personas gives complementary answers on the
two sides, so it cannot average more than 50% over them.

Per domain, in one run:

- ``longer response``: the longer response wins (no training);
- ``no persona``: all-MiniLM-L6-v2 fine-tuned with TRL's RewardTrainer on the pairs as they
  are (chosen over rejected), no persona in its input;
- ``gold persona``: the same backbone trained on both sides of every pair
  (``--persona column:chosen_persona_gold --flip-persona column:rejected_persona_gold``),
  scored with each side's gold persona;
- ``swapped persona``: that model given the other side's persona (the control: a model that
  reads the persona falls toward 1 minus its accuracy; one that ignores it stays put);
  On pairs with both sides its average is 100% minus the gold average exactly (its inputs
  are the other side's gold inputs with the opposite label), so the second control follows;
- ``another pair's persona``: that model given the persona of the same side of another pair
  of the file (a fixed shuffle): a model that matched personas to responses falls toward
  50%, one that read only the persona's general drift would not;
- ``retrieved persona``: that model given each side's retrieved persona
  (``*_persona_retr``, personas of similar training prompts) instead of the gold one.

Both models train on the ``sft_train`` and ``dpo_train`` files of both domains together (one
pair of models; ``--no-together`` trains a pair per domain), with the same settings (``TUNED``
below: every layer trained, 2 epochs, learning rate 1e-4, 256-token inputs, no length prior).
The settings were chosen on the ``sft_val`` files, which are neither trained on nor scored here:
first on Anthropic_HHH's with a model per domain at 160 tokens (gold persona 81.4% on the
average of the two sides), then 256 tokens (BeaverTails' responses have a median of about 100
tokens and were cut) and training together (BeaverTails sft_val 72.7% with its own model at 256
tokens, 74.0% trained together; Anthropic_HHH 81.4%). Tried there and not taken, trained together at
256 tokens: a 64-token request budget (BeaverTails 71.3%, Anthropic_HHH 80.0%), 3 epochs (72.1%,
78.6%) and ``--paired-batches`` (both sides of a pair in one batch: BeaverTails 76.4%, Anthropic_HHH
80.0%, short of the 80.4% the rule written before the run asked HHH to keep; with learning rate 5e-5
as well, 74.8% and 78.1%; with batches of 32 and learning rate 1.5e-4, 74.2% and 78.1%) and
``--length-grouped`` (batches of rows of similar length, which pads 1.01x the real tokens instead of
1.53x and trained in about 2,330 s instead of 3,420-3,460 s: BeaverTails 71.1%, Anthropic_HHH 80.5%). The same ``TUNED``
settings with seed 1 instead of 0 scored 66.8% and 69.0% there: one seed's draw moves these
figures by several points, more than the gaps between the settings above. They are scored on the
``dpo_val`` files and on the ``test`` files' pairs that have two responses; the script checks
that no evaluation prompt occurs in the files its models train on. Accuracies follow the protocol of the
LLM judges (both orders, ties wrong) with 95% bootstrap intervals; the average's interval
resamples whole pairs (both sides together).

Each trained model is saved under ``--out`` with a stamp of its settings and a hash of its
training pairs; a later run with the same settings and data loads it instead of training again
(and reports the training seconds of the run that trained it), so an interrupted run resumes
after its last trained model.

Speed (pairs/s counts scored sides, two per pair of the file): the gold-persona scoring of each evaluation file through
``PersonalizedRewardModel.score_records`` (tokenizing, bucketing, forward passes) against a bare
batched forward pass of the same backbone on the same token ids, in the same length-sorted
batches (the limit of any scoring code); the ratio is bare time / scoring time.

    python benchmarks/persona_reward.py            # both domains (about 100 minutes on 2 cores)
    python benchmarks/persona_reward.py --smoke    # 40 pairs, 4 steps per model: the pipeline in minutes
    python benchmarks/persona_reward.py --persona-only --layers 3 --out runs/persona_reward_l3   # a shallower model
    python benchmarks/persona_reward.py --persona-only --layers 4 --epochs 1 --out runs/persona_reward_l4cut
        --init-from runs/persona_reward/together/gold_persona   # (one line) the six-layer model cut to four
    python benchmarks/persona_reward.py --cross-domain --eval-files test   # transfer (80 minutes on 2 cores)

Targets, on the test files: gold persona >= 75% averaged over the two sides and >= 65% on the
rejected side; no persona <= 55% on the average (50% by construction: a sanity check of the
bookkeeping); swapped persona at least 30 points below gold; scoring at least 0.8 of the bare
forward pass.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "persona_tailoring"
GOLD, FLIP = "column:chosen_persona_gold", "column:rejected_persona_gold"
TARGET_AVERAGE, TARGET_REJECTED, TARGET_NO_PERSONA, TARGET_SWAP_DROP, TARGET_SPEED = 0.75, 0.65, 0.55, 0.30, 0.8
BENCHMARK_STAMP = "benchmark_training.json"  # settings and data hash of a model this benchmark trained
# Settings chosen on Anthropic_HHH's sft_val file (see the docstring); any can be overridden on the command line.
TUNED = {"freeze_layers": 0, "epochs": 2.0, "learning_rate": 1e-4, "length_prior": False, "max_length": 256}


@dataclass
class BenchmarkConfig:
    """The benchmark's own options; the reward models' come from RewardModelConfig."""

    data: str = field(default=str(DEFAULT_DATA), metadata={"help": "folder of the persona-tailoring files"})
    domains: str = field(default="Anthropic_HHH,BeaverTails", metadata={"help": "comma-separated domains"})
    train_files: str = field(default="sft_train,dpo_train", metadata={"help": "files trained on"})
    eval_files: str = field(default="dpo_val,test", metadata={"help": "files scored; the targets read 'test'"})
    together: bool = field(default=True, metadata={
        "help": "one pair of models trained on every domain's training files, each domain scored on its own "
                "files (--no-together: a pair of models per domain)"})
    persona_only: bool = field(default=False, metadata={
        "help": "train and score only the gold-persona model (its rows and controls, no model without persona): "
                "enough to compare settings such as --layers"})
    cross_domain: bool = field(default=False, metadata={
        "help": "the transfer rows instead: a gold-persona model trained on each domain alone, scored on its own and "
                "on the other domain's files, before and after a short fine-tune (init_from) on --target-pairs "
                "pairs of the other domain's training files, beside a model trained on those pairs alone"})
    target_pairs: int = field(default=300, metadata={"help": "cross-domain: target-domain pairs of the fine-tune"})
    smoke: bool = field(default=False, metadata={"help": "40 training pairs, 4 steps: a quick check of the pipeline"})
    out: str = field(default=str(ROOT / "runs" / "persona_reward"), metadata={"help": "folder for results"})


def _load(folder: Path, domain: str, name: str) -> list[Any]:
    from personae.data import load_preferences

    path = folder / f"{domain}__{name}.jsonl"
    return [r for r in load_preferences(str(path)) if r.chosen.strip() and r.rejected.strip()]


def _check_disjoint(train: list[Any], evaluated: dict[str, list[Any]]) -> None:
    from personae.errors import DataError

    seen = {r.prompt.strip() for r in train}
    for name, records in evaluated.items():
        shared = [r.record_id for r in records if r.prompt.strip() in seen]
        if shared:
            raise DataError(f"{len(shared)} evaluation pairs share their prompt with a training pair",
                            source=name, field=shared[0])


def _bare_forward(model: Any, items: list[tuple[str, str, str]]) -> float:
    """Seconds of the backbone's forward passes alone on ``items``, in the batches ``score_batch`` makes."""
    import torch

    batches = list(model.padded_batches(model.encoder.encode_many(items)))  # built before the clock starts
    model.model.eval()
    with torch.inference_mode():
        model.model(input_ids=batches[0][1][:2], attention_mask=batches[0][2][:2])  # warm-up
        _sync(model.device)
        start = time.perf_counter()
        for _, ids, mask in batches:
            model.model(input_ids=ids, attention_mask=mask)
        _sync(model.device)
        return time.perf_counter() - start


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class CachedScorer:
    """A model's rewards, each distinct input scored once: the swap control's inputs are the other side's
    gold inputs, and a model without persona sees the same inputs on both sides."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.rewards: dict[tuple[str, str, str], float] = {}

    def key(self, persona: str, prompt: str, response: str) -> tuple[str, str, str]:
        return (persona if self.model.uses_persona else "", prompt, response)

    def __call__(self, records: Any, persona: Any) -> list[tuple[float, float]]:
        keys = [[self.key(persona(r), r.prompt, response) for response in (r.chosen, r.rejected)] for r in records]
        missing = list(dict.fromkeys(k for pair in keys for k in pair if k not in self.rewards))
        if missing:
            self.rewards.update(zip(missing, self.model.score_batch(missing), strict=True))
        return [(self.rewards[a], self.rewards[b]) for a, b in keys]

    def speed(self, sides: Any) -> dict[str, float]:
        """Gold-persona scoring of ``sides`` through ``score_batch`` (timed) against the bare forward pass."""
        items = list(dict.fromkeys(self.key(str(r.metadata["persona"]), r.prompt, response)
                                   for r in sides for response in (r.chosen, r.rejected)))
        self.model.score_batch(items[:2])  # warm-up
        _sync(self.model.device)
        start = time.perf_counter()
        self.rewards.update(zip(items, self.model.score_batch(items), strict=True))
        _sync(self.model.device)
        scoring = time.perf_counter() - start
        bare = _bare_forward(self.model, items)
        pairs = len(items) / 2
        return {"pairs": pairs, "scoring_s": round(scoring, 3), "bare_s": round(bare, 3),
                "scoring_pairs_per_s": round(pairs / scoring, 2), "bare_pairs_per_s": round(pairs / bare, 2),
                "ratio": round(bare / scoring, 3)}


def _side_persona(key: str) -> Any:
    """A scorer's persona lookup on the records of :func:`personae.distill.flip_pairs`."""
    if key == "retrieved":
        return lambda record: str(record.metadata.get(f"{record.metadata['side']}_persona_retr") or "")
    return lambda record: str(record.metadata[key])


def _shuffled(sides: list[Any], seed: int) -> dict[str, str]:
    """Each side's record id -> the persona of the same side of another pair (a seeded derangement)."""
    import random

    personas: dict[str, str] = {}
    for side in ("chosen", "rejected"):
        group = [r for r in sides if r.metadata["side"] == side]
        order = list(range(len(group)))
        random.Random(f"{seed}/{side}").shuffle(order)
        for k, i in enumerate(order):  # each takes the next one's persona in the shuffled order
            personas[group[i].record_id] = str(group[order[(k + 1) % len(order)]].metadata["persona"])
    return personas


def _figures(run: Any, methods: list[str]) -> dict[str, dict[str, Any]]:
    from personae.distill import side_figures

    table = {}
    for method in methods:
        table[method] = {side: {"accuracy": s.accuracy, "ci": [s.ci_low, s.ci_high], "pairs": s.pairs}
                         for side, s in side_figures(run, method).items()}
    return table


def _print_table(title: str, table: dict[str, dict[str, Any]]) -> None:
    width = max(22, *(len(method) for method in table))
    print(f"\n{title}")
    print(f"{'method':<{width}} {'chosen side':>22} {'rejected side':>22} {'average of the sides':>22}")
    for method, sides in table.items():
        cells = [f"{sides[s]['accuracy']:6.1%} [{sides[s]['ci'][0]:5.1%}, {sides[s]['ci'][1]:5.1%}]"
                 for s in ("chosen", "rejected", "both")]
        print(f"{method:<{width}} {cells[0]:>22} {cells[1]:>22} {cells[2]:>22}")


def _load_domain(bench: BenchmarkConfig, domain: str) -> tuple[list[Any], dict[str, list[Any]]]:
    """A domain's training pairs and its evaluated files (cut down in a smoke run), checked disjoint."""
    folder = Path(bench.data)
    train = [r for name in bench.train_files.split(",") for r in _load(folder, domain, name.strip())]
    evaluated = {name.strip(): _load(folder, domain, name.strip()) for name in bench.eval_files.split(",")}
    if bench.smoke:
        train, evaluated = train[:40], {k: v[:12] for k, v in evaluated.items()}
    _check_disjoint(train, evaluated)
    print(f"\n== {domain}: {len(train)} training pairs ({bench.train_files}); evaluated: "
          + ", ".join(f"{k} {len(v)} pairs" for k, v in evaluated.items())
          + "; checked: no evaluation prompt is a training prompt", flush=True)
    return train, evaluated


def _fingerprint(records: list[Any]) -> str:
    """A hash of the training pairs, every field and in order: a saved model is reused only on the same data."""
    import hashlib
    from dataclasses import asdict

    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(asdict(record), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _reuse(folder: Path, config: Any, data: str) -> Any | None:
    """The model a previous run trained into ``folder`` with the same settings on the same pairs, if any."""
    from personae.distill import PersonalizedRewardModel, RewardTraining, config_values

    stamp = folder / BENCHMARK_STAMP
    if not stamp.exists():
        return None
    saved = json.loads(stamp.read_text(encoding="utf-8"))
    # A setting added since the stamp was written matches when it is at its default.
    defaults = config_values(type(config)())
    stamped = {**{k: v for k, v in defaults.items() if k not in saved.get("config", {})}, **saved.get("config", {})}
    if stamped != config_values(config) or saved.get("data") != data:
        print(f"  {folder} holds a model of other settings or data: training again", flush=True)
        return None
    info = json.loads((folder / "personae_reward.json").read_text(encoding="utf-8"))["training"]
    return RewardTraining(PersonalizedRewardModel.load(folder), folder, float(info["seconds"]), int(info["pairs"]),
                          int(info["steps"]))


def model_configs(model_config: Any) -> dict[str, Any]:
    """The two models' settings: ``model_config`` with the gold personas both ways, and one way without."""
    return {"gold persona": replace(model_config, persona=GOLD, flip_persona=FLIP),
            "no persona": replace(model_config, persona="none", flip_persona=None,
                                  paired_batches=False)}  # one way: nothing to pair


def train_models(bench: BenchmarkConfig, model_config: Any, train: list[Any], out: Path) -> dict[str, Any]:
    """The gold-persona (flipped) model and the one-way model without persona, same settings.

    Each model is saved with a stamp of its settings and training data; a later run with the same
    ones loads it instead of training again (its training seconds are those of the run that trained it).
    """
    from personae.distill import config_values, train_reward_model

    if bench.smoke:
        model_config = replace(model_config, max_steps=4, logging_steps=1)
    data = _fingerprint(train)
    trained: dict[str, Any] = {}
    for name, config in model_configs(model_config).items():
        if bench.persona_only and name != "gold persona":
            continue
        folder = out / name.replace(" ", "_")
        training = _reuse(folder, config, data)
        if training is not None:
            print(f"reusing {name!r} from {folder}: {training.pairs} training rows, {training.steps} steps, "
                  f"trained in {training.seconds:.0f} s", flush=True)
        else:
            print(f"training {name!r} on {len(train)} pairs ...", flush=True)
            (folder / BENCHMARK_STAMP).unlink(missing_ok=True)
            training = train_reward_model(train, config, out=folder)
            (folder / BENCHMARK_STAMP).write_text(json.dumps({"config": config_values(config), "data": data}),
                                                  encoding="utf-8")
            loss = f"loss {training.losses[0]:.3f} -> {training.losses[-1]:.3f}" if training.losses else ""
            print(f"  {training.pairs} training rows, {training.steps} steps in {training.seconds:.0f} s; {loss}",
                  flush=True)
        trained[name] = training
    return trained


def score_domain(bench: BenchmarkConfig, model_config: Any, domain: str, evaluated: dict[str, list[Any]],
                 trained: dict[str, Any], out: Path) -> dict[str, Any]:
    """Every method on both sides of each evaluated file of ``domain``; run logs and reports under ``out``."""
    from personae.distill import PersonaResolver, config_values, evaluate_sides, flip_pairs, length_scorer
    from personae.evaluation import write_report, write_run_log

    persona_scores = CachedScorer(trained["gold persona"].model)
    plain_scores = CachedScorer(trained["no persona"].model) if "no persona" in trained else None
    others: dict[str, str] = {}  # record id -> another pair's persona, filled per file below

    def scorer(cached: CachedScorer, key: str) -> Any:
        lookup = (lambda record: others[record.record_id]) if key == "shuffled" else _side_persona(key)
        return lambda records: cached(records, lookup)

    scorers = {"longer response": length_scorer,
               **({"no persona": scorer(plain_scores, "persona")} if plain_scores is not None else {}),
               "gold persona": scorer(persona_scores, "persona"),
               "swapped persona": scorer(persona_scores, "other_persona"),
               "another pair's persona": scorer(persona_scores, "shuffled"),
               "retrieved persona": scorer(persona_scores, "retrieved")}
    result: dict[str, Any] = {"train_seconds": {k: round(t.seconds, 1) for k, t in trained.items()},
                              "train_rows": {k: t.pairs for k, t in trained.items()}, "files": {}}
    for name, records in evaluated.items():
        sides = flip_pairs(records, PersonaResolver(GOLD), PersonaResolver(FLIP))
        missing = sum(1 for r in sides if not _side_persona("retrieved")(r))
        others.update(_shuffled(sides, model_config.seed))
        speed = persona_scores.speed(sides)
        run = evaluate_sides(records, scorers, persona=PersonaResolver(GOLD), flip=PersonaResolver(FLIP),
                             seed=model_config.seed, model=model_config.model, source=f"{domain}__{name}",
                             extra={"benchmark": vars(bench), "reward_model": config_values(model_config),
                                    "train_files": bench.train_files, "speed": speed})
        write_run_log(run, out / name / "run.json")
        write_report(run, out / name)
        table = _figures(run, list(scorers))
        result["files"][name] = {"pairs": len(records), "table": table, "speed": speed,
                                 "sides_without_retrieved_persona": missing}
        _print_table(f"{domain} {name}: {len(records)} pairs, each on both sides (95% intervals)", table)
        print(f"scoring (gold persona): {speed['scoring_pairs_per_s']:.1f} pairs/s; bare forward pass on the "
              f"same inputs: {speed['bare_pairs_per_s']:.1f} pairs/s; ratio {speed['ratio']:.2f}"
              + (f"; {missing} sides without a retrieved persona (scored with none)" if missing else ""), flush=True)
    return result


def run_domain(bench: BenchmarkConfig, model_config: Any, domain: str) -> dict[str, Any]:
    """Train on ``domain``'s training files and score its evaluated files."""
    train, evaluated = _load_domain(bench, domain)
    out = Path(bench.out) / domain
    result = score_domain(bench, model_config, domain, evaluated, train_models(bench, model_config, train, out), out)
    return {"train_pairs": len(train), **result}


def run_together(bench: BenchmarkConfig, model_config: Any, domains: list[str]) -> dict[str, dict[str, Any]]:
    """Train one pair of models on every domain's training files, then score each domain's files."""
    loaded = {domain: _load_domain(bench, domain) for domain in domains}
    train = [r for domain_train, _ in loaded.values() for r in domain_train]
    _check_disjoint(train, {f"{d}__{name}": records for d, (_, files) in loaded.items()
                            for name, records in files.items()})
    print(f"\n== training together on {len(train)} pairs of {', '.join(domains)}; checked: no evaluation "
          "prompt of any domain is a training prompt of another", flush=True)
    out = Path(bench.out)
    trained = train_models(bench, model_config, train, out / "together")
    return {domain: {"train_pairs": len(train), "trained_on": domains,
                     **score_domain(bench, model_config, domain, evaluated, trained, out / domain)}
            for domain, (_, evaluated) in loaded.items()}


def run_cross_domain(bench: BenchmarkConfig, model_config: Any, domains: list[str]) -> dict[str, Any]:
    """Does persona-following carry to a domain the model never saw? Each pair of domains both ways."""
    import random

    from personae.distill import PersonaResolver, evaluate_sides
    from personae.evaluation import write_report, write_run_log

    gold_only = replace(bench, persona_only=True)
    loaded = {domain: _load_domain(bench, domain) for domain in domains}
    out = Path(bench.out) / "cross"
    alone = {d: train_models(gold_only, model_config, loaded[d][0], out / f"{d}_alone")["gold persona"]
             for d in domains}
    results: dict[str, Any] = {}
    for target in domains:
        train, evaluated = loaded[target]
        few = train[:]
        random.Random(model_config.seed).shuffle(few)
        few = few[: bench.target_pairs]
        scorers: dict[str, Any] = {f"in-domain ({target} alone)": alone[target]}
        for source in (d for d in domains if d != target):
            _check_disjoint(loaded[source][0], {f"{target}__{k}": v for k, v in evaluated.items()})
            tuned = replace(model_config, init_from=str(alone[source].path))
            scorers[f"{source} alone"] = alone[source]
            scorers[f"{source} + {len(few)} {target} pairs"] = train_models(
                gold_only, tuned, few, out / f"{source}_then_{target}_{len(few)}")["gold persona"]
        scorers[f"{len(few)} {target} pairs alone"] = train_models(
            gold_only, model_config, few, out / f"{target}_{len(few)}_only")["gold persona"]
        methods: dict[str, Any] = {}
        for name, training in scorers.items():
            cached = CachedScorer(training.model)
            methods[name] = lambda records, cached=cached: cached(records, _side_persona("persona"))
            if name != f"in-domain ({target} alone)":
                methods[f"{name}, personas swapped"] = \
                    lambda records, cached=cached: cached(records, _side_persona("other_persona"))
        results[target] = {}
        for file, records in evaluated.items():
            run = evaluate_sides(records, methods, persona=PersonaResolver(GOLD), flip=PersonaResolver(FLIP),
                                 seed=model_config.seed, model=model_config.model, source=f"{target}__{file}",
                                 extra={"benchmark": vars(bench), "cross_domain": True,
                                        "train_seconds": {k: round(t.seconds, 1) for k, t in scorers.items()}})
            write_run_log(run, out / target / file / "run.json")
            write_report(run, out / target / file)
            table = _figures(run, list(methods))
            results[target][file] = {"pairs": len(records), "table": table}
            _print_table(f"{target} {file}: {len(records)} pairs, each on both sides (95% intervals); "
                         "models trained on one domain", table)
    return results


def targets(domain: str, result: dict[str, Any], *, file: str = "test") -> list[tuple[str, str, bool]]:
    """(what, measured, met) for each target, on ``file``."""
    figures = result["files"].get(file)
    if figures is None:
        return []
    table, speed = figures["table"], figures["speed"]
    gold, plain, swap = table["gold persona"], table.get("no persona"), table["swapped persona"]
    drop = gold["both"]["accuracy"] - swap["both"]["accuracy"]
    checks = [
        (f"{domain}: gold persona, average >= {TARGET_AVERAGE:.0%}", f"{gold['both']['accuracy']:.1%}",
         gold["both"]["accuracy"] >= TARGET_AVERAGE),
        (f"{domain}: gold persona, rejected side >= {TARGET_REJECTED:.0%}", f"{gold['rejected']['accuracy']:.1%}",
         gold["rejected"]["accuracy"] >= TARGET_REJECTED),
        *([(f"{domain}: no persona, average <= {TARGET_NO_PERSONA:.0%}", f"{plain['both']['accuracy']:.1%}",
            plain["both"]["accuracy"] <= TARGET_NO_PERSONA)] if plain is not None else []),
        (f"{domain}: swap at least {TARGET_SWAP_DROP * 100:.0f} points below gold", f"{drop * 100:.1f} points",
         drop >= TARGET_SWAP_DROP),
        (f"{domain}: scoring >= {TARGET_SPEED} of the bare forward pass", f"{speed['ratio']:.2f}",
         speed["ratio"] >= TARGET_SPEED),
    ]
    return checks


def main(bench: BenchmarkConfig, model_config: Any) -> int:
    from personae.distill import config_values

    out = Path(bench.out)
    domains = [d.strip() for d in bench.domains.split(",") if d.strip()]
    if bench.cross_domain:
        cross = run_cross_domain(bench, model_config, domains)
        out.mkdir(parents=True, exist_ok=True)
        (out / "cross_domain.json").write_text(json.dumps({"benchmark": vars(bench), "reward_model":
                                                           config_values(model_config), "domains": cross},
                                                          indent=2), encoding="utf-8")
        print(f"summary: {out / 'cross_domain.json'}; run logs and reports: {out}/cross/DOMAIN/FILE/")
        return 0
    results = (run_together(bench, model_config, domains) if bench.together
               else {domain: run_domain(bench, model_config, domain) for domain in domains})
    checks = [check for domain, result in results.items() for check in targets(domain, result)]
    print("\ntargets (test files)" + (" [smoke run: figures mean nothing]" if bench.smoke else ""))
    for what, measured, met in checks:
        print(f"  {'met' if met else 'NOT met':<8} {what}: {measured}")
    summary = {"benchmark": vars(bench), "reward_model": config_values(model_config), "domains": results,
               "targets": [{"target": w, "measured": m, "met": ok} for w, m, ok in checks]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"summary: {out / 'summary.json'}; run logs and reports: {out}/DOMAIN/FILE/")
    return 0


def cli(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from reward_model import run_cli  # the command line both reward-model benchmarks share

    return run_cli(argv, doc=__doc__, bench_type=BenchmarkConfig, run=main, skip=("persona", "flip_persona"),
                   title="reward model (both models; defaults as chosen on sft_val)", defaults=TUNED)


if __name__ == "__main__":
    sys.exit(cli())
