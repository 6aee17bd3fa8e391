"""ReadSources stage: the feed list (text, OPML, YAML or TOML) as feed specs.

A feed spec is a dict: url, name, category, language, max_entries. Relative paths and
bare file paths in a list resolve against the list's own location, so a folder of
feeds can travel with its list. A list that cannot be read or parsed is a usage error
(SourcesError); a single unusable entry becomes an error row and the run goes on.
"""

from __future__ import annotations

import os
import re
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import apache_beam as beam
import yaml

from newsbeam.schemas import error_row
from newsbeam.transforms.errors import ERRORS
from newsbeam.transforms.metrics import count

SCHEMES = ("http", "https", "file")
FEED_SETTINGS = {"url", "name", "category", "language", "max_entries"}


class SourcesError(Exception):
    """The feed list as a whole cannot be used."""


def read_sources(location: str) -> list[dict]:
    """Parse the feed list at `location` (local path or any Beam filesystem path)."""
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(location, compression_type="uncompressed") as f:
            raw = f.read()
    except Exception as exc:  # Beam wraps local and remote errors alike
        if not FileSystems.exists(location):
            raise SourcesError(f"feed list not found: {location}") from None
        raise SourcesError(f"cannot read feed list {location}: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SourcesError(f"feed list is not UTF-8 text: {location}") from None
    return parse_sources(text, location)


def parse_sources(text: str, location: str) -> list[dict]:
    """Feed specs from the text of a feed list; its format is chosen by extension, then content."""
    base = _base_url(location)
    suffix = Path(urlsplit(location).path).suffix.lower()
    stripped = text.lstrip()
    if suffix in (".opml", ".xml") or stripped.startswith("<"):
        specs = _parse_opml(text, location)
    elif suffix in (".yaml", ".yml"):
        specs = _parse_mapping(_load_yaml(text, location), location, _quote_yaml)
    elif suffix == ".toml":
        specs = _parse_mapping(_load_toml(text, location), location, _quote_toml)
    else:
        specs = _parse_lines(text)
    resolved, seen = [], set()
    for spec in specs:
        spec = {**spec, "url": resolve_feed_url(spec["url"], base)}
        if spec["url"] in seen:
            continue
        seen.add(spec["url"])
        resolved.append(spec)
    if not resolved:
        raise SourcesError(f"feed list has no feeds: {location}")
    return resolved


def resolve_feed_url(ref: str, base: str) -> str:
    """An absolute URL for a list entry: URLs stay, paths resolve against the list's location.

    What is no URL at all ("https://[::1") stays as it is, for spec_problem to say so.
    """
    ref = ref.strip()
    try:
        scheme = urlsplit(ref).scheme.lower()
        if scheme and len(scheme) > 1:  # a one-letter scheme is a Windows drive
            return ref
        if os.path.isabs(ref):
            return Path(ref).as_uri()
        return urljoin(base, ref)
    except ValueError:
        return ref


def spec_problem(spec: dict) -> str | None:
    """Why a spec cannot be fetched, or None."""
    try:
        parts = urlsplit(spec["url"])
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError as exc:
        return f"invalid URL: {exc}"
    if parts.scheme.lower() not in SCHEMES:
        return f"unsupported URL scheme {parts.scheme or '(none)'!r}; use http, https or a file path"
    if parts.scheme.lower() != "file" and not parts.hostname:
        return "URL has no host"
    max_entries = spec.get("max_entries")
    if max_entries is not None and (isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1):
        return f"max_entries must be a positive integer, not {max_entries!r}"
    return None


def _base_url(location: str) -> str:
    if urlsplit(location).scheme.lower() in ("", "file") or len(urlsplit(location).scheme) == 1:
        path = location[7:] if location.startswith("file://") else location
        return Path(os.path.abspath(path)).as_uri()
    return location


def _spec(url, name=None, category=None, language=None, max_entries=None) -> dict:
    return {"url": url, "name": name, "category": category, "language": language, "max_entries": max_entries}


def _parse_lines(text: str) -> list[dict]:
    specs = []
    for line in text.splitlines():
        line = re.split(r"\s#", line, maxsplit=1)[0].strip()
        if line and not line.startswith("#"):
            specs.append(_spec(line.split()[0]))
    return specs


def _parse_opml(text: str, location: str) -> list[dict]:
    try:
        root = ET.fromstring(text.encode("utf-8"))
    except ET.ParseError as exc:
        raise SourcesError(f"OPML feed list is not well-formed XML ({exc}): {location}") from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise SourcesError(f"not an OPML document (no <opml><body>): {location}")
    specs: list[dict] = []

    def walk(node, category):
        for outline in node.findall("outline"):
            url = outline.get("xmlUrl") or outline.get("xmlurl")
            label = outline.get("title") or outline.get("text")
            if url:
                specs.append(_spec(url, name=label, category=category, language=outline.get("language")))
            walk(outline, label if not url else category)

    walk(body, None)
    return specs


class _YamlBool:
    """An unquoted yes, no, on, off, true or false, which YAML reads as a boolean. No setting is one, so
    it stays the word it was written as, for the error that says to quote it."""

    def __init__(self, word: str, value: bool):
        self.word, self.value = word, value

    def __repr__(self):
        return self.word


class _YamlLoader(yaml.SafeLoader):
    """yaml.safe_load's loader, booleans kept as _YamlBool."""


_YamlLoader.add_constructor(
    "tag:yaml.org,2002:bool", lambda loader, node: _YamlBool(node.value, loader.construct_yaml_bool(node)))


def _load_yaml(text, location):
    try:
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise SourcesError(f"YAML feed list cannot be parsed ({str(exc).splitlines()[0]}): {location}") from None


def _load_toml(text, location):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SourcesError(f"TOML feed list cannot be parsed ({exc}): {location}") from None


def _quote_yaml(key: str, word: str) -> str:
    return f"{key}: '{word}'"


def _quote_toml(key: str, word: str) -> str:
    return f'{key} = "{word}"'


def _setting_problem(key: str, value, quote) -> str | None:
    """Why a per-feed setting's value has the wrong type, or None; `quote(key, word)` shows it quoted."""
    if value is None:
        return None
    if key == "max_entries":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return None
        return f"max_entries must be a positive integer, not {value!r}"
    if isinstance(value, str):
        return None
    if isinstance(value, (list, dict)):
        return f"{key} must be text, not {value!r}"
    if isinstance(value, _YamlBool):
        return (f"{key} must be text, not {value!r} (YAML reads an unquoted {value!r} as {str(value.value).lower()}); "
                f"quote it: {quote(key, value.word)}")
    word = str(value).lower() if isinstance(value, bool) else str(value)
    return f"{key} must be text, not {word}; quote it: {quote(key, word)}"


def _check_settings(settings: dict, where: str, quote) -> None:
    for key, value in settings.items():
        problem = _setting_problem(key, value, quote)
        if problem:
            raise SourcesError(f"{where}: {problem}")


def _parse_mapping(data, location: str, quote) -> list[dict]:
    """`feeds:` a list of URLs or of mappings with per-feed settings; `defaults:` apply to all."""
    if isinstance(data, list):
        data = {"feeds": data}
    if not isinstance(data, dict) or not isinstance(data.get("feeds"), list):
        raise SourcesError(f"feed list needs a 'feeds' list: {location}")
    unknown_top = set(data) - {"feeds", "defaults"}
    if unknown_top:
        raise SourcesError(f"unknown key(s) {sorted(unknown_top)} in feed list; expected 'feeds' and 'defaults': {location}")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - (FEED_SETTINGS - {"url"}):
        raise SourcesError(f"'defaults' may set {sorted(FEED_SETTINGS - {'url'})}: {location}")
    _check_settings(defaults, f"{location}: defaults", quote)
    specs = []
    for i, item in enumerate(data["feeds"], 1):
        if isinstance(item, str):
            item = {"url": item}
        if not isinstance(item, dict) or not item.get("url"):
            raise SourcesError(f"feed #{i} has no url: {location}")
        unknown = set(item) - FEED_SETTINGS
        if unknown:
            raise SourcesError(f"feed #{i} has unknown setting(s) {sorted(unknown)}; allowed: {sorted(FEED_SETTINGS)}: {location}")
        _check_settings(item, f"{location}: feed #{i} ({item['url']})", quote)
        specs.append(_spec(**{**defaults, **item}))
    return specs


class ReadSources(beam.PTransform):
    """Feed specs -> the usable specs, spread over workers; unusable ones go to the `errors` output.

    Applied to a pipeline, the specs come once; applied to a PCollection of poll ticks (the
    streaming job), they come again on each tick, with its timestamp.
    """

    def __init__(self, specs: list[dict]):
        super().__init__()
        self._specs = specs

    def expand(self, start):
        if isinstance(start, beam.pvalue.PBegin):
            listed = start | "ListFeeds" >> beam.Create(self._specs)
        else:
            listed = start | "ListFeedsEachPoll" >> beam.FlatMap(lambda _tick, specs: specs, self._specs)
        return (
            listed
            | "CheckFeedSpecs" >> beam.ParDo(_CheckSpec()).with_outputs(ERRORS, main="feeds")
        )


class _CheckSpec(beam.DoFn):
    def process(self, spec):
        problem = spec_problem(spec)
        if problem:
            count("feeds_invalid")
            yield beam.pvalue.TaggedOutput(
                ERRORS, error_row(stage="read_sources", error="invalid_feed", message=problem, feed_url=spec["url"])
            )
        else:
            count("feeds_listed")
            yield spec
