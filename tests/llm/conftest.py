"""Fixtures for the LLM-layer tests: the scripted Messages-API server and a Claude provider pointed at it."""

from __future__ import annotations

import pytest

from tests.fakes.messages_server import MessagesServer, messages_server  # noqa: F401  (fixture)


@pytest.fixture
def claude(messages_server):
    """An AnthropicProvider (real SDK) talking to the scripted server; short timeout."""
    from datatune_core.llm.anthropic_provider import AnthropicProvider

    p = AnthropicProvider(api_key=messages_server.api_key, base_url=messages_server.url, timeout_s=2.0)
    yield p
    p.close()


def fast(client, concurrency: int | None = None):
    """Shrink backoff so fault tests stay fast (retry-after values still come from the server)."""
    client.config.backoff_base_s = 0.01
    client.config.backoff_max_s = 0.2
    client.config.batch_poll_s = 0.05
    if concurrency:
        client.config.concurrency = concurrency
        client.limiter.set_max(concurrency)
    return client
