"""The seeds through the whole pipeline, each also reached as copies in other sites' chrome (issue 4).

001 (an aggregator's copy of an AP story) and 003 (a rewrite of it) are different texts of one
event; 000 and 002 are different events with the same actors. Served on loopback with a copy
of each seed in another site's chrome under another headline, and a cut-short teaser of each:
every copy must collapse into its seed's article, the four seeds must stay four articles, and
001 and 003 must share a story_id that 000 and 002 do not.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from newsbeam.pipeline.config import RunConfig
from newsbeam.pipeline.job import run_job
from newsbeam.transforms.extract_core import load_page
from newsbeam.transforms.http import FetchSettings
from newsbeam.transforms.metadata import page_metadata
from newsbeam.transforms.sources import read_sources
from newsweb import article_page, rss
from test_seed_pages import SEEDS, body_paragraphs

FAST = FetchSettings(connect_timeout=2, read_timeout=2, deadline=5, allow_private_network=True,
                     retries=1, backoff=0.05, host_delay=0)


def test_copies_of_the_seeds_in_other_chrome_collapse_and_the_seeds_stay_apart(web, tmp_path):
    items, seed_links, copy_links = [], {}, {}
    for path in sorted(SEEDS.glob("*.html")):
        html = path.read_bytes()
        published = (page_metadata(load_page(html), "")["published_at"] + timedelta(hours=2)).isoformat()  # copies come later
        paragraphs = body_paragraphs(path)
        seed_links[path.name] = web.add(f"/seed/{path.name}", html)
        copy_links[path.name] = [
            web.add(f"/copy/{path.name}", article_page(f"Other headline for {path.stem}", paragraphs,
                                                       f"https://copies.example/{path.stem}", "Copies Daily", published)),
            web.add(f"/teaser/{path.name}", article_page(f"Teaser of {path.stem}", paragraphs[:3] + ["Read the full story."],
                                                         f"https://teasers.example/{path.stem}", "Teaser Times", published)),
        ]
        items += [{"title": path.stem, "link": seed_links[path.name]}]
        items += [{"title": f"copy {i} of {path.stem}", "link": link} for i, link in enumerate(copy_links[path.name])]
    (tmp_path / "feeds.txt").write_text(web.add("/feed.xml", rss("Seeds", items)) + "\n")
    config = RunConfig(feeds=read_sources(str(tmp_path / "feeds.txt")), feeds_location="x", out=str(tmp_path / "data"),
                       run_id="seeds", fetch=FAST)
    manifest = run_job(config)

    articles = pd.read_parquet(tmp_path / "data" / "articles")
    duplicates = pd.read_parquet(tmp_path / "data" / "duplicates")
    assert len(articles) == 4  # one per seed: 000 and 002 apart, 001 and 003 apart
    kept = articles.set_index("url").article_id
    for name, copies in copy_links.items():
        group = [seed_links[name], *copies]
        (kept_url,) = [url for url in group if url in kept.index]  # a paywalled seed (001) yields to a full copy
        rows = duplicates[duplicates.url.isin(group)]
        assert len(rows) == 2 and set(rows.duplicate_of) == {kept[kept_url]}, (name, rows[["url", "tier"]])
    assert set(duplicates.tier) <= {"exact", "near"}
    # The story tier: 003 rewrites 001 (one event, one story); 000 and 002 are other events.
    story = {name: articles.set_index("url").story_id[next(u for u in (seed_links[name], *copy_links[name]) if u in kept.index)]
             for name in seed_links}
    assert story["001-aggregator-ap.html"] == story["003-rewrite.html"]
    assert len({story["000-afp.html"], story["002-bloomberg.html"], story["001-aggregator-ap.html"]}) == 3
    assert manifest["links"]["balanced"]
