"""Bulk requests through a provider's batch API (Claude Message Batches: half price, results within 24 h).

`run_batches(client, requests)` answers cache hits at once, re-attaches to batches a previous run submitted
(recorded in `llm_batches`, so a restarted job resumes instead of paying twice), submits the rest, polls,
collects partial results (items that errored, expired or were cancelled are retried live), and records each
item in the ledger (batch=1, batch price) and the cache. With a budget set, requests are submitted in chunks of
`ClientConfig.batch_chunk` and the budget is checked before each chunk.

    >>> client = get_client(store, project_id=1, use_batches=True)      # Claude provider
    >>> for res in client.bulk(requests): ...                            # same interface as live bulk
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from datatune_core.llm import ledger
from datatune_core.llm.base import LLMRequest, LLMResult, Usage

if TYPE_CHECKING:
    from datatune_core.llm.client import LLMClient


def run_batches(client: "LLMClient", requests: list[LLMRequest]) -> Iterator[LLMResult]:
    store, prov = client.store, client.provider
    assert store is not None
    by_key: dict[str, list[tuple[LLMRequest, str]]] = {}
    for req in requests:
        model = client.model_for(req)
        key = ledger.request_key(prov.cache_id(), model, req)
        hit = client._from_cache(req, model, key)
        if hit is not None:
            yield hit
            continue
        by_key.setdefault(key, []).append((req, model))
    if not by_key:
        return
    for b in ledger.batch_open(store, prov.cache_id(), client.project_id):
        if any(k in by_key for k in b["request_keys"]):
            client.log(f"re-attaching to batch {b['id']} submitted by an earlier run")
            yield from _collect(client, b["id"], by_key)
    keys = list(by_key)
    budgeted = client.config.run_budget_usd is not None or client.project_budget() is not None
    chunk = max(1, client.config.batch_chunk) if budgeted else max(1, len(keys))
    for i in range(0, len(keys), chunk):
        client.check_budget()
        part = [k for k in keys[i:i + chunk] if k in by_key]
        if not part:
            continue
        bid = prov.submit_batch([(k, by_key[k][0][0], by_key[k][0][1]) for k in part])
        ledger.batch_record(store, bid, provider=prov.cache_id(), project_id=client.project_id,
                            job_id=client.job_id, keys=part, meta={"n": len(part), "submitted_at": time.time()})
        client.log(f"submitted batch {bid} with {len(part)} requests")
        yield from _collect(client, bid, by_key)


def _collect(client: "LLMClient", batch_id: str, by_key: dict[str, list[tuple[LLMRequest, str]]]
             ) -> Iterator[LLMResult]:
    store, prov = client.store, client.provider
    assert store is not None
    t0 = time.monotonic()
    while True:
        st = prov.poll_batch(batch_id)
        if st["status"] == "ended":
            break
        ledger.batch_set_status(store, batch_id, st["status"], {"counts": st.get("counts", {})})
        if client.on_poll is not None:
            client.on_poll(st)
        time.sleep(client.config.batch_poll_s)
    ledger.batch_set_status(store, batch_id, "ended", {"counts": st.get("counts", {})})
    out: list[LLMResult] = []
    retry: list[LLMRequest] = []
    for cid, rep in prov.batch_results(batch_id):
        waiting = by_key.pop(cid, None)
        if isinstance(rep, Exception):
            retry.extend(r for r, _ in waiting or [])
            continue
        if waiting is None:
            if ledger.cache_get(store, cid) is not None:
                continue  # already collected by an earlier (interrupted) run
            # answered for a request this run did not ask again: keep what was paid for
            cost = client.prices.cost(rep.model or "", rep.usage, batch=True, priced=prov.capabilities.priced)
            client._charge(cost)
            ledger.record_call(store, project_id=client.project_id, job_id=client.job_id, stage=client.stage,
                               provider=prov.name, model=rep.model or "", key=cid, unit_key=None, usage=rep.usage,
                               cost_usd=cost, latency_ms=(time.monotonic() - t0) * 1000, status="ok", error=None,
                               from_cache=False, batch=True)
            ledger.cache_put(store, cid, prov.name, rep.model or "", rep)
            continue
        req, model = waiting[0]
        res = client.finish(req, model, cid, rep, t0, batch=True)
        out.append(res)
        for extra, m in waiting[1:]:  # the same request twice in one call: the twin is a cache hit
            cid2 = client._record(extra, m, cid, Usage(), 0.0, 0.0, res.error and "invalid" or "ok", res.error,
                                  from_cache=True, batch=False)
            out.append(dataclasses.replace(res, request=extra, usage=Usage(), cost_usd=0.0, from_cache=True,
                                           call_id=cid2))
    for key, waiting in list(by_key.items()):  # items the batch never reported
        if key in _batch_keys(client, batch_id):
            retry.extend(r for r, _ in waiting)
            by_key.pop(key)
    ledger.batch_set_status(store, batch_id, "collected", {"counts": st.get("counts", {})})
    yield from out
    if retry:
        client.log(f"batch {batch_id}: {len(retry)} items failed in the batch; retrying them live")
        yield from client.bulk(retry, use_batches=False)


def _batch_keys(client: "LLMClient", batch_id: str) -> set[str]:
    r = client.store.query_one("SELECT request_keys_json FROM llm_batches WHERE id=?", (batch_id,))
    import json

    return set(json.loads(r[0])) if r else set()
