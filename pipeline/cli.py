"""The `newsbeam` command."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
from datetime import timedelta

from newsbeam.transforms.http import DEFAULT_USER_AGENT, FetchSettings

DEFAULT_OUT = "./newsbeam-data"


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def _non_negative(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _non_negative_int(text):
    value = _non_negative(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def _network(text):
    import ipaddress

    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP network (CIDR): {text!r}") from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("newsbeam")
    except PackageNotFoundError:
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line, pointing at --help, instead of the whole usage block."""

    def error(self, message):
        self.exit(2, f"newsbeam: error: {message} (see '{self.prog} --help')\n")


def _add_run_options(command: argparse.ArgumentParser) -> None:
    """The options `run` and `stream` share: where from, where to, and how to fetch."""
    command.add_argument("--feeds", metavar="SOURCES", help="feed list: text (one URL or path per line), OPML, YAML or TOML; "
                     "default: the bundled offline sample, into a new or empty --out or one of sample runs only")
    command.add_argument("--out", metavar="DIR", default=DEFAULT_OUT, help=f"output dataset folder (default: {DEFAULT_OUT})")
    command.add_argument("--run-id", metavar="ID", help="name of this run; re-running an id replaces that run once the new one "
                         "commits (default: UTC time + random suffix)")
    command.add_argument("--extract-processes", type=_positive(int), metavar="N",
                         help="processes that extract pages in a local run (default: one per usable core, for runs of "
                         "64 pages or more; 1: extract in the runner's own process)")
    command.add_argument("--no-compact", action="store_true", help="never compact the dataset at the end of a local run "
                         "(by default it does once 48 runs older than a day wait for it; see `newsbeam compact`)")
    command.add_argument("--allow-private-network", action="store_true",
                     help="allow fetching from loopback, private, link-local and reserved addresses (refused by default)")
    command.add_argument("--allow-network", action="append", default=[], type=_network, metavar="CIDR",
                     help="allow one private network only, e.g. 10.1.2.0/24 for a local mirror (repeatable)")
    command.add_argument("--user-agent", default=DEFAULT_USER_AGENT, help="User-Agent header sent with every request "
                     "and matched against robots.txt")
    command.add_argument("--ignore-robots", action="store_true", help="fetch article pages that robots.txt disallows")
    command.add_argument("--per-host", type=_positive(int), default=2, metavar="N", help="requests in flight to one host (default 2)")
    command.add_argument("--host-delay", type=_non_negative, default=0.5, metavar="S",
                     help="seconds between request starts to one host (default 0.5; a longer robots.txt Crawl-delay wins)")
    command.add_argument("--max-connections", type=_positive(int), default=64, metavar="N", help="requests in flight per worker (default 64)")
    command.add_argument("--retries", type=_non_negative_int, default=3, metavar="N",
                     help="retries after a timeout, a dropped connection, 429 or 5xx, with exponential backoff (default 3)")
    command.add_argument("--connect-timeout", type=_positive(float), default=10.0, metavar="S", help="seconds to connect (default 10)")
    command.add_argument("--read-timeout", type=_positive(float), default=20.0, metavar="S", help="seconds between bytes (default 20)")
    command.add_argument("--deadline", type=_positive(float), default=60.0, metavar="S", help="seconds for a whole request (default 60)")
    command.add_argument("--max-bytes", type=_positive(int), default=10 * 1024 * 1024, metavar="N", help="largest body fetched, in bytes (default 10 MiB)")
    command.add_argument("--quiet", "-q", action="store_true", help="no progress lines, only the summary")
    command.add_argument("--verbose", "-v", action="store_true", help="log Beam's and the libraries' INFO messages")


def make_parser() -> argparse.ArgumentParser:
    from newsbeam.transforms.remember import REMEMBER

    parser = _Parser(
        prog="newsbeam",
        description="News ingestion on Apache Beam: feeds to clean, deduplicated, Hive-partitioned Parquet.",
    )
    parser.add_argument("--version", action="version", version=f"newsbeam {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    run = sub.add_parser(
        "run",
        help="fetch feeds and their articles into Parquet (batch)",
        description="Fetch feeds and the pages they link, extract, clean, deduplicate and write Parquet. "
        "Any other --option is passed to Apache Beam (e.g. --runner, --direct_running_mode).",
    )
    _add_run_options(run)
    run.add_argument("--progress-every", type=_positive(float), metavar="S",
                     help="seconds between progress updates (default: 0.5 on a terminal, one line rewritten in place; 15 in a log)")
    run.add_argument("--wait", action="store_true", help="with a remote runner (--runner DataflowRunner): wait for the job "
                     "to finish and write the full manifest (default: submit it and return)")
    stream = sub.add_parser(
        "stream",
        help="poll feeds again and again into the same dataset",
        description="Poll the feeds every --poll-interval seconds into --out (conditional GET, links already seen "
        "skipped), until --max-polls or Ctrl-C / SIGTERM. Locally each poll is a run of the batch pipeline; with "
        "--runner DataflowRunner the streaming job is submitted (a window and a manifest per poll, what earlier "
        "polls saw kept in state for --remember-days). Any other --option is passed to Apache Beam.",
    )
    _add_run_options(stream)
    stream.add_argument("--poll-interval", type=_positive(float), default=900.0, metavar="S",
                        help="seconds from the start of one poll to the start of the next (default 900)")
    stream.add_argument("--max-polls", type=_positive(int), metavar="N", help="stop after N polls (default: run until stopped)")
    stream.add_argument("--remember-days", type=_positive(float), default=REMEMBER.days, metavar="D",
                        help=f"streaming job: forget a link or text D days after it was last seen (default {REMEMBER.days}); "
                        "longer than your feeds list a link")
    extract = sub.add_parser(
        "extract",
        help="show what the pipeline extracts from HTML files, as JSON lines",
        description="For each HTML file (plain or .gz), print one JSON line with what the pipeline's Extract, "
        "StripChrome and Normalise stages make of it: url, title, text, authors, dates and their sources, "
        "language, wire, paywalled, extraction_method.",
    )
    extract.add_argument("paths", nargs="+", metavar="PATH", help="HTML files, plain or gzipped")
    extract.add_argument("--url", help="the URL the page was fetched from (one PATH only); default: its file:// URL")
    dedup = sub.add_parser(
        "dedup",
        help="deduplicate an existing articles dataset (backfills, merged datasets)",
        description="Run the deduplication tiers (url, exact, near, story ids) over the articles of DATASET and write "
        "the articles kept, the duplicates, state and a manifest to --out. Any other --option goes to Apache Beam.",
    )
    dedup.add_argument("dataset", metavar="DATASET", help="a newsbeam output folder, or its articles/ folder")
    dedup.add_argument("--out", metavar="DIR", required=True, help="output dataset folder (not DATASET itself)")
    dedup.add_argument("--run-id", metavar="ID", help="name of this run (default: UTC time + random suffix)")
    dedup.add_argument("--verbose", "-v", action="store_true", help="log Beam's and the libraries' INFO messages")
    compact = sub.add_parser(
        "compact",
        help="merge the small files earlier runs left in a dataset",
        description="Merge the files of DIR's committed runs (all but those of the last --keep-recent hours) into a few "
        "per table partition and state folder, rows unchanged, and their manifests into one. Crash-safe: the new "
        "files are written and read back before the old ones go; a reader of the tables sees each partition whole, "
        "old or new. Run it as often as you like: when nothing is left to merge it changes nothing. Local runs "
        "also compact by themselves once 48 runs older than a day wait (run --no-compact). A compacted run cannot be "
        "rerun under its run id.",
    )
    compact.add_argument("dataset", metavar="DIR", help="a newsbeam output folder")
    compact.add_argument("--keep-recent", type=_positive(float), default=24.0, metavar="H",
                         help="leave the runs committed in the last H hours as they are, so they can be rerun (default 24)")
    feeds = sub.add_parser(
        "feeds",
        help="show the health of the feeds a dataset polls",
        description="For each feed that runs into DIR have polled: its last outcome, consecutive failures, "
        "last success, when it may be polled again, and whether it is polled conditionally.",
    )
    feeds.add_argument("dataset", metavar="DIR", help="a newsbeam output folder")
    feeds.add_argument("--failing", action="store_true",
                       help="only feeds whose last poll failed; exit status 1 if there are any (for a scheduler's alert)")
    shown = feeds.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="one JSON object per feed instead of a table")
    shown.add_argument("--opml", action="store_true", help="the feeds as an OPML feed list (for a feed reader, or --feeds)")
    return parser


def compacted_files(done: dict) -> str:
    merged = done["files_before"] - done["carried"]
    return (f"{merged} files merged into {done['files_after'] - done['carried']}, "
            f"{done['carried']} kept as they were")


def _compact(args) -> int:
    from datetime import timedelta

    from newsbeam.pipeline.compact_cmd import compact

    done = compact(args.dataset, timedelta(hours=args.keep_recent))
    if not done["compacted_runs"]:
        print(f"{args.dataset}: nothing to compact (no two runs older than {args.keep_recent:g} h, no partition of several files)")
    else:
        print(f"{args.dataset}: {done['compacted_runs']} runs compacted into one: {compacted_files(done)}; manifest: {done['manifest']}")
    return 0


def _feeds(args) -> int:
    from newsbeam.pipeline.feeds_cmd import show_feeds

    return show_feeds(args.dataset, failing=args.failing, as_json=args.json, as_opml=args.opml)


def _extract(args) -> int:
    from newsbeam.pipeline.config import UsageError
    from newsbeam.pipeline.extract_cmd import extract_paths

    if args.url and len(args.paths) > 1:
        raise UsageError("--url names the URL of one page; give one PATH with it")
    failures = extract_paths(args.paths, args.url)
    return 1 if failures == len(args.paths) else 0


def check_beam_args(beam_args: list[str]):
    """Refuse options that neither newsbeam nor Beam knows, instead of Beam's silent discard."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from newsbeam.pipeline.config import UsageError

    options = PipelineOptions(beam_args)
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):  # Beam's parser prints its whole usage before the error
            unknown = set(options.get_all_options(retain_unknown_options=True)) - set(options.get_all_options())
    except SystemExit:
        error = said.getvalue().strip().splitlines()[-1] if said.getvalue().strip() else "invalid Apache Beam option"
        raise UsageError(f"Apache Beam option: {error.split('error: ', 1)[-1]}") from None
    if unknown:
        names = ", ".join("--" + name for name in sorted(unknown))
        raise UsageError(f"unknown option(s) {names}: not a newsbeam option nor an Apache Beam pipeline option")
    return options


def _run_config(args, beam_args):
    """The RunConfig that `run` and `stream` options describe (checked), and a printer for progress lines."""
    from newsbeam.pipeline.config import (RunConfig, check_out, check_run_id, check_sample_out, new_run_id,
                                          sample_feeds_location)
    from newsbeam.pipeline.runner import check_runner_options
    from newsbeam.transforms.sources import read_sources

    check_runner_options(check_beam_args(beam_args))

    sample = args.feeds is None
    location = sample_feeds_location() if sample else args.feeds
    feeds = read_sources(location)
    out = check_out(args.out)
    if sample:
        check_sample_out(out)
    config = RunConfig(
        feeds=feeds,
        feeds_location=location,
        out=out,
        run_id=check_run_id(args.run_id) if args.run_id else new_run_id(),
        fetch=FetchSettings(
            connect_timeout=args.connect_timeout,
            read_timeout=args.read_timeout,
            deadline=args.deadline,
            max_bytes=args.max_bytes,
            user_agent=args.user_agent,
            allow_private_network=args.allow_private_network,
            allowed_networks=tuple(args.allow_network),
            obey_robots=not args.ignore_robots,
            per_host=args.per_host,
            host_delay=args.host_delay,
            max_connections=args.max_connections,
            retries=args.retries,
        ),
        sample=sample,
        wait=getattr(args, "wait", False),
        compact=not args.no_compact,
        extract_processes=args.extract_processes,
    )
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    if sample:
        say(f"newsbeam: no --feeds given; running on the bundled offline sample ({location})")
    return config, say


def _run(args, beam_args) -> int:
    from newsbeam.pipeline.job import run_job

    config, say = _run_config(args, beam_args)
    say(f"newsbeam: run {config.run_id}: {len(config.feeds)} feeds -> {config.out}")
    manifest = run_job(config, beam_args, progress=not args.quiet, progress_every=args.progress_every)
    print(manifest["summary"])
    print(f"manifest: {manifest['path']}")
    if manifest.get("compacted"):
        say(f"newsbeam: compacted {manifest['compacted']['compacted_runs']} earlier runs into one: "
            f"{compacted_files(manifest['compacted'])}")
    if "links" in manifest and not manifest["links"]["balanced"]:
        print("newsbeam: warning: some links are not accounted for; see 'links' in the manifest", file=sys.stderr)
    return 0


def _stream(args, beam_args) -> int:
    from newsbeam.pipeline.config import UsageError
    from newsbeam.pipeline.runner import is_local
    from newsbeam.pipeline.stream_cmd import run_stream, submit_stream

    config, say = _run_config(args, beam_args)
    if not is_local(check_beam_args(beam_args)):
        if args.poll_interval < 1:  # a window's run id names the second it starts
            raise UsageError("--poll-interval: a streaming job polls at most once a second")
        say(f"newsbeam: stream {config.run_id}: {len(config.feeds)} feeds -> {config.out}, a poll every "
            f"{args.poll_interval:g} s, as a streaming job")
        manifest = submit_stream(config, beam_args, args.poll_interval, args.max_polls, timedelta(days=args.remember_days))
        print(manifest["summary"])
        print(f"manifest: {manifest['path']}")
        return 0
    say(f"newsbeam: stream {config.run_id}: {len(config.feeds)} feeds -> {config.out}, a poll every {args.poll_interval:g} s"
        + (f", {args.max_polls} polls" if args.max_polls else " until stopped"))
    summary = run_stream(config, beam_args, args.poll_interval, args.max_polls, say)
    print(summary["summary"])
    print(f"manifest: {summary['path']}")
    return 0 if summary["status"] in ("complete", "stopped") else 1


def _dedup(args, beam_args) -> int:
    from newsbeam.pipeline.config import check_out, check_run_id, new_run_id
    from newsbeam.pipeline.dedup_cmd import run_dedup
    from newsbeam.pipeline.runner import check_runner_options

    check_runner_options(check_beam_args(beam_args))
    manifest = run_dedup(args.dataset, check_out(args.out), check_run_id(args.run_id) if args.run_id else new_run_id(), beam_args)
    print(manifest["summary"])
    print(f"manifest: {manifest['path']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    # Before anything imports Beam: it logs warnings about optional cloud clients at import time.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    parser = make_parser()
    args, rest = parser.parse_known_args(argv)
    verbose = getattr(args, "verbose", False)
    if verbose:
        logging.getLogger().setLevel(logging.INFO)
    unknown = [a for a in rest if a.startswith("-") and not a.startswith("--")]
    if unknown or (rest and not rest[0].startswith("--")):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from newsbeam.pipeline.config import UsageError
    from newsbeam.pipeline.lock import LockedError
    from newsbeam.pipeline.runner import RunnerError
    from newsbeam.transforms.commits import DatasetError
    from newsbeam.transforms.compact import CompactionError
    from newsbeam.transforms.sources import SourcesError

    if args.command in ("run", "dedup", "stream") and not verbose and not any(a.startswith("--default_sdk_harness_log_level") for a in rest):
        rest.append("--default_sdk_harness_log_level=ERROR")  # quiet multi_processing workers too
    if args.command in ("extract", "feeds", "compact") and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        commands = {"extract": lambda: _extract(args), "feeds": lambda: _feeds(args), "compact": lambda: _compact(args), "stream": lambda: _stream(args, rest), "run": lambda: _run(args, rest), "dedup": lambda: _dedup(args, rest)}
        return commands[args.command]()
    except (UsageError, SourcesError, RunnerError, LockedError, DatasetError, CompactionError) as exc:
        print(f"newsbeam: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("newsbeam: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if verbose:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        what = "the pipeline failed: " if args.command in ("run", "dedup", "stream") else ""
        print(f"newsbeam: error: {what}{type(exc).__name__}: {first} (rerun with --verbose for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
