"""LLM-layer throughput and accounting bench, against the scripted Messages-API server on 127.0.0.1.

1. Rate: the server enforces a requests-per-minute limit (token bucket, 429 + retry-after + anthropic-ratelimit-*
   headers) and answers after a fixed latency. Our client (`LLMClient.bulk`, adaptive concurrency) and a
   sequential one-request-at-a-time baseline (the plain SDK in a loop, prompt2model-style) run in the same
   process; each achieved success rate is printed as a fraction of the limit.
2. Reliability: N requests with 20 % injected faults (429, 529, 500, malformed bodies); requests lost and requests
   billed twice are counted from the server's own request log.
3. Prompt caching: the same per-row requests with the shared prefix marked cacheable vs sent as plain system
   text; full-price input tokens per request, cached / uncached.

    .venv/bin/python bench/llm_throughput.py            # ~1 minute; last line is the JSON summary
    .venv/bin/python bench/llm_throughput.py --quick    # smaller sizes
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import BaseModel  # noqa: E402

from datatune_core.llm import LLMRequest, get_client  # noqa: E402
from datatune_core.llm.anthropic_provider import AnthropicProvider  # noqa: E402
from datatune_core.store import Store  # noqa: E402
from tests.fakes.messages_server import MessagesServer  # noqa: E402

PREFIX = ("You convert rows of an existing dataset into training examples for this task: decide whether a "
          "movie review is positive or negative. Keep the review text as the input and the label as the output. "
          "Examples: 'A delight from start to finish' -> positive; 'Two hours I will never get back' -> negative. ")


class Pair(BaseModel):
    input: str
    output: str


def requests(n: int, tag: str, cached: bool = True) -> list[LLMRequest]:
    out = []
    for i in range(n):
        msg = [{"role": "user", "content": f"[{tag}] row {i}: 'The plot was thin but the acting carried it.'"}]
        if cached:
            out.append(LLMRequest(messages=msg, schema=Pair, shared_prefix=PREFIX * 8, unit_key=f"{tag}{i}"))
        else:
            out.append(LLMRequest(messages=msg, schema=Pair, system=PREFIX * 8, unit_key=f"{tag}{i}"))
    return out


def reset_bucket(srv: MessagesServer) -> None:
    with srv._lock:
        srv._tokens = 0.0
        srv._last_refill = time.monotonic()


def rate_of(srv: MessagesServer, tag: str, t0: float) -> tuple[float, int]:
    ok = [e for e in srv.billed() if e["ts"] >= t0]
    if not ok:
        return 0.0, 0
    # requests the server admitted per second (admission time: the rate limiter's decision, before the latency)
    elapsed = max(e["accepted"] for e in ok) - t0
    return len(ok) / max(elapsed, 1e-6), len(ok)


def run_ours(srv: MessagesServer, store: Store, n: int, concurrency: int) -> tuple[float, dict]:
    prov = AnthropicProvider(api_key=srv.api_key, base_url=srv.url, timeout_s=30)
    client = get_client(store, provider=prov, use_cache=False, concurrency=concurrency)
    reset_bucket(srv)
    t0 = time.time()
    got = list(client.bulk(requests(n, "ours")))
    rate, _ = rate_of(srv, "ours", t0)
    assert len(got) == n and all(r.ok for r in got), "our client lost requests"
    return rate, client.stats


def run_baseline(srv: MessagesServer, n: int) -> float:
    import anthropic

    sdk = anthropic.Anthropic(api_key=srv.api_key, base_url=srv.url, max_retries=5, timeout=30)
    prov = AnthropicProvider(api_key=srv.api_key, base_url=srv.url)  # only to build identical request bodies
    model = prov.default_model("cheap")
    reset_bucket(srv)
    t0 = time.time()
    for r in requests(n, "base"):
        sdk.messages.create(**prov.params(r, model))
    rate, _ = rate_of(srv, "base", t0)
    return rate


def run_faults(store: Store, n: int) -> dict:
    with MessagesServer(fault_rate=0.2, seed=7, retry_after=0.05) as srv:
        prov = AnthropicProvider(api_key=srv.api_key, base_url=srv.url, timeout_s=10)
        client = get_client(store, provider=prov, use_cache=False, concurrency=8)
        client.config.backoff_base_s = 0.02
        client.config.max_attempts = 12
        reqs = requests(n, "fault")
        results = list(client.bulk(reqs))
        ok_units = {r.request.unit_key for r in results if r.ok}
        billed = srv.billed_counts()
        injected = sum(1 for e in srv.log if e["fault"])
    return {"lost": n - len(ok_units), "billed_twice": sum(1 for v in billed.values() if v > 1),
            "injected": injected, "billed_requests": len(billed)}


def run_caching(store: Store, n: int) -> dict:
    with MessagesServer() as srv:
        prov = AnthropicProvider(api_key=srv.api_key, base_url=srv.url, timeout_s=10)
        out = {}
        for cached in (True, False):
            client = get_client(store, provider=prov, use_cache=False, concurrency=4)
            res = list(client.bulk(requests(n, f"c{int(cached)}", cached=cached)))
            out[cached] = {
                "full_price_input": sum(r.usage.input_tokens for r in res) / n,
                "cache_read": sum(r.usage.cache_read_tokens for r in res) / n,
                "cache_write": sum(r.usage.cache_write_tokens for r in res) / n,
                "cost": sum(r.cost_usd for r in res) / n,
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rpm", type=float, default=1200.0)
    ap.add_argument("--latency", type=float, default=0.25, help="server seconds per request")
    ap.add_argument("--n", type=int, default=300, help="requests for our client")
    ap.add_argument("--n-baseline", type=int, default=60)
    ap.add_argument("--n-faults", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.n, a.n_baseline, a.n_faults = 120, 20, 200
    store = Store.open(tempfile.mkdtemp(prefix="llm-bench-"))
    limit = a.rpm / 60.0
    print(f"scripted server: limit {a.rpm:.0f} requests/min ({limit:.1f}/s), {a.latency * 1000:.0f} ms per reply")
    with MessagesServer(rpm=a.rpm, latency_s=a.latency, burst_s=1.0) as srv:
        t = time.time()
        ours, stats = run_ours(srv, store, a.n, a.concurrency)
        print(f"ours:     {a.n} requests, {ours:.2f}/s = {ours / limit:.3f} of the limit "
              f"(429s absorbed: {stats['throttled']}, retries: {stats['retries']}, {time.time() - t:.1f} s)")
        t = time.time()
        base = run_baseline(srv, a.n_baseline)
        print(f"baseline: {a.n_baseline} requests one at a time, {base:.2f}/s = {base / limit:.3f} of the limit "
              f"({time.time() - t:.1f} s)")
        print(f"ratio ours/baseline: {ours / base:.1f}x")
    t = time.time()
    f = run_faults(store, a.n_faults)
    print(f"faults:   {a.n_faults} requests, {f['injected']} injected faults -> lost {f['lost']}, "
          f"billed twice {f['billed_twice']} (server billed {f['billed_requests']} distinct requests, "
          f"{time.time() - t:.1f} s)")
    c = run_caching(store, 50)
    ratio = c[True]["full_price_input"] / c[False]["full_price_input"]
    print(f"caching:  full-price input tokens/request {c[True]['full_price_input']:.1f} cached vs "
          f"{c[False]['full_price_input']:.1f} uncached (ratio {ratio:.3f}); cache reads {c[True]['cache_read']:.0f}/req; "
          f"cost/request ${c[True]['cost']:.6f} vs ${c[False]['cost']:.6f} ({c[True]['cost'] / c[False]['cost']:.3f})")
    print(json.dumps({"rate_fraction": round(ours / limit, 3), "baseline_rate_fraction": round(base / limit, 3),
                      "requests_lost": f["lost"], "requests_billed_twice": f["billed_twice"],
                      "input_tokens_ratio_cached_vs_uncached": round(ratio, 3)}))


if __name__ == "__main__":
    main()
