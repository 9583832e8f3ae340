"""A local HTTP receiver for jobs' outside effects: it counts every delivery per
``Idempotency-Key`` and can be told to fail (503) until further notice, so a test can take
the far side down and bring it back. Runs in a thread of the test process; a ``runjob``
subprocess reaches it over 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[tuple[str, Any]] = []  # (idempotency key, JSON body), in order
        self.refused = 0  # requests answered 503
        self.down = False
        self.delay = 0.0  # seconds each answer takes: a slow receiver
        self.url = ""

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(key for key, _ in self.deliveries)

    def bodies(self) -> dict[str, Any]:
        with self.lock:
            return dict(self.deliveries)

    def delivered(self) -> int:
        with self.lock:
            return len(self.deliveries)

    def _handle(self, key: str, body: bytes) -> int:
        time.sleep(self.delay)
        with self.lock:
            if self.down:
                self.refused += 1
                return 503
            self.deliveries.append((key, json.loads(body or b"null")))
            return 204


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status = receiver._handle(self.headers.get("Idempotency-Key", ""), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
