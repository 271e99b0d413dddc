"""`LLMClient`: the one way stages call an LLM. Wraps a `Provider` with a response cache, a call ledger, cost,
budget caps, retries with backoff (honouring `retry-after`), schema validation with one repair retry, and a
`bulk()` that yields results as they finish under bounded, adaptive concurrency (or via a provider's batch API).

    >>> from datatune_core.llm import get_client, LLMRequest
    >>> from datatune_core.testing import ScriptedProvider
    >>> client = get_client(provider=ScriptedProvider(lambda req: {"label": "positive"}))
    >>> client.complete(LLMRequest(messages=[{"role": "user", "content": "great film"}])).text
    '{"label": "positive"}'

A bulk request that still fails on transient faults after every retry (network gone, provider down) stops the
run the same way, with `ProviderUnavailable` (also a `JobPaused`), instead of handing back failures that a stage
would commit as rejected rows.

Guarantees: every answered request gets exactly one ledger row (cache hits too, with 0 tokens and $0; a
repair retry is folded into the same row); once a budget is reached no new request is sent, in-flight ones
finish and `BudgetExceeded` (a `JobPaused`) is raised so the job stops resumable; a 401 or unknown model stops
the whole bulk run at once instead of retrying every request.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from datatune_core.store import Store
from datatune_core.llm import ledger
from datatune_core.llm.base import (BudgetExceeded, LLMAuthError, LLMError, LLMModelError, LLMRequest, LLMResult,
                                    LLMTransientError, Provider, ProviderReply, ProviderUnavailable, Usage)
from datatune_core.llm.limiter import AdaptiveLimiter
from datatune_core.llm.parsing import validate
from datatune_core.llm.prices import PriceTable, load_prices
from datatune_core.llm.repair import cut_off, repair_request


def _add(a: Usage, b: Usage) -> Usage:
    return Usage(a.input_tokens + b.input_tokens, a.output_tokens + b.output_tokens,
                 a.cache_read_tokens + b.cache_read_tokens, a.cache_write_tokens + b.cache_write_tokens)


@dataclass
class ClientConfig:
    """Knobs of one client (one run of one stage)."""

    use_cache: bool = True  # read the response cache (answers are always written to it)
    concurrency: int = 8  # max attempts in flight in bulk()
    max_attempts: int = 6  # per request: 5xx, timeouts, malformed bodies
    max_throttled_attempts: int = 40  # per request: 429 rate limited / 529 overloaded (waits follow retry-after)
    max_retry_time_s: float = 300.0
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    run_budget_usd: float | None = None  # cap for this client (one run)
    project_budget_usd: float | None = None  # cap for the project (all runs); default from project settings
    use_batches: bool = False  # bulk() through the provider's batch API when it has one
    batch_poll_s: float = 10.0
    batch_chunk: int = 500  # requests per submitted batch while a budget is set
    models: dict[str, str] = field(default_factory=dict)  # role -> model name

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")


class LLMClient:
    """Cache + ledger + budget + retries + bounded concurrency around one provider."""

    def __init__(self, provider: Provider, *, store: Store | None = None, project_id: int | None = None,
                 job_id: int | None = None, stage: str | None = None, config: ClientConfig | None = None,
                 prices: PriceTable | None = None):
        self.provider = provider
        self.store = store
        self.project_id = project_id
        self.job_id = job_id
        self.stage = stage
        self.config = config or ClientConfig()
        self.prices = prices or load_prices()
        self.limiter = AdaptiveLimiter(self.config.concurrency)
        self.spent_usd = 0.0  # this run
        self.calls: list[dict] = []  # in-memory ledger when there is no store
        self._lock = threading.Lock()
        self._fatal: LLMError | None = None
        self._warned_limit = False
        self._stats = {"attempts": 0, "retries": 0, "throttled": 0}
        self.on_poll: Callable[[dict], None] | None = None  # called while waiting on a batch (e.g. ctx.check_cancel)
        self.logger: Callable[[str], None] | None = None  # e.g. JobContext.log

    def log(self, message: str) -> None:
        if self.logger is not None:
            self.logger(message)
        else:
            logging.getLogger(__name__).info(message)

    # ------------------------------------------------------------------ public
    @property
    def provider_name(self) -> str:
        return self.provider.name

    def model_for(self, req: LLMRequest) -> str:
        return req.model or self.config.models.get(req.role) or self.provider.default_model(req.role)

    def key_for(self, req: LLMRequest) -> str:
        return ledger.request_key(self.provider.cache_id(), self.model_for(req), req)

    @property
    def stats(self) -> dict:
        return dict(self._stats, spent_usd=round(self.spent_usd, 6), concurrency_now=int(self.limiter.limit))

    def complete(self, req: LLMRequest) -> LLMResult:
        """One request. Raises BudgetExceeded, LLMAuthError, LLMModelError; other failures come back as
        `ok=False` results with the reason (use `result.raise_for_error()` where a call must succeed)."""
        model = self.model_for(req)
        limit = self.provider.capabilities.max_output_tokens
        if limit is not None and req.max_tokens > limit and not self._warned_limit:
            self._warned_limit = True  # callers should ask for what the model returns (fit_max_tokens)
            self.log(f"{req.stage or self.stage or 'a call'} asks for {req.max_tokens} reply tokens; "
                     f"{self.provider.name} returns at most {limit}, so a longer reply is cut off")
        key = ledger.request_key(self.provider.cache_id(), model, req)
        hit = self._from_cache(req, model, key)
        if hit is not None:
            return hit
        if self._fatal is not None:
            raise self._fatal
        self.check_budget()
        return self._live(req, model, key)

    def bulk(self, requests: Iterable[LLMRequest], concurrency: int | None = None, *,
             use_batches: bool | None = None) -> Iterator[LLMResult]:
        """Yield a result for each request as it finishes (completion order; `result.request` says which).
        Stops issuing new requests on a budget stop or an auth/model error, lets in-flight ones finish and
        yields them, then raises that error."""
        batches = self.config.use_batches if use_batches is None else use_batches
        if batches and self.provider.capabilities.batch_api and self.store is not None:
            from datatune_core.llm.batches import run_batches

            yield from run_batches(self, list(requests))
            return
        limit = max(1, concurrency or self.config.concurrency)
        self.limiter.set_max(limit)
        it = iter(requests)
        stop: BaseException | None = None
        outage: LLMResult | None = None  # a request that failed on transient faults after every retry
        pending: set[Future] = set()
        ex = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="llm")
        try:
            def fill() -> None:
                while stop is None and outage is None and len(pending) < limit * 2:
                    try:
                        r = next(it)
                    except StopIteration:
                        return
                    pending.add(ex.submit(self.complete, r))

            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    pending.discard(f)
                    try:
                        res = f.result()
                    except (BudgetExceeded, LLMAuthError, LLMModelError) as e:
                        if stop is None or (isinstance(stop, BudgetExceeded) and not isinstance(e, BudgetExceeded)):
                            stop = e
                        continue
                    if not res.ok and res.transient and outage is None:
                        outage = res
                    yield res
                fill()
            if stop is not None:
                raise stop
            if outage is not None:
                # Rejecting these rows would lose them for good (a resume skips committed units); pausing keeps
                # them: answers already received are cached, so the resume pays for none of them again.
                raise ProviderUnavailable(
                    f"The LLM provider kept failing after every retry ({outage.error}). "
                    "Work finished so far is saved. Check the network connection or the provider's status, then "
                    "resume the job to continue where it stopped.")
        finally:
            for f in pending:
                f.cancel()
            ex.shutdown(wait=True, cancel_futures=True)

    def estimate(self, sample_requests: list[LLMRequest], n_total: int, **kw: Any):
        """Pre-run cost estimate for a stage; see `estimate.estimate_cost`."""
        from datatune_core.llm.estimate import estimate_cost

        return estimate_cost(self, sample_requests, n_total, **kw)

    # ------------------------------------------------------------------ budget
    def project_budget(self) -> float | None:
        if self.config.project_budget_usd is not None:
            return self.config.project_budget_usd
        if self.store is None or self.project_id is None:
            return None
        try:
            val = self.store.get_project(self.project_id).settings.get("budget_usd")
        except KeyError:
            return None
        return float(val) if val not in (None, "", 0) else None

    def check_budget(self) -> None:
        """Raise BudgetExceeded when this run's or the project's cap is reached (nothing is sent then)."""
        cap = self.config.run_budget_usd
        if cap is not None and self.spent_usd >= cap:
            raise BudgetExceeded(f"Budget reached: this run spent ${self.spent_usd:.4f} of its ${cap:.4f} cap. "
                                 "Raise the run budget (or remove it), then resume the job to continue "
                                 "where it stopped.")
        pcap = self.project_budget()
        if pcap is not None and self.store is not None and self.project_id is not None:
            spent = ledger.project_spent(self.store, self.project_id)
            if spent >= pcap:
                raise BudgetExceeded(f"Budget reached: project {self.project_id} spent ${spent:.4f} of its "
                                     f"${pcap:.4f} budget. Raise `budget_usd` in the project settings (Task page), "
                                     "then resume the job to continue where it stopped.")

    # ------------------------------------------------------------------ internals
    def _from_cache(self, req: LLMRequest, model: str, key: str) -> LLMResult | None:
        if not self.config.use_cache or self.store is None:
            return None
        reply = ledger.cache_get(self.store, key)
        if reply is None:
            return None
        parsed, ok, err = None, True, None
        if req.schema is not None:
            parsed, err = validate(req.schema, reply.data, reply.text)
            if parsed is None:
                return None  # a stale entry that no longer fits the schema: ask again
        res = LLMResult(request=req, ok=ok, text=reply.text, parsed=parsed, error=err, provider=self.provider.name,
                        model=reply.model or model, usage=Usage(), cost_usd=0.0, latency_ms=0.0, from_cache=True)
        res.call_id = self._record(req, model, key, Usage(), 0.0, 0.0, "ok", None, from_cache=True, batch=False)
        return res

    def _record(self, req: LLMRequest, model: str, key: str, usage: Usage, cost: float, latency_ms: float,
                status: str, error: str | None, *, from_cache: bool, batch: bool) -> int | None:
        row = dict(project_id=self.project_id, job_id=self.job_id, stage=req.stage or self.stage,
                   provider=self.provider.name, model=model, key=key, unit_key=req.unit_key, usage=usage,
                   cost_usd=cost, latency_ms=latency_ms, status=status, error=error, from_cache=from_cache,
                   batch=batch)
        if self.store is None:
            with self._lock:
                self.calls.append(row)
                return len(self.calls)
        return ledger.record_call(self.store, **row)

    def _bump(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def _charge(self, cost: float) -> None:
        with self._lock:
            self.spent_usd += cost

    def _attempt(self, req: LLMRequest, model: str) -> ProviderReply:
        self.limiter.acquire()
        self._bump("attempts")
        try:
            reply = self.provider.call(req, model)
        except LLMTransientError as e:
            throttled = e.status in (429, 529)
            if throttled:
                self._bump("throttled")
            self.limiter.release(throttled=throttled, retry_after=e.retry_after)
            raise
        except BaseException:
            self.limiter.release()
            raise
        self.limiter.release(headers=reply.headers)
        return reply

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, LLMTransientError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.config.backoff_max_s)
        base = self.config.backoff_base_s * (2 ** (state.attempt_number - 1))
        return min(self.config.backoff_max_s, base) * (0.5 + random.random() / 2)

    def _call(self, req: LLMRequest, model: str) -> ProviderReply:
        """One logical call: retries transient faults; auth/model errors propagate at once."""
        counts = {"throttle": 0, "other": 0}

        def stop(state: RetryCallState) -> bool:
            # Throttles (429/529) say "come back later", not "this request is broken": they get their own,
            # larger allowance; every other transient fault counts against max_attempts.
            exc = state.outcome.exception() if state.outcome else None
            kind = "throttle" if isinstance(exc, LLMTransientError) and exc.status in (429, 529) else "other"
            counts[kind] += 1
            return (counts["other"] >= self.config.max_attempts
                    or counts["throttle"] >= self.config.max_throttled_attempts
                    or state.seconds_since_start >= self.config.max_retry_time_s)

        retrying = Retrying(
            retry=retry_if_exception_type(LLMTransientError), stop=stop, wait=self._wait, reraise=True,
            before_sleep=lambda s: self._bump("retries"),
        )
        return retrying(self._attempt, req, model)

    def _live(self, req: LLMRequest, model: str, key: str) -> LLMResult:
        t0 = time.monotonic()
        usage = Usage()
        try:
            reply = self._call(req, model)
        except (LLMAuthError, LLMModelError) as e:
            self._fatal = e
            self._record(req, model, key, usage, 0.0, (time.monotonic() - t0) * 1000, "error", str(e),
                         from_cache=False, batch=False)
            raise
        except LLMError as e:
            lat = (time.monotonic() - t0) * 1000
            cid = self._record(req, model, key, usage, 0.0, lat, "error", str(e), from_cache=False, batch=False)
            return LLMResult(request=req, ok=False, error=str(e), provider=self.provider.name, model=model,
                             latency_ms=lat, call_id=cid, transient=isinstance(e, LLMTransientError))
        return self.finish(req, model, key, reply, t0, batch=False)

    def finish(self, req: LLMRequest, model: str, key: str, reply: ProviderReply, t0: float, *,
               batch: bool) -> LLMResult:
        """Validate (one live repair retry on invalid output), price, record, cache; returns the result."""
        usage = reply.usage
        parsed, err, status = None, None, "ok"
        text = reply.text
        if req.schema is not None:
            parsed, err = validate(req.schema, reply.data, reply.text)
            if parsed is not None and cut_off(reply):
                # A reply cut off at max_tokens is truncated JSON; json_repair would "fix" it into an object
                # with fields missing, silently turning one unit into a rejected row. Treat it as invalid.
                parsed, err = None, "the reply was cut off at max_tokens (truncated JSON)"
            if parsed is None:
                repair = repair_request(req, reply, err or "invalid output")
                try:
                    fixed = self._call(repair, model)
                    usage = _add(usage, fixed.usage)
                    parsed, err2 = validate(req.schema, fixed.data, fixed.text)
                    if parsed is not None and cut_off(fixed):
                        parsed, err2 = None, "the reply was cut off at max_tokens (truncated JSON)"
                    if parsed is not None:
                        reply, text, err = fixed, fixed.text, None
                    else:
                        err = f"invalid output after one repair retry: {err2}"
                        text = fixed.text
                except (LLMAuthError, LLMModelError):
                    raise
                except LLMError as e:
                    err = f"invalid output ({err}); repair retry failed: {e}"
                if parsed is None:
                    status = "invalid"
        cost = self.prices.cost(reply.model or model, usage, batch=batch, priced=self.provider.capabilities.priced)
        self._charge(cost)
        lat = (time.monotonic() - t0) * 1000
        cid = self._record(req, reply.model or model, key, usage, cost, lat, status, err, from_cache=False,
                           batch=batch)
        if status == "ok" and self.store is not None:
            ledger.cache_put(self.store, key, self.provider.name, reply.model or model, reply)
        return LLMResult(request=req, ok=status == "ok", text=text, parsed=parsed, error=err,
                         provider=self.provider.name, model=reply.model or model, usage=usage, cost_usd=cost,
                         latency_ms=lat, from_cache=False, call_id=cid, batch=batch)


def _env_no_cache() -> bool:
    return os.environ.get("DATATUNE_NO_CACHE", "").strip().lower() in ("1", "true", "yes")
