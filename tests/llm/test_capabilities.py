"""Provider capabilities: what each provider declares, temperature reaching the providers that take one (the
Messages API through the real SDK, an OpenAI-compatible server, the local model), the local reply limit as a
setting, and the stage decisions that follow a capability instead of a provider's name."""

from __future__ import annotations

import dataclasses

import pytest

from datatune_core.config import load_settings
from datatune_core.errors import SettingsError
from datatune_core.llm import (Capabilities, LLMRequest, capabilities_of, fit_max_tokens, get_client,
                               provider_capabilities, provider_status, register_provider)
from datatune_core.llm.providers import PROVIDERS, provider_class
from datatune_core.testing import ScriptedProvider
from tests.fakes.openai_server import OpenAIServer

pytestmark = pytest.mark.timeout(120)


def ask(temperature: float, max_tokens: int = 64, **meta) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": "name a color"}], temperature=temperature,
                      max_tokens=max_tokens, metadata=dict(meta))


class WeakProvider(ScriptedProvider):
    """A registered provider (no name the code knows) that declares it does not reason well."""

    name = "weak-test"
    capabilities = Capabilities(strong_reasoning=False, temperature=False, max_output_tokens=300)

    def __init__(self, responder=None):
        super().__init__(responder or (lambda r: "ok"))

    @classmethod
    def from_settings(cls, settings, **kw):
        return cls()


class StrongProvider(WeakProvider):
    name = "strong-test"
    capabilities = Capabilities(strong_reasoning=True)


@pytest.fixture
def registered():
    register_provider("weak-test", f"{__name__}:WeakProvider")
    register_provider("strong-test", f"{__name__}:StrongProvider")
    yield
    PROVIDERS.pop("weak-test", None)
    PROVIDERS.pop("strong-test", None)


def test_every_provider_declares_its_capabilities():
    for name in ("anthropic", "openai", "local"):
        caps = provider_class(name).capabilities
        assert isinstance(caps, Capabilities) and dataclasses.is_dataclass(caps)
        with pytest.raises(dataclasses.FrozenInstanceError):
            caps.strong_reasoning = not caps.strong_reasoning  # type: ignore[misc]
    claude, local = provider_capabilities("anthropic"), provider_capabilities("local")
    assert claude.strong_reasoning and claude.batch_api and claude.prompt_caching and claude.priced
    assert claude.structured_output == "tool" and claude.max_output_tokens is None
    assert not local.strong_reasoning and not local.priced and not local.batch_api
    assert local.temperature and local.max_output_tokens == 256 and local.context_tokens == 4096
    assert provider_capabilities("no-such-provider") == Capabilities(strong_reasoning=False, temperature=False)
    assert provider_status()["capabilities"] == local.to_dict()  # nothing configured: the embedded model


def test_anthropic_sends_the_temperature_exactly_when_the_sdk_takes_one(messages_server, claude, store):
    from datatune_core.llm.anthropic_provider import sdk_takes_temperature

    bodies = []
    messages_server.responder = lambda body: (bodies.append(body), "blue")[1]
    c = get_client(store, provider=claude, use_cache=False)
    assert c.complete(ask(0.7)).ok and c.complete(ask(1.6)).ok
    # The installed SDK decides: the current one (anthropic 2.x) has no temperature parameter, so none is sent
    # and the capabilities say so; an SDK that takes one gets it, clamped to Claude's 0-1 range.
    assert claude.capabilities.temperature == sdk_takes_temperature()
    if claude.capabilities.temperature:
        assert [b["temperature"] for b in bodies] == [0.7, 1.0]
    else:
        assert all("temperature" not in b for b in bodies)
    assert [b["max_tokens"] for b in bodies] == [64, 64]


def test_openai_compatible_server_gets_the_temperature_clamped(store):
    bodies = []
    with OpenAIServer(lambda body: (bodies.append(body), "blue")[1]) as srv:
        from datatune_core.llm.openai_provider import OpenAICompatibleProvider

        p = OpenAICompatibleProvider(base_url=srv.url + "/v1", model="tiny", api_key=srv.api_key, timeout_s=5)
        c = get_client(store, provider=p, use_cache=False)
        assert c.complete(ask(0.3)).ok and c.complete(ask(2.5)).ok
    assert [b["temperature"] for b in bodies] == [0.3, 2.0]


def test_scripted_provider_gets_the_temperature_and_cuts_at_its_limit():
    p = ScriptedProvider(lambda r: "x" * 400, capabilities=Capabilities(max_output_tokens=10))
    res = get_client(provider=p).complete(ask(1.2, max_tokens=200))
    assert p.calls[0].temperature == 1.2
    assert res.usage.output_tokens <= 10  # a reply cut where the model's limit is


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    from tests.train.tiny import build_tiny_model_dir

    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-local") / "model", chat=True)


@pytest.fixture
def fresh_engine():
    from datatune_core.llm import local

    saved = dict(local._ENGINE)
    yield
    local._ENGINE.clear()
    local._ENGINE.update(saved)


def test_local_model_samples_at_the_requested_temperature_and_stops_at_its_limit(tiny_chat_model, fresh_engine):
    """The real local provider (transformers backend) on a tiny model built here: greedy at 0, sampling above."""
    from datatune_core.llm.local import LocalProvider

    p = LocalProvider(backend="transformers", max_new_tokens=16, model_path=str(tiny_chat_model))
    assert p.capabilities.max_output_tokens == 16 and p.capabilities.temperature
    greedy = {p.call(ask(0.0, seed=s), "m").text for s in range(4)}
    assert len(greedy) == 1  # temperature 0: the same reply whatever the seed
    hot = [p.call(ask(1.5, seed=s), "m") for s in range(4)]
    assert len({r.text for r in hot}) > 1  # sampled: the seed (and so the reply) differs per request
    assert p.call(ask(1.5, seed=2), "m").text == hot[2].text  # seeded from the request: a rerun is the same
    cut = p.call(ask(0.0, max_tokens=500), "m")
    assert cut.usage.output_tokens <= 16  # asked for 500, the limit is 16
    assert p.call(ask(0.0, max_tokens=3), "m").usage.output_tokens <= 3


def test_the_local_reply_limit_is_a_setting(monkeypatch, store):
    from datatune_core.llm.local import LocalProvider

    monkeypatch.setenv("DATATUNE_LOCAL_MAX_NEW_TOKENS", "200")
    s = load_settings()
    assert s.local_max_output_tokens == 200 and s.to_dict()["local_max_output_tokens"] == 200
    assert LocalProvider.from_settings(s).capabilities.max_output_tokens == 200
    assert provider_capabilities("local", s).max_output_tokens == 200
    # a project's own setting wins over the environment's
    pid = store.create_project("p", "Say a color.", [])
    store.update_project(pid, settings={"provider": "local", "local_max_output_tokens": 96})
    c = get_client(store, pid)
    assert c.provider.capabilities.max_output_tokens == 96 and fit_max_tokens(c, 768) == 96
    assert fit_max_tokens(c, 40) == 40 and fit_max_tokens(None, 768) == 768
    st = provider_status(project_settings={"provider": "local", "local_max_output_tokens": 96})
    assert st["max_output_tokens"] == 96 and "replies up to 96 tokens" in st["message"]
    monkeypatch.setenv("DATATUNE_LOCAL_MAX_NEW_TOKENS", "5")
    with pytest.raises(SettingsError, match="between 16 and 4096"):
        LocalProvider.from_settings(load_settings())
    bad = provider_status(project_settings={"provider": "local"})
    assert not bad["ok"] and "between 16 and 4096" in bad["message"]
    monkeypatch.setenv("DATATUNE_LOCAL_MAX_NEW_TOKENS", "lots")
    with pytest.raises(SettingsError, match="whole number"):
        load_settings()


def test_client_warns_once_when_a_request_asks_for_more_than_the_limit():
    logs = []
    c = get_client(provider=ScriptedProvider(lambda r: "ok", capabilities=Capabilities(max_output_tokens=50)))
    c.logger = logs.append
    c.complete(ask(0, max_tokens=500))
    c.complete(ask(0.1, max_tokens=500))
    assert len(logs) == 1 and "returns at most 50" in logs[0]


def test_stage_decisions_follow_the_capability_not_the_name(registered, store):
    from datatune_core.evaluation.answerjudge import capable
    from datatune_core.quality.profiling import _llm_configured
    from datatune_core.transformation.pipeline import strong_client
    from datatune_ui.datasets import rerank_unavailable

    weak, strong = get_client(provider="weak-test"), get_client(provider="strong-test")
    assert capabilities_of(weak).strong_reasoning is False and capabilities_of(None).strong_reasoning is False
    assert strong_client(weak) is None and strong_client(strong) is strong  # expansion / schema / plan
    assert not capable(weak) and capable(strong)  # the answer judge
    # quality "auto": a name the old check did not know ("weak-test") used to count as capable
    assert not _llm_configured({"provider": "weak-test"}) and _llm_configured({"provider": "strong-test"})
    pid = store.create_project("p", "Say a color.", [])
    store.update_project(pid, settings={"provider": "weak-test"})
    assert "too small" in rerank_unavailable(store.get_project(pid))
    store.update_project(pid, settings={"provider": "strong-test"})
    assert rerank_unavailable(store.get_project(pid)) is None


def test_role_models_only_for_providers_that_choose_models(store, monkeypatch):
    monkeypatch.setenv("DATATUNE_CHEAP_MODEL", "claude-haiku-4-5")
    assert get_client(provider=ScriptedProvider(lambda r: "ok")).config.models == {}
    chooser = ScriptedProvider(lambda r: "ok", capabilities=Capabilities(model_choice=True))
    assert get_client(provider=chooser).config.models == {"cheap": "claude-haiku-4-5"}


def test_price_fallback_only_for_priced_providers():
    from datatune_core.llm.base import Usage

    u = Usage(input_tokens=1_000_000)
    free = get_client(provider=ScriptedProvider(lambda r: "ok", model="claude-mystery-9"))
    paid = get_client(provider=ScriptedProvider(lambda r: "ok", model="claude-mystery-9",
                                                capabilities=Capabilities(priced=True)))
    assert free.prices.cost("claude-mystery-9", u, priced=free.provider.capabilities.priced) == 0
    assert paid.prices.cost("claude-mystery-9", u, priced=paid.provider.capabilities.priced) > 0
    assert paid.complete(ask(0)).cost_usd > 0 and free.complete(ask(0)).cost_usd == 0


def test_cli_configure_sets_the_project_llm_settings_and_status_shows_capabilities(home, store, monkeypatch):
    from typer.testing import CliRunner

    from datatune_core.cli import app

    monkeypatch.chdir(home.parent)
    pid = store.create_project("demo", "Say a color.", [])
    r = CliRunner().invoke(app, ["llm", "configure", "demo", "--provider", "local", "--local-max-output-tokens",
                                 "256", "--budget", "3", "--no-batches"])
    assert r.exit_code == 0, r.output
    s = store.get_project(pid).settings
    assert s == {"provider": "local", "local_max_output_tokens": 256, "budget_usd": 3.0, "use_batches": False}
    assert "replies up to 256 tokens" in r.output
    r = CliRunner().invoke(app, ["llm", "status", "--project", "demo"])
    assert r.exit_code == 0 and "max_output_tokens=256" in r.output and "strong_reasoning=False" in r.output
    r = CliRunner().invoke(app, ["llm", "configure", "demo", "--provider", "auto", "--local-max-output-tokens", "0",
                                 "--budget", "0"])
    assert r.exit_code == 0 and store.get_project(pid).settings == {"use_batches": False}
    r = CliRunner().invoke(app, ["llm", "configure", "demo", "--local-max-output-tokens", "9"])
    assert r.exit_code != 0 and "between 16 and 4096" in str(r.exception or r.output)


def test_status_comes_from_the_provider_class(registered, monkeypatch):
    st = provider_status(project_settings={"provider": "weak-test"})
    assert st["message"] == "Custom provider 'weak-test'." and st["ok"] and not st["needs_key"]
    assert st["capabilities"]["strong_reasoning"] is False and st["capabilities"]["max_output_tokens"] == 300
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    claude = provider_status(project_settings={"provider": "anthropic"})
    assert claude["needs_key"] and not claude["ok"] and "no API key" in claude["message"]
    assert claude["capabilities"]["batch_api"] is True
