"""The real `anthropic` SDK (through AnthropicProvider + LLMClient) against the scripted Messages-API server."""

from __future__ import annotations

import collections

import pytest
from pydantic import BaseModel

from datatune_core.llm import BudgetExceeded, LLMAuthError, LLMModelError, LLMRequest, get_client
from datatune_core.llm import test_connection as check_connection
from datatune_core.llm.anthropic_provider import AnthropicProvider, newest, sdk_models
from datatune_core.llm.ledger import batch_open, list_calls

from .conftest import fast

pytestmark = pytest.mark.timeout(120)

PREFIX = "Task: turn each source row into an (input, output) training pair for sentiment labelling. " * 12


class Pair(BaseModel):
    input: str
    output: str


def req(i: int, **kw) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": f"Source row {i}: 'what a film', rating {i % 5}"}],
                      schema=Pair, shared_prefix=PREFIX, system="You build training data.", unit_key=f"r{i}",
                      max_tokens=200, **kw)


def echo(body: dict):
    """Answer with the row number so each reply can be matched to its request."""
    text = body["messages"][0]["content"]
    return {"input": text, "output": "positive"}


def test_tool_use_prompt_cache_and_usage(messages_server, claude, store):
    messages_server.responder = echo
    c = get_client(store, store.create_project("p"), provider=claude)
    first, second = c.complete(req(1)), c.complete(req(2))
    assert first.ok and first.parsed.input.startswith("Source row 1")
    assert first.model == newest("haiku") and first.model in sdk_models()
    assert first.usage.cache_write_tokens > 0 and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens and second.usage.cache_write_tokens == 0
    assert second.cost_usd < first.cost_usd
    # the wire format: forced tool, cache_control on the shared prefix (last system block)
    body = messages_server.log[-1]
    assert body["billed"] and body["cache_read"] > 0
    params = claude.params(req(3), "claude-haiku-4-5")
    assert params["tool_choice"] == {"type": "tool", "name": "emit_result"}
    assert params["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert params["system"][-1]["text"] == PREFIX


def test_cache_hit_on_rerun_costs_zero_tokens(messages_server, claude, store):
    pid = store.create_project("p")
    list(get_client(store, pid, provider=claude).bulk(req(i) for i in range(10)))
    billed = len(messages_server.billed())
    again = list(get_client(store, pid, provider=claude).bulk(req(i) for i in range(10)))
    assert all(r.from_cache for r in again)
    assert sum(r.usage.input_tokens + r.usage.output_tokens + r.usage.cache_read_tokens for r in again) == 0
    assert sum(r.cost_usd for r in again) == 0
    assert len(messages_server.billed()) == billed  # nothing reached the server


@pytest.mark.parametrize("fault", ["429", "529", "500", "malformed"])
def test_each_fault_is_retried_once_and_billed_once(messages_server, claude, store, fault):
    messages_server.queue_faults(fault, fault)
    c = fast(get_client(store, provider=claude))
    res = c.complete(req(1))
    assert res.ok
    statuses = [e["status"] for e in messages_server.log]
    assert len(statuses) == 3 and statuses[-1] == 200
    assert len(messages_server.billed()) == 1
    assert len(list_calls(store)) == 1


def test_429_waits_for_retry_after(messages_server, claude, store):
    messages_server.retry_after = 0.3
    messages_server.queue_faults("429")
    c = get_client(store, provider=claude)  # default backoff: the wait must come from retry-after
    res = c.complete(req(1))
    assert res.ok
    t429, t200 = messages_server.log[0]["ts"], messages_server.log[1]["ts"]
    assert t200 - t429 >= 0.25


def test_slow_reply_times_out_and_is_retried(messages_server, store):
    messages_server.slow_s = 1.0
    messages_server.queue_faults("slow")
    p = AnthropicProvider(api_key=messages_server.api_key, base_url=messages_server.url, timeout_s=0.4)
    c = fast(get_client(store, provider=p))
    res = c.complete(req(1))
    assert res.ok and c.stats["retries"] == 1
    assert len(messages_server.billed()) == 1


def test_malformed_model_output_gets_one_repair(messages_server, claude, store):
    def responder(body):
        if any("does not match" in str(m.get("content")) for m in body["messages"]):
            return {"input": "fixed", "output": "positive"}
        return '{"input": "cut off mid-'  # the model answered in text, truncated

    messages_server.responder = responder
    res = get_client(store, provider=claude).complete(req(1))
    assert res.ok and res.parsed == Pair(input="fixed", output="positive")
    assert len(messages_server.billed()) == 2
    (row,) = list_calls(store)
    assert row["input_tokens"] == sum(e["input_tokens"] for e in messages_server.billed())


def test_500_requests_with_20pct_faults_exactly_once(messages_server, claude, store):
    messages_server.responder = echo
    messages_server.fault_rate = 0.2
    pid = store.create_project("faults")
    c = fast(get_client(store, pid, provider=claude, concurrency=8))
    c.config.max_attempts = 10
    results = list(c.bulk(req(i) for i in range(500)))
    assert len(results) == 500 and all(r.ok for r in results)
    assert sorted(r.parsed.input for r in results) == sorted(req(i).messages[0]["content"] for i in range(500))
    faults = collections.Counter(e["fault"] for e in messages_server.log if e["fault"])
    assert sum(faults.values()) >= 60 and set(faults) >= {"429", "529", "500", "malformed"}
    rows = list_calls(store, pid, limit=10_000)
    per_unit = collections.Counter(r["unit_key"] for r in rows)
    assert len(per_unit) == 500 and set(per_unit.values()) == {1}  # every request exactly once in the ledger
    billed = messages_server.billed_counts()
    assert len(billed) == 500 and set(billed.values()) == {1}  # the server billed each request once
    srv = messages_server.billed()
    for col, key in (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens"),
                     ("cache_read_tokens", "cache_read"), ("cache_write_tokens", "cache_write")):
        assert sum(r[col] for r in rows) == sum(e[key] for e in srv)


def test_budget_stop_and_resume_against_server(messages_server, claude, store):
    messages_server.responder = echo
    pid = store.create_project("b")
    warm = get_client(store, pid, provider=claude)
    warm.complete(req(1000))
    per_call = warm.complete(req(1001)).cost_usd
    store.update_project(pid, settings={"budget_usd": warm.spent_usd + per_call * 20})
    c = get_client(store, pid, provider=claude, concurrency=4)
    got = []
    with pytest.raises(BudgetExceeded):
        for r in c.bulk(req(i) for i in range(100)):
            got.append(r.request.unit_key)
    assert 20 <= len(got) <= 20 + 4
    assert len(messages_server.billed()) == 2 + len(got)  # in-flight ones finished and were kept
    store.update_project(pid, settings={"budget_usd": 100})
    rest = list(get_client(store, pid, provider=claude, concurrency=4).bulk(req(i) for i in range(100)))
    assert sum(r.from_cache for r in rest) == len(got)
    assert set(messages_server.billed_counts().values()) == {1}
    assert len(messages_server.billed()) == 102


def test_batches_submit_poll_collect_partial(messages_server, claude, store):
    messages_server.responder = echo
    messages_server.batch_delay_s = 0.2
    pid = store.create_project("batch")
    c = fast(get_client(store, pid, provider=claude, use_batches=True))
    keys = [c.key_for(req(i)) for i in range(12)]
    messages_server.batch_error_ids = {keys[3], keys[7]}  # two items fail inside the batch
    results = list(c.bulk(req(i) for i in range(12)))
    assert len(results) == 12 and all(r.ok for r in results)
    assert sum(r.batch for r in results) == 10  # the two failed items were retried live
    assert len(messages_server.batches) == 1
    rows = list_calls(store, pid)
    assert sum(r["batch"] for r in rows) == 10 and len(rows) == 12
    # batch price is half the live price for the same usage
    one_batch = next(r for r in results if r.batch)
    assert one_batch.cost_usd == pytest.approx(c.prices.cost(one_batch.model, one_batch.usage) / 2)
    assert batch_open(store, claude.cache_id(), pid) == []


def test_batch_resume_after_restart(messages_server, claude, store):
    messages_server.responder = echo
    messages_server.batch_delay_s = 0.3
    pid = store.create_project("resume")
    c1 = fast(get_client(store, pid, provider=claude, use_batches=True))

    def crash(status):
        raise KeyboardInterrupt("worker killed while the batch was running")

    c1.on_poll = crash
    with pytest.raises(KeyboardInterrupt):
        list(c1.bulk(req(i) for i in range(8)))
    (open_batch,) = batch_open(store, claude.cache_id(), pid)
    assert len(open_batch["request_keys"]) == 8
    c2 = fast(get_client(store, pid, provider=claude, use_batches=True))
    results = list(c2.bulk(req(i) for i in range(8)))
    assert len(results) == 8 and all(r.ok and r.batch for r in results)
    assert len(messages_server.batches) == 1  # re-attached, not submitted again
    assert set(messages_server.billed_counts().values()) == {1} and len(messages_server.billed()) == 8


def test_rate_limited_server_loses_nothing(messages_server, claude, store):
    messages_server.rpm = 1200
    messages_server.burst = 4
    messages_server._tokens = 4
    c = fast(get_client(store, provider=claude, concurrency=8))
    results = list(c.bulk(req(i) for i in range(40)))
    assert len(results) == 40 and all(r.ok for r in results)
    assert len(messages_server.billed()) == 40


def test_no_key_wrong_key_unknown_model(messages_server, store, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.chdir(store.home)  # no .streamlit/secrets.toml here
    ok, msg = check_connection("anthropic")
    assert not ok and "ANTHROPIC_API_KEY" in msg and "Settings" in msg

    bad = AnthropicProvider(api_key="wrong", base_url=messages_server.url, timeout_s=2)
    ok, msg = check_connection(bad)
    assert not ok and "401" in msg and "ANTHROPIC_API_KEY" in msg
    messages_server.reset_log()
    c = get_client(store, provider=bad, concurrency=4)
    with pytest.raises(LLMAuthError):
        list(c.bulk(req(i) for i in range(40)))
    assert sum(1 for e in messages_server.log if e["status"] == 401) <= 4  # no retry storm

    good = AnthropicProvider(api_key=messages_server.api_key, base_url=messages_server.url, timeout_s=2)
    with pytest.raises(LLMModelError) as ei:
        get_client(store, provider=good).complete(req(1, model="claude-nonexistent-9"))
    assert "claude-nonexistent-9" in str(ei.value) and "datatune llm models" in str(ei.value)
    assert check_connection(good)[0]


def test_count_tokens_and_estimate(messages_server, claude, store):
    c = get_client(store, provider=claude)
    n = claude.count_tokens(req(1), "claude-haiku-4-5")
    assert n and n > 100
    est = c.estimate([req(i) for i in range(3)], n_total=1000)
    assert est.method == "count_tokens" and est.price_known
    assert est.cost_usd_cached < est.cost_usd and est.cost_usd_batch == pytest.approx(est.cost_usd / 2)
    assert est.cost_usd_batch_cached < est.cost_usd_batch
    assert "1000 requests" in est.summary()
    assert len(messages_server.billed()) == 0  # counting is free
