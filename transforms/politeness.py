"""Per-host politeness shared by every fetch in a worker process: a cap and a delay per host, robots.txt.

HostGate holds at most `per_host` requests in flight to one host and spaces their starts by
at least `delay` seconds (or the host's robots.txt Crawl-delay, up to a bound). The fetch
stages group their work by host before fetching, so one host's requests reach one worker and
the gate holds across every feed of that host, on one machine or many.

RobotsRules fetches a host's robots.txt once per worker process and answers whether a URL may
be fetched, following RFC 9309: the groups naming the user agent's product token (compared
case-insensitively, merged), else the `*` groups, apply; their rules are matched by protego
(`*` and `$` patterns, the longest match wins, Allow on a tie). A robots.txt that is missing
(4xx) allows everything, one that cannot be reached (5xx, network errors, after retries)
disallows everything for the run. A robots.txt the address guard refuses gives its host's pages
that refusal (`private_address`), not a robots verdict.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

from protego import Protego

MAX_CRAWL_DELAY = 30.0  # a robots.txt asking for more is obeyed up to this
MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309 asks to parse at least 500 KiB


class HostGate:
    def __init__(self, per_host: int, delay: float, clock=time.monotonic, sleep=time.sleep):
        self.per_host, self.delay = per_host, delay
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._hosts: dict[str, list] = {}  # host -> [semaphore, next allowed start, delay]

    def _host(self, host: str) -> list:
        with self._lock:
            if host not in self._hosts:
                self._hosts[host] = [threading.BoundedSemaphore(self.per_host), 0.0, self.delay]
            return self._hosts[host]

    def set_delay(self, host: str, seconds: float) -> None:
        """A longer delay for one host (robots.txt Crawl-delay), never shorter than the configured one."""
        state = self._host(host)
        with self._lock:
            state[2] = max(self.delay, min(seconds, MAX_CRAWL_DELAY))

    @contextmanager
    def slot(self, host: str):
        """Held for one request to `host`: waits for a free slot and for the host's next allowed start."""
        state = self._host(host)
        state[0].acquire()
        try:
            with self._lock:
                now = self._clock()
                start = max(now, state[1])
                state[1] = start + state[2]
            if start > now:
                self._sleep(start - now)
            yield
        finally:
            state[0].release()


_GATES: dict[tuple, HostGate] = {}
_GATES_LOCK = threading.Lock()


def shared_gate(per_host: int, delay: float) -> HostGate:
    """The worker process's gate for these settings, shared by every DoFn instance that fetches."""
    with _GATES_LOCK:
        return _GATES.setdefault((per_host, delay), HostGate(per_host, delay))


def robots_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/robots.txt"


_PRODUCT_TOKEN = re.compile(r"[A-Za-z_-]*")
# Every spelling protego reads as a user-agent line ("User agent foo", "useragent:foo"): none may reach it as a rule.
_USER_AGENT_LINE = re.compile(r"user[-\s]*agent(?:\s*:|\s|$)\s*(.*)", re.IGNORECASE)
_SITE_WIDE_LINE = re.compile(r"(?:sitemap|host)\s*:", re.IGNORECASE)  # not part of any group, nor ending one


def product_token(user_agent: str) -> str:
    """The name robots.txt groups are matched against, lower-case: "newsbeam" of "newsbeam/0.1 (+https://...)"."""
    stripped = user_agent.strip()
    return "*" if stripped.startswith("*") else _PRODUCT_TOKEN.match(stripped).group().lower()


def robots_group(robots_txt: str, token: str) -> Protego:
    """The rules of `robots_txt` for the product token `token`, as protego's one `*` group.

    RFC 9309: every group naming the token (merged), else every `*` group. protego is not left to choose: it
    takes any group whose name starts a word of the agent it is given ("github" in our full user agent, "news"
    for "newsbeam").
    """
    groups: dict[str, list[str]] = {}
    names: list[str] = []
    naming = False  # the previous line named a user agent: a further name joins the same group
    for raw in robots_txt.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or _SITE_WIDE_LINE.match(line):
            continue
        agent = _USER_AGENT_LINE.match(line)
        if agent:
            names = names if naming else []
            name = product_token(agent.group(1))
            if name:
                names.append(name)
                groups.setdefault(name, [])
            naming = True
            continue
        naming = False
        for name in names:
            groups[name].append(line)
    rules = groups[token] if token in groups else groups.get("*", [])
    return Protego.parse("\n".join(["User-agent: *", *rules]))


class RobotsRules:
    """robots.txt per scheme+host, fetched with `fetch(url) -> Response` (raising FetchError) and kept for
    `max_age` seconds (RFC 9309 asks for no more than a day), or `retry_unavailable` when it could not be read:
    a worker of a streaming job lives for weeks."""

    def __init__(self, fetch, user_agent: str, gate: HostGate | None = None, max_age: float = 24 * 3600,
                 retry_unavailable: float = 900, clock=time.monotonic):
        self._fetch = fetch
        self._token = product_token(user_agent)
        self._gate = gate
        self._max_age, self._retry_unavailable, self._clock = max_age, retry_unavailable, clock
        self._lock = threading.Lock()
        self._rules: dict[str, object] = {}  # robots URL -> (what _load gave, expiry), or an Event while being fetched

    def check(self, url: str) -> str | None:
        """None when `url` may be fetched, else the reason it may not.

        Raises the client's `private_address` FetchError when the address guard refused the robots.txt: the
        page's own host (or where its robots.txt redirects) is refused, which is why the page is not fetched.
        """
        from newsbeam.transforms.http import FetchError  # http imports nothing from here; keep it that way

        if urlsplit(url).scheme.lower() not in ("http", "https"):
            return None
        rules = self._rules_for(robots_url(url))
        if isinstance(rules, FetchError):
            raise FetchError(rules.error, rules.message, url=url)
        if isinstance(rules, str):
            return rules
        if not rules.can_fetch(url, "*"):
            return f"disallowed by {robots_url(url)} for user agent {self._token!r}"
        return None

    def _rules_for(self, location: str):
        now = self._clock()
        with self._lock:
            entry = self._rules.get(location)
            if entry is None or (isinstance(entry, tuple) and entry[1] <= now):
                self._rules[location] = pending = threading.Event()
                entry = None
        if entry is None:
            rules = None
            try:
                rules = self._load(location)
            finally:
                rules = rules if rules is not None else "robots.txt could not be read"
                kept_for = self._max_age if isinstance(rules, Protego) else self._retry_unavailable
                with self._lock:
                    self._rules[location] = (rules, now + kept_for)
                pending.set()
            return rules
        if isinstance(entry, threading.Event):
            entry.wait()
            return self._rules[location][0]
        return entry[0]

    def _load(self, location: str):
        """The host's rules (Protego), the reason it is all disallowed (str), or the guard's refusal (FetchError)."""
        from newsbeam.transforms.http import FetchError

        try:
            response = self._fetch(location)
        except FetchError as exc:
            status = exc.http_status or 0
            if 400 <= status < 500 and status != 429:
                return Protego.parse("")  # no robots.txt: everything allowed
            if exc.error == "private_address":
                return exc
            return f"robots.txt unavailable ({exc.message}); RFC 9309 says to assume everything disallowed"
        rules = robots_group(response.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace"), self._token)
        delay = rules.crawl_delay("*")
        if delay and self._gate is not None:
            self._gate.set_delay(urlsplit(location).hostname or "", delay)
        return rules
