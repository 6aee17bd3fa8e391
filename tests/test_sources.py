"""Unit tests of the feed list parsers in transforms/sources.py."""

from __future__ import annotations

import pytest

from newsbeam.transforms.sources import SourcesError, _CheckSpec, parse_sources, read_sources, spec_problem

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


# What is no URL at all becomes an invalid_feed row, never a failed run (issue 14).


@pytest.mark.parametrize(
    "name, text",
    [
        ("feeds.txt", "https://[::1\nhttp://a.example/rss\n"),
        ("feeds.opml", "<opml><body><outline xmlUrl='https://[::1'/><outline xmlUrl='http://a.example/rss'/></body></opml>"),
        ("feeds.yaml", "feeds:\n  - https://[::1\n  - url: http://a.example/rss\n"),
        ("feeds.toml", '[[feeds]]\nurl = "https://[::1"\n[[feeds]]\nurl = "http://a.example/rss"\n'),
    ],
    ids=["text", "opml", "yaml", "toml"],
)
def test_a_line_that_is_no_url_is_kept_for_spec_problem_to_refuse(tmp_path, name, text):
    bad, good = parse_sources(text, str(tmp_path / name))
    assert bad["url"] == "https://[::1" and good["url"] == "http://a.example/rss"
    assert spec_problem(bad) == "invalid URL: Invalid IPv6 URL"
    assert spec_problem(good) is None


@pytest.mark.parametrize("url", ["//[::1", "http://[::1/feed.xml", "http://a.example:99999/rss", "http://a.example:rss/"])
def test_spec_problem_and_resolution_are_total(tmp_path, url):
    (spec,) = parse_sources(url + "\n", str(tmp_path / "feeds.txt"))
    assert spec_problem(spec)


def test_check_spec_turns_a_bad_url_into_an_invalid_feed_row():
    (out,) = list(_CheckSpec().process({"url": "https://[::1"}))
    assert out.tag == "errors"
    assert (out.value["stage"], out.value["error"], out.value["feed_url"]) == ("read_sources", "invalid_feed", "https://[::1")


# Per-feed settings have types; YAML's unquoted no/yes/on/off are booleans, and said to be (issue 14).


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("feeds.yaml", "feeds:\n  - http://a.example/rss\n  - url: http://b.example/rss\n    language: no\n",
         "feed #2 (http://b.example/rss): language must be text, not no (YAML reads an unquoted no as false); "
         "quote it: language: 'no'"),
        ("feeds.yaml", "feeds:\n  - url: http://b.example/rss\n    category: On\n",
         "feed #1 (http://b.example/rss): category must be text, not On (YAML reads an unquoted On as true); quote it: category: 'On'"),
        ("feeds.yaml", "feeds:\n  - url: http://b.example/rss\n    name: 2026\n",
         "feed #1 (http://b.example/rss): name must be text, not 2026; quote it: name: '2026'"),
        ("feeds.yaml", "feeds:\n  - url: http://b.example/rss\n    name: [a, b]\n",
         "feed #1 (http://b.example/rss): name must be text, not ['a', 'b']"),
        ("feeds.yaml", "defaults:\n  language: off\nfeeds: [http://a.example/rss]\n",
         "defaults: language must be text, not off (YAML reads an unquoted off as false); quote it: language: 'off'"),
        ("feeds.yaml", "feeds:\n  - url: yes\n", "feed #1 (yes): url must be text, not yes (YAML reads an unquoted yes as true); quote it: url: 'yes'"),
        ("feeds.yaml", "feeds:\n  - url: http://b.example/rss\n    max_entries: '5'\n",
         "feed #1 (http://b.example/rss): max_entries must be a positive integer, not '5'"),
        ("feeds.yaml", "defaults:\n  max_entries: 0\nfeeds: [http://a.example/rss]\n", "defaults: max_entries must be a positive integer, not 0"),
        ("feeds.yaml", "feeds:\n  - url: http://b.example/rss\n    max_entries: yes\n",
         "feed #1 (http://b.example/rss): max_entries must be a positive integer, not yes"),
        ("feeds.toml", '[[feeds]]\nurl = "http://b.example/rss"\nname = 2026\n',
         "feed #1 (http://b.example/rss): name must be text, not 2026; quote it: name = \"2026\""),
        ("feeds.toml", '[defaults]\nmax_entries = 2.5\n[[feeds]]\nurl = "http://b.example/rss"\n',
         "defaults: max_entries must be a positive integer, not 2.5"),
    ],
    ids=["yaml-no", "yaml-on", "yaml-int-name", "yaml-list-name", "yaml-defaults-off", "yaml-url-yes", "yaml-quoted-max",
         "yaml-zero-max", "yaml-yes-max", "toml-int-name", "toml-float-max"],
)
def test_a_setting_of_the_wrong_type_is_one_line_naming_the_feed_key_and_value(tmp_path, name, text, message):
    location = str(tmp_path / name)
    with pytest.raises(SourcesError) as info:
        parse_sources(text, location)
    assert str(info.value) == f"{location}: {message}"


def test_quoted_no_is_norwegian_and_unquoted_no_an_error(tmp_path):
    text = "defaults:\n  language: {}\nfeeds:\n  - url: http://a.example/rss\n    name: '2026'\n    category: ~\n    max_entries: 3\n"
    (spec,) = parse_sources(text.format("'no'"), str(tmp_path / "feeds.yaml"))
    assert spec == {"url": "http://a.example/rss", "name": "2026", "category": None, "language": "no", "max_entries": 3}
    with pytest.raises(SourcesError, match="quote it: language: 'no'"):
        parse_sources(text.format("no"), str(tmp_path / "feeds.yaml"))
