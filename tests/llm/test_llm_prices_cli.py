"""Price table overrides, provider status, and the `datatune llm` commands (against the scripted server)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from datatune_core.llm.base import Usage
from datatune_core.llm.prices import load_prices

pytestmark = pytest.mark.timeout(120)


def test_prices_longest_prefix_fallback_and_user_override(home):
    t = load_prices()
    assert t.lookup("claude-haiku-4-5-20251001").input == 1.0
    assert t.lookup("claude-opus-4-1-20250805").input == 15.0 and t.lookup("claude-opus-4-5").input == 5.0
    unknown = t.lookup("claude-mystery-1")
    assert not unknown.known and unknown.input > 0  # priced conservatively so budgets still hold
    assert t.lookup("some-local-model", priced=False).input == 0
    u = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=1_000_000,
              cache_write_tokens=1_000_000)
    assert t.cost("claude-haiku-4-5", u) == pytest.approx(1 + 5 + 0.1 + 1.25)
    assert t.cost("claude-haiku-4-5", u, batch=True) == pytest.approx((1 + 5 + 0.1 + 1.25) / 2)
    home.mkdir(parents=True, exist_ok=True)
    (home / "prices.toml").write_text('[models."claude-haiku"]\ninput = 2.0\noutput = 8.0\n'
                                      '[models."my-vllm-model"]\ninput = 0.1\noutput = 0.2\n')
    t2 = load_prices()
    assert t2.lookup("claude-haiku-4-5").output == 8.0 and t2.lookup("my-vllm-model", priced=False).known
    assert t2.lookup("claude-sonnet-4-5").input == 3.0  # untouched entries keep the bundled price
    (home / "prices.toml").write_text("[models.x]\ninput = 'a lot'\n")
    from datatune_core.errors import UserError

    with pytest.raises(UserError, match="input"):
        load_prices()


def test_provider_status_local_says_quality_is_limited(home, monkeypatch):
    from datatune_core.llm import provider_status

    monkeypatch.chdir(home.parent)
    st = provider_status()
    assert st["provider"] == "local" and "quality is limited" in st["quality_note"]
    monkeypatch.setenv("DATATUNE_PROVIDER", "anthropic")
    st = provider_status()
    assert not st["ok"] and "ANTHROPIC_API_KEY" in st["message"]


def _cli():
    from datatune_core.cli import app

    return app


def test_cli_status_prices_estimate(home, monkeypatch):
    monkeypatch.chdir(home.parent)
    r = CliRunner().invoke(_cli(), ["llm", "status", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["provider"] == "local"
    r = CliRunner().invoke(_cli(), ["llm", "prices"])
    assert r.exit_code == 0 and "claude-haiku" in r.output
    r = CliRunner().invoke(_cli(), ["llm", "estimate", "--rows", "100", "--prompt", "Classify: fine", "--json"])
    assert r.exit_code == 0, r.output
    est = json.loads(r.output)
    assert est["n_total"] == 100 and est["cost_usd"] == 0 and est["method"]


def test_cli_ask_ledger_no_cache_and_bad_key(home, monkeypatch, messages_server):
    monkeypatch.chdir(home.parent)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", messages_server.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", messages_server.api_key)
    app = _cli()
    r = CliRunner().invoke(app, ["llm", "ask", "Say hi"])
    assert r.exit_code == 0, r.output
    assert "OK: Say hi" in r.output
    r = CliRunner().invoke(app, ["llm", "ask", "Say hi"])
    assert "cache hit" in r.output
    r = CliRunner().invoke(app, ["llm", "ask", "Say hi", "--no-cache"])
    assert "live" in r.output
    assert len(messages_server.billed()) == 2
    r = CliRunner().invoke(app, ["llm", "ledger", "--summary", "--json"])
    s = json.loads(r.output)
    assert s["calls"] == 3 and s["cache_hits"] == 1
    r = CliRunner().invoke(app, ["llm", "test"])
    assert r.exit_code == 0 and "OK:" in r.output
    monkeypatch.setenv("ANTHROPIC_API_KEY", "wrong-key")
    r = CliRunner().invoke(app, ["llm", "test"])
    assert r.exit_code == 1 and "401" in r.output
