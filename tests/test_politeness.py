"""Per-host politeness: the gate's cap and delay, the dispatcher's per-host share, robots.txt."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from newsbeam.pipeline.cli import main
from newsbeam.transforms import politeness
from newsbeam.transforms.http import FetchError, FetchSettings, HttpClient
from newsbeam.transforms.politeness import MAX_CRAWL_DELAY, HostGate, RobotsRules
from newsbeam.transforms.pool import Dispatcher
from newsweb import article_page, body_paragraphs, rss


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


def allowed(robots, web, paths):
    return {path: robots.check(web.url(path)) is None for path in paths}


def test_robots_wildcard_and_end_anchor(web, rules):
    robots, _ = rules
    web.add("/robots.txt", "User-agent: *\nDisallow: /*.pdf$\nDisallow: /exact$\n", content_type="text/plain")
    assert allowed(robots, web, ["/a/b.pdf", "/a/b.pdf?x=1", "/a/b.pdfx", "/exact", "/exact/more", "/exact?page=2"]) == {
        "/a/b.pdf": False, "/a/b.pdf?x=1": True, "/a/b.pdfx": True, "/exact": False, "/exact/more": True, "/exact?page=2": True}


def test_robots_longest_match_wins_not_the_first(web, rules):
    robots, _ = rules
    web.add("/robots.txt", "User-agent: *\nDisallow: /news\nAllow: /news/ok\nAllow: /$\nDisallow: /\n", content_type="text/plain")
    assert allowed(robots, web, ["/news/ok/story", "/news/other", "/", "/about"]) == {
        "/news/ok/story": True, "/news/other": False, "/": True, "/about": False}


def test_robots_group_is_chosen_by_the_exact_product_token(web, rules):
    robots, gate = rules
    # "news" starts our token and "github" is a word of our full user agent: neither names us, so `*` applies.
    web.add("/robots.txt", "User-agent: news\nUser-agent: github\nDisallow: /\nCrawl-delay: 9\n\n"
                           "User-agent: *\nDisallow: /private/\nCrawl-delay: 2\n", content_type="text/plain")
    assert allowed(robots, web, ["/story", "/private/a"]) == {"/story": True, "/private/a": False}
    assert gate._host("127.0.0.1")[2] == 2.0


def test_robots_groups_naming_our_token_are_merged_and_replace_the_star_group(web, rules):
    robots, gate = rules
    web.add("/robots.txt", "User-agent: *\nDisallow: /private/\n\nUser-agent: NewsBeam/2.0\nUser-agent: other\n"
                           "Disallow: /mine/\n\nUser-agent: newsbeam\nDisallow: /also/\nCrawl-delay: 4\n", content_type="text/plain")
    assert allowed(robots, web, ["/mine/a", "/also/b", "/private/c"]) == {"/mine/a": False, "/also/b": False, "/private/c": True}
    assert gate._host("127.0.0.1")[2] == 4.0


def test_robots_of_a_private_address_refuses_the_page_as_private(web):
    client = HttpClient(FetchSettings(connect_timeout=1.0, read_timeout=1.0, retries=0, host_delay=0))  # the guard on
    robots = RobotsRules(lambda url: client.get(url), UA)
    for _ in range(2):
        with pytest.raises(FetchError) as refused:
            robots.check(web.url("/news/story.html"))
        assert refused.value.error == "private_address" and refused.value.url == web.url("/news/story.html")
    assert web.requests == []  # refused before connecting
    client.close()


def test_a_run_refuses_a_page_on_a_private_address_as_private_address(web, tmp_path):
    link = web.add("/news/story.html", article_page("Story", body_paragraphs(1), "https://s.example/story", "Site"))
    web.add("/robots.txt", "User-agent: *\nDisallow:\n", content_type="text/plain")
    (tmp_path / "feed.xml").write_text(rss("Site", [{"title": "Story", "link": link}]))
    (tmp_path / "feeds.txt").write_text((tmp_path / "feed.xml").as_uri() + "\n")
    code = main(["run", "--feeds", str(tmp_path / "feeds.txt"), "--out", str(tmp_path / "data"), "--run-id", "guarded", "-q"])
    assert code == 0
    errors = pd.read_parquet(tmp_path / "data" / "errors")
    assert errors[["url", "stage", "error"]].values.tolist() == [[link, "fetch_page", "private_address"]]
    assert "--allow-private-network" in errors.message[0]
    assert web.requests == []  # neither robots.txt nor the page was asked for


_LINE_START = st.sampled_from(["User-agent: ", "user agent ", "useragent:", "Disallow: ", "Allow: ", "Crawl-delay: ",
                               "Sitemap: ", "# ", "", "disallow "])
_LINE_REST = st.sampled_from(["*", "newsbeam", "NewsBeam/1.0", "news", "otherbot", "/", "/a", "/a*", "/*.pdf$", "/a$",
                              "3", "-1", "x:y", "user-agent: newsbeam", "\t", "%2Fa", "/\u00e4"])
_ROBOTS_TXT = st.lists(st.tuples(_LINE_START, _LINE_REST), max_size=12).map(lambda lines: "\n".join(a + b for a, b in lines))
_PATHS = ["/", "/a", "/a/b", "/b.pdf", "/news/x", "/robots.txt"]


@settings(max_examples=200, deadline=None)
@given(st.one_of(_ROBOTS_TXT, st.text(max_size=200)))
def test_robots_group_always_answers_and_ignores_other_agents_groups(robots_txt):
    rules = politeness.robots_group(robots_txt, "newsbeam")
    verdicts = [rules.can_fetch("http://h.example" + path, "*") for path in _PATHS]
    assert all(isinstance(v, bool) for v in verdicts)
    delay = rules.crawl_delay("*")
    assert delay is None or delay >= 0
    # A group for another agent, put first, changes nothing of ours.
    other_first = politeness.robots_group("User-agent: otherbot\nDisallow: /\nCrawl-delay: 7\n\n" + robots_txt, "newsbeam")
    assert [other_first.can_fetch("http://h.example" + path, "*") for path in _PATHS] == verdicts
    assert other_first.crawl_delay("*") == delay
