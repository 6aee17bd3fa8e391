"""A small fictional news web for pipeline tests, served by the loopback server in conftest.

Two sites with feeds, articles in site chrome, one syndicated copy, one link with
tracking parameters, and links that fail in every way the fetch and extract stages
must survive. `expected` says where each entry link must end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TOWNS = ["Marrow Bay", "Kestrel Falls", "Oldhaven", "Pike Crossing", "Linden Vale", "Saltmere", "Greywick", "Fenmoor"]
TOPICS = ["ferry timetable", "library budget", "flood barrier", "bus depot", "school roof", "harbour dredging", "market hall", "wind farm"]


def body_paragraphs(i: int, n: int = 4) -> list[str]:
    town, topic = TOWNS[i % len(TOWNS)], TOPICS[(i * 3) % len(TOPICS)]
    return [
        f"Councillors in {town} voted {7 + i} to {i % 4} on Tuesday evening to approve the {topic} plan, "
        f"ending a dispute that had run for {i + 2} months and divided residents along the coast road.",
        f"The decision commits {(i + 3) * 110} thousand pounds over three years, according to papers published "
        f"before the meeting, and asks officers in {town} to report back on progress every quarter.",
        f"Opponents of the {topic} scheme said the consultation had been rushed and that older residents "
        f"were not given a fair chance to respond before the deadline in late autumn.",
        f"Supporters argued that delay would only raise costs, pointing to a survey of {40 + i} local businesses "
        f"that found most wanted the work finished before the summer season begins.",
    ][:n]


def article_page(title: str, paragraphs: list[str], canonical: str, site: str, published: str | None = None) -> str:
    meta = f'<meta property="article:published_time" content="{published}">' if published else ""
    paras = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title} | {site}</title>
<link rel="canonical" href="{canonical}">{meta}</head><body>
<header><a href="/">{site}</a><nav><a href="/news">News</a> <a href="/sport">Sport</a> <a href="/weather">Weather</a></nav></header>
<main><article><h1>{title}</h1><p class="byline">By Staff Reporter</p>
{paras}
</article>
<aside><h2>Related stories</h2><ul><li><a href="/a">Ferry fares rise again</a></li><li><a href="/b">Pier reopens</a></li></ul></aside>
<div class="newsletter"><p>Sign up for our newsletter</p></div></main>
<footer><p>© 2026 {site}. All rights reserved.</p></footer></body></html>"""


def rss(title: str, items: list[dict]) -> str:
    out = []
    for it in items:
        parts = [f"<title>{it['title']}</title>"]
        if it.get("link") is not None:
            parts.append(f"<link>{it['link']}</link>")
        if it.get("pubDate"):
            parts.append(f"<pubDate>{it['pubDate']}</pubDate>")
        if it.get("description"):
            parts.append(f"<description>{it['description']}</description>")
        if it.get("content"):
            parts.append(f"<content:encoded><![CDATA[{it['content']}]]></content:encoded>")
        out.append("<item>" + "".join(parts) + "</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>{title}</title><link>http://example.invalid/</link><description>test</description>"
        + "".join(out)
        + "</channel></rss>"
    )


@dataclass
class NewsWeb:
    feeds_file: Path
    expected: dict = field(default_factory=dict)  # entry link -> 'article' | 'duplicate' | ('error', stage)
    feed_errors: dict = field(default_factory=dict)  # feed url -> stage
    links: int = 0


def build_news_web(web, folder: Path, pdf_route: bool = True) -> NewsWeb:
    """Register the news web's routes on `web` and write an OPML feed list into `folder`."""
    expected: dict = {}

    # Site A: four articles, one of them also reached through a tracking link from site B.
    a_items = []
    for i in range(4):
        path = f"/a/story-{i}.html"
        page = article_page(f"Council story {i}", body_paragraphs(i), f"https://a.example/story-{i}", "The Alder Post",
                            published=f"2026-11-2{i}T09:00:00+00:00")
        link = web.add(path, page)
        a_items.append({"title": f"Council story {i}", "link": link, "pubDate": f"Mon, 2{i} Nov 2026 09:00:00 +0000"})
        expected[link] = "article"
    # A relative link in the feed, resolved against the feed URL.
    web.add("/a/story-rel.html", article_page("Relative story", body_paragraphs(4), "https://a.example/story-rel", "The Alder Post"))
    a_items.append({"title": "Relative story", "link": "story-rel.html"})
    expected[web.url("/a/story-rel.html")] = "article"
    # A page with no body, whose feed entry carries the full text.
    web.add("/a/video.html", article_page("Video: the flood barrier", [], "https://a.example/video", "The Alder Post"))
    a_items.append({"title": "Video: the flood barrier", "link": web.url("/a/video.html"),
                    "content": "".join(f"<p>{p}</p>" for p in body_paragraphs(5))})
    expected[web.url("/a/video.html")] = "article"
    # Failing links.
    a_items.append({"title": "Withdrawn", "link": web.url("/a/withdrawn.html")})
    expected[web.url("/a/withdrawn.html")] = ("error", "fetch_page")
    web.add("/a/broken.html", "server error", status=500, content_type="text/plain")
    a_items.append({"title": "Broken", "link": web.url("/a/broken.html")})
    expected[web.url("/a/broken.html")] = ("error", "fetch_page")
    if pdf_route:
        web.add("/a/report.pdf", b"%PDF-1.4 fake", content_type="application/pdf")
        a_items.append({"title": "Annual report", "link": web.url("/a/report.pdf")})
        expected[web.url("/a/report.pdf")] = ("error", "fetch_page")
    web.add("/a/slow.html", article_page("Slow", body_paragraphs(6), "https://a.example/slow", "The Alder Post"), delay=3.0)
    a_items.append({"title": "Slow", "link": web.url("/a/slow.html")})
    expected[web.url("/a/slow.html")] = ("error", "fetch_page")
    web.add("/a/empty.html", "", content_type="text/html")
    a_items.append({"title": "Empty", "link": web.url("/a/empty.html")})
    expected[web.url("/a/empty.html")] = ("error", "extract")
    a_items.append({"title": "No link at all", "link": None})
    feed_a = web.add("/a/feed.xml", rss("The Alder Post", a_items), content_type="application/rss+xml")

    # Site B: a syndicated copy of story 0 in other chrome, a tracking link to story 1, its own story.
    copy = article_page("Coast council backs plan", body_paragraphs(0), "https://b.example/wire/coast-plan", "Birch Gazette",
                        published="2026-11-20T15:00:00+00:00")
    b_items = [
        {"title": "Coast council backs plan", "link": web.add("/b/wire/coast-plan.html", copy), "pubDate": "Fri, 20 Nov 2026 15:00:00 +0000"},
        {"title": "Council story 1", "link": web.url("/a/story-1.html") + "?utm_source=birch&utm_medium=rss&fbclid=xyz"},
        {"title": "Market hall", "link": web.add("/b/market.html", article_page("Market hall", body_paragraphs(7), "https://b.example/market", "Birch Gazette"))},
    ]
    expected[b_items[0]["link"]] = "duplicate"
    expected[b_items[1]["link"]] = "duplicate"
    expected[b_items[2]["link"]] = "article"
    # Undefined entity: feedparser flags it (bozo) but keeps the entries.
    feed_b = web.add("/b/feed.xml", rss("Birch Gazette &nbsp; News", b_items), content_type="application/rss+xml")

    # Feeds that fail as a whole.
    not_feed = web.add("/c/index.html", "<html><body><p>Welcome to our homepage</p></body></html>")
    broken_xml = web.add("/c/broken.xml", "<?xml version='1.0'?><rss version='2.0'><channel><title>Broken</tit", content_type="application/rss+xml")
    gone_feed = web.url("/c/gone.xml")
    opml = folder / "feeds.opml"
    opml.write_text(
        f"""<?xml version="1.0"?><opml version="2.0"><head><title>test</title></head><body>
<outline text="Local"><outline text="Alder Post" xmlUrl="{feed_a}"/>
  <outline text="Nested"><outline text="Birch Gazette" xmlUrl="{feed_b}"/></outline></outline>
<outline text="Broken"><outline text="Homepage" xmlUrl="{not_feed}"/><outline text="Bad XML" xmlUrl="{broken_xml}"/>
  <outline text="Gone" xmlUrl="{gone_feed}"/></outline>
</body></opml>""",
        encoding="utf-8",
    )
    return NewsWeb(
        feeds_file=opml,
        expected=expected,
        feed_errors={not_feed: "parse_feed", broken_xml: "parse_feed", gone_feed: "fetch_feed"},
        links=len(a_items) + len(b_items),
    )
