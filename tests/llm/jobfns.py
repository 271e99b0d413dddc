"""A job that labels rows through the LLM client, used to test budget pause + resume with the real job runner."""

from __future__ import annotations

from pydantic import BaseModel

from datatune_core.config import anthropic_api_key
from datatune_core.jobs import JobContext
from datatune_core.llm import LLMRequest, get_client
from datatune_core.llm.anthropic_provider import AnthropicProvider


class Label(BaseModel):
    label: str


def label_rows(ctx: JobContext) -> dict:
    cfg = ctx.config
    provider = AnthropicProvider(api_key=anthropic_api_key(), base_url=cfg["base_url"], timeout_s=5)
    client = get_client(ctx.store, ctx.project_id, ctx.job_id, provider=provider, stage="label", concurrency=4)
    client.logger = ctx.log
    keys = [f"row{i}" for i in range(int(cfg["n"]))]
    ctx.set_total(len(keys))
    reqs = [LLMRequest(messages=[{"role": "user", "content": f"label {k}"}], schema=Label, unit_key=k,
                       shared_prefix="Label rows. " * 30) for k in ctx.pending(keys)]
    for res in client.bulk(reqs):  # BudgetExceeded propagates: the runner marks the job paused
        ctx.commit(res.request.unit_key, {"label": res.parsed.label if res.ok else None, "call": res.call_id})
    return {"done": ctx.done_count(), "spent_usd": client.spent_usd}
