"""Where each line of trafilatura's body came from in the page, and the chrome that gives away.

Part of the Extract stage. Each output line is traced back to the element of the page that
holds it; its ancestors (figure, aside, nav…), the class and id words on them (caption,
related, share…), the link density of its block and its position then tell chrome from
body. The rules are generic: no site names, no language's keywords.

Text trafilatura found is removed only on evidence: a link, a chrome element or class around
the line, its place outside the article container. That evidence is read from the line's
element up to the article container and no further: the element holding most of the body,
and what encloses it, describe the page, not the line (an article inside a `share-wrapper`
div or inside one link is not chrome). Subheads, list items, code, quotes and
table rows are content unless such evidence says otherwise, and repetition alone is none.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from lxml import etree
from trafilatura.xml import xmltotxt

_TOKEN = re.compile(r"\w+")
_CLOSING = re.compile(r"[.!?…:;\"'”“»«)\]。！？」』]\s*$")
_LIST_MARK = re.compile(r"^\s*[-*•]\s+")
_INVISIBLE = {"script", "style", "noscript", "template", "svg"}
LAYOUT_CHROME = {"figure", "figcaption", "aside", "header", "footer", "nav", "time", "address"}
_CUE = re.compile(
    r"caption|credit|byline|author|related|share|social|newsletter|promo|teaser|tag|meta|copyright|subscri|"
    r"recommend|advert|footer|bio|date|more|info|source"
)
# The class names of the embed codes social platforms hand out: a post quoted in the page, not its text.
_EMBED = re.compile(r"twitter-tweet|instagram-media|tiktok-embed|fb-post|bluesky-embed|reddit-embed|threads-post")
_BLOCKS = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "div", "td", "figcaption", "blockquote", "dd", "dt",
           "section", "article", "span", "header", "footer", "aside"}
_STOP = {"body", "html", "main", "article"}
_LINK_TEXT = etree.XPath(".//a//text()")

HEAD_LINES, TAIL_LINES = 5, 8  # what counts as the body's edges
EDGE_WORDS = 20
LINKY_WORDS = 25
CAPTION_WORDS = 30
BEFORE_WORDS = 12
CONTAINER_SHARE = 0.8  # the article container holds this share of the body's words
PAGE_REPEATS = 3  # a line the body repeats this often is a placeholder, not prose
LABEL_REPEATS, LABEL_WORDS = 2, 8  # a short label ("Read more", "Click to load the map") repeated at all
LEAD_MIN_WORDS, LEAD_MAX_WORDS = 8, 80


def _words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower()) if text else []


class VisibleText:
    """The page's visible body text as one string, with the element that owns each stretch."""

    def __init__(self, tree):
        parts, starts, owners, pos = [], [], [], 0
        body = tree.find("body")
        root = body if body is not None else tree
        walker = etree.iterwalk(root, events=("start", "end"))
        for event, el in walker:
            if event == "start":
                if el.tag in _INVISIBLE or not isinstance(el.tag, str):
                    walker.skip_subtree()  # its own text is hidden; its tail (at its end event) is not
                    continue
                chunk = el.text
            else:
                chunk = el.tail if el is not root else None
            if chunk and not chunk.isspace():
                chunk = " ".join(chunk.split())
                starts.append(pos)
                owners.append(el if event == "start" else el.getparent())
                parts.append(chunk)
                pos += len(chunk) + 1
        self.text = " ".join(parts)
        self._starts, self._owners, self._cursor = starts, owners, 0

    def owner(self, line: str):
        """The element holding `line`, searching on from the last line found (the body is in page order)."""
        key = " ".join(line.split())[:40]
        if len(key) < 3:
            return None
        at = self.text.find(key, self._cursor)
        if at < 0:
            at = self.text.find(key)
        if at < 0 and len(key) > 15:
            at = self.text.find(key[:15], self._cursor)
        if at < 0:
            return None
        self._cursor = at + 1
        return self._owners[bisect_right(self._starts, at) - 1]


@dataclass
class BodyLine:
    text: str
    kind: str  # trafilatura's element: p, head, list, quote, table…
    element: object = None
    words: int = 0
    ancestors: set = field(default_factory=set)
    cues: set = field(default_factory=set)
    link_density: float = 0.0
    inside_link: bool = False
    embedded: bool = False


def _describe(line: BodyLine, link_density: dict, memo: dict, page_level: frozenset = frozenset()) -> None:
    """Fill the line's evidence from its element up to the article container (`page_level` holds the
    container and what encloses it: their tags and classes describe the page, not the line)."""
    length = len(" ".join(line.text.split())) - (2 if line.kind == "list" else 0)
    el, depth, block = line.element, 0, None
    while el is not None and depth < 12:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _STOP or el in page_level:
            break
        if tag in LAYOUT_CHROME or tag == "h1":
            line.ancestors.add(tag)
        if tag == "a" and not line.inside_link and len(" ".join(el.text_content().split())) >= 0.9 * length:
            line.inside_link = True
        named = memo.get(el)
        if named is None:
            names = f"{el.get('class') or ''} {el.get('id') or ''}".strip().lower()
            named = memo[el] = (tuple(_CUE.findall(names)), bool(_EMBED.search(names))) if names else ((), False)
        line.cues.update(named[0])
        line.embedded = line.embedded or named[1]
        if block is None and tag in _BLOCKS:
            block = el
        el, depth = el.getparent(), depth + 1
    if block is not None:
        if block not in link_density:
            total = sum(map(len, block.itertext()))
            link_density[block] = min(sum(map(len, _LINK_TEXT(block))) / total, 1.0) if total else 0.0
        line.link_density = link_density[block]


class Traced(NamedTuple):
    lines: list[BodyLine]
    visible: VisibleText
    after: list[bool]  # the line comes after the article container's last line, from outside it
    before: list[bool]  # the line comes before the container's first line, from outside it


def trace_lines(tree, body) -> Traced:
    """trafilatura's body (its XML) as lines, each traced to its element in `tree` and described."""
    visible = VisibleText(tree)
    lines = []
    for child in body if body is not None else ():
        for text in xmltotxt(child, False).split("\n"):
            if not text.strip():
                continue
            line = BodyLine(text.strip(), child.tag, words=len(_TOKEN.findall(text)))
            if child.tag != "table":
                line.element = visible.owner(_LIST_MARK.sub("", text) if child.tag == "list" else text)
            lines.append(line)
    container, after, before = _outside_container(lines)
    page_level = frozenset(container.iterancestors()) | {container} if container is not None else frozenset()
    link_density, memo = {}, {}
    for line in lines:
        if line.element is not None:
            _describe(line, link_density, memo, page_level)
    return Traced(lines, visible, after, before)


def _is_headline(line: BodyLine, titles) -> bool:
    words = " ".join(_words(line.text))
    for title in titles:
        a, b = set(_words(line.text)), set(_words(title))
        if a and b and (len(a & b) / len(a | b) >= 0.8 or (line.words >= 3 and words in " ".join(_words(title)))):
            return True
    return "h1" in line.ancestors


def _outside_container(lines: list[BodyLine]) -> tuple[object, list[bool], list[bool]]:
    """The article container (the deepest element holding CONTAINER_SHARE of the traced words, or None)
    and the lines from outside it: (container, after its last line, before its first line)."""
    chains = []
    for line in lines:
        chain, el = [], line.element
        while el is not None:
            chain.append(el)
            el = el.getparent()
        chains.append(chain[::-1])
    total = sum(l.words for l, c in zip(lines, chains) if c)
    node, depth = None, 0
    while total:
        tally: dict = {}
        for line, chain in zip(lines, chains):
            if len(chain) > depth:
                tally[chain[depth]] = tally.get(chain[depth], 0) + line.words
        if not tally:
            break
        best, weight = max(tally.items(), key=lambda kv: kv[1])
        if weight < CONTAINER_SHARE * total:
            break
        node, depth = best, depth + 1
    if node is None:
        return None, [False] * len(lines), [False] * len(lines)
    inside = [len(c) >= depth and c[depth - 1] is node for c in chains]
    first = next((i for i, x in enumerate(inside) if x), 0)
    last = max((i for i, x in enumerate(inside) if x), default=len(lines))
    return (
        node,
        [i > last and not inside[i] and bool(chains[i]) for i in range(len(lines))],
        [i < first and not inside[i] and bool(chains[i]) for i in range(len(lines))],
    )


# The kinds of line trafilatura marks as structure: a subhead, a list item, code, a quote, a table
# row. Article content by default: only a rule with evidence of its own (a link, a chrome element
# around it, its place outside the article) removes one.
STRUCTURE = {"head", "list", "code", "quote", "table"}
HEADLINE_WORDS = 30  # a line longer than this is a body that begins with the headline, not the headline
# When the rules together would remove more than this share of trafilatura's words, they misfired
# (a page laid out in a table, a body traced to the wrong element): trafilatura's text stands.
GUARD_SHARE = 0.4


def layout_chrome(line: BodyLine, i: int, n: int, titles, after: bool, before: bool) -> str | None:
    """Why a line is chrome by where it sits in the page, or None."""
    edge = i < HEAD_LINES or i >= n - TAIL_LINES
    if i < 3 and line.words <= HEADLINE_WORDS and _is_headline(line, titles):
        return "headline"
    if line.link_density >= 0.8 and line.words <= LINKY_WORDS and line.kind not in STRUCTURE:
        return "links"
    if line.inside_link and line.kind not in ("head", "list"):
        return "teaser link"
    if line.embedded:
        return "embedded post"
    if edge and line.words <= EDGE_WORDS and line.kind != "head" and not _CLOSING.search(line.text) and (
        LAYOUT_CHROME & line.ancestors or line.cues or line.link_density >= 0.5
    ):
        return "edge label"
    if after:
        return "after the article"
    if before and i >= 1 and line.words <= BEFORE_WORDS and line.kind != "head":
        return "before the article"
    if {"figure", "figcaption"} & line.ancestors and line.words <= CAPTION_WORDS and line.kind not in STRUCTURE:
        return "caption"
    return None


class Cleaned(NamedTuple):
    text: str
    guarded: bool  # the rules would have taken most of the body: trafilatura's text was kept


def clean_body(tree, body, titles=(), description: str | None = None) -> Cleaned:
    """trafilatura's body without layout chrome, with the page's visible lead put back on top.

    No rule can take the page's body with it: when the rules together would remove more than
    GUARD_SHARE of trafilatura's words, they misfired, and trafilatura's lines are all kept.
    """
    lines, visible, after, before = trace_lines(tree, body)
    titles = [t for t in titles if t]
    kept = [line for i, line in enumerate(lines) if not layout_chrome(line, i, len(lines), titles, after[i], before[i])]
    keys = [" ".join(_words(line.text)) for line in kept]
    counts = Counter(key for key in keys if " " in key)  # lines of two words or more
    kept = [line for line, key in zip(kept, keys) if not _repeated(line, key, counts)]
    found = sum(line.words for line in lines)
    guarded = found > 0 and sum(line.words for line in kept) < (1 - GUARD_SHARE) * found
    text = "\n".join(line.text for line in (lines if guarded else kept))
    return Cleaned(with_lead(text, description, visible.text), guarded)


def _repeated(line: BodyLine, key: str, counts: Counter) -> bool:
    """A prose line the page repeats, with a sign of chrome on it: a placeholder or a label ("Read more")."""
    if line.kind in STRUCTURE or not (line.cues or LAYOUT_CHROME & line.ancestors or line.link_density >= 0.5):
        return False
    if counts[key] >= PAGE_REPEATS:
        return True
    return counts[key] >= LABEL_REPEATS and key.count(" ") < LABEL_WORDS and not _CLOSING.search(line.text)


def _shingles(text: str) -> set:
    w = _words(text)
    return {tuple(w[i : i + 4]) for i in range(len(w) - 3)}


def with_lead(text: str, description: str | None, visible: str) -> str:
    """Prepend the page's description when the page shows it as the lead and the body lacks it."""
    if not description or len(_words(description)) < LEAD_MIN_WORDS:
        return text
    if " ".join(description.split())[:60] not in visible:
        return text
    if len(_words(description)) > LEAD_MAX_WORDS:
        return text  # a description that long is the article's text, not a lead
    lead = _shingles(description)
    if lead and len(lead & _shingles(text)) / len(lead) >= 0.5:
        return text
    return f"{' '.join(description.split())}\n{text}" if text else text
