"""A scripted Anthropic Messages-API server on 127.0.0.1 for tests and benches (a test double, not a provider).

Speaks the real wire format so the official `anthropic` SDK talks to it via `base_url`:
POST /v1/messages (text or tool_use replies, usage incl. prompt-cache tokens), POST /v1/messages/count_tokens,
the Message Batches endpoints (create, retrieve, results JSONL, cancel) and GET /v1/models.

It can inject faults (429 with retry-after, 529 overloaded, 500, slow replies past the client timeout,
malformed JSON bodies), enforce a requests-per-minute limit (token bucket, with anthropic-ratelimit-* headers),
check the API key (401) and the model name (404 not_found). Its request log is the ground truth for billing:
an entry with billed=True is a complete 200 reply whose tokens a real API would charge.

    with MessagesServer(responder=lambda req: {"label": "positive"}) as srv:
        client = anthropic.Anthropic(api_key=srv.api_key, base_url=srv.url, max_retries=0)
        ...
        srv.queue_faults("429", "529")       # the next two requests fail that way
        assert len(srv.billed()) == ...

    python -m tests.fakes.messages_server --port 8765 --rpm 600     # standalone, e.g. for a browser test

`responder(request_json) -> dict | str`: a dict is the structured answer (a tool_use block when the request
forces a tool, else JSON text); a str is the raw text. Default: a minimal object fitting the tool's schema.
Pytest: `from tests.fakes.messages_server import messages_server` in a conftest gives the `messages_server`
fixture (a fresh server per test).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any

from .loopback import LoopbackServer

FAULTS = ("429", "529", "500", "slow", "malformed")
DEFAULT_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5")


def _sdk_models() -> tuple[str, ...]:
    try:
        import typing

        from anthropic.types import Model

        lits = [a for a in typing.get_args(Model) if getattr(a, "__origin__", None) is typing.Literal]
        names = tuple(x for lit in lits for x in typing.get_args(lit))
        return names or DEFAULT_MODELS
    except Exception:
        return DEFAULT_MODELS


def approx_tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def _block_text(b: Any) -> str:
    if isinstance(b, str):
        return b
    if isinstance(b, dict):
        if b.get("type") == "text":
            return b.get("text", "")
        if b.get("type") == "tool_use":
            return json.dumps(b.get("input"))
        if b.get("type") == "tool_result":
            c = b.get("content")
            return c if isinstance(c, str) else json.dumps(c)
    return json.dumps(b)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def default_responder(req: dict) -> dict | str:
    tools = req.get("tools") or []
    if tools:
        from datatune_core.llm.parsing import schema_example

        return schema_example(tools[0].get("input_schema") or {})
    last = req.get("messages", [{}])[-1].get("content", "")
    text = last if isinstance(last, str) else " ".join(_block_text(b) for b in last)
    return "OK: " + text[:60]


class MessagesServer(LoopbackServer):
    FAULT_KINDS = FAULTS
    thread_name = "messages-server"

    def __init__(self, responder: Callable[[dict], Any] | None = None, *, api_key: str | None = "test-key",
                 models: tuple[str, ...] | None = None, rpm: float | None = None, burst_s: float = 1.0,
                 latency_s: float = 0.0, fault_rate: float = 0.0, fault_kinds: tuple[str, ...] = ("429", "529", "500", "malformed"),
                 retry_after: float = 0.05, slow_s: float = 1.5, batch_delay_s: float = 0.0,
                 batch_error_ids: set[str] | None = None, seed: int = 0, host: str = "127.0.0.1", port: int = 0):
        self.responder = responder or default_responder
        self.api_key = api_key
        self.models = set(models or _sdk_models())
        self.rpm = rpm
        self.burst = max(1.0, (rpm or 0) / 60.0 * burst_s)
        self._tokens = self.burst
        self._last_refill = time.monotonic()
        self.latency_s = latency_s
        self.fault_rate = fault_rate
        self.fault_kinds = fault_kinds
        self.retry_after = retry_after
        self.slow_s = slow_s
        self.batch_delay_s = batch_delay_s
        self.batch_error_ids = set(batch_error_ids or ())
        self._rng = random.Random(seed)
        self.batches: dict[str, dict] = {}
        self._prompt_cache: set[str] = set()
        super().__init__(self._handler_class(), host, port)

    # ------------------------------------------------------------------ ground truth
    def billed(self) -> list[dict]:
        with self._lock:
            return [e for e in self.log if e["billed"]]

    def billed_counts(self) -> dict[str, int]:
        """request fingerprint -> times billed (a fingerprint is the hash of the request body)."""
        out: dict[str, int] = {}
        for e in self.billed():
            out[e["fingerprint"]] = out.get(e["fingerprint"], 0) + 1
        return out

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    # ------------------------------------------------------------------ model behaviour
    def _next_fault(self) -> str | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(self.fault_kinds)
        return None

    def _rate_check(self) -> tuple[bool, dict, float]:
        """Token bucket; returns (allowed, headers, seconds until the next request is allowed)."""
        if not self.rpm:
            return True, {}, 0.0
        rate = self.rpm / 60.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last_refill) * rate)
            self._last_refill = now
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / rate
            full_in = (self.burst - self._tokens) / rate
        headers = {"anthropic-ratelimit-requests-limit": str(int(self.rpm)),
                   "anthropic-ratelimit-requests-remaining": str(int(self._tokens)),
                   "anthropic-ratelimit-requests-reset": _iso(time.time() + full_in)}
        return allowed, headers, wait

    def _usage(self, req: dict) -> dict:
        """Input tokens split into regular / cache write / cache read, as the API reports them."""
        segments: list[tuple[str, bool]] = []
        for t in req.get("tools") or []:
            segments.append((json.dumps(t, sort_keys=True), bool(t.get("cache_control"))))
        system = req.get("system")
        if isinstance(system, str):
            segments.append((system, False))
        elif isinstance(system, list):
            for b in system:
                segments.append((_block_text(b), bool(isinstance(b, dict) and b.get("cache_control"))))
        for m in req.get("messages", []):
            c = m.get("content")
            if isinstance(c, str):
                segments.append((c, False))
            else:
                for b in c or []:
                    segments.append((_block_text(b), bool(isinstance(b, dict) and b.get("cache_control"))))
        total = sum(approx_tokens(s) for s, _ in segments)
        last = max((i for i, (_, cc) in enumerate(segments) if cc), default=-1)
        read = write = 0
        if last >= 0:
            prefix = segments[: last + 1]
            ptoks = sum(approx_tokens(s) for s, _ in prefix)
            h = hashlib.sha256((req.get("model", "") + "\x00".join(s for s, _ in prefix)).encode()).hexdigest()
            with self._lock:
                if h in self._prompt_cache:
                    read = ptoks
                else:
                    self._prompt_cache.add(h)
                    write = ptoks
        return {"input_tokens": total - read - write, "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read}

    def make_message(self, req: dict) -> dict:
        out = self.responder(req)
        tool_choice = req.get("tool_choice") or {}
        tools = req.get("tools") or []
        if isinstance(out, dict) and "__content__" in out:
            content = out["__content__"]
        elif isinstance(out, (dict, list)) and tools:
            name = tool_choice.get("name") or tools[0]["name"]
            content = [{"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": name, "input": out}]
        else:
            content = [{"type": "text", "text": out if isinstance(out, str) else json.dumps(out)}]
        usage = self._usage(req)
        usage["output_tokens"] = sum(approx_tokens(_block_text(b)) for b in content)
        stop = "tool_use" if any(b.get("type") == "tool_use" for b in content) else "end_turn"
        return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
                "model": req.get("model"), "content": content, "stop_reason": stop, "stop_sequence": None,
                "usage": usage}

    def _log(self, **entry: Any) -> None:
        entry.setdefault("ts", time.time())
        with self._lock:
            self.log.append(entry)

    # ------------------------------------------------------------------ HTTP
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any, headers: dict | None = None, raw: bytes | None = None,
                      ctype: str = "application/json") -> None:
                data = raw if raw is not None else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(data)))
                    self.send_header("request-id", "req_" + uuid.uuid4().hex[:20])
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _error(self, status: int, etype: str, message: str, headers: dict | None = None) -> None:
                self._send(status, {"type": "error", "error": {"type": etype, "message": message}}, headers)

            def _body(self) -> dict:
                n = int(self.headers.get("content-length") or 0)
                return json.loads(self.rfile.read(n) or b"{}")

            def _auth_ok(self, path: str = "") -> bool:
                if srv.api_key is None:
                    return True
                key = self.headers.get("x-api-key") or (self.headers.get("authorization") or "").removeprefix("Bearer ")
                if key != srv.api_key:
                    srv._log(path=path, status=401, fault=None, billed=False, fingerprint="")  # before replying
                    self._error(401, "authentication_error", "invalid x-api-key")
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0].rstrip("/")
                if not self._auth_ok(path):
                    return
                if path == "/v1/models":
                    data = [{"type": "model", "id": m, "display_name": m, "created_at": _iso(0)}
                            for m in sorted(srv.models)]
                    return self._send(200, {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                                            "last_id": data[-1]["id"] if data else None})
                if path.startswith("/v1/models/"):
                    m = path.rsplit("/", 1)[1]
                    if m not in srv.models:
                        return self._error(404, "not_found_error", f"model: {m}")
                    return self._send(200, {"type": "model", "id": m, "display_name": m, "created_at": _iso(0)})
                if path.startswith("/v1/messages/batches/"):
                    parts = path.split("/")
                    bid = parts[4]
                    b = srv.batches.get(bid)
                    if b is None:
                        return self._error(404, "not_found_error", f"batch {bid} not found")
                    srv._advance(b)
                    if len(parts) > 5 and parts[5] == "results":
                        if b["processing_status"] != "ended":
                            return self._error(400, "invalid_request_error", "batch has not ended")
                        lines = "\n".join(json.dumps(r) for r in b["results"]) + "\n"
                        return self._send(200, None, raw=lines.encode(), ctype="application/binary")
                    return self._send(200, srv._batch_obj(b))
                self._error(404, "not_found_error", f"no route {path}")

            def do_POST(self) -> None:  # noqa: N802
                path = self.path.split("?")[0].rstrip("/")
                try:
                    req = self._body()
                except json.JSONDecodeError:
                    return self._error(400, "invalid_request_error", "body is not JSON")
                if not self._auth_ok(path):
                    return
                if path == "/v1/messages/count_tokens":
                    u = srv._usage({**req, "tools": req.get("tools")})
                    n = u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
                    return self._send(200, {"input_tokens": n})
                if path == "/v1/messages/batches":
                    return self._send(200, srv._batch_obj(srv._create_batch(req)))
                if path.startswith("/v1/messages/batches/") and path.endswith("/cancel"):
                    b = srv.batches.get(path.split("/")[4])
                    if b is None:
                        return self._error(404, "not_found_error", "batch not found")
                    b["cancel_at"] = time.time()
                    return self._send(200, srv._batch_obj(b))
                if path != "/v1/messages":
                    return self._error(404, "not_found_error", f"no route {path}")
                self._messages(req)

            def _messages(self, req: dict) -> None:
                fp = hashlib.sha256(json.dumps(req.get("messages"), sort_keys=True).encode()).hexdigest()[:16]
                model = req.get("model")
                if model not in srv.models:
                    srv._log(path="/v1/messages", status=404, fault=None, billed=False, fingerprint=fp)
                    return self._error(404, "not_found_error", f"model: {model}")
                allowed, rl_headers, wait = srv._rate_check()
                if not allowed:
                    ra = max(wait, 0.001)
                    srv._log(path="/v1/messages", status=429, fault="rpm", billed=False, fingerprint=fp)
                    return self._error(429, "rate_limit_error", "Number of requests has exceeded your rate limit",
                                       {**rl_headers, "retry-after": f"{ra:.3f}", "retry-after-ms": f"{ra * 1000:.0f}"})
                accepted = time.time()
                fault = srv._next_fault()
                if srv.latency_s:
                    time.sleep(srv.latency_s)
                if fault == "429":
                    srv._log(path="/v1/messages", status=429, fault=fault, billed=False, fingerprint=fp)
                    ra = srv.retry_after
                    return self._error(429, "rate_limit_error", "rate limited (injected)",
                                       {**rl_headers, "retry-after": f"{ra:.3f}", "retry-after-ms": f"{ra * 1000:.0f}"})
                if fault == "529":
                    srv._log(path="/v1/messages", status=529, fault=fault, billed=False, fingerprint=fp)
                    return self._error(529, "overloaded_error", "Overloaded (injected)", rl_headers)
                if fault == "500":
                    srv._log(path="/v1/messages", status=500, fault=fault, billed=False, fingerprint=fp)
                    return self._error(500, "api_error", "Internal server error (injected)", rl_headers)
                if fault == "slow":
                    time.sleep(srv.slow_s)  # the client has given up by now; nothing is billed
                    srv._log(path="/v1/messages", status=504, fault=fault, billed=False, fingerprint=fp)
                    return self._error(504, "timeout_error", "upstream timeout (injected)", rl_headers)
                msg = srv.make_message(req)
                if fault == "malformed":
                    srv._log(path="/v1/messages", status=200, fault=fault, billed=False, fingerprint=fp)
                    raw = json.dumps(msg).encode()
                    return self._send(200, None, rl_headers, raw=raw[: len(raw) // 2])
                u = msg["usage"]
                srv._log(path="/v1/messages", status=200, fault=None, billed=True, fingerprint=fp, model=model,
                         accepted=accepted,
                         input_tokens=u["input_tokens"], output_tokens=u["output_tokens"],
                         cache_read=u["cache_read_input_tokens"], cache_write=u["cache_creation_input_tokens"],
                         batch=False)
                self._send(200, msg, rl_headers)

        return Handler

    # ------------------------------------------------------------------ batches
    def _create_batch(self, body: dict) -> dict:
        bid = "msgbatch_" + uuid.uuid4().hex[:24]
        b = {"id": bid, "requests": body.get("requests", []), "created": time.time(), "results": None,
             "processing_status": "in_progress", "ended": None, "cancel_at": None}
        with self._lock:
            self.batches[bid] = b
        return b

    def _advance(self, b: dict) -> None:
        with self._lock:
            if b["processing_status"] == "ended":
                return
            due = time.time() - b["created"] >= self.batch_delay_s
            if not due and not b["cancel_at"]:
                return
            b["processing_status"] = "ended"
            b["ended"] = time.time()
        results = []
        for item in b["requests"]:
            cid, params = item["custom_id"], item["params"]
            if b["cancel_at"] and not due:
                results.append({"custom_id": cid, "result": {"type": "canceled"}})
                continue
            if cid in self.batch_error_ids or params.get("model") not in self.models:
                err = {"type": "error", "error": {"type": "api_error", "message": "item failed (injected)"}}
                results.append({"custom_id": cid, "result": {"type": "errored", "error": err}})
                continue
            msg = self.make_message(params)
            u = msg["usage"]
            fp = hashlib.sha256(json.dumps(params.get("messages"), sort_keys=True).encode()).hexdigest()[:16]
            self._log(path="/v1/messages/batches", status=200, fault=None, billed=True, fingerprint=fp,
                      model=params.get("model"), input_tokens=u["input_tokens"], output_tokens=u["output_tokens"],
                      cache_read=u["cache_read_input_tokens"], cache_write=u["cache_creation_input_tokens"],
                      batch=True, custom_id=cid)
            results.append({"custom_id": cid, "result": {"type": "succeeded", "message": msg}})
        b["results"] = results

    def _batch_obj(self, b: dict) -> dict:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if b["results"] is None:
            counts["processing"] = len(b["requests"])
        else:
            for r in b["results"]:
                counts[r["result"]["type"]] += 1
        ended = b["processing_status"] == "ended"
        return {"id": b["id"], "type": "message_batch", "processing_status": b["processing_status"],
                "request_counts": counts, "created_at": _iso(b["created"]),
                "expires_at": _iso(b["created"] + 86400), "ended_at": _iso(b["ended"]) if ended else None,
                "archived_at": None, "cancel_initiated_at": _iso(b["cancel_at"]) if b["cancel_at"] else None,
                "results_url": f"{self.url}/v1/messages/batches/{b['id']}/results" if ended else None}


try:  # the pytest fixture (import it into a conftest to use it)
    import pytest

    @pytest.fixture
    def messages_server():
        with MessagesServer() as srv:
            yield srv
except ImportError:  # pragma: no cover
    pass


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Scripted Anthropic Messages-API server (tests/benches only).")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--api-key", default="test-key", help="expected x-api-key; 'any' accepts every key")
    ap.add_argument("--rpm", type=float, default=None)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--fault-rate", type=float, default=0.0)
    args = ap.parse_args(argv)
    srv = MessagesServer(api_key=None if args.api_key == "any" else args.api_key, rpm=args.rpm,
                         latency_s=args.latency, fault_rate=args.fault_rate, port=args.port)
    print(f"scripted Messages API on {srv.url} (Ctrl-C to stop)", flush=True)
    try:
        srv._httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv._httpd.server_close()


if __name__ == "__main__":
    main()
