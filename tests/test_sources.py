"""Unit tests of the feed list parsers in transforms/sources.py."""

from __future__ import annotations

import pytest

from newsbeam.transforms.sources import SourcesError, parse_sources, read_sources, spec_problem

OPML = """<?xml version="1.0" encoding="utf-8"?>
<opml version="2.0">
  <head><title>My feeds</title></head>
  <body>
    <outline text="World" title="World news">
      <outline text="bbc" title="BBC World" type="rss" xmlUrl="http://bbc.example/world/rss.xml" language="en"/>
      <outline text="Local mirror" type="rss" xmlUrl="mirror/world.xml"/>
      <outline text="Asia">
        <outline text="Nikkei" type="rss" xmlUrl="https://asia.example/feed"/>
      </outline>
    </outline>
    <outline text="Loose" type="rss" xmlUrl="https://loose.example/atom"/>
  </body>
</opml>
"""

YAML = """\
defaults:
  category: world
  max_entries: 20
feeds:
  - http://a.example/rss
  - url: feeds/b.xml
    name: B Times
    category: tech
    language: de
    max_entries: 5
"""

TOML = """\
[defaults]
language = "en"

[[feeds]]
url = "https://a.example/rss"
name = "A Daily"

[[feeds]]
url = "feeds/b.xml"
max_entries = 3
"""


def by_url(specs):
    return {spec["url"]: spec for spec in specs}


def test_text_list_skips_comments_and_blank_lines(tmp_path):
    text = "# my feeds\n\nhttp://a.example/rss\n   \n# http://commented.example/rss\nhttps://b.example/atom  # the B feed\n"
    specs = parse_sources(text, str(tmp_path / "feeds.txt"))
    assert [s["url"] for s in specs] == ["http://a.example/rss", "https://b.example/atom"]


def test_text_list_resolves_relative_paths_against_its_folder(tmp_path):
    text = "feeds/world.xml\n../common/asia.xml\n"
    specs = parse_sources(text, str(tmp_path / "lists" / "feeds.txt"))
    assert [s["url"] for s in specs] == [
        (tmp_path / "lists" / "feeds" / "world.xml").as_uri(),
        (tmp_path / "common" / "asia.xml").as_uri(),
    ]


def test_text_list_turns_absolute_paths_into_file_urls(tmp_path):
    specs = parse_sources("/srv/feeds/world.xml\n", str(tmp_path / "feeds.txt"))
    assert specs[0]["url"] == "file:///srv/feeds/world.xml"


def test_text_list_specs_have_every_setting_unset(tmp_path):
    (spec,) = parse_sources("http://a.example/rss\n", str(tmp_path / "feeds.txt"))
    assert spec == {"url": "http://a.example/rss", "name": None, "category": None, "language": None, "max_entries": None}


def test_duplicates_are_removed_after_resolution(tmp_path):
    text = "http://a.example/rss\nfeeds/b.xml\nhttp://a.example/rss\n./feeds/b.xml\n"
    specs = parse_sources(text, str(tmp_path / "feeds.txt"))
    assert [s["url"] for s in specs] == ["http://a.example/rss", (tmp_path / "feeds" / "b.xml").as_uri()]


def test_read_sources_reads_a_list_from_disk(tmp_path):
    (tmp_path / "feeds.txt").write_text("http://a.example/rss\nlocal.xml\n", encoding="utf-8")
    specs = read_sources(str(tmp_path / "feeds.txt"))
    assert [s["url"] for s in specs] == ["http://a.example/rss", (tmp_path / "local.xml").as_uri()]


def test_opml_category_comes_from_the_nearest_parent_outline(tmp_path):
    specs = by_url(parse_sources(OPML, str(tmp_path / "feeds.opml")))
    assert specs["http://bbc.example/world/rss.xml"]["category"] == "World news"
    assert specs["https://asia.example/feed"]["category"] == "Asia"
    assert specs["https://loose.example/atom"]["category"] is None


def test_opml_name_prefers_title_over_text(tmp_path):
    specs = by_url(parse_sources(OPML, str(tmp_path / "feeds.opml")))
    assert specs["http://bbc.example/world/rss.xml"]["name"] == "BBC World"
    assert specs["https://loose.example/atom"]["name"] == "Loose"


def test_opml_keeps_language_and_resolves_relative_xml_url(tmp_path):
    specs = parse_sources(OPML, str(tmp_path / "feeds.opml"))
    assert [s["url"] for s in specs] == [
        "http://bbc.example/world/rss.xml",
        (tmp_path / "mirror" / "world.xml").as_uri(),
        "https://asia.example/feed",
        "https://loose.example/atom",
    ]
    assert specs[0]["language"] == "en"


def test_xml_content_is_read_as_opml_whatever_the_extension(tmp_path):
    specs = parse_sources(OPML, str(tmp_path / "feeds.txt"))
    assert len(specs) == 4


def test_yaml_defaults_apply_and_per_feed_settings_win(tmp_path):
    a, b = parse_sources(YAML, str(tmp_path / "feeds.yaml"))
    assert a == {"url": "http://a.example/rss", "name": None, "category": "world", "language": None, "max_entries": 20}
    assert b == {
        "url": (tmp_path / "feeds" / "b.xml").as_uri(),
        "name": "B Times",
        "category": "tech",
        "language": "de",
        "max_entries": 5,
    }


def test_yaml_bare_list_of_urls(tmp_path):
    specs = parse_sources("- http://a.example/rss\n- http://b.example/rss\n", str(tmp_path / "feeds.yml"))
    assert [s["url"] for s in specs] == ["http://a.example/rss", "http://b.example/rss"]


def test_toml_defaults_and_feeds(tmp_path):
    a, b = parse_sources(TOML, str(tmp_path / "feeds.toml"))
    assert a == {"url": "https://a.example/rss", "name": "A Daily", "category": None, "language": "en", "max_entries": None}
    assert b["url"] == (tmp_path / "feeds" / "b.xml").as_uri()
    assert (b["language"], b["max_entries"]) == ("en", 3)


def test_missing_file_is_a_sources_error(tmp_path):
    with pytest.raises(SourcesError, match="not found"):
        read_sources(str(tmp_path / "no-such-list.txt"))


def test_non_utf8_file_is_a_sources_error(tmp_path):
    (tmp_path / "feeds.txt").write_bytes(b"http://a.example/\xff\xfe\n")
    with pytest.raises(SourcesError, match="not UTF-8"):
        read_sources(str(tmp_path / "feeds.txt"))


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("feeds.opml", "<opml><body><outline xmlUrl='http://a.example/rss'></body>", "not well-formed XML"),
        ("feeds.opml", "<rss version='2.0'><channel/></rss>", "not an OPML document"),
        ("feeds.yaml", "feeds: [http://a.example/rss\n", "YAML feed list cannot be parsed"),
        ("feeds.toml", "feeds = [\n", "TOML feed list cannot be parsed"),
    ],
    ids=["opml-broken-xml", "xml-not-opml", "yaml", "toml"],
)
def test_malformed_list_is_a_sources_error(tmp_path, name, text, message):
    with pytest.raises(SourcesError, match=message):
        parse_sources(text, str(tmp_path / name))


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("feeds.yaml", "feeds:\n  - url: http://a.example/rss\n    colour: red\n", r"unknown setting\(s\) \['colour'\]"),
        ("feeds.yaml", "feeds: [http://a.example/rss]\nsources: []\n", r"unknown key\(s\) \['sources'\]"),
        ("feeds.yaml", "defaults:\n  url: http://a.example/rss\nfeeds: [http://b.example/rss]\n", "'defaults' may set"),
        ("feeds.toml", '[[feeds]]\nurl = "http://a.example/rss"\ntimeout = 3\n', r"unknown setting\(s\) \['timeout'\]"),
    ],
    ids=["feed-setting", "top-level", "defaults-url", "toml-feed-setting"],
)
def test_unknown_keys_are_a_sources_error(tmp_path, name, text, message):
    with pytest.raises(SourcesError, match=message):
        parse_sources(text, str(tmp_path / name))


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("feeds.yaml", "title: my feeds\n", "needs a 'feeds' list"),
        ("feeds.yaml", "feeds:\n  - name: no url here\n", "feed #1 has no url"),
    ],
)
def test_mapping_without_usable_feeds_is_a_sources_error(tmp_path, name, text, message):
    with pytest.raises(SourcesError, match=message):
        parse_sources(text, str(tmp_path / name))


@pytest.mark.parametrize(
    "name, text",
    [
        ("feeds.txt", "# nothing but comments\n\n"),
        ("feeds.txt", ""),
        ("feeds.yaml", "feeds: []\n"),
        ("feeds.opml", "<opml version='2.0'><body><outline text='empty folder'/></body></opml>"),
    ],
    ids=["comments-only", "empty-text", "yaml-empty", "opml-no-xmlurl"],
)
def test_empty_list_is_a_sources_error(tmp_path, name, text):
    with pytest.raises(SourcesError, match="no feeds"):
        parse_sources(text, str(tmp_path / name))


@pytest.mark.parametrize(
    "url",
    ["http://a.example/rss", "https://a.example/rss", "file:///srv/feeds/world.xml"],
)
def test_spec_problem_accepts_http_https_and_file(url):
    assert spec_problem({"url": url, "max_entries": 10}) is None


@pytest.mark.parametrize(
    "url, message",
    [
        ("ftp://files.example/feed.xml", "unsupported URL scheme 'ftp'"),
        ("mailto:news@a.example", "unsupported URL scheme 'mailto'"),
        ("http:///rss", "no host"),
    ],
)
def test_spec_problem_rejects_unfetchable_urls(url, message):
    assert message in spec_problem({"url": url})


@pytest.mark.parametrize("max_entries", [0, -3, "5", 2.5])
def test_spec_problem_rejects_bad_max_entries(max_entries):
    assert "max_entries must be a positive integer" in spec_problem({"url": "http://a.example/rss", "max_entries": max_entries})


def test_spec_problem_rejects_boolean_max_entries():
    assert spec_problem({"url": "http://a.example/rss", "max_entries": True}) is not None
