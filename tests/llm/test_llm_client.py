"""LLMClient behaviour with the in-process ScriptedProvider: cache, ledger, schema repair, budget, retries, bulk."""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import BaseModel

from datatune_core.llm import (BudgetExceeded, LLMAuthError, LLMRequest, LLMTransientError, get_client)
from datatune_core.llm.ledger import ledger_summary, list_calls
from datatune_core.testing import ScriptedProvider

from .conftest import fast


class Label(BaseModel):
    label: str
    confidence: float


def req(i: int, schema=Label, **kw) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": f"row {i}: a fine film"}], schema=schema,
                      shared_prefix="Task: label the sentiment of a film review. " * 20, unit_key=f"u{i}", **kw)


def good(r: LLMRequest) -> dict:
    return {"label": "positive", "confidence": 0.9}


def test_cache_hit_costs_zero_and_is_in_ledger(store):
    pid = store.create_project("p")
    prov = ScriptedProvider(good, model="claude-haiku-4-5")
    c1 = get_client(store, pid, provider=prov, stage="transform")
    r1 = c1.complete(req(1))
    assert r1.ok and not r1.from_cache and r1.parsed == Label(label="positive", confidence=0.9)
    assert r1.usage.input_tokens > 0 and r1.cost_usd > 0
    r2 = get_client(store, pid, provider=prov, stage="transform").complete(req(1))
    assert r2.from_cache and r2.parsed == r1.parsed
    assert (r2.usage.input_tokens, r2.usage.output_tokens, r2.cost_usd) == (0, 0, 0.0)
    assert len(prov.calls) == 1
    rows = list_calls(store, pid)
    assert len(rows) == 2 and sorted(r["from_cache"] for r in rows) == [0, 1]
    hit = next(r for r in rows if r["from_cache"])
    assert hit["input_tokens"] == 0 and hit["cost_usd"] == 0 and hit["stage"] == "transform"
    # a different parameter is a different cache entry
    get_client(store, pid, provider=prov).complete(req(1, max_tokens=77))
    assert len(prov.calls) == 2


def test_no_cache_switch_and_env(store, monkeypatch):
    prov = ScriptedProvider(good)
    get_client(store, provider=prov).complete(req(1))
    get_client(store, provider=prov, use_cache=False).complete(req(1))
    assert len(prov.calls) == 2
    monkeypatch.setenv("DATATUNE_NO_CACHE", "1")
    res = get_client(store, provider=prov).complete(req(1))
    assert not res.from_cache and len(prov.calls) == 3


def test_schema_repair_then_success_and_recorded_failure(store):
    def responder(r: LLMRequest):
        if r.metadata.get("repair"):
            return {"label": "negative", "confidence": 0.5} if "row 1" in str(r.messages[0]) else '{"label": '
        return '```json\n{"label": "negative", "confidence": "very"'  # truncated and wrong type

    prov = ScriptedProvider(responder)
    c = get_client(store, provider=prov)
    ok = c.complete(req(1))
    assert ok.ok and ok.parsed.label == "negative" and len(prov.calls) == 2
    bad = c.complete(req(2))
    assert not bad.ok and bad.parsed is None and "after one repair" in bad.error
    assert len(prov.calls) == 4  # exactly one repair each
    rows = {r["unit_key"]: r for r in list_calls(store)}
    assert rows["u1"]["status"] == "ok" and rows["u2"]["status"] == "invalid"
    # tokens of both attempts are folded into one ledger row
    assert rows["u2"]["input_tokens"] > 2 * rows["u2"]["output_tokens"] - 1
    # invalid answers are not cached: asking again calls the model again
    c.complete(req(2))
    assert len(prov.calls) == 6


def test_sloppy_json_text_is_repaired_without_a_retry(store):
    prov = ScriptedProvider(lambda r: 'Sure! {"label": "positive", "confidence": 0.7,}')
    res = get_client(store, provider=prov).complete(req(1))
    assert res.ok and res.parsed.confidence == 0.7 and len(prov.calls) == 1


def test_transient_errors_are_retried_with_retry_after(store):
    attempts: dict[str, int] = {}
    sleeps = []

    def responder(r: LLMRequest):
        k = r.unit_key
        attempts[k] = attempts.get(k, 0) + 1
        if attempts[k] <= 2:
            sleeps.append(time.monotonic())
            raise LLMTransientError("overloaded", retry_after=0.05, status=529)
        return good(r)

    c = fast(get_client(store, provider=ScriptedProvider(responder)))
    res = c.complete(req(1))
    assert res.ok and attempts["u1"] == 3
    assert sleeps[1] - sleeps[0] >= 0.04  # honoured retry-after
    assert c.stats["retries"] == 2 and c.stats["throttled"] == 2
    assert len(list_calls(store)) == 1


def test_retries_exhausted_is_a_recorded_failure(store):
    def responder(r):
        raise LLMTransientError("server error 500", status=500)

    c = fast(get_client(store, provider=ScriptedProvider(responder)))
    c.config.max_attempts = 3
    res = c.complete(req(1))
    assert not res.ok and "500" in res.error
    (row,) = list_calls(store)
    assert row["status"] == "error" and row["input_tokens"] == 0


def test_bulk_yields_as_finished_with_bounded_concurrency(store):
    live = {"now": 0, "max": 0}
    lock = threading.Lock()

    def responder(r: LLMRequest):
        with lock:
            live["now"] += 1
            live["max"] = max(live["max"], live["now"])
        time.sleep(0.3 if r.unit_key == "u0" else 0.01)
        with lock:
            live["now"] -= 1
        return good(r)

    c = get_client(store, provider=ScriptedProvider(responder), concurrency=4)
    order = [res.request.unit_key for res in c.bulk(req(i) for i in range(20))]
    assert sorted(order) == sorted(f"u{i}" for i in range(20))
    assert order[0] != "u0" and order.index("u0") > 0  # the slow one did not block the others
    assert 1 < live["max"] <= 4


def test_run_budget_stops_new_requests_and_resume_continues(store):
    pid = store.create_project("budget")
    prov = ScriptedProvider(good, model="claude-sonnet-4-5")
    warm = get_client(store, pid, provider=prov, use_cache=False)
    warm.complete(req(998))  # writes the shared prefix to the (scripted) prompt cache
    one = warm.complete(req(999)).cost_usd  # a typical per-row call reads it
    prov.calls.clear()
    c = get_client(store, pid, provider=prov, concurrency=3, run_budget_usd=one * 10)
    done = []
    with pytest.raises(BudgetExceeded) as ei:
        for res in c.bulk(req(i) for i in range(60)):
            done.append(res.request.unit_key)
    assert "resume" in str(ei.value)
    assert 10 <= len(done) <= 10 + 3  # stopped within the in-flight requests
    assert len(prov.calls) == len(done)  # every request sent was answered and yielded
    assert c.spent_usd >= one * 10
    # resume: the job reruns what is left; nothing is sent twice
    c2 = get_client(store, pid, provider=prov, concurrency=3)
    rest = [r.request.unit_key for r in c2.bulk(req(i) for i in range(60) if f"u{i}" not in done)]
    assert sorted(done + rest) == sorted(f"u{i}" for i in range(60))
    assert len(prov.calls) == 60


def test_project_budget_from_settings(store):
    prov = ScriptedProvider(good, model="claude-haiku-4-5")
    pid = store.create_project("pb", settings={"budget_usd": 1e-9})
    c = get_client(store, pid, provider=prov)
    c.complete(req(1))  # the first call is allowed (nothing spent yet)
    with pytest.raises(BudgetExceeded) as ei:
        c.complete(req(2))
    assert "budget_usd" in str(ei.value)
    assert c.complete(req(1)).from_cache  # cache hits are free and still served
    store.update_project(pid, settings={"budget_usd": 10})
    assert get_client(store, pid, provider=prov).complete(req(2)).ok


def test_auth_error_stops_bulk_without_retry_storm(store):
    def responder(r):
        raise LLMAuthError("Claude rejected the API key (401)")

    prov = ScriptedProvider(responder)
    c = get_client(store, provider=prov, concurrency=4)
    with pytest.raises(LLMAuthError):
        list(c.bulk(req(i) for i in range(50)))
    assert len(prov.calls) <= 4  # at most the in-flight ones, each tried once


def test_ledger_summary_by_stage(store):
    pid = store.create_project("sum")
    prov = ScriptedProvider(good, model="claude-haiku-4-5")
    list(get_client(store, pid, provider=prov, stage="transform").bulk(req(i) for i in range(5)))
    get_client(store, pid, provider=prov, stage="plan").complete(req(0))
    s = ledger_summary(store, pid)
    assert s["calls"] == 6 and s["cache_hits"] == 1
    stages = {r["stage"]: r for r in s["by_stage"]}
    assert stages["transform"]["calls"] == 5 and stages["plan"]["cost_usd"] == 0


def test_model_roles_from_project_settings_and_env(store, monkeypatch):
    from datatune_core.llm.anthropic_provider import AnthropicProvider

    monkeypatch.setenv("DATATUNE_STRONG_MODEL", "claude-opus-4-5")
    pid = store.create_project("m", settings={"cheap_model": "claude-haiku-4-5"})
    c = get_client(store, pid, provider=AnthropicProvider(api_key="k", base_url="http://127.0.0.1:9"))
    assert c.model_for(LLMRequest(messages=[], role="cheap")) == "claude-haiku-4-5"
    assert c.model_for(LLMRequest(messages=[], role="strong")) == "claude-opus-4-5"
    assert c.model_for(LLMRequest(messages=[], model="claude-sonnet-4-5")) == "claude-sonnet-4-5"


def test_rate_limit_headers_pause_new_requests():
    from datetime import datetime, timedelta, timezone

    from datatune_core.llm.limiter import AdaptiveLimiter, _headers_wait

    soon = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat()
    assert _headers_wait({"anthropic-ratelimit-requests-remaining": "5"}) is None
    # remaining 0 with a 600/min limit: wait one request's worth (0.1 s), not the full 30 s reset
    w = _headers_wait({"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-limit": "600",
                       "anthropic-ratelimit-requests-reset": soon})
    assert w == pytest.approx(0.1)
    w = _headers_wait({"x-ratelimit-requests-remaining": "0", "x-ratelimit-requests-reset": "0.02"})
    assert w == pytest.approx(0.02)
    lim = AdaptiveLimiter(4)
    lim.acquire()
    lim.release(headers={"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-limit": "300"})
    assert lim.paused_until - time.monotonic() > 0.1  # new starts are held until the allowance is back
    lim.acquire()
    assert time.monotonic() >= lim.paused_until
    lim.release(throttled=True, retry_after=None)
    assert lim.limit == 2  # overload without retry-after halves the concurrency
