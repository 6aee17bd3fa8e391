"""Shared test fixtures: a real HTTP server on loopback and a small news web served from it."""

from __future__ import annotations

import gzip
import socket
import struct
import threading
from contextlib import contextmanager
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

import pytest


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # seconds before the status line
    handler: Callable | None = None  # takes the request handler, writes the whole response


class LoopbackWeb:
    """A threaded HTTP server on 127.0.0.1 serving registered routes; everything else is 404."""

    def __init__(self):
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in separate writes: no 40 ms wait between them

            def do_GET(self):
                web.requests.append(self.path)
                route = web.routes.get(urlsplit(self.path).path)
                if route is None:
                    route = Route(b"not found", status=404, content_type="text/plain")
                if route.delay:
                    time.sleep(route.delay)
                if route.handler:
                    route.handler(self)
                    return
                try:
                    self.send_response(route.status)
                    self.send_header("Content-Type", route.content_type)
                    self.send_header("Content-Length", str(len(route.body)))
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def add(self, path: str, body: bytes | str = b"", **kwargs) -> str:
        self.routes[path] = Route(body.encode("utf-8") if isinstance(body, str) else body, **kwargs)
        return self.url(path)

    def add_gzip(self, path: str, body: bytes, **kwargs) -> str:
        headers = {"Content-Encoding": "gzip", **kwargs.pop("headers", {})}
        return self.add(path, gzip.compress(body), headers=headers, **kwargs)


def respond(request, status: int, body: bytes = b"", headers: dict | None = None) -> None:
    """Write one whole response from a route handler: status, headers, Content-Length, body."""
    request.send_response(status)
    for name, value in {**(headers or {}), "Content-Length": str(len(body))}.items():
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)


def respond_with_etag(request, etag: str, body: bytes, headers: dict | None = None) -> None:
    """304 when the request's If-None-Match is `etag`, else 200 with the body; the ETag either way."""
    if request.headers.get("If-None-Match") == etag:
        respond(request, 304, headers={"ETag": etag})
    else:
        respond(request, 200, body, {**(headers or {}), "ETag": etag})


def flaky(failures: list[tuple[int, dict]], body: bytes = b"finally", content_type: str = "text/html; charset=utf-8"):
    """A route handler that answers with each (status, headers) of `failures` in turn, then 200 `body`.

    A status of 0 drops the connection instead (a TCP reset). `handler.calls` counts the requests.
    """
    calls = []

    def handler(request):
        calls.append(request.path)
        status, headers = failures[len(calls) - 1] if len(calls) <= len(failures) else (200, {"Content-Type": content_type})
        if status == 0:
            reset_connection(request)
        else:
            respond(request, status, body if status == 200 else b"try later", headers)

    handler.calls = calls
    return handler


def reset_connection(request) -> None:
    """Drop the connection with a TCP reset and send nothing."""
    request.close_connection = True
    request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.connection.close()


def open_ended(write, content_type: str = "text/plain"):
    """A route handler: headers without Content-Length, then `write(wfile)`, then close."""

    def handler(request):
        request.close_connection = True
        try:
            request.send_response(200)
            request.send_header("Content-Type", content_type)
            request.end_headers()
            write(request.wfile)
        except OSError:  # the client went away: what these routes are for
            pass

    return handler


@contextmanager
def serving():
    server = LoopbackWeb()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def web():
    with serving() as server:
        yield server


@pytest.fixture(scope="module")
def module_web():
    with serving() as server:
        yield server
