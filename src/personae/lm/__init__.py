"""Language models: the embedded offline model, LiteLLM models, a scripted fake, cost metering."""

from personae.lm._adapter import MAX_STRING_CHARS_ATTR, JSONAdapter
from personae.lm._capture import CallCapture
from personae.lm._cost import Cost, CostMeter
from personae.lm._fake import ScriptedCall, ScriptedEngine, ScriptedLM
from personae.lm._http import HTTPEngine
from personae.lm._local import LOCAL_MODEL_NAME, LlamaCppEngine, find_local_model
from personae.lm._resolve import DEFAULT_MODEL, ENGINES, default_adapter, engine_for, get_lm, is_local
from personae.specs import LMSpec

__all__ = [
    "CallCapture",
    "DEFAULT_MODEL",
    "ENGINES",
    "HTTPEngine",
    "JSONAdapter",
    "LOCAL_MODEL_NAME",
    "MAX_STRING_CHARS_ATTR",
    "Cost",
    "CostMeter",
    "LMSpec",
    "LlamaCppEngine",
    "ScriptedCall",
    "ScriptedEngine",
    "ScriptedLM",
    "default_adapter",
    "engine_for",
    "find_local_model",
    "get_lm",
    "is_local",
]
