"""The HTTP (and file) client that FetchFeeds and FetchPages share.

Connect and read timeouts, a total deadline per request, a streamed size cap counted on
decoded bytes (so a compression bomb stops at the cap), redirects followed by hand up to
a limit. Failures raise FetchError with a short error kind for the errors table.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import urllib3

DEFAULT_USER_AGENT = "newsbeam/0.1 (+https://github.com/newsbeam/newsbeam)"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}


class FetchError(Exception):
    """A request that did not give a usable response; `error` is a short kind."""

    def __init__(self, error: str, message: str, http_status: int | None = None, url: str | None = None):
        super().__init__(message)
        self.error = error
        self.message = message
        self.http_status = http_status
        self.url = url


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    deadline: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    allow_private_network: bool = False


@dataclass
class Response:
    url: str  # as requested
    final_url: str  # after redirects
    status: int
    content_type: str
    body: bytes
    fetched_at: datetime
    headers: dict = field(default_factory=dict)

    @property
    def mime_type(self) -> str:
        return self.content_type.split(";")[0].strip().lower()


class HttpClient:
    """One connection pool per worker; create in DoFn.setup() and close in teardown()."""

    def __init__(self, settings: FetchSettings):
        self.settings = settings
        self._pool = urllib3.PoolManager(
            num_pools=64,
            maxsize=4,
            retries=False,
            timeout=urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
        )

    def close(self) -> None:
        self._pool.clear()

    def get(self, url: str, accept: str = "*/*") -> Response:
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            return self._read_file(url)
        if scheme not in ("http", "https"):
            raise FetchError("unsupported_scheme", f"cannot fetch {scheme or 'scheme-less'} URL", url=url)
        deadline = time.monotonic() + self.settings.deadline
        seen = [url]
        current = url
        for _ in range(self.settings.max_redirects + 1):
            status, headers, body = self._request(current, accept, deadline)
            if status in REDIRECT_STATUSES and headers.get("location"):
                target = urljoin(current, headers["location"].strip())
                if target in seen:
                    raise FetchError("redirect_loop", f"redirect loop back to {target}", status, url)
                seen.append(target)
                current = target
                continue
            if status >= 400:
                raise FetchError("http_status", f"HTTP {status}", status, url)
            return Response(
                url=url,
                final_url=current,
                status=status,
                content_type=headers.get("content-type", ""),
                body=body,
                fetched_at=datetime.now(timezone.utc),
                headers=headers,
            )
        raise FetchError("too_many_redirects", f"more than {self.settings.max_redirects} redirects", url=url)

    def _request(self, url: str, accept: str, deadline: float) -> tuple[int, dict, bytes]:
        if not self.settings.allow_private_network:
            refuse_private(url)
        try:
            resp = self._pool.request(
                "GET", url, headers={**self._pool.headers, "Accept": accept}, preload_content=False, redirect=False
            )
        except urllib3.exceptions.MaxRetryError as exc:
            raise _classify(exc.reason or exc, url) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise _classify(exc, url) from None
        headers = {k.lower(): v for k, v in resp.headers.items()}
        complete = False
        try:
            if resp.status in REDIRECT_STATUSES or resp.status >= 400:
                return resp.status, headers, b""
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.settings.max_bytes:
                raise FetchError("too_large", f"Content-Length {declared} exceeds the {self.settings.max_bytes}-byte cap", resp.status, url)
            chunks, size = [], 0
            while True:
                if time.monotonic() > deadline:
                    raise FetchError("timeout", f"no complete response within {self.settings.deadline:g} s", resp.status, url)
                chunk = resp.read1(64 * 1024)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.settings.max_bytes:
                    raise FetchError("too_large", f"body exceeds the {self.settings.max_bytes}-byte cap", resp.status, url)
                chunks.append(chunk)
            complete = True
            return resp.status, headers, b"".join(chunks)
        except FetchError:
            raise
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise _classify(exc, url) from None
        finally:
            # Only a fully read connection can be reused; anything else may have bytes in flight.
            resp.release_conn() if complete else resp.close()

    def _read_file(self, url: str) -> Response:
        path = Path(unquote(urlsplit(url).path))
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise FetchError("not_found", f"not a file: {path}", url=url)
            if size > self.settings.max_bytes:
                raise FetchError("too_large", f"file exceeds the {self.settings.max_bytes}-byte cap", url=url)
            body = path.read_bytes()
        except FileNotFoundError:
            raise FetchError("not_found", f"no such file: {path}", url=url) from None
        except OSError as exc:
            raise FetchError("read_error", f"{exc.strerror or exc}: {path}", url=url) from None
        return Response(url=url, final_url=url, status=200, content_type=_guess_type(path), body=body,
                        fetched_at=datetime.now(timezone.utc))


def refuse_private(url: str) -> None:
    """FetchError('private_address') when the URL's host resolves to a non-public address.

    Checked before every request, redirects included, so a feed cannot steer the fetcher
    at loopback, the private network or a cloud metadata server.
    """
    host = urlsplit(url).hostname
    if not host:
        raise FetchError("invalid_url", "URL has no host", url=url)
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError("connection_error", f"cannot resolve {host}: {exc}", url=url) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global or address.is_multicast:
            raise FetchError(
                "private_address",
                f"{host} resolves to non-public address {address}; pass --allow-private-network to allow it",
                url=url,
            )


def _guess_type(path: Path) -> str:
    return {
        ".html": "text/html", ".htm": "text/html", ".xhtml": "application/xhtml+xml",
        ".xml": "application/xml", ".rss": "application/rss+xml", ".atom": "application/atom+xml",
        ".json": "application/json", ".txt": "text/plain", ".pdf": "application/pdf",
    }.get(path.suffix.lower(), "")


def _classify(exc: BaseException, url: str) -> FetchError:
    text = str(exc) or type(exc).__name__
    # NewConnectionError subclasses ConnectTimeoutError, but a refused connection is no timeout.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return FetchError("connection_error", text, url=url)
    if isinstance(exc, (urllib3.exceptions.TimeoutError, TimeoutError)):
        return FetchError("timeout", f"timed out: {text}", url=url)
    if isinstance(exc, urllib3.exceptions.LocationParseError) or isinstance(exc, ValueError):
        return FetchError("invalid_url", text, url=url)
    return FetchError("connection_error", text, url=url)
