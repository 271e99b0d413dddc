"""OpenAICompatibleProvider (httpx) against the scripted OpenAI-compatible server."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from datatune_core.llm import LLMAuthError, LLMModelError, LLMRequest, get_client
from datatune_core.llm import test_connection as check_connection
from datatune_core.llm.ledger import list_calls
from datatune_core.llm.openai_provider import OpenAICompatibleProvider
from tests.fakes.openai_server import OpenAIServer

from .conftest import fast

pytestmark = pytest.mark.timeout(60)


class Sentiment(BaseModel):
    label: str


def req(i: int = 0) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": f"review {i}: loved it"}], schema=Sentiment,
                      shared_prefix="Label the sentiment.", unit_key=f"u{i}")


def provider(srv: OpenAIServer, **kw) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(base_url=srv.url + "/v1", model=kw.pop("model", "tiny"), api_key=srv.api_key,
                                    timeout_s=5, **kw)


@pytest.mark.parametrize("schema_ok,object_ok,expected", [(True, True, "json_schema"), (False, True, "json_object"),
                                                          (False, False, "prompt")])
def test_structured_output_mode_fallback(store, schema_ok, object_ok, expected):
    with OpenAIServer(lambda body: 'Here you go: {"label": "positive"}', json_schema=schema_ok,
                      json_object=object_ok) as srv:
        p = provider(srv)
        c = get_client(store, provider=p)
        res = c.complete(req(1))
        assert res.ok and res.parsed == Sentiment(label="positive")
        assert p.describe()["json_mode"] == expected
        n = len(srv.log)
        assert get_client(store, provider=p, use_cache=False).complete(req(2)).ok
        assert len(srv.log) == n + 1  # the working mode is remembered
        system = srv.log and p  # noqa: F841
        assert res.usage.input_tokens > 0


def test_schema_is_described_in_the_prompt(store):
    seen = {}

    def responder(body):
        seen["system"] = body["messages"][0]["content"]
        return '{"label": "negative"}'

    with OpenAIServer(responder) as srv:
        get_client(store, provider=provider(srv)).complete(req())
    assert "Label the sentiment." in seen["system"] and '"label"' in seen["system"]


def test_retries_429_500_and_malformed(store):
    with OpenAIServer(lambda body: '{"label": "ok"}') as srv:
        srv.queue_faults("429", "500", "malformed")
        c = fast(get_client(store, provider=provider(srv)))
        res = c.complete(req())
        assert res.ok and c.stats["retries"] == 3
        assert len(list_calls(store)) == 1


def test_bad_key_unknown_model_and_models_list(store):
    with OpenAIServer(models=("tiny", "small")) as srv:
        bad = OpenAICompatibleProvider(base_url=srv.url + "/v1", model="tiny", api_key="nope", timeout_s=5)
        with pytest.raises(LLMAuthError, match="OPENAI_API_KEY"):
            get_client(store, provider=bad).complete(req())
        assert len(srv.log) == 1  # not retried
        with pytest.raises(LLMModelError, match="DATATUNE_OPENAI_MODEL"):
            get_client(store, provider=provider(srv, model="huge")).complete(req())
        assert provider(srv).list_models() == ["small", "tiny"]
        ok, msg = check_connection(provider(srv))
        assert ok and "tiny" in msg


def test_unreachable_server_message(store):
    p = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1", model="tiny", timeout_s=1)
    ok, msg = check_connection(p)
    assert not ok and "Is the server running?" in msg


def test_missing_settings_message(monkeypatch):
    from datatune_core.errors import UserError
    from datatune_core.llm import make_provider

    monkeypatch.delenv("DATATUNE_OPENAI_BASE_URL", raising=False)
    with pytest.raises(UserError, match="DATATUNE_OPENAI_BASE_URL"):
        make_provider("openai")


def test_project_settings_choose_the_server(store, monkeypatch):
    with OpenAIServer(lambda body: '{"label": "from-project"}') as srv:
        pid = store.create_project("proj", settings={"provider": "openai", "openai_base_url": srv.url + "/v1",
                                                     "openai_model": "tiny"})
        monkeypatch.setenv("OPENAI_API_KEY", srv.api_key)
        c = get_client(store, pid)
        assert c.provider.name == "openai" and c.model_for(req()) == "tiny"
        assert c.complete(req()).parsed.label == "from-project"
