"""The reward model on ONNX Runtime: export a saved model, and score with the export.

:func:`export_onnx` writes ``onnx/model.onnx`` beside a saved reward model (and, with
``int8``, ``onnx/model.int8.onnx``: weights quantized to int8, per channel, by ONNX Runtime's
dynamic quantization, the first transformer layer kept in fp32) and ``onnx/stamp.json``: the
digest of the weights and of ``personae_reward.json`` it was exported from, and the settings.
:func:`onnx_session` opens an export for scoring and refuses one whose stamp does not match the
model folder (the model was trained again, or the export is from another format version),
saying why.

The export uses ``torch.onnx.export`` with its TorchScript exporter (``dynamo=False``): the
reward model is a plain sequence classifier, so Optimum's machinery would add a dependency for
nothing, and on the MiniLM backbone the TorchScript graph runs faster on ONNX Runtime than the
dynamo exporter's (a probe at 256 tokens, batch 32, two AVX2 threads: int8 39.4 against 30.2
responses/s, fp32 21.4 against 17.9; ONNX Runtime's BERT optimizer added nothing to it). Scoring
needs only ``onnxruntime`` and the tokenizer, no torch. Batch and sequence length are dynamic
axes, so inputs stay batched by length as with torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from personae.distill._extra import require_distill, set_offline
from personae.errors import DataError

__all__ = ["ONNX_FOLDER", "RUNTIMES", "export_onnx", "onnx_session"]

logger = logging.getLogger(__name__)

ONNX_FOLDER = "onnx"
STAMP_FILE = "stamp.json"
STAMP_VERSION = 3   # 3: int8 keeps the first layer fp32; 2: TorchScript exporter; 1: dynamo exporter
RUNTIMES = ("torch", "onnx", "onnx-int8")
"""How a reward model scores: torch (the saved model), its ONNX export in fp32, or in int8."""
EXPORT_MODULES = ("torch", "transformers", "onnx", "onnxruntime")
RUN_MODULES = ("transformers", "onnxruntime")
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def _digest(folder: Path) -> dict[str, str]:
    """SHA-256 of the model's weights and of its personae settings: what an export is stamped with."""
    from personae.distill._reward_model import REWARD_FILE

    weights = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES):
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                weights.update(block)
    settings = folder / REWARD_FILE
    return {"weights_sha256": weights.hexdigest(),
            "reward_file_sha256": hashlib.sha256(settings.read_bytes()).hexdigest() if settings.exists() else ""}


FP32_LAYERS = 1
"""Transformer layers, from the input, whose matrix products stay fp32 in the int8 export. The
first layer reads the raw embeddings, whose outliers int8 rounds worst: on the six-layer
tailoring model, keeping it fp32 cut the test verdicts int8 changed from 60 to 40 (Anthropic_HHH)
and from 48 to 43 (BeaverTails), and the BeaverTails accuracy lost to int8 from 2.0 points to 0.3,
while the head (pooler, classifier) or the last layer in fp32 did not help."""


def _first_layer_matmuls(model_path: Path) -> list[str]:
    """Names of the MatMul nodes of the first :data:`FP32_LAYERS` transformer layers (TorchScript
    names them after the module path, ``/bert/encoder/layer.0/...``)."""
    import re

    import onnx

    pattern = re.compile(r"/layers?\.(\d+)/")
    names = []
    for node in onnx.load(str(model_path), load_external_data=False).graph.node:
        found = pattern.search(node.name)
        if node.op_type == "MatMul" and found and int(found.group(1)) < FP32_LAYERS:
            names.append(node.name)
    return names


class _DropAdvice(logging.Filter):
    """Drops ONNX Runtime's "consider pre-processing" notice, printed on every dynamic quantization:
    the export does not act on it (int8 is checked against fp32 by the tests and benchmarks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")


def export_onnx(path: str | os.PathLike[str], *, int8: bool = False, opset: int = 17) -> Path:
    """Export the reward model saved in ``path`` to ``path/onnx/`` (``model.onnx``; with ``int8``
    also ``model.int8.onnx``) with its stamp; returns that folder."""
    require_distill("exporting a reward model to ONNX (pip install 'personae[distill,onnx]')", EXPORT_MODULES)
    from personae.distill._reward_model import RewardModelInfo

    folder = Path(path)
    RewardModelInfo.read(folder)   # a reward model folder, or a DataError that says why not
    set_offline()
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    out = folder / ONNX_FOLDER
    out.mkdir(exist_ok=True)
    target = out / "model.onnx"
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"},
            "logits": {0: "batch"}}
    logging.getLogger("torch.onnx").setLevel(logging.WARNING)
    with warnings.catch_warnings():   # the exporter's own notices (tracing, deprecation), nothing of ours
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask), str(target), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamo=False, opset_version=opset, dynamic_axes=axes)
    files = {"fp32": target.name}
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = out / "model.int8.onnx"
        # per-channel scales: on the MiniLM backbone both faster and closer to fp32 than one scale a
        # tensor (a probe at 256 tokens, batch 32, two AVX2 threads: 36.0 against 34.2 responses/s,
        # largest reward difference 0.005 against 0.014)
        advice = _DropAdvice()   # the quantizer's generic advice, logged on the root logger each time
        logging.getLogger().addFilter(advice)
        try:
            quantize_dynamic(str(target), str(quantized), weight_type=QuantType.QInt8, per_channel=True,
                             nodes_to_exclude=_first_layer_matmuls(target),
                             extra_options={"DefaultTensorType": 1})   # FLOAT, where shape inference gives none
        finally:
            logging.getLogger().removeFilter(advice)
        files["int8"] = quantized.name
    import onnxruntime

    stamp = {"version": STAMP_VERSION, **_digest(folder), "files": files, "opset": opset, "exporter": "torchscript",
             "int8_fp32_layers": FP32_LAYERS if int8 else None,
             "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    (out / STAMP_FILE).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    logger.info("exported %s to %s (%s)", folder, out, ", ".join(files))
    return out


def onnx_session(path: str | os.PathLike[str], *, int8: bool = False, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the export of the reward model in ``path``; a
    :class:`DataError` naming the reason when there is none, or it is stale."""
    require_distill("scoring a reward model on ONNX Runtime (pip install 'personae[distill,onnx]')", RUN_MODULES)
    folder = Path(path)
    stamp_path = folder / ONNX_FOLDER / STAMP_FILE
    hint = f"run: personae distill export {folder} --onnx{' --int8' if int8 else ''}"
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"no ONNX export of this reward model; {hint}", source=str(folder)) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"the export's stamp is not valid JSON ({exc}); {hint}", source=str(stamp_path)) from None
    if not isinstance(stamp, dict) or stamp.get("version") != STAMP_VERSION:
        raise DataError(f"the export is of another format (stamp version {stamp.get('version')!r}, this personae "
                        f"reads {STAMP_VERSION}); {hint}", source=str(stamp_path), field="version")
    now = _digest(folder)
    for key, value in now.items():
        if stamp.get(key) != value:
            what = "weights" if key.startswith("weights") else "settings (personae_reward.json)"
            raise DataError(f"the export was made from other {what} than the model's now (trained or changed "
                            f"since); {hint}", source=str(stamp_path), field=key)
    name = (stamp.get("files") or {}).get("int8" if int8 else "fp32")
    if not name:
        raise DataError(f"the export has no {'int8' if int8 else 'fp32'} model; {hint}", source=str(stamp_path))
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(folder / ONNX_FOLDER / name), sess_options=options,
                                        providers=["CPUExecutionProvider"])
