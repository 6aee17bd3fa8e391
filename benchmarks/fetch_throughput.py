"""Throughput and per-host politeness of the page-fetch stage (FetchPages) against loopback hosts.

A local web of --hosts HTTP servers, one `ThreadingHTTPServer` per host bound to 127.0.0.1,
127.0.0.2, ... (every 127.x address is loopback on Linux; each server takes a free port), all
in one child process so that their Python work does not share the pipeline's GIL, as remote
sites would not (--servers-in-process puts them in threads of this process instead). Each
serves any path with a small HTML article page (tests/newsweb.py's `article_page` and
`body_paragraphs`, about 1.2 KB) after sleeping --latency-ms before the response;
/robots.txt answers 404 at once (a missing robots.txt allows everything). The servers set
TCP_NODELAY, as real servers do: http.server writes the headers and the body separately, and
with Nagle's algorithm every response would wait about 40 ms for the client's delayed ACK.

The pipeline is `beam.Create(indices, reshuffle=False) | Map(index -> entry) | FetchPages(settings,
AsDict(empty))` (entries are made inside the pipeline, as a real run's come out of FetchFeeds:
Create over the dicts would infer a type from each, and its default Reshuffle would add a
shuffle of its own), run in this process with `make_runner(PipelineOptions([]))`
(Beam's in-process FnApiRunner), with `FetchSettings(allow_private_network=True,
per_host=--per-host, host_delay=0, max_connections=--max-connections, retries=0,
connect_timeout=5, read_timeout=5, deadline=10)`.

Part 1, throughput (the target of the issue): --pages pages (2,000) spread evenly over the
hosts (20), --latency-ms 100, per-host cap --per-host 4. With every host fetched at its cap
all the time, the fetch takes ideal = pages x latency / (hosts x cap) = 2,000 x 0.1 s / 80 = 2.5 s.
Measured:

- wall: seconds for the whole pipeline run: graph built, `run()`, `wait_until_finish()`;
- start-up: the same pipeline over one page per host (20 pages) with 0 ms latency, measured
  in the same invocation: Beam's fixed cost (graph construction, runner start, shuffles) plus
  the robots.txt requests, and not the fetching of many pages;
- ratio = (wall - start-up) / ideal; target: ratio <= 1.3, printed as PASS or FAIL.

Each timed run is checked from both ends: Beam metric counters count the stage's `pages` and
`errors` outputs (and the stage's own counters), and the servers log every request, so the
report also shows the fetch span seen by the servers (first request start to last response),
the mean number of requests in flight over that span across all hosts (the stage's effective
concurrency; hosts x cap = 80 would give the ideal), the peak in flight, the largest number
in flight at one host, and how long the run spent before the first request and after the
last response, against the same for the start-up run. --repeat N (default 1, which keeps
a full-size invocation well under a minute even when the stage is slow) runs start-up and
throughput N times, interleaved, and reports medians.

Part 2, politeness at one host (--politeness-pages pages, 100, same latency): with per-host 4
and host_delay --host-delay (0.05 s), and with per-host 2 and host_delay 0. The server counts
the requests being handled (a lock-protected counter, incremented when a request arrives and
decremented once its response is ready, just before it is written: a client that starts its
next request on reading a response is then never counted alongside it) and logs each request's
start time and the count at that moment. Reported: the most requests in flight at once (must be
<= the cap) and the smallest gap between two consecutive request starts (HostGate spaces the
scheduled starts by host_delay; a thread that wakes late from its wait, or a request that
reaches the server late, narrows the gap to the next one, so gaps a few milliseconds below
host_delay are scheduling jitter on a busy machine: counted and reported, not failed).

Exit code 1 when a per-host cap is exceeded at any host in any run, or when a run's pages are
missing or it gave error rows; the time target's outcome does not change the exit code.

--max-connections defaults to hosts x per-host (80 at the defaults), the pool size that lets
every host be fetched at its cap at once: FetchSettings' own default (64) would cap the stage
at 64 requests in flight and put the ideal out of reach (2,000 x 0.1 / 64 = 3.1 s, 1.25 x ideal).

    python benchmarks/fetch_throughput.py [--pages N] [--hosts N] [--latency-ms MS] [--per-host N]
        [--max-connections N] [--host-delay S] [--politeness-pages N] [--repeat N]
        [--servers-in-process] [--json]

Figures depend on the machine's load: every request costs Python work on both sides (up to 80
client threads under one GIL, 80 server threads under another), so other jobs on a 2-core
machine slow the stage down; the run-by-run figures are printed to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Before Beam is imported: it logs a warning about optional cloud clients at import time.
logging.basicConfig(level=logging.ERROR)
logging.getLogger("apache_beam").setLevel(logging.ERROR)

import apache_beam as beam  # noqa: E402
from apache_beam.metrics import Metrics  # noqa: E402
from apache_beam.metrics.metric import MetricsFilter  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402

from newsbeam.pipeline.runner import make_runner  # noqa: E402
from newsbeam.transforms.http import FetchSettings  # noqa: E402
from newsbeam.transforms.metrics import NAMESPACE  # noqa: E402
from newsbeam.transforms.pages import FetchPages  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from newsweb import article_page, body_paragraphs  # noqa: E402

BENCH = "fetch_benchmark"  # metric namespace of the counters this script adds after the stage
TARGET_RATIO = 1.3
JITTER = 0.005  # seconds below host_delay that a gap between request starts may show without comment
STAGE_COUNTERS = ("links_unique", "pages_fetched", "pages_failed", "fetch_retries", "links_already_stored")


# --- the loopback web -------------------------------------------------------------------------

class HostServer:
    """One host: a threaded HTTP/1.1 server on `address`, logging every request it answers."""

    def __init__(self, address: str, latency: float, site: str):
        self.latency = latency
        self.site = site
        self._lock = threading.Lock()
        self._in_flight = 0
        self.log: list[list] = []  # [start, response ready (None until it is), in flight at start, path]
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real news sites and urllib3's pool use it
            # TCP_NODELAY, as real servers set it: http.server sends the headers and the body in two
            # writes, and with Nagle's algorithm the body waits for the client's delayed ACK (about
            # 40 ms a request on Linux loopback), which would be measured as fetch time.
            disable_nagle_algorithm = True

            def do_GET(self):
                with server._lock:
                    server._in_flight += 1
                    record = [time.perf_counter(), None, server._in_flight, self.path]
                    server.log.append(record)  # a reset() while this request is handled drops it from the new log
                try:
                    if self.path == "/robots.txt":
                        status, ctype, body = 404, "text/plain", b"not found"
                    else:
                        if server.latency:
                            time.sleep(server.latency)
                        status, ctype, body = 200, "text/html; charset=utf-8", server.page(self.path)
                finally:
                    with server._lock:
                        server._in_flight -= 1
                        record[1] = time.perf_counter()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 128

            def handle_error(self, request, client_address):
                if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
                    super().handle_error(request, client_address)  # a client closing its kept-alive connection is no error

        self.httpd = Server((address, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=f"bench-{address}", daemon=True)
        self.thread.start()
        self.host, self.port = self.httpd.server_address[:2]

    def page(self, path: str) -> bytes:
        number = "".join(c for c in path if c.isdigit())
        i = int(number[-6:]) if number else 0
        url = self.url(path)
        return article_page(f"Article {i} from {self.site}", body_paragraphs(i), url, self.site).encode("utf-8")

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def reset(self, latency: float) -> None:
        with self._lock:
            self.latency = latency
            self.log = []

    def records(self) -> list[tuple[float, float, int, str]]:
        """The log since reset(); a request still being handled (one the client gave up on) ends now."""
        with self._lock:
            now = time.perf_counter()
            return [(start, now if ready is None else ready, n, path) for start, ready, n, path in self.log]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class Hosts:
    """The hosts 127.0.0.1 ... 127.0.0.`count`, each with its own server and request log."""

    def __init__(self, count: int):
        self.servers: list[HostServer] = []
        try:
            for n in range(1, count + 1):
                self.servers.append(HostServer(f"127.0.0.{n}", 0.0, f"Host {n}"))
        except BaseException:
            self.close()
            raise

    def addresses(self) -> list[tuple[str, int, str]]:
        return [(s.host, s.port, s.site) for s in self.servers]

    def reset(self, latency: float) -> None:
        for s in self.servers:
            s.reset(latency)

    def logs(self) -> list[tuple[float, float, int, str, str]]:
        """(start, response ready, requests in flight at that host at start, path, host) of every request."""
        return [(*entry, s.host) for s in self.servers for entry in s.records()]

    def close(self) -> None:
        for s in self.servers:
            s.close()


def _serve(conn, count: int) -> None:
    """The server process: Hosts, driven by (method name, args) messages until "close"."""
    try:
        hosts = Hosts(count)
    except OSError as exc:
        conn.send(exc)
        return
    conn.send(hosts.addresses())
    while True:
        name, args = conn.recv()
        conn.send(getattr(hosts, name)(*args))
        if name == "close":
            return


class Web:
    """The loopback web, served from a child process (by default) or from threads of this process.

    A child process keeps the servers' Python work (parsing requests, rendering pages) off the
    GIL of the process that runs the pipeline, as remote news sites would be; its request times
    are comparable with this process's, as time.perf_counter is the system's monotonic clock.
    """

    def __init__(self, count: int, in_process: bool = False):
        self._process = None
        if in_process:
            self._hosts = Hosts(count)
            self.addresses = self._hosts.addresses()
            return
        context = multiprocessing.get_context("spawn")  # no fork of a process that has imported grpc
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, count), name="loopback-web", daemon=True)
        self._process.start()
        child.close()
        answer = self._conn.recv()
        if isinstance(answer, Exception):
            self._process.join(timeout=5)
            raise answer
        self.addresses = answer

    def _call(self, name: str, *args):
        if self._process is None:
            return getattr(self._hosts, name)(*args)
        self._conn.send((name, args))
        return self._conn.recv()

    def url(self, host: int, path: str) -> str:
        address, port, _ = self.addresses[host]
        return f"http://{address}:{port}{path}"

    def reset(self, latency: float) -> None:
        self._call("reset", latency)

    def logs(self) -> list[tuple[float, float, int, str, str]]:
        return self._call("logs")

    def close(self) -> None:
        if self._process is None:
            self._hosts.close()
            return
        try:
            self._call("close")
        except (EOFError, OSError, BrokenPipeError):
            pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._conn.close()


def entries_for(web: Web, hosts: int, pages: int) -> list[dict]:
    """`pages` feed entries, page j on host j % hosts (of the first `hosts`), each with its own link."""
    entries = []
    for j in range(pages):
        host = j % hosts
        entries.append({
            "link": web.url(host, f"/news/{j:06d}.html"),
            "feed_url": web.url(host, "/feed.xml"),
            "source": web.addresses[host][2],
            "title": f"Article {j}",
            "summary": "",
            "content": "",
            "authors": [],
            "published_at": None,
            "language": None,
        })
    return entries


# --- one pipeline run -------------------------------------------------------------------------

class _Tally(beam.DoFn):
    """Counts what comes out of the stage into Beam metrics (readable after the run, across processes)."""

    def __init__(self, name: str):
        self._name = name
        self._counter = Metrics.counter(BENCH, name)

    def process(self, element):
        self._counter.inc()
        if self._name == "errors":
            Metrics.counter(BENCH, f"error:{element.get('error')}").inc()


def run_fetch(entries: list[dict], settings: FetchSettings) -> dict:
    """Wall seconds of one pipeline run (built, run, finished) and its counters."""
    started = time.perf_counter()
    options = PipelineOptions([])
    pipeline = beam.Pipeline(runner=make_runner(options), options=options)
    stored = beam.pvalue.AsDict(pipeline | "StoredLinks" >> beam.Create([]))
    # Entries are made inside the pipeline from their indices, as a real run's come out of FetchFeeds:
    # Create over the dicts themselves infers a type from every one of them (about 0.7 s per 2,000
    # here), and its default Reshuffle is a shuffle of its own (about 0.4 s per 1,000).
    entries_in = (pipeline | "Indices" >> beam.Create(range(len(entries)), reshuffle=False)
                  | "Entries" >> beam.Map(lambda i, made=entries: made[i]))
    fetched = entries_in | "FetchPages" >> FetchPages(settings, stored)
    _ = fetched["pages"] | "CountPages" >> beam.ParDo(_Tally("pages"))
    _ = fetched["errors"] | "CountErrors" >> beam.ParDo(_Tally("errors"))
    result = pipeline.run()
    result.wait_until_finish()
    finished = time.perf_counter()
    wall = finished - started
    counters = {}
    for namespace in (BENCH, NAMESPACE):
        for metric in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
            value = metric.committed if metric.committed is not None else metric.attempted
            counters[metric.key.metric.name] = counters.get(metric.key.metric.name, 0) + (value or 0)
    return {
        "wall": wall,
        "started": started,
        "finished": finished,
        "pages_out": counters.get("pages", 0),
        "errors_out": counters.get("errors", 0),
        "error_kinds": {k.split(":", 1)[1]: v for k, v in counters.items() if k.startswith("error:")},
        "stage_counters": {k: counters[k] for k in STAGE_COUNTERS if k in counters},
    }


def server_view(log: list[tuple[float, float, int, str, str]], run: dict) -> dict:
    """What the servers saw of one run: requests, span, concurrency per host and over all hosts, and
    how long the run took before the first request (lead) and after the last response (tail)."""
    if not log:
        return {"requests": 0}
    pages = [r for r in log if r[3] != "/robots.txt"]
    first, last = min(r[0] for r in log), max(r[1] for r in log)
    span = last - first
    events = sorted([(r[0], 1) for r in log] + [(r[1], -1) for r in log], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    busy = sum(r[1] - r[0] for r in log)
    return {
        "requests": len(log),
        "page_requests": len(pages),
        "distinct_pages": len({(r[4], r[3]) for r in pages}),
        "robots_requests": len(log) - len(pages),
        "span": span,
        "lead": first - run["started"],
        "tail": run["finished"] - last,
        "mean_in_flight": busy / span if span > 0 else 0.0,
        "peak_in_flight": peak,
        "max_per_host": max(r[2] for r in log),
    }


def check_run(run: dict, view: dict, pages: int, cap: int) -> list[str]:
    """Why this run fails the hard checks (pages missing, errors, a per-host cap exceeded)."""
    problems = []
    if run["pages_out"] != pages:
        problems.append(f"{run['pages_out']} pages out of {pages}")
    if run["errors_out"]:
        problems.append(f"{run['errors_out']} error rows {run['error_kinds']}")
    if view.get("max_per_host", 0) > cap:
        problems.append(f"{view['max_per_host']} requests in flight at one host, cap {cap}")
    return problems


def settings_for(per_host: int, host_delay: float, max_connections: int) -> FetchSettings:
    return FetchSettings(allow_private_network=True, per_host=per_host, host_delay=host_delay,
                         max_connections=max_connections, retries=0, connect_timeout=5, read_timeout=5, deadline=10)


# --- the two parts ----------------------------------------------------------------------------

def throughput(web: Web, args) -> dict:
    settings = settings_for(args.per_host, 0.0, args.max_connections)
    latency = args.latency_ms / 1000
    full, probe = entries_for(web, args.hosts, args.pages), entries_for(web, args.hosts, args.hosts)
    runs: dict[str, list] = {"startup": [], "full": []}
    problems: list[str] = []
    for i in range(args.repeat):
        for name, entries, lat in (("startup", probe, 0.0), ("full", full, latency)):
            web.reset(lat)
            run = run_fetch(entries, settings)
            view = server_view(web.logs(), run)
            problems += [f"{name} run {i + 1}: {p}" for p in check_run(run, view, len(entries), args.per_host)]
            runs[name].append(run | {"server": view})
            print(f"run {i + 1}/{args.repeat} {name}: {run['wall']:.2f} s, {run['pages_out']} pages, "
                  f"{run['errors_out']} errors, span {view.get('span', 0):.2f} s, "
                  f"mean in flight {view.get('mean_in_flight', 0):.1f}, before first request {view.get('lead', 0):.2f} s, "
                  f"after last response {view.get('tail', 0):.2f} s", file=sys.stderr)
    startup = statistics.median(r["wall"] for r in runs["startup"])
    wall = statistics.median(r["wall"] for r in runs["full"])
    span = statistics.median(r["server"]["span"] for r in runs["full"])
    ideal = args.pages * latency / (args.hosts * args.per_host)
    ratio = (wall - startup) / ideal if ideal else None  # no ideal to compare with at 0 ms latency
    last = runs["full"][-1]
    return {
        "pages": args.pages, "hosts": args.hosts, "latency_ms": args.latency_ms, "per_host": args.per_host,
        "max_connections": args.max_connections, "repeat": args.repeat,
        "ideal_s": round(ideal, 3), "startup_s": round(startup, 3), "wall_s": round(wall, 3),
        "ratio": round(ratio, 3) if ratio is not None else None, "target_ratio": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO if ratio is not None else None,
        "server_span_s": round(span, 3),
        "lead_s": round(statistics.median(r["server"]["lead"] for r in runs["full"]), 3),
        "tail_s": round(statistics.median(r["server"]["tail"] for r in runs["full"]), 3),
        "startup_lead_s": round(statistics.median(r["server"]["lead"] for r in runs["startup"]), 3),
        "startup_tail_s": round(statistics.median(r["server"]["tail"] for r in runs["startup"]), 3),
        "span_ratio": round(span / ideal, 3) if ideal else None,
        "mean_in_flight": round(statistics.median(r["server"]["mean_in_flight"] for r in runs["full"]), 1),
        "peak_in_flight": max(r["server"]["peak_in_flight"] for r in runs["full"]),
        "max_per_host": max(r["server"]["max_per_host"] for r in runs["full"] + runs["startup"]),
        "startup_runs": [round(r["wall"], 3) for r in runs["startup"]],
        "full_runs": [round(r["wall"], 3) for r in runs["full"]],
        "pages_out": last["pages_out"], "errors_out": last["errors_out"],
        "page_requests": last["server"]["page_requests"], "distinct_pages": last["server"]["distinct_pages"],
        "robots_requests": last["server"]["robots_requests"], "stage_counters": last["stage_counters"],
        "problems": problems,
    }


def politeness(web: Web, args, per_host: int, host_delay: float) -> dict:
    """One run of --politeness-pages pages, all on the first host."""
    settings = settings_for(per_host, host_delay, args.max_connections)
    entries = entries_for(web, 1, args.politeness_pages)
    web.reset(args.latency_ms / 1000)
    run = run_fetch(entries, settings)
    log = web.logs()
    view = server_view(log, run)
    starts = sorted(r[0] for r in log)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    min_gap = min(gaps) if gaps else None
    problems = [f"per_host {per_host}, host_delay {host_delay:g}: {p}"
                for p in check_run(run, view, len(entries), per_host)]
    print(f"politeness per_host {per_host} host_delay {host_delay:g}: {run['wall']:.2f} s, max in flight "
          f"{view.get('max_per_host')}, min gap {1000 * (min_gap or 0):.1f} ms", file=sys.stderr)
    return {
        "pages": len(entries), "latency_ms": args.latency_ms, "per_host": per_host, "host_delay_s": host_delay,
        "wall_s": round(run["wall"], 3), "pages_out": run["pages_out"], "errors_out": run["errors_out"],
        "requests": view.get("requests", 0), "max_in_flight": view.get("max_per_host", 0),
        "cap_held": view.get("max_per_host", 0) <= per_host,
        "min_gap_ms": round(1000 * min_gap, 2) if min_gap is not None else None,
        "median_gap_ms": round(1000 * statistics.median(gaps), 2) if gaps else None,
        "gaps_below_delay_minus_jitter": sum(1 for g in gaps if g < host_delay - JITTER) if host_delay else 0,
        "problems": problems,
    }


# --- report -----------------------------------------------------------------------------------

def print_report(t: dict, polite: list[dict]) -> None:
    print(f"FetchPages throughput: {t['pages']} pages over {t['hosts']} loopback hosts, {t['latency_ms']:g} ms latency, "
          f"per-host cap {t['per_host']}, max_connections {t['max_connections']} (medians of {t['repeat']})")
    print(f"  ideal    {t['ideal_s']:7.2f} s   ({t['pages']} x {t['latency_ms'] / 1000:g} s / ({t['hosts']} x {t['per_host']}))")
    print(f"  start-up {t['startup_s']:7.2f} s   (same pipeline, {t['hosts']} pages, one per host, 0 ms)  runs {t['startup_runs']}")
    print(f"  wall     {t['wall_s']:7.2f} s   (pipeline built, run, finished)  runs {t['full_runs']}")
    outcome = {True: "PASS", False: "FAIL", None: "n/a (no latency, no ideal)"}[t["target_met"]]
    ratio = f"{t['ratio']:7.3f}" if t["ratio"] is not None else "    n/a"
    print(f"  ratio    {ratio}     ((wall - start-up) / ideal; target <= {t['target_ratio']})  {outcome}")
    print(f"  servers: fetch span {t['server_span_s']:.2f} s ({t['span_ratio']} x ideal), mean in flight "
          f"{t['mean_in_flight']} of {t['hosts'] * t['per_host']}, peak {t['peak_in_flight']}, "
          f"max at one host {t['max_per_host']} (cap {t['per_host']})")
    print(f"  run start -> first request {t['lead_s']:.2f} s, last response -> run end {t['tail_s']:.2f} s "
          f"(start-up run: {t['startup_lead_s']:.2f} s and {t['startup_tail_s']:.2f} s)")
    print(f"  out: {t['pages_out']} pages, {t['errors_out']} errors; served {t['page_requests']} page requests "
          f"({t['distinct_pages']} distinct), {t['robots_requests']} robots.txt; stage counters {t['stage_counters']}")
    print("Politeness at one host:")
    for p in polite:
        gap = (f"min gap between request starts {p['min_gap_ms']} ms (median {p['median_gap_ms']} ms, host_delay "
               f"{1000 * p['host_delay_s']:g} ms, {p['gaps_below_delay_minus_jitter']} gaps more than "
               f"{1000 * JITTER:g} ms below it)")
        print(f"  per_host {p['per_host']}, host_delay {p['host_delay_s']:g} s: {p['pages_out']}/{p['pages']} pages, "
              f"{p['errors_out']} errors, {p['wall_s']:.2f} s; max in flight {p['max_in_flight']} "
              f"({'<=' if p['cap_held'] else '>'} {p['per_host']}); {gap}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000, help="pages in the throughput run (default 2000)")
    parser.add_argument("--hosts", type=int, default=20, help="loopback hosts, 127.0.0.1 ... (default 20, at most 250)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="server delay before each page (default 100)")
    parser.add_argument("--per-host", type=int, default=4, help="FetchSettings.per_host of the throughput run (default 4)")
    parser.add_argument("--max-connections", type=int, default=None,
                        help="FetchSettings.max_connections (default hosts x per-host, 80 at the defaults)")
    parser.add_argument("--host-delay", type=float, default=0.05, help="host_delay of the politeness run (default 0.05 s)")
    parser.add_argument("--politeness-pages", type=int, default=100, help="pages of each politeness run (default 100)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="start-up and throughput runs, interleaved; medians are reported (default 1)")
    parser.add_argument("--servers-in-process", action="store_true",
                        help="serve from threads of this process instead of a child process (they then share its GIL)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= 250:
        parser.error("--hosts must be 1 to 250")
    if args.repeat < 1 or args.pages < 1 or args.per_host < 1 or args.politeness_pages < 1:
        parser.error("--repeat, --pages, --per-host and --politeness-pages must be at least 1")
    if args.max_connections is None:
        args.max_connections = args.hosts * args.per_host

    web = Web(args.hosts, in_process=args.servers_in_process)
    try:
        result = throughput(web, args)
        polite = [politeness(web, args, 4, args.host_delay), politeness(web, args, 2, 0.0)]
    finally:
        web.close()
    problems = result["problems"] + [p for run in polite for p in run["problems"]]
    if args.json:
        print(json.dumps({"throughput": result, "politeness": polite, "problems": problems,
                          "ok": not problems}, indent=2))
    else:
        print_report(result, polite)
        print("hard checks: " + ("all pages out, no errors, caps held" if not problems else "FAILED: " + "; ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
