"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 (tests only, not a provider).

POST /v1/chat/completions and GET /v1/models, with an API-key check (401), a model list (404 for others),
`json_schema` response_format support switchable off (400, like servers that only know json_object or
nothing), queued faults ("429", "500", "malformed") and a request log.

    with OpenAIServer(responder=lambda body: '{"label": "positive"}', json_schema=False) as srv:
        p = OpenAICompatibleProvider(base_url=srv.url + "/v1", model="tiny", api_key=srv.api_key)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from .loopback import LoopbackServer


class OpenAIServer(LoopbackServer):
    thread_name = "openai-server"

    def __init__(self, responder: Callable[[dict], str] | None = None, *, api_key: str | None = "sk-test",
                 models: tuple[str, ...] = ("tiny",), json_schema: bool = True, json_object: bool = True,
                 retry_after: float = 0.05):
        self.responder = responder or (lambda body: "hello")
        self.api_key = api_key
        self.models = set(models)
        self.json_schema = json_schema
        self.json_object = json_object
        self.retry_after = retry_after
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None, raw: bytes | None = None, headers: dict | None = None):
                data = raw if raw is not None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _err(self, status: int, msg: str, headers: dict | None = None) -> None:
                self._send(status, {"error": {"message": msg, "type": "invalid_request_error"}}, headers=headers)

            def _auth(self) -> bool:
                if srv.api_key is None:
                    return True
                if self.headers.get("authorization") != f"Bearer {srv.api_key}":
                    self._err(401, "Incorrect API key provided")
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                if not self._auth():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": m, "object": "model"}
                                                                      for m in sorted(srv.models)]})
                self._err(404, "not found")

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                if srv.api_key is not None and self.headers.get("authorization") != f"Bearer {srv.api_key}":
                    srv.log.append({"model": body.get("model"), "fault": None, "status": 401})
                if not self._auth():
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._err(404, "not found")
                with srv._lock:
                    fault = srv._queue.popleft() if srv._queue else None
                rf = (body.get("response_format") or {}).get("type")
                entry = {"model": body.get("model"), "response_format": rf, "fault": fault, "status": 200}
                srv.log.append(entry)
                if body.get("model") not in srv.models:
                    entry["status"] = 404
                    return self._err(404, f"The model `{body.get('model')}` does not exist")
                if (rf == "json_schema" and not srv.json_schema) or (rf == "json_object" and not srv.json_object):
                    entry["status"] = 400
                    return self._err(400, f"response_format {rf} is not supported")
                if fault == "429":
                    entry["status"] = 429
                    return self._err(429, "rate limited", {"retry-after": str(srv.retry_after)})
                if fault == "500":
                    entry["status"] = 500
                    return self._err(500, "boom")
                text = srv.responder(body)
                prompt = sum(len(str(m.get("content", ""))) for m in body.get("messages", [])) // 4 + 1
                msg = {"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion",
                       "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
                                                            "message": {"role": "assistant", "content": text}}],
                       "usage": {"prompt_tokens": prompt, "completion_tokens": len(text) // 4 + 1,
                                 "total_tokens": prompt + len(text) // 4 + 1}}
                raw = json.dumps(msg).encode()
                if fault == "malformed":
                    entry["status"] = "malformed"
                    return self._send(200, raw=raw[: len(raw) // 2])
                self._send(200, raw=raw, headers={"x-ratelimit-remaining-requests": "100",
                                                  "x-ratelimit-reset-requests": "1s"})

        return H
