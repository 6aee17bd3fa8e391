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


# Four paragraph slots, eight differently worded sentences each: article i uses variant i % 8 in
# every slot, so two articles of the news web share no sentence (the near-copy tier must not
# mistake them for copies), while towns, topics and numbers vary too.
_SLOTS = [
    [
        "Councillors in {town} voted {a} to {b} on Tuesday evening to approve the {topic} plan, ending a dispute that had run for {m} months.",
        "A packed public gallery in {town} watched as the {topic} proposal cleared its final hurdle by {a} votes to {b} late on Wednesday.",
        "After {m} months of wrangling, {town} has finally settled the future of its {topic}, with members backing the scheme {a}-{b}.",
        "The long argument over the {topic} in {town} came to an abrupt end on Thursday when only {b} members opposed the revised design.",
        "Residents of {town} woke on Friday to news that their council had signed off the {topic} overhaul at a specially convened session.",
        "It took {m} meetings, two petitions and one walkout, but the {topic} scheme for {town} is now approved by a margin of {a} to {b}.",
        "The mayor of {town} cast the deciding vote on Monday, pushing the contested {topic} project through after hours of debate.",
        "Officials in {town} confirmed on Saturday that the {topic} works will go ahead following a narrow committee decision.",
    ],
    [
        "The decision commits {k} thousand pounds over three years, according to papers published before the meeting.",
        "Budget papers show the work costing roughly {k} thousand pounds, most of it borrowed against future rents.",
        "Finance officers warned that the {k} thousand pound bill could grow if steel prices keep rising through the winter.",
        "Money for the project, some {k} thousand pounds, will come from reserves that were set aside after the last storm.",
        "A regional grant covers half of the {k} thousand pound total, with the remainder raised from parking charges.",
        "Critics pointed out that {k} thousand pounds is more than the town spent on its roads during the whole of last year.",
        "The treasurer told members that spending {k} thousand pounds now would avoid far larger repair bills later on.",
        "Contracts worth {k} thousand pounds are expected to be signed before Christmas, subject to a final legal review.",
    ],
    [
        "Opponents of the {topic} scheme said the consultation had been rushed and older residents had no fair chance to respond.",
        "A residents' group has already hired a solicitor and says it will seek a judicial review of how the vote was held.",
        "Shop owners on the high street fear months of disruption, and some asked for compensation while the work goes on.",
        "Environmental campaigners welcomed parts of the plan but questioned whether wildlife surveys had been finished in time.",
        "Two members who voted against it said the figures had changed three times in a fortnight, which eroded their trust.",
        "Parents at the nearby primary school raised concerns about lorries passing the gates during the morning run.",
        "The local fishing association argued that its members had been left out of every stage of the planning process.",
        "Several speakers at the meeting demanded that the council publish the full engineering report before any digging starts.",
    ],
    [
        "Supporters argued that delay would only raise costs, citing a survey of {s} local businesses that wanted it finished soon.",
        "The council leader promised quarterly progress reports and said the first phase should be complete by early spring.",
        "Engineers expect the busiest stretch of the work to last about {m} weeks, with night shifts kept to a minimum.",
        "A drop-in session for anyone with questions will be held at the community centre on the first Saturday of next month.",
        "Campaigners who backed the plan from the start said it showed the town could still take hard decisions together.",
        "The contractor has agreed to hire at least {s} apprentices from the area, a condition added at the last minute.",
        "Officers will now draw up a detailed timetable, which must be approved by the full council before work can begin.",
        "Visitors are advised to check the council's website for diversions, which will be updated every Monday morning.",
    ],
]


def body_paragraphs(i: int, n: int = 4) -> list[str]:
    town, topic = TOWNS[i % len(TOWNS)], TOPICS[(i * 3) % len(TOPICS)]
    values = {"town": town, "topic": topic, "a": 7 + i, "b": i % 4, "m": i + 2, "k": (i + 3) * 110, "s": 40 + i}
    return [slot[i % len(slot)].format(**values) for slot in _SLOTS][:n]


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
