"""Try the fine-tuned model: one prompt answered by the base and by the tuned model, streamed token by token.

One copy of the base weights serves both: the adapter is switched off (`disable_adapter`) for the base answer. Prompts
use the project's format (`models.build_prompt` with the training instruction and prompt style from the adapter's
`datatune_training.json`), so the tuned model sees what it was trained on; decoding is greedy and stops at the end of
turn.

    >>> s = ChatSession("runs/job-3/adapter")
    >>> for piece in s.stream("What color is a frog?", "tuned"): print(piece, end="")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError

VARIANTS = ("base", "tuned")


class ChatSession:
    """Base model + LoRA adapter loaded once; `stream(text, variant)` yields the answer's text pieces."""

    def __init__(self, adapter: str | Path, base: str | None = None, device: str | None = None):
        from peft import PeftModel

        from datatune_core.exporting.model import training_meta
        from datatune_core.models import load_causal_lm

        self.adapter = str(adapter)
        self.meta = training_meta(adapter)
        model, self.tok = load_causal_lm(base or self.meta.get("base_model"), device=device)
        self.model = PeftModel.from_pretrained(model, self.adapter)
        self.model.eval()
        self.lock = threading.Lock()  # one generation at a time (the adapter switch is model-wide)

    @property
    def instruction(self) -> str:
        return self.meta.get("instruction") or ""

    def prompt(self, text: str) -> str:
        from datatune_core.exporting.model import prompt_for

        return prompt_for(self.tok, self.meta, text)

    def stream(self, text: str, variant: str = "tuned", max_new_tokens: int = 128) -> Iterator[str]:
        """The answer of `variant` (base or tuned) to `text`, piece by piece as it is generated."""
        import torch
        from transformers import TextIteratorStreamer

        from datatune_core.models import encode, stop_token_ids

        if variant not in VARIANTS:
            raise UserError(f"variant must be base or tuned (got {variant!r}).")
        if not (text or "").strip():
            raise UserError("Type a prompt first.")
        ids = torch.tensor([encode(self.tok, self.prompt(text))], device=self.model.device)
        streamer = TextIteratorStreamer(self.tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
        errors: list[BaseException] = []

        def run() -> None:
            import contextlib

            try:
                ctx = self.model.disable_adapter() if variant == "base" else contextlib.nullcontext()
                with self.lock, ctx, torch.no_grad():
                    self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                        do_sample=False, streamer=streamer, pad_token_id=self.tok.pad_token_id,
                                        eos_token_id=stop_token_ids(self.tok, self.meta.get("prompt_style") or "auto"))
            except BaseException as e:  # surfaced in the caller's thread below
                errors.append(e)
                streamer.end()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        yield from streamer
        t.join()
        if errors:
            raise errors[0]

    def answer(self, text: str, variant: str = "tuned", max_new_tokens: int = 128) -> str:
        return "".join(self.stream(text, variant, max_new_tokens)).strip()


def side_by_side(session: ChatSession, text: str, max_new_tokens: int = 128) -> dict[str, str]:
    """{"base": ..., "tuned": ...} for one prompt."""
    return {v: session.answer(text, v, max_new_tokens) for v in VARIANTS}


def as_dict(session: ChatSession, text: str, answers: dict[str, str]) -> dict[str, Any]:
    return {"prompt": text, "instruction": session.instruction, "adapter": session.adapter, **answers}
