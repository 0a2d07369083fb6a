"""The distilled reward model's scoring: speed and accuracy per runtime and depth, in one run.

Models: ``--tailoring`` lists persona models trained on the persona-tailoring sets by
``benchmarks/persona_reward.py`` (``--persona-only``, ``--layers K`` for fewer layers), the first
being the six-layer reference; ``--prism`` lists PRISM persona models trained by
``benchmarks/reward_model.py --dev`` (train split only), in any order. Each is exported to ONNX
(fp32 and int8) when its export is missing or stale (``personae distill export DIR --onnx --int8``).

1. **speed** (``--parts speed``): the same inputs for every row, the gold-persona sides of the
   tailoring test files (``--items`` of them, both domains, both sides), at batch sizes 1, 8 and
   32, responses scored a second, median of ``--repeats`` passes, ``--threads`` threads for torch
   and ONNX Runtime alike:
   - ``bare torch fp32``: the backbone's forward passes alone on the token ids, in the batches
     the model's scoring makes (tokenizing excluded): the limit of any torch scoring code;
   - ``personae torch``, ``ONNX fp32``, ``ONNX int8``: ``PersonalizedRewardModel.score_batch``
     on each runtime, tokenizing and batching included;
   each for every model, and its ratio to the bare torch fp32 pass of the six-layer reference.
2. **accuracy** (``--parts accuracy``): each model on each runtime, on both sides of every pair of
   the tailoring test files (gold persona; ties count wrong; the protocol of
   ``persona_reward.py``, whose reward verdicts do not depend on the order) and, with ``--prism``,
   on the PRISM dev pairs (each user's validation prompts, the split of ``reward_model.py``), each
   with its difference to the same model on torch fp32 and to the six-layer torch fp32 model,
   with 95% paired bootstrap intervals (the pairs resampled, both sides of a pair together).
3. **budgets** (``--parts budgets``): where the tokens of the tailoring test inputs are (each
   field's median length, and how often the trained template cuts it), and the six-layer model
   (``--budget-models DOMAIN=DIR,...``: a model per domain, such as those ``persona_reward.py
   --cross-domain`` trains on each domain alone) scored with shorter budgets than it was trained
   with, its accuracy and speed beside the trained template's.
4. **service** (``--parts service``): ``benchmarks/service.py``'s judge rows through
   ``personae serve-api`` on each runtime, at 1 and 16 threads, for the PRISM models when given
   (the service's workload is PRISM pairs), else the first and the last tailoring model:
   judgments a second, p50 and p99, and p50 beyond the store's own time.

A model given as ``DIR@TOKENS`` (in ``--tailoring`` or ``--prism``) is scored with its inputs cut
to that many tokens (the persona's and the request's budgets kept): a shorter input as a
configuration of its own, in the speed and accuracy tables; list ``DIR`` too for the uncut rows,
as in ``--tailoring rm6,rm6@192,rm4`` (the service serves each model as it was saved).

Speed does not depend on the weights, so with ``--prism`` models alone (``--tailoring ''``) the
speed table uses them; the accuracy part then scores PRISM dev only.

    python benchmarks/scoring.py                                # all four parts (about 15 minutes)
    python benchmarks/scoring.py --parts speed --items 128      # the speed table alone
    python benchmarks/scoring.py --smoke --tailoring A,B        # every part, tiny: checks the script

Targets (issue 35): ONNX int8 at least 1.4x the bare torch fp32 pass of the same model within 0.5
points of its accuracy; the fastest row within 1 point of the six-layer fp32 model's accuracy on
both tailoring test files and PRISM dev at least 2.5x the six-layer bare torch pass.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import table  # noqa: E402

TAILORING = ROOT.parent / "shared" / "data" / "persona_tailoring"
PRISM = ROOT.parent / "shared" / "data" / "prism" / "pairs.jsonl"
DOMAINS = ("Anthropic_HHH", "BeaverTails")
GOLD, FLIP = "column:chosen_persona_gold", "column:rejected_persona_gold"
RUNTIMES = ("torch", "onnx", "onnx-int8")
LABEL = {"bare": "bare torch fp32", "torch": "personae torch", "onnx": "ONNX fp32", "onnx-int8": "ONNX int8"}


@dataclass
class Model:
    """A saved reward model and what the tables call it; ``cap`` scores its inputs cut to at most that
    many tokens instead of the length it was trained with (``DIR@TOKENS``)."""

    folder: Path
    layers: int
    cap: int | None = None

    @property
    def name(self) -> str:
        return f"{self.layers} layers" + (f" @{self.cap}" if self.cap else "")


def _model(spec: str) -> Model:
    folder, _, cap = spec.partition("@")
    path = Path(folder)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if cap and not cap.isdigit():
        raise SystemExit(f"{spec}: DIR@TOKENS takes a whole number of tokens after the @")
    return Model(path, int(config["num_hidden_layers"]), int(cap) if cap else None)


def _exported(model: Model) -> None:
    """ONNX fp32 and int8 beside the model, exported again only when missing or stale."""
    from personae.distill import PersonalizedRewardModel, export_onnx
    from personae.errors import DataError

    try:
        PersonalizedRewardModel.load(model.folder, runtime="onnx-int8")
    except DataError as exc:
        print(f"  exporting {model.folder} to ONNX ({exc})", flush=True)
        export_onnx(model.folder, int8=True)


def _load(model: Model, runtime: str, threads: int) -> Any:
    from personae.distill import PersonalizedRewardModel

    rm = PersonalizedRewardModel.load(model.folder, runtime=runtime, device="cpu", threads=threads)
    if model.cap and model.cap < rm.info.template.max_length:
        rm.use_template(replace(rm.info.template, max_length=model.cap))
    return rm


def _sides(domain: str) -> list[Any]:
    """Both sides of every test pair of ``domain``, each with its gold persona in ``metadata['persona']``."""
    from personae.data import load_preferences
    from personae.distill import PersonaResolver, flip_pairs

    records = [r for r in load_preferences(str(TAILORING / f"{domain}__test.jsonl"))
               if r.chosen.strip() and r.rejected.strip()]
    return flip_pairs(records, PersonaResolver(GOLD), PersonaResolver(FLIP))


def _budgets(template: Any) -> dict[str, int | None]:
    """Each field's token budget in ``template`` (persona, context, response)."""
    return {s.field: s.max_tokens for s in template.segments}


def _budgets_text(template: Any) -> str:
    """MAX/PERSONA/REQUEST tokens of a template."""
    budgets = _budgets(template)
    return f"{template.max_length}/{budgets.get('persona')}/{budgets.get('context')}"


# -- 1. speed ---------------------------------------------------------------------------------------
def _bare_seconds(rm: Any, items: list[tuple[str, str, str]], batch: int) -> float:
    """The torch model's forward passes alone, on the batches ``score_batch`` makes of ``items``."""
    import torch

    batches = list(rm.padded_batches(rm.encoder.encode_many(items), batch_size=batch))
    with torch.inference_mode():
        start = time.perf_counter()
        for _, ids, mask in batches:
            rm.model(input_ids=ids, attention_mask=mask)
        return time.perf_counter() - start


def part_speed(models: list[Model], items: list[tuple[str, str, str]], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    rates: dict[tuple[str, str, int], float] = {}
    templates: set[str] = set()   # each model's MAX/PERSONA/REQUEST budgets, for the table's title
    for model in models:
        loaded = {runtime: _load(model, runtime, args.threads) for runtime in RUNTIMES}
        templates.add(_budgets_text(loaded["torch"].info.template))
        for rm in loaded.values():
            rm.score_batch(items[:8])   # warm-up: first-call allocations
        for batch in sizes:
            work = items[: args.items_batch1] if batch == 1 else items
            seconds: dict[str, list[float]] = {name: [] for name in ("bare", *RUNTIMES)}
            for _ in range(args.repeats):   # interleaved, so a slow moment of the machine hits every row
                for name in seconds:
                    seconds[name].append(_seconds(name, loaded, work, batch))
            for name, values in seconds.items():
                rates[model.name, name, batch] = len(work) / statistics.median(values)
            print(f"  {model.name}, batch {batch}: " + ", ".join(
                f"{LABEL[n]} {rates[model.name, n, batch]:.1f}/s" for n in seconds), flush=True)
    reference = models[0].name
    rows = []
    for model in models:
        for name in ("bare", *RUNTIMES):
            row: list[object] = [model.name, LABEL[name]]
            for batch in sizes:
                rate = rates[model.name, name, batch]
                row += [f"{rate:.1f}", f"{rate / rates[reference, 'bare', batch]:.2f}x"]
            rows.append(row)
    header = ["model", "runtime"] + [c for b in sizes for c in (f"batch {b} /s", f"batch {b} vs bare {reference}")]
    print(f"\n## 1. responses scored a second ({len(items)} gold-persona sides of the tailoring test files, "
          f"{args.items_batch1} at batch 1; {args.threads} threads; median of {args.repeats}; the models' "
          f"templates, max length/persona/request tokens: {', '.join(sorted(templates))})\n")
    print(table(header, rows))
    return {f"{m}|{n}|{b}": round(r, 2) for (m, n, b), r in rates.items()}


def _seconds(name: str, loaded: dict[str, Any], work: list[tuple[str, str, str]], batch: int) -> float:
    """One pass of row ``name`` over ``work``: the bare torch forward passes, or a runtime's scoring."""
    if name == "bare":
        return _bare_seconds(loaded["torch"], work, batch)
    start = time.perf_counter()
    loaded[name].score_batch(work, batch_size=batch)
    return time.perf_counter() - start


# -- 2. accuracy ------------------------------------------------------------------------------------
def _outcomes(rm: Any, sides: list[Any], persona: Any) -> list[bool]:
    """Right (the side's ``chosen`` scores higher; a tie is wrong) for each side."""
    rewards = rm.score_records(sides, persona)
    return [chosen > rejected for chosen, rejected in rewards]


def _difference(a: list[bool], b: list[bool], clusters: list[str], seed: int) -> tuple[float, float, float]:
    from personae.evaluation import bootstrap_ci

    values = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    low, high = bootstrap_ci(values, rng=random.Random(seed), clusters=clusters)
    return sum(values) / len(values), low, high


def _points(difference: tuple[float, float, float]) -> str:
    """A difference of accuracies and its interval, in points."""
    mean, low, high = (100 * v for v in difference)
    return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"


def _prism_dev(args: argparse.Namespace) -> tuple[list[Any], Any]:
    """The PRISM dev pairs (users with at least 10 pairs, each user's validation prompts) and the
    persona of each pair's user, as ``reward_model.py`` gives it."""
    from reward_model import BenchmarkConfig, persona_map

    from personae.data import load_preferences, parse_fractions, select_users, split_user

    bench = BenchmarkConfig()
    data = load_preferences(str(args.prism_data))
    histories = data.by_user()
    users = select_users(histories, min_pairs=bench.min_pairs)
    fractions = parse_fractions(bench.fractions)
    dev = [r for user in users for r in split_user(user.records, fractions).val]
    personas, _ = persona_map(list(histories.values()), None, bench.compact_profiles)
    return dev, lambda record: personas.get(record.user_id or "", "")


def part_accuracy(tailoring: list[Model], prism: list[Model], args: argparse.Namespace) -> dict[str, Any]:
    sets: dict[str, tuple[list[Model], list[Any], Any, list[str]]] = {}
    for domain in DOMAINS if tailoring else ():
        sides = _sides(domain)[: args.limit]
        sets[f"{domain} test"] = (tailoring, sides, lambda r: str(r.metadata["persona"]),
                                  [r.record_id.split("~")[0] for r in sides])
    if prism:
        dev, persona = _prism_dev(args)
        dev = dev[: args.limit]
        sets["PRISM dev"] = (prism, dev, persona, [r.record_id for r in dev])
    found: dict[str, dict[tuple[str, str], list[bool]]] = {}
    rows = []
    for label, (models, items, persona, clusters) in sets.items():
        outcomes = found[label] = {}
        for model in models:
            for runtime in RUNTIMES:
                outcomes[model.name, runtime] = _outcomes(_load(model, runtime, args.threads), items, persona)
        six = models[0].name
        for model in models:
            for runtime in RUNTIMES:
                mine = outcomes[model.name, runtime]
                same = _difference(mine, outcomes[model.name, "torch"], clusters, args.seed)
                ref = _difference(mine, outcomes[six, "torch"], clusters, args.seed)
                rows.append([label, model.name, LABEL[runtime], len(items), f"{sum(mine) / len(mine):.1%}",
                             _points(same), _points(ref)])
        print(f"  {label}: done", flush=True)
    print("\n## 2. accuracy (points; 95% paired bootstrap intervals over pairs)\n")
    print(table(["pairs of", "model", "runtime", "sides", "accuracy", "vs the same model on torch",
                 "vs the first model of the set on torch fp32"], rows))
    return {label: {f"{m}|{r}": sum(v) / len(v) for (m, r), v in by.items()} for label, by in found.items()}


# -- 3. token budgets --------------------------------------------------------------------------------
def _lengths(rm: Any, sides: list[Any]) -> dict[str, float]:
    """Where the tokens are: each field's median length uncut, and the share of inputs the trained
    template cuts (persona, request, response)."""
    template = rm.info.template
    budgets = _budgets(template)
    counts: dict[str, list[int]] = {"persona": [], "context": [], "response": []}
    for side in sides:
        texts = {"persona": str(side.metadata["persona"]), "context": side.prompt, "response": side.chosen}
        for name, text in texts.items():
            counts[name].append(len(rm.tokenizer(text, add_special_tokens=False)["input_ids"]))
    fixed = [min(p, budgets["persona"] or p) + min(c, budgets["context"] or c)
             for p, c in zip(counts["persona"], counts["context"], strict=True)]
    room = [template.max_length - 8 - f for f in fixed]   # labels, separators and special tokens: about 8
    return {"persona median": statistics.median(counts["persona"]),
            "request median": statistics.median(counts["context"]),
            "response median": statistics.median(counts["response"]),
            "persona cut": sum(p > (budgets["persona"] or p) for p in counts["persona"]) / len(sides),
            "request cut": sum(c > (budgets["context"] or c) for c in counts["context"]) / len(sides),
            "response cut": sum(r > k for r, k in zip(counts["response"], room, strict=True)) / len(sides)}


def part_budgets(models: dict[str, Model], args: argparse.Namespace) -> dict[str, Any]:
    """The trained template's budgets against shorter ones at scoring time (torch): each domain's
    test file scored by its model in ``models`` (one model for both, or one trained on each)."""
    from personae.distill import default_template

    loaded = {domain: _load(model, "torch", args.threads) for domain, model in models.items()}
    rm = loaded[DOMAINS[0]]
    trained = rm.info.template
    if any(m.info.template != trained for m in loaded.values()):
        raise SystemExit("budgets: the domains' models were trained with different templates")
    budgets = _budgets(trained)
    variants = [(trained.max_length, budgets["persona"], budgets["context"])]
    for text in args.budgets.split(";"):
        if text.strip():
            length, persona, context = (int(v) for v in text.split(","))
            variants.append((length, persona, context))
    sides = {domain: _sides(domain)[: args.limit] for domain in DOMAINS}
    where = {domain: _lengths(loaded[domain], found) for domain, found in sides.items()}
    names = sorted({f"{m.name} ({m.folder})" for m in models.values()})
    print(f"\n## 3. where the tokens are ({'; '.join(names)}; medians uncut, shares cut by the trained template "
          f"{trained.max_length}/{budgets['persona']}/{budgets['context']})\n")
    print(table(["test file", *next(iter(where.values()))],
                [[d, *(f"{v:.0f}" if "median" in k else f"{v:.0%}" for k, v in w.items())] for d, w in where.items()]))
    outcomes: dict[tuple[int, int, int], dict[str, list[bool]]] = {}
    rates: dict[tuple[int, int, int], float] = {}
    for variant in variants:
        length, persona, context = variant
        for model in loaded.values():
            model.use_template(default_template(max_length=length, persona_tokens=persona, context_tokens=context))
        outcomes[variant] = {d: _outcomes(loaded[d], found, lambda r: str(r.metadata["persona"]))
                             for d, found in sides.items()}
        items = [(str(x.metadata["persona"]), x.prompt, x.chosen) for found in sides.values() for x in found][:256]
        start = time.perf_counter()
        rm.score_batch(items, batch_size=32)
        rates[variant] = len(items) / (time.perf_counter() - start)
    rows = []
    for variant, by_domain in outcomes.items():
        row: list[object] = ["/".join(str(v) for v in variant), f"{rates[variant]:.1f}"]
        for domain, mine in by_domain.items():
            clusters = [r.record_id.split("~")[0] for r in sides[domain]]
            diff = _difference(mine, outcomes[variants[0]][domain], clusters, args.seed)
            row += [f"{sum(mine) / len(mine):.1%}", _points(diff)]
        rows.append(row)
    print("\n   scored with other budgets than it was trained with (max length/persona/request tokens), torch\n")
    print(table(["budgets", "responses /s (batch 32)",
                 *[c for d in DOMAINS for c in (f"{d} test", f"{d} vs trained budgets")]], rows))
    return {"tokens": where, "variants": {"/".join(map(str, v)): {d: sum(o) / len(o) for d, o in by.items()}
                                          for v, by in outcomes.items()}}


# -- 4. the service ---------------------------------------------------------------------------------
def part_service(models: list[Model], args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    import service

    rows, figures = [], {}
    models = [m for m in models if not m.cap]   # the service scores with the template the model was saved with
    for model in (models[0], models[-1]) if len(models) > 1 else models:
        for runtime in RUNTIMES:
            options = service.parse_args(["--parts", "judge", "--reward-model", str(model.folder), "--runtime",
                                          runtime, "--concurrency", "1,16", "--requests", str(args.requests)]
                                         + (["--torch-threads", str(args.service_threads)]
                                            if args.service_threads else []))
            work = service.workload(options)
            with tempfile.TemporaryDirectory(prefix="scoring-service-") as tmp:
                by_threads = service.judge_over_http(options, Path(tmp), work)
            for threads, f in by_threads.items():
                figures[f"{model.name}|{runtime}|{threads}"] = {"per_s": f.rate, "p50_ms": f.p50, "p99_ms": f.p99,
                                                                 "beyond_store_p50_ms": f.over_p50}
                rows.append([model.name, LABEL[runtime], threads, f"{f.rate:,.1f}", f"{f.p50:.1f}", f"{f.p99:.1f}",
                             f"{f.over_p50:.1f}", f.failed])
    print("\n## 4. the service: judgments through personae serve-api (benchmarks/service.py rows)\n")
    print(table(["model", "runtime", "threads", "judgments /s", "p50 ms", "p99 ms", "p50 beyond the store ms",
                 "failed"], rows))
    return figures


# -- the targets ------------------------------------------------------------------------------------
def print_targets(speed: dict[str, float], accuracy: dict[str, dict[str, float]], sizes: list[int]) -> None:
    """The issue's first two targets, read off this run's speed and accuracy tables."""
    models = list(dict.fromkeys(key.split("|")[0] for key in speed))
    six = models[0]   # the reference: the first tailoring model, or the deepest PRISM one
    wanted = [f"{d} test" for d in DOMAINS] + ["PRISM dev"]
    missing = [label for label in wanted if label not in accuracy or f"{six}|torch" not in accuracy[label]]
    print(f"\n## targets (accuracy of {six} on torch measured on: "
          f"{', '.join(w for w in wanted if w not in missing) or 'nothing'})\n")
    if missing:
        print(f"  partial: not measured here: {', '.join(missing)}; a 'met' below holds for the sets measured only")
    for model in models:
        gaps = [100 * (by[f"{model}|onnx-int8"] - by[f"{model}|torch"]) for by in accuracy.values()
                if f"{model}|torch" in by]
        for batch in sizes:
            ratio = speed[f"{model}|onnx-int8|{batch}"] / speed[f"{model}|bare|{batch}"]
            met = ratio >= 1.4 and bool(gaps) and all(abs(round(g, 6)) <= 0.5 for g in gaps)
            print(f"  {'met' if met else 'NOT met':<8} {model}, batch {batch}: ONNX int8 >= 1.4x its bare torch pass "
                  f"({ratio:.2f}x) within 0.5 points of its torch accuracy ("
                  + (", ".join(f"{g:+.1f}" for g in gaps) or "not measured") + ")")
    for batch in sizes:
        close = []
        for model in models:
            for runtime in RUNTIMES:
                drops = [100 * (by[f"{model}|{runtime}"] - by[f"{six}|torch"]) for by in accuracy.values()
                         if f"{model}|{runtime}" in by and f"{six}|torch" in by]
                if drops and len(drops) == len(accuracy) and all(round(d, 6) >= -1.0 for d in drops):
                    close.append((speed[f"{model}|{runtime}|{batch}"] / speed[f"{six}|bare|{batch}"], model, runtime,
                                  drops))
        if not close:
            print(f"  NOT met  batch {batch}: no configuration within 1 point of {six} torch on every set")
            continue
        ratio, model, runtime, drops = max(close)
        print(f"  {'met' if ratio >= 2.5 else 'NOT met':<8} batch {batch}: the fastest configuration within 1 point of "
              f"{six} torch ({model}, {LABEL[runtime]}: " + ", ".join(f"{d:+.1f}" for d in drops)
              + f") >= 2.5x the bare {six} pass ({ratio:.2f}x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tailoring", default=str(ROOT / "runs" / "persona_reward" / "together" / "gold_persona"),
                        help="comma list of persona-tailoring models, the six-layer reference first")
    parser.add_argument("--prism", default="", help="comma list of PRISM dev models (reward_model.py --dev)")
    parser.add_argument("--prism-data", default=str(PRISM))
    parser.add_argument("--parts", default="speed,accuracy,service,budgets")
    parser.add_argument("--budgets", default="192,64,32;128,64,32;256,32,32;256,64,16",
                        help="budgets part: scoring-time templates MAX,PERSONA,REQUEST tokens, ';'-separated")
    parser.add_argument("--budget-models", default="",
                        help="budgets part: DOMAIN=DIR,... a model per domain (default: the first tailoring model)")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--items", type=int, default=512, help="sides scored by each speed row")
    parser.add_argument("--items-batch1", type=int, default=128, help="sides scored by each row at batch 1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    parser.add_argument("--service-threads", type=int, default=None,
                        help="the served model's threads (default: its runtime's)")
    parser.add_argument("--requests", type=int, default=200, help="service requests a row at 16 threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N sides of each accuracy set")
    parser.add_argument("--smoke", action="store_true", help="every part, tiny: checks the script")
    parser.add_argument("--out", default=str(ROOT / "runs" / "scoring"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.items, args.items_batch1, args.repeats, args.limit, args.requests = 32, 8, 1, 24, 16
    parts = set(args.parts.split(","))
    tailoring = [_model(f) for f in args.tailoring.split(",") if f]
    prism = sorted((_model(f) for f in args.prism.split(",") if f), key=lambda m: -m.layers)  # deepest first
    if len({m.name for m in tailoring}) < len(tailoring) or len({m.name for m in prism}) < len(prism):
        parser.error("one model per depth and cap in each list: the tables name models by them")
    for model in tailoring + prism:
        _exported(model)
    print("models: " + ", ".join(f"{m.name} ({m.folder})" for m in tailoring + prism), flush=True)
    results: dict[str, Any] = {"arguments": vars(args)}
    if not tailoring and not prism:
        parser.error("give --tailoring or --prism models")
    budget_models: dict[str, Model] = {}
    if "budgets" in parts:
        chosen = dict(item.split("=", 1) for item in args.budget_models.split(",") if "=" in item)
        unknown = set(chosen) - set(DOMAINS) or {i for i in args.budget_models.split(",") if i and "=" not in i}
        if unknown:
            parser.error(f"--budget-models: DOMAIN=DIR with DOMAIN one of {', '.join(DOMAINS)}; got {sorted(unknown)}")
        if tailoring or len(chosen) == len(DOMAINS):
            budget_models = {d: _model(chosen[d]) if d in chosen else tailoring[0] for d in DOMAINS}
        else:
            print("budgets part skipped: no tailoring model (--tailoring, or --budget-models for each domain)")
    if "speed" in parts:  # speed does not depend on the weights: the PRISM models serve when no other is given
        sides = [s for domain in DOMAINS for s in _sides(domain)]
        random.Random(args.seed).shuffle(sides)
        items = [(str(s.metadata["persona"]), s.prompt, response) for s in sides[: args.items // 2]
                 for response in (s.chosen, s.rejected)]
        results["speed"] = part_speed(tailoring or prism, items, args)
    if "accuracy" in parts:
        results["accuracy"] = part_accuracy(tailoring, prism, args)
    if budget_models:
        results["budgets"] = part_budgets(budget_models, args)
    if "service" in parts:  # the service's workload is PRISM pairs: their model serves it when given
        results["service"] = part_service(prism or tailoring, args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scoring.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    if "speed" in results and "accuracy" in results:
        print_targets(results["speed"], results["accuracy"], [int(b) for b in args.batch_sizes.split(",")])
    print(f"\nfigures: {out / 'scoring.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
