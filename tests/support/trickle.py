"""An HTTP server on 127.0.0.1 that answers every request one byte per 100 ms.

Never silent long enough for a per-read timeout, never done: the shape of a
hostile or broken registry or index. ``mode="headers"`` trickles from the
first byte of the status line, ``mode="body"`` sends the headers at once and
trickles a long body.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

INTERVAL_S = 0.1


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def trickle_server(mode: str) -> Iterator[TrickleServer]:
    server = TrickleServer(mode)
    try:
        yield server
    finally:
        server.stop()


class TrickleServer:
    def __init__(self, mode: str) -> None:
        if mode not in ("headers", "body"):
            raise ValueError(mode)
        self.mode = mode
        self.requests: list[str] = []  # request lines received
        self._stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        server = self
        body = b"x" * 100_000
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Docker-Content-Digest: sha256:" + b"0" * 64 + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    received += chunk
                server.requests.append(received.split(b"\r\n", 1)[0].decode())
                trickled = head + body if server.mode == "headers" else body
                if server.mode == "body":
                    conn.sendall(head)
                for i in range(len(trickled)):
                    if server._stopping.is_set():
                        return
                    try:
                        conn.sendall(trickled[i : i + 1])
                    except OSError:  # the client gave up: what lockd should do
                        return
                    time.sleep(INTERVAL_S)  # the server being slow, not a test waiting

        return Handler
