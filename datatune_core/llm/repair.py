"""The schema repair retry: `repair_request` shows the model its invalid output and the validation errors;
`cut_off` tells a reply stopped at max_tokens (truncated JSON) from a finished one."""

from __future__ import annotations

import json

from datatune_core.llm.base import LLMRequest, ProviderReply


def repair_request(req: LLMRequest, reply: ProviderReply, why: str) -> LLMRequest:
    """The follow-up turn that shows the model its invalid output and the validation errors."""
    bad = json.dumps(reply.data, ensure_ascii=False) if reply.data is not None else (reply.text or "(empty)")
    msgs = list(req.messages) + [
        {"role": "assistant", "content": bad[:4000]},
        {"role": "user", "content": f"That output does not match the required JSON schema: {why}. "
                                    "Reply again with only a corrected JSON object that matches the schema."},
    ]
    return LLMRequest(messages=msgs, system=req.system, shared_prefix=req.shared_prefix, schema=req.schema,
                      max_tokens=req.max_tokens, temperature=req.temperature, role=req.role, model=req.model,
                      stage=req.stage, unit_key=req.unit_key, metadata={**req.metadata, "repair": True})


def cut_off(reply: ProviderReply) -> bool:
    """True when the provider stopped the reply at the token limit (Anthropic "max_tokens", OpenAI "length")."""
    return reply.stop_reason in ("max_tokens", "length")
