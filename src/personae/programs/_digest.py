"""Digests and coins that programs and resume checks share."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import dspy

__all__ = ["program_digest", "stable_coin"]


def program_digest(program: dspy.Module) -> str:
    """A short digest of a program's saved state (instructions, demos): what resume checks
    compare to tell whether results were made by the same program."""
    saved = program.dump_state()
    for name, value in saved.items():  # how often a step may be asked again changes no answer
        if name.endswith("program_settings") and isinstance(value, dict):
            saved[name] = {k: v for k, v in value.items() if k != "attempts"}
    state = json.dumps(saved, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(state.encode("utf-8")).hexdigest()[:16]


def stable_coin(*parts: Any) -> bool:
    """A reproducible fair coin from the given values (used to pick presentation order)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return digest[0] % 2 == 0
