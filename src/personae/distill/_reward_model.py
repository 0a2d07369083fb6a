"""A trained persona-conditioned reward model: load it, score responses, compare two.

The folder is a standard transformers model (``AutoModelForSequenceClassification`` with one
output, plus its tokenizer) and ``personae_reward.json``, which holds the input template and
the length prior. The reward of a response is::

    reward = model(template(persona, context, response)) + length_weight * log(1 + characters)

``length_weight`` is 0 for a model trained without the length prior.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personae.data import PreferenceRecord
from personae.distill._encoding import InputEncoder, InputTemplate, log_length
from personae.distill._extra import require_distill, resolve_device, set_offline, set_threads
from personae.errors import DataError

__all__ = ["REWARD_FILE", "PersonalizedRewardModel", "RewardVerdict", "is_tie"]

logger = logging.getLogger(__name__)

REWARD_FILE = "personae_reward.json"
REWARD_FORMAT_VERSION = 1
TIE_TOLERANCE = 1e-6


def is_tie(reward_a: float, reward_b: float) -> bool:
    """Equal rewards, up to float noise (rows of one batch may differ in the last bits)."""
    return math.isclose(reward_a, reward_b, rel_tol=TIE_TOLERANCE, abs_tol=TIE_TOLERANCE)


@dataclass(frozen=True)
class RewardVerdict:
    """Which response the reward model prefers: ``"A"``, ``"B"`` or ``"tie"`` (equal rewards)."""

    preferred: str
    reward_a: float
    reward_b: float

    @property
    def margin(self) -> float:
        """``reward_a - reward_b``."""
        return self.reward_a - self.reward_b


@dataclass
class RewardModelInfo:
    """What ``personae_reward.json`` holds besides the template."""

    template: InputTemplate
    length_weight: float = 0.0
    persona: str = ""
    base_model: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    version: int = REWARD_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "template": self.template.to_dict(), "length_weight": self.length_weight,
                "persona": self.persona, "base_model": self.base_model, "training": self.training}

    @classmethod
    def read(cls, folder: Path) -> RewardModelInfo:
        path = folder / REWARD_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"not a personae reward model folder (no {REWARD_FILE})", source=str(folder)) from None
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc}", source=str(path)) from None
        if not isinstance(data, dict) or data.get("version") != REWARD_FORMAT_VERSION:
            raise DataError(f"unsupported reward model format (expected version {REWARD_FORMAT_VERSION})",
                            source=str(path), field="version")
        from personae.errors import ConfigError

        try:
            template = InputTemplate.from_dict(data["template"])
        except (KeyError, ConfigError) as exc:
            raise DataError(f"invalid input template: {exc}", source=str(path), field="template") from None
        return cls(template, float(data.get("length_weight") or 0.0), str(data.get("persona") or ""),
                   str(data.get("base_model") or ""), dict(data.get("training") or {}))

    def write(self, folder: Path) -> Path:
        from personae.data import write_text_atomic

        return write_text_atomic(folder / REWARD_FILE, json.dumps(self.to_dict(), ensure_ascii=False, indent=2))


class PersonalizedRewardModel:
    """A reward model that scores a response for a user described by a persona.

    ::

        rm = PersonalizedRewardModel.load("out/reward-model")
        rm.compare("Prefers short answers.", "How do I boil an egg?", answer_a, answer_b).preferred
        rm.score_batch([(persona, context, response), ...])

    The model was trained with or without personas (:attr:`uses_persona`); a model trained
    without ignores the persona it is given.
    """

    onnx_batch_tokens = 2048
    """On ONNX Runtime, each batch runs in slices of at most this many tokens (rows times the
    slice's own width): on two AVX2 cores, int8 scored 256 tailoring test sides at batch 32 at
    92.2 responses/s whole and 101.3 in slices of 2048 tokens (97.1 at 1024, 92.3 at 4096), as fast
    as at batch 8 (103.2). Torch runs each batch whole. ``0`` runs whole batches on ONNX too."""

    def __init__(self, model: Any, tokenizer: Any, info: RewardModelInfo, *, device: str = "cpu",
                 batch_size: int = 32, runtime: str = "torch") -> None:
        self.model = model   # a torch model, or an onnxruntime session (``runtime`` onnx, onnx-int8)
        self.tokenizer = tokenizer
        self.info = info
        self.device = device
        self.batch_size = batch_size
        self.runtime = runtime
        self.encoder = InputEncoder(tokenizer, info.template)

    # -- loading and saving -----------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], *, device: str = "auto", threads: int | None = None,
             batch_size: int = 32, runtime: str = "torch") -> PersonalizedRewardModel:
        """Load a folder written by :meth:`save` (or ``personae distill reward-model``).

        ``runtime``: ``torch`` (the saved model), or ``onnx`` / ``onnx-int8`` (its export by
        :func:`~personae.distill.export_onnx`, on ONNX Runtime's CPU provider; no torch needed)."""
        from personae.distill._onnx import RUNTIMES, onnx_session

        if runtime not in RUNTIMES:
            from personae.errors import ConfigError

            raise ConfigError(f"runtime is one of {', '.join(RUNTIMES)}, not {runtime!r}")
        folder = Path(path)
        if runtime != "torch":
            info = RewardModelInfo.read(folder)
            session = onnx_session(folder, int8=runtime == "onnx-int8", threads=threads)
            set_offline()
            from transformers import AutoTokenizer

            return cls(session, AutoTokenizer.from_pretrained(str(folder)), info, device="cpu",
                       batch_size=batch_size, runtime=runtime)
        require_distill("loading a reward model", ("torch", "transformers"))
        info = RewardModelInfo.read(folder)
        set_offline()
        set_threads(threads)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForSequenceClassification.from_pretrained(str(folder))
        device = resolve_device(device)
        model.to(device)
        model.eval()
        return cls(model, tokenizer, info, device=device, batch_size=batch_size)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model, its tokenizer and ``personae_reward.json`` to ``path``."""
        if self.runtime != "torch":
            from personae.errors import ConfigError

            raise ConfigError("an ONNX-loaded reward model is saved by its torch folder; load it with runtime='torch'")
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        self.info.write(folder)
        return folder

    def use_template(self, template: InputTemplate) -> None:
        """Encode inputs with ``template`` from now on: to score with other token budgets than the
        model was trained with (what the budgets cost or save). :meth:`save` writes it."""
        self.info.template = template
        self.encoder = InputEncoder(self.tokenizer, template)

    @property
    def uses_persona(self) -> bool:
        return self.info.template.uses_persona

    @property
    def length_weight(self) -> float:
        return self.info.length_weight

    # -- scoring ------------------------------------------------------------------------
    def score(self, persona: str, context: str, response: str) -> float:
        """The reward of one response."""
        return self.score_batch([(persona, context, response)])[0]

    def _length_batches(self, encoded: Sequence[Sequence[int]], size: int,
                        max_tokens: int = 0) -> Iterator[tuple[list[int], Any, Any]]:
        """``(indices, input_ids, attention_mask)`` numpy batches of token-id rows, sorted by length and
        padded per batch: what both runtimes run. With ``max_tokens``, each batch of ``size`` rows
        comes in slices of at most that many tokens (rows times the batch's longest row), each
        padded to its own longest row."""
        import numpy as np

        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), size):
            batch = order[start:start + size]
            step = max(1, max_tokens // max(len(encoded[i]) for i in batch)) if max_tokens else len(batch)
            for first in range(0, len(batch), step):
                chunk = batch[first:first + step]
                width = max(len(encoded[i]) for i in chunk)
                ids = np.full((len(chunk), width), pad_id, dtype=np.int64)
                mask = np.zeros((len(chunk), width), dtype=np.int64)
                for row, i in enumerate(chunk):
                    ids[row, : len(encoded[i])] = encoded[i]
                    mask[row, : len(encoded[i])] = 1
                yield chunk, ids, mask

    def padded_batches(self, encoded: Sequence[Sequence[int]], *,
                       batch_size: int | None = None) -> Iterator[tuple[list[int], Any, Any]]:
        """``(indices, input_ids, attention_mask)`` batches of token-id rows, sorted by length and
        padded per batch, the tensors on the model's device: the batches :meth:`score_batch` runs."""
        import torch

        for chunk, ids, mask in self._length_batches(encoded, batch_size or self.batch_size):
            yield chunk, torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def score_batch(self, items: Iterable[tuple[str, str, str]], *, batch_size: int | None = None) -> list[float]:
        """Rewards of many ``(persona, context, response)`` triples, in order.

        Inputs are sorted by length and padded per batch, so mixed lengths cost little.
        """
        import torch

        items = list(items)
        encoded = self.encoder.encode_many(items)
        logits = [0.0] * len(encoded)
        if self.runtime != "torch":
            self._score_onnx(encoded, logits, batch_size or self.batch_size)
            return self._with_length(logits, items)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for chunk, ids, mask in self.padded_batches(encoded, batch_size=batch_size):
                    out = self.model(input_ids=ids, attention_mask=mask)
                    values = out.logits.float().reshape(len(chunk), -1)[:, 0].cpu().tolist()
                    for i, value in zip(chunk, values, strict=True):
                        logits[i] = float(value)
        finally:
            self.model.train(was_training)
        return self._with_length(logits, items)

    def _with_length(self, logits: list[float], items: list[tuple[str, str, str]]) -> list[float]:
        weight = self.info.length_weight
        return [logit + weight * log_length(item[2]) if weight else logit
                for logit, item in zip(logits, items, strict=True)]

    def _score_onnx(self, encoded: Sequence[Sequence[int]], logits: list[float], size: int) -> None:
        """The same batches as torch's (sorted by length, padded per batch), run by ONNX Runtime in
        slices of at most :attr:`onnx_batch_tokens` tokens."""
        for chunk, ids, mask in self._length_batches(encoded, size, self.onnx_batch_tokens):
            out = self.model.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
            for i, value in zip(chunk, out.reshape(len(chunk), -1)[:, 0].tolist(), strict=True):
                logits[i] = float(value)

    def compare(self, persona: str, context: str, a: str, b: str) -> RewardVerdict:
        """Which of ``a`` and ``b`` the user described by ``persona`` would prefer."""
        reward_a, reward_b = self.score_batch([(persona, context, a), (persona, context, b)])
        preferred = "tie" if is_tie(reward_a, reward_b) else "A" if reward_a > reward_b else "B"
        return RewardVerdict(preferred, reward_a, reward_b)

    def score_records(self, records: Sequence[PreferenceRecord], personas: Callable[[PreferenceRecord], str],
                      *, batch_size: int | None = None) -> list[tuple[float, float]]:
        """``(reward of chosen, reward of rejected)`` for each record, its persona from ``personas``."""
        items: list[tuple[str, str, str]] = []
        for record in records:
            persona = personas(record)
            items += [(persona, record.prompt, record.chosen), (persona, record.prompt, record.rejected)]
        start = time.perf_counter()
        rewards = self.score_batch(items, batch_size=batch_size)
        logger.debug("scored %d pairs in %.1f s", len(records), time.perf_counter() - start)
        return [(rewards[2 * k], rewards[2 * k + 1]) for k in range(len(records))]
