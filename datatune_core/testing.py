"""`ScriptedProvider`: an in-process LLM stand-in for stage unit tests (not a product provider).

`responder(request) -> str | dict` decides the reply: a dict becomes the structured output (as a tool call
would), a str is the raw model text (parsed/repaired like any model text when the request has a schema). The
responder may raise `LLMTransientError` etc. to exercise retries. Usage is a deterministic estimate
(~4 characters per token) so ledgers and budgets behave; the price is 0 unless `price_model` names a priced model.
`capabilities` declares what it stands in for (default: a capable model with prompt caching and no output limit);
e.g. `Capabilities(strong_reasoning=False)` makes the stages take their offline paths, and a `max_output_tokens`
cuts replies the way a model at its limit would (stop_reason "max_tokens").

    >>> from datatune_core.llm import get_client, LLMRequest
    >>> from datatune_core.testing import ScriptedProvider
    >>> p = ScriptedProvider(lambda req: {"answer": req.messages[-1]["content"].upper()})
    >>> get_client(provider=p).complete(LLMRequest(messages=[{"role": "user", "content": "hi"}])).text
    '{"answer": "HI"}'
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from datatune_core.llm.base import LLMRequest, Provider, ProviderReply, Usage, request_text
from datatune_core.llm.capabilities import Capabilities


def approx_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


class ScriptedProvider(Provider):
    name = "scripted"
    needs_key = False
    quality_note = "Scripted test responder, not a language model."
    capabilities = Capabilities(strong_reasoning=True, temperature=True, max_temperature=2.0,
                                structured_output="tool", prompt_caching=True)

    def __init__(self, responder: Callable[[LLMRequest], Any], model: str = "scripted",
                 price_model: str | None = None, capabilities: Capabilities | None = None):
        if capabilities is not None:
            self.capabilities = capabilities
        self.responder = responder
        self.model = model
        self.price_model = price_model
        self.calls: list[LLMRequest] = []
        self._seen_prefixes: set[str] = set()
        self._lock = threading.Lock()

    def default_model(self, role: str) -> str:
        return self.model

    def count_tokens(self, req: LLMRequest, model: str) -> int | None:
        return approx_tokens(request_text(req))

    def call(self, req: LLMRequest, model: str) -> ProviderReply:
        with self._lock:
            self.calls.append(req)
        out = self.responder(req)
        if isinstance(out, ProviderReply):
            return out
        if isinstance(out, (dict, list)):
            text, data = json.dumps(out, ensure_ascii=False), out
        else:
            text, data = str(out), None
        stop = "end_turn"
        limit = self.capabilities.max_output_tokens
        if limit is not None and approx_tokens(text) > min(limit, req.max_tokens):
            text, data, stop = text[:4 * min(limit, req.max_tokens)], None, "max_tokens"  # cut like a model
        total = approx_tokens(request_text(req))
        usage = Usage(input_tokens=total, output_tokens=approx_tokens(text))
        if req.shared_prefix:  # behave like prompt caching: the prefix is written once, then read
            pre = approx_tokens(req.shared_prefix)
            with self._lock:
                seen = req.shared_prefix in self._seen_prefixes
                self._seen_prefixes.add(req.shared_prefix)
            usage.input_tokens = max(0, total - pre)
            if seen:
                usage.cache_read_tokens = pre
            else:
                usage.cache_write_tokens = pre
        return ProviderReply(text=text, data=data, usage=usage, model=self.price_model or model,
                             stop_reason=stop)
