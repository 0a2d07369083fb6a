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
    from personae.programs._base import Program

    saved = program.dump_state()
    for path, module in program.named_sub_modules():  # settings that change no answer are left out
        key = "program_settings" if path == "self" else f"{path.removeprefix('self.')}.program_settings"
        if isinstance(module, Program) and isinstance(saved.get(key), dict):
            saved[key] = {k: v for k, v in saved[key].items() if k not in module.undigested()}
    state = json.dumps(saved, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(state.encode("utf-8")).hexdigest()[:16]


def stable_coin(*parts: Any) -> bool:
    """A reproducible fair coin from the given values (used to pick presentation order)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return digest[0] % 2 == 0
