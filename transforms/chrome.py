"""StripChrome stage: remove what extraction leaves around the article body.

First rules, from the chrome the seed documents show: paywall and promo prompts, wire
desk slugs (``burs-sjc/bjt``), wire credits (``(Bloomberg) --``), copyright footers and
the headline repeated as the first line. Keyword rules only ever match a whole short
line, so a real paragraph that mentions "subscribe" is never touched.
"""

from __future__ import annotations

import re

import apache_beam as beam

from newsbeam.transforms.errors import ERRORS, fail_entries
from newsbeam.transforms.metrics import count

SHORT_LINE_WORDS = 14

_PROMPTS = [
    r"get all your news in one place\.?",
    r"\d+[’']?s? of premium titles\.?",
    r"one app\.?( one membership\.?)?",
    r"start reading",
    r"sign up to read (this|the full) (article|story)\.?",
    r"already (a member|a subscriber|have an account)\?? ?(sign|log) ?in( here)?\.?",
    r"(sign|log) ?in( here)?( to (continue|read).*)?\.?",
    r"subscribe( now| today)?( to .{0,60})?[.!]?",
    r"(sign up|subscribe) (for|to) (our|the) .{0,40}newsletter.*",
    r"(download|get) (the|our) app\.?",
    r"(related|more|top) (stories|articles|news)( on .{0,40})?( right now)?:?",
    r"(read|see) (more|also)( here)?:?",
    r"our picks",
    r"(fourteen|\d+|thirty|seven) days? free( trial)?\.?",
    r"one subscription that gives you access to .{0,80}",
    r"read news from .{0,80} curated specifically for you\.?",
    r"\d+\+? trusted (global )?sources\.?",
    r"share (this|on) .{0,40}",
    r"(follow|like) us on .{0,60}",
    r"advertisement|sponsored( content)?",
    r"click here to .{0,80}",
    r"this (article|story|content) is (only )?(available|for) (to )?(subscribers|members).{0,40}",
    r"via (ap|afp|reuters|bloomberg|dpa|pa) news ?wire",
]
_PROMPT = re.compile(r"^(?:" + "|".join(_PROMPTS) + r")$", re.IGNORECASE)
# Tail markers after which the rest is paywall/promo chrome if it is all short lines.
_PAYWALL = re.compile(r"^(sign up to read|subscribe to (read|continue)|already a (member|subscriber))", re.IGNORECASE)
# A prompt with its button label glued on by extraction: "... in your inbox by 7am. Subscribe".
_BUTTON_TAIL = re.compile(r"[.!?:]\s+(Subscribe|Sign up|Sign in|Log in|Register|Join now|Try it free)( now)?$")
CTA_LINE_WORDS = 25
_WIRE_SLUG = re.compile(r"^[a-z]{2,8}(?:-[a-z]{2,8})*(?:/[a-z]{2,8}(?:-[a-z]{2,8})*)+$")
# A notice, not a sentence about copyright: a © sign, "(c)", or "Copyright" followed by a sign or a year.
_COPYRIGHT = re.compile(
    r"^(?:©|\(c\)|copyright\s*(?:©|\(c\)|\d{4}\b)).{0,100}$|^.{0,60}\ball rights reserved\.?$", re.IGNORECASE
)
_WIRE_CREDIT = re.compile(r"^\(([A-Z][\w&.' -]{1,40})\)\s*(?:--|—|–|-)\s*")


def _short(line: str) -> bool:
    return len(line.split()) <= SHORT_LINE_WORDS


def _is_chrome(line: str) -> bool:
    stripped = line.strip()
    if len(stripped.split()) <= CTA_LINE_WORDS and _BUTTON_TAIL.search(stripped):
        return True
    if not _short(stripped):
        return False
    return bool(_PROMPT.match(stripped) or _WIRE_SLUG.match(stripped) or _COPYRIGHT.match(stripped))


def _same_words(a: str, b: str) -> bool:
    words = lambda s: re.findall(r"\w+", s.casefold())
    return bool(a) and words(a) == words(b)


def strip_chrome(text: str, titles=()) -> tuple[str, list[str]]:
    """The body without chrome lines, and the lines removed (for tests and `newsbeam extract`).

    `titles` are the headlines the feed and the page give; one repeated as the first line goes.
    """
    lines = [line.strip() for line in (text or "").split("\n")]
    lines = [line for line in lines if line]
    removed: list[str] = []
    for i, line in enumerate(lines):
        if _PAYWALL.match(line) and all(_short(rest) for rest in lines[i:]):
            removed.extend(lines[i:])
            lines = lines[:i]
            break
    kept = []
    for line in lines:
        (removed if _is_chrome(line) else kept).append(line)
    if kept and any(_same_words(kept[0], t) for t in titles if t):
        removed.append(kept.pop(0))
    if kept:
        credit = _WIRE_CREDIT.match(kept[0])
        if credit and len(kept[0]) > credit.end():
            removed.append(credit.group(0).strip())
            kept[0] = kept[0][credit.end():]
    return "\n".join(kept), removed


class StripChrome(beam.PTransform):
    """Documents -> documents whose text has lost its chrome; all-chrome pages go to `errors`."""

    def expand(self, docs):
        return docs | "StripChromeLines" >> beam.ParDo(_StripFn()).with_outputs(ERRORS, main="documents")


class _StripFn(beam.DoFn):
    def process(self, doc):
        text, removed = strip_chrome(doc["text"], (doc.get("title"), doc.get("page_title")))
        if removed:
            count("chrome_lines_removed", len(removed))
        if text:
            yield {**doc, "text": text}
            return
        count("chrome_only_pages")
        yield from fail_entries(doc["entries"], "strip_chrome", "only_chrome", "nothing but chrome lines left")
