"""The HTTP (and file) client that FetchFeeds and FetchPages share.

Connect and read timeouts, a total deadline per request, a streamed size cap counted on
decoded bytes (the client decompresses gzip and deflate itself, in bounded steps, so a
compression bomb stops at the cap), redirects followed by hand up to a limit, retries with
exponential backoff and jitter for timeouts, dropped connections, 429 and 5xx (Retry-After
honoured up to a bound), conditional requests (ETag, Last-Modified), and an address guard
on every connection: the address a socket actually connected to must be public, so neither
a redirect nor a DNS answer that changes between lookups can reach loopback, the private
network or a cloud metadata server. Failures raise FetchError with a short error kind for
the errors table.
"""

from __future__ import annotations

import codecs
import email.utils
import ipaddress
import random
import re
import socket
import time
import zlib
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

DEFAULT_USER_AGENT = "newsbeam/0.1 (+https://github.com/newsbeam/newsbeam)"
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
RETRIED_KINDS = {"timeout", "connection_error"}


def named_url_problem(url: str, named_by: str) -> str | None:
    """Why `url`, named by the document at `named_by` (a redirect, an announced feed, a sitemap, a link), must not be fetched.

    Local files come only from the user's own feed list and the local documents it names: whatever
    a response from the network names must be http(s), or a feed could make newsbeam read our files.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https") or (scheme == "file" and urlsplit(named_by).scheme.lower() == "file"):
        return None
    if scheme == "file":
        return "a document from the network may not name local files"
    return f"unsupported URL scheme {scheme or '(none)'!r}"


class FetchError(Exception):
    """A request that did not give a usable response; `error` is a short kind."""

    def __init__(self, error: str, message: str, http_status: int | None = None, url: str | None = None,
                 retry_after: float | None = None):
        super().__init__(message)
        self.error = error
        self.message = message
        self.http_status = http_status
        self.url = url
        self.retry_after = retry_after  # seconds the server asked us to wait (429/503), if it said
        self.attempts = 1

    @property
    def retryable(self) -> bool:
        return self.error in RETRIED_KINDS or self.http_status == 429 or (self.http_status or 0) >= 500


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    deadline: float = 60.0  # seconds for one attempt, headers and body
    max_bytes: int = 10 * 1024 * 1024  # decoded
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT
    allow_private_network: bool = False
    allowed_networks: tuple = ()  # CIDRs allowed even though private, e.g. ("10.1.2.0/24",)
    retries: int = 3  # further attempts after a retryable failure
    backoff: float = 1.0  # seconds before the first retry; doubles each time, with jitter
    max_retry_after: float = 60.0  # a longer Retry-After is not waited for
    per_host: int = 2  # requests in flight to one host at once
    host_delay: float = 0.5  # seconds between the starts of two requests to one host
    max_connections: int = 64  # requests in flight per worker
    obey_robots: bool = True


@dataclass
class Response:
    url: str  # as requested
    final_url: str  # after redirects
    status: int
    content_type: str
    body: bytes
    fetched_at: datetime
    headers: dict = field(default_factory=dict)
    attempts: int = 1

    @property
    def mime_type(self) -> str:
        return self.content_type.split(";")[0].strip().lower()

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class AddressRefused(Exception):
    """Raised inside a connection whose peer address the guard refuses."""


def address_guard(settings: FetchSettings):
    """A check of a connected peer address per the settings, or None when every address is allowed."""
    if settings.allow_private_network:
        return None
    allowed = [ipaddress.ip_network(n, strict=False) for n in settings.allowed_networks]

    def check(host: str, address: str) -> None:
        ip = ipaddress.ip_address(address.split("%")[0])
        if getattr(ip, "ipv4_mapped", None):
            ip = ip.ipv4_mapped
        if any(ip in net for net in allowed):
            return
        if not ip.is_global or ip.is_multicast:
            raise AddressRefused(
                f"{host} resolves to non-public address {ip}; pass --allow-private-network to allow it"
            )

    return check


def _guarded(connection_cls, guard):
    class Guarded(connection_cls):
        def _new_conn(self):
            # Before connecting: every address the name resolves to (nothing is sent to a refused one) ...
            try:
                infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError):
                infos = []  # let the connection attempt report it
            for info in infos:
                guard(self.host, info[4][0])
            # ... and after: the address actually connected to, should the name have resolved differently since.
            sock = super()._new_conn()
            try:
                guard(self.host, sock.getpeername()[0])
            except AddressRefused:
                sock.close()
                raise
            return sock

    return Guarded


def _guarded_pool(pool_cls, guard):
    return type(pool_cls.__name__, (pool_cls,), {"ConnectionCls": _guarded(pool_cls.ConnectionCls, guard)})


class HttpClient:
    """One connection pool per worker; create in DoFn.setup() and close in teardown().

    `gate` (politeness.HostGate) is entered around every request to a host, redirects and
    retries included; `sleep` is replaceable for tests of the backoff.
    """

    def __init__(self, settings: FetchSettings, gate=None, sleep=time.sleep):
        self.settings = settings
        self.gate = gate
        self._sleep = sleep
        self._pool = urllib3.PoolManager(
            num_pools=max(64, settings.max_connections),
            maxsize=max(4, settings.per_host),
            retries=False,
            timeout=urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout),
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
        )
        guard = address_guard(settings)
        if guard:
            self._pool.pool_classes_by_scheme = {
                "http": _guarded_pool(HTTPConnectionPool, guard),
                "https": _guarded_pool(HTTPSConnectionPool, guard),
            }

    def close(self) -> None:
        self._pool.clear()

    def get(self, url: str, accept: str = "*/*", validators: dict | None = None) -> Response:
        """The response to GET `url`, retried as the settings say; FetchError when there is none.

        `validators` ({"etag", "last_modified"}) make the request conditional: a 304 then comes
        back as a Response whose `not_modified` is true and whose body is empty.
        """
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError as exc:  # "http://[::1/x": an unclosed IPv6 host
            raise FetchError("invalid_url", f"invalid URL: {exc}", url=url) from None
        if scheme == "file":
            return self._read_file(url)
        if scheme not in ("http", "https"):
            raise FetchError("unsupported_scheme", f"cannot fetch {scheme or 'scheme-less'} URL", url=url)
        headers = {**self._pool.headers, "Accept": accept, **conditional_headers(validators)}
        attempt = 1
        while True:
            try:
                response = self._follow(url, headers)
                response.attempts = attempt
                return response
            except FetchError as exc:
                exc.attempts = attempt
                wait = self._retry_wait(exc, attempt)
                if wait is None:
                    raise
            self._sleep(wait)
            attempt += 1

    def _retry_wait(self, exc: FetchError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None to give up with `exc`."""
        if not exc.retryable or attempt > self.settings.retries:
            return None
        if exc.retry_after is not None:
            if exc.retry_after > self.settings.max_retry_after:
                exc.message += f"; Retry-After {exc.retry_after:g} s is longer than the {self.settings.max_retry_after:g} s bound"
                return None
            return exc.retry_after
        return backoff_delay(self.settings.backoff, attempt)

    def _follow(self, url: str, headers: dict) -> Response:
        deadline = time.monotonic() + self.settings.deadline
        seen = [url]
        current = url
        for _ in range(self.settings.max_redirects + 1):
            status, response_headers, body = self._request(current, headers, url, deadline)
            if status in REDIRECT_STATUSES and response_headers.get("location"):
                target = _redirect_target(current, response_headers["location"], status, url)
                if target in seen:
                    raise FetchError("redirect_loop", f"redirect loop back to {target}", status, url)
                seen.append(target)
                current = target
                continue
            if status == 304 and not any(h in headers for h in ("If-None-Match", "If-Modified-Since")):
                raise FetchError("http_status", "HTTP 304 to a request that was not conditional", status, url)
            if status >= 400:
                raise FetchError("http_status", f"HTTP {status}", status, url,
                                 retry_after=parse_retry_after(response_headers.get("retry-after")))
            return Response(
                url=url,
                final_url=current,
                status=status,
                content_type=response_headers.get("content-type", ""),
                body=body,
                fetched_at=datetime.now(timezone.utc),
                headers=response_headers,
            )
        raise FetchError("too_many_redirects", f"more than {self.settings.max_redirects} redirects", url=url)

    def _request(self, url: str, headers: dict, origin: str, deadline: float) -> tuple[int, dict, bytes]:
        host = urlsplit(url).hostname or ""
        with self.gate.slot(host) if self.gate else nullcontext():
            return self._exchange(url, headers, origin, deadline)

    def _exchange(self, url: str, headers: dict, origin: str, deadline: float) -> tuple[int, dict, bytes]:
        try:
            resp = self._pool.request("GET", url, headers=headers, preload_content=False, redirect=False, decode_content=False)
        except AddressRefused as exc:
            raise FetchError("private_address", str(exc), url=origin) from None
        except urllib3.exceptions.MaxRetryError as exc:
            raise _classify(exc.reason or exc, origin) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise _classify(exc, origin) from None
        response_headers = {k.lower(): v for k, v in resp.headers.items()}
        complete = False
        try:
            if resp.status in REDIRECT_STATUSES or resp.status >= 300:
                return resp.status, response_headers, b""
            declared = response_headers.get("content-length", "")
            encoding = response_headers.get("content-encoding", "").strip().lower()
            if declared.isdigit() and int(declared) > self.settings.max_bytes and encoding in ("", "identity"):
                raise FetchError("too_large", f"Content-Length {declared} exceeds the {self.settings.max_bytes}-byte cap", resp.status, origin)
            decoder = BoundedDecoder(encoding, self.settings.max_bytes, origin, resp.status)
            while True:
                if time.monotonic() > deadline:
                    raise FetchError("timeout", f"no complete response within {self.settings.deadline:g} s", resp.status, origin)
                chunk = resp.read1(64 * 1024)
                if not chunk:
                    break
                decoder.feed(chunk)
            body = decoder.finish()
            complete = True
            return resp.status, response_headers, body
        except FetchError:
            raise
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise _classify(exc, origin) from None
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


def _redirect_target(current: str, location: str, status: int, origin: str) -> str:
    """Where a redirect from `current` leads; FetchError when it is no URL or one a response may not name (a local file)."""
    try:
        target = urljoin(current, location.strip())
        urlsplit(target).port  # noqa: B018 - raises for a port out of range
    except ValueError as exc:
        raise FetchError("invalid_url", f"redirect to an invalid URL: {exc}", status, origin) from None
    problem = named_url_problem(target, current)
    if problem:
        raise FetchError("refused", f"redirect refused: {problem}", status, origin)
    return target


def conditional_headers(validators: dict | None) -> dict:
    """If-None-Match / If-Modified-Since from what an earlier response said."""
    headers = {}
    if validators and validators.get("etag"):
        headers["If-None-Match"] = validators["etag"]
    if validators and validators.get("last_modified"):
        headers["If-Modified-Since"] = validators["last_modified"]
    return headers


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_delay(base: float, attempt: int, cap: float = 60.0) -> float:
    """Exponential backoff with jitter: half of base * 2**(attempt-1) fixed, the other half random."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class BoundedDecoder:
    """Collects a body, undoing gzip or deflate in bounded steps; FetchError('too_large') past `limit` decoded bytes."""

    def __init__(self, encoding: str, limit: int, url: str, status: int):
        self.limit, self.url, self.status = limit, url, status
        self.size = 0
        self.parts: list[bytes] = []
        self._raw_fallback = encoding == "deflate"  # some servers send raw deflate without the zlib header
        if encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        elif encoding in ("", "identity"):
            self._zlib = None
        else:
            raise FetchError("unsupported_encoding", f"unsupported Content-Encoding {encoding!r}", status, url)
        self._first = True

    def feed(self, data: bytes) -> None:
        if self._zlib is None:
            self._keep(data)
            return
        if self._first and self._raw_fallback and data[:1] and (data[0] & 0x0F) != 8:
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        self._first = False
        try:
            while data:
                # Never more than what is left under the cap (+1 to notice going over) per step.
                out = self._zlib.decompress(data, self.limit - self.size + 1)
                self._keep(out)
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise FetchError("decode_error", f"cannot decompress the body: {exc}", self.status, self.url) from None

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise FetchError("too_large", f"body exceeds the {self.limit}-byte cap", self.status, self.url)
        self.parts.append(data)

    def finish(self) -> bytes:
        if self._zlib is not None:
            self._keep(self._zlib.flush())
        return b"".join(self.parts)


_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)


def charset_from_header(content_type: str) -> str | None:
    match = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type or "", re.I)
    return _codec(match.group(1)) if match else None


def decode_html(body: bytes, content_type: str = "") -> tuple[str, str]:
    """(text, encoding) of an HTML body: charset from the header, then a BOM or <meta>, then detection.

    Bytes that are invalid in the chosen encoding become U+FFFD rather than failing the page.
    """
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if body.startswith(bom):
            return body[len(bom):].decode(codec, errors="replace"), codec
    encoding = charset_from_header(content_type)
    if not encoding:
        match = _CHARSET.search(body[:4096])
        encoding = _codec(match.group(1).decode("ascii", "ignore")) if match else None
    if not encoding:
        encoding = _detect(body)
    return body.decode(encoding, errors="replace"), encoding


def _codec(name: str) -> str | None:
    try:
        codec = codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None
    # What browsers do: a page labelled Latin-1 or ASCII is read as windows-1252.
    return "cp1252" if codec in ("latin-1", "iso8859-1", "ascii") else codec


def _detect(body: bytes) -> str:
    # UTF-8 with a stray bad byte is still UTF-8; a legacy encoding fails on most non-ASCII bytes.
    if body.decode("utf-8", errors="replace").count("\ufffd") <= max(1, len(body) // 1000):
        return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(body[:65536]).best()
    return _codec(best.encoding) if best and _codec(best.encoding) else "utf-8"


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
