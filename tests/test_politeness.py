"""Per-host politeness: the gate's cap and delay, the dispatcher's per-host share, robots.txt."""

from __future__ import annotations

import threading

import pytest

from newsbeam.transforms.http import FetchSettings, HttpClient
from newsbeam.transforms.politeness import MAX_CRAWL_DELAY, HostGate, RobotsRules
from newsbeam.transforms.pool import Dispatcher


class FakeClock:
    """A clock that only moves when the gate sleeps, so spacing is checked without real waiting."""

    def __init__(self):
        self.now = 100.0
        self.lock = threading.Lock()

    def time(self):
        with self.lock:
            return self.now

    def sleep(self, seconds):
        with self.lock:
            self.now += seconds


def test_gate_spaces_request_starts_to_one_host_by_the_delay():
    clock = FakeClock()
    gate = HostGate(per_host=4, delay=0.5, clock=clock.time, sleep=clock.sleep)
    starts = []
    for _ in range(4):
        with gate.slot("a.example"):
            starts.append(clock.time())
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:])] == [0.5, 0.5, 0.5]


def test_gate_does_not_delay_other_hosts():
    clock = FakeClock()
    gate = HostGate(per_host=1, delay=5.0, clock=clock.time, sleep=clock.sleep)
    with gate.slot("a.example"):
        pass
    with gate.slot("b.example"):
        assert clock.time() == 100.0  # b's first request waits for nothing a did


def test_gate_caps_requests_in_flight_per_host():
    gate = HostGate(per_host=2, delay=0.0)
    inside, most, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def request():
        with gate.slot("a.example"):
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            release.wait(5)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=request) for _ in range(6)]
    for t in threads:
        t.start()
    threading.Event().wait(0.3)
    assert inside[0] == 2  # the other four wait for a slot
    release.set()
    for t in threads:
        t.join(5)
    assert most[0] == 2


def test_crawl_delay_lengthens_a_hosts_delay_within_a_bound():
    clock = FakeClock()
    gate = HostGate(per_host=1, delay=0.5, clock=clock.time, sleep=clock.sleep)
    gate.set_delay("slow.example", 2.0)
    gate.set_delay("greedy.example", 0.1)  # never shorter than configured
    gate.set_delay("huge.example", 3600)
    for host, expected in (("slow.example", 2.0), ("greedy.example", 0.5), ("huge.example", MAX_CRAWL_DELAY)):
        with gate.slot(host):
            before = clock.time()
        with gate.slot(host):
            assert clock.time() - before == pytest.approx(expected), host


def test_dispatcher_keeps_one_hosts_backlog_out_of_the_pool():
    pool = Dispatcher(max_workers=4, per_host=2)
    release = threading.Event()
    running = {"a": 0, "most_a": 0}
    lock = threading.Lock()

    def slow_a():
        with lock:
            running["a"] += 1
            running["most_a"] = max(running["most_a"], running["a"])
        release.wait(5)
        with lock:
            running["a"] -= 1
        return "a"

    try:
        a_futures = [pool.submit("a.example", slow_a) for _ in range(10)]
        b = pool.submit("b.example", lambda: "b")
        assert b.result(timeout=5) == "b"  # not stuck behind a's ten
        assert running["a"] == 2 and sum(f.done() for f in a_futures) == 0
        assert pool.queued() == 8  # waiting for a's share, not in a pool thread
        release.set()
        assert [f.result(timeout=5) for f in a_futures] == ["a"] * 10
        assert running["most_a"] == 2
    finally:
        release.set()
        pool.shutdown()


def test_dispatcher_hands_a_tasks_exception_to_its_future():
    pool = Dispatcher(max_workers=2, per_host=1)
    try:
        failing = pool.submit("a.example", lambda: 1 / 0)
        after = pool.submit("a.example", lambda: "next")
        with pytest.raises(ZeroDivisionError):
            failing.result(timeout=5)
        assert after.result(timeout=5) == "next"  # the host's slot was given back
    finally:
        pool.shutdown()


# robots.txt, from a real loopback server

LOCAL = FetchSettings(connect_timeout=1.0, read_timeout=1.0, deadline=2.0, allow_private_network=True, retries=0, host_delay=0)
UA = "newsbeam/0.1 (+https://github.com/newsbeam/newsbeam)"


@pytest.fixture
def rules(web):
    client = HttpClient(LOCAL)
    gate = HostGate(per_host=2, delay=0.0)
    yield RobotsRules(lambda url: client.get(url), UA, gate), gate
    client.close()


def test_robots_is_read_again_after_a_day_and_an_unreadable_one_after_15_minutes(web):
    client = HttpClient(LOCAL)
    clock = FakeClock()
    robots = RobotsRules(lambda url: client.get(url), UA, clock=clock.time)
    web.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    assert robots.check(web.url("/private/a.html")).startswith("disallowed by")
    clock.now += 23 * 3600
    web.add("/robots.txt", "User-agent: *\nDisallow:\n", content_type="text/plain")
    assert robots.check(web.url("/private/a.html")).startswith("disallowed by")  # kept for a day
    clock.now += 3600
    assert robots.check(web.url("/private/a.html")) is None  # then read again: the site allows it now
    web.add("/robots.txt", "down", status=503, content_type="text/plain")
    clock.now += 24 * 3600
    assert "unavailable" in robots.check(web.url("/news/b.html"))
    web.add("/robots.txt", "User-agent: *\nDisallow:\n", content_type="text/plain")
    clock.now += 600
    assert "unavailable" in robots.check(web.url("/news/b.html"))
    clock.now += 300
    assert robots.check(web.url("/news/b.html")) is None
    assert web.requests.count("/robots.txt") == 4
    client.close()


def test_robots_disallow_is_obeyed_and_fetched_once(web, rules):
    robots, _ = rules
    web.add("/robots.txt", "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    assert robots.check(web.url("/private/story.html")).startswith("disallowed by")
    assert robots.check(web.url("/news/story.html")) is None
    assert robots.check(web.url("/news/other.html")) is None
    assert web.requests.count("/robots.txt") == 1


def test_robots_group_for_our_user_agent_wins(web, rules):
    robots, _ = rules
    web.add("/robots.txt", "User-agent: newsbeam\nDisallow: /\n\nUser-agent: *\nAllow: /\n", content_type="text/plain")
    assert robots.check(web.url("/news/story.html")) is not None


def test_missing_robots_allows_everything(web, rules):
    robots, _ = rules
    assert robots.check(web.url("/anything.html")) is None  # the server answers 404


def test_unreachable_robots_disallows_everything(web, rules):
    robots, _ = rules
    web.add("/robots.txt", "down", status=503, content_type="text/plain")
    assert "robots.txt unavailable" in robots.check(web.url("/news/story.html"))


def test_robots_crawl_delay_reaches_the_gate(web, rules):
    robots, gate = rules
    web.add("/robots.txt", "User-agent: *\nCrawl-delay: 3\nDisallow:\n", content_type="text/plain")
    assert robots.check(web.url("/news/story.html")) is None
    assert gate._host("127.0.0.1")[2] == 3.0


def test_robots_fetched_once_by_concurrent_checks(web, rules):
    robots, _ = rules
    web.add("/robots.txt", "User-agent: *\nDisallow: /x/\n", content_type="text/plain", delay=0.2)
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(robots.check(web.url(f"/x/{i}.html")))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(results) == 8 and all(r and r.startswith("disallowed") for r in results)
    assert web.requests.count("/robots.txt") == 1
