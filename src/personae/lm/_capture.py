"""Capturing what was sent to an LM and what came back, for run logs."""

from __future__ import annotations

from typing import Any

from dspy.utils.callback import BaseCallback

__all__ = ["CallCapture"]


class CallCapture(BaseCallback):
    """A DSPy callback that keeps the messages and raw output of the latest LM call.

    Attach one to a copy of the LM per judgment (``lm.copy(callbacks=[capture])``) so that
    concurrent judgments never see each other's prompts.
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] | None = None
        self.output: str | None = None

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        messages = inputs.get("messages")
        self.messages = [dict(m) for m in messages] if isinstance(messages, list) else None
        self.output = None

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        if not isinstance(outputs, list) or not outputs:
            return
        first = outputs[0]  # a text, or a dict with "text" when logprobs or tool calls come along
        if isinstance(first, dict):
            first = first.get("text", first)
        self.output = first if isinstance(first, str) else str(first)
