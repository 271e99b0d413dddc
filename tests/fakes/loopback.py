"""What the scripted test servers share: a threaded HTTP server on 127.0.0.1, its URL, start/stop as a context
manager, and a queue of faults to inject into the next requests."""

from __future__ import annotations

import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class LoopbackServer:
    """Base of the scripted servers; subclasses pass their request handler class and set `FAULT_KINDS`."""

    FAULT_KINDS: tuple[str, ...] = ()  # faults `queue_faults` accepts (empty: any)
    thread_name = "loopback-server"

    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0):
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self.log: list[dict] = []
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Any:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=self.thread_name)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def queue_faults(self, *kinds: str) -> None:
        """Make the next requests fail with these faults, in order."""
        if self.FAULT_KINDS:
            for k in kinds:
                if k not in self.FAULT_KINDS:
                    raise ValueError(f"unknown fault {k!r}; one of {self.FAULT_KINDS}")
        with self._lock:
            self._queue.extend(kinds)
