"""StripChrome stage: remove what extraction leaves around the article body.

Rules for the chrome the seed documents show: paywall and promo prompts, wire desk slugs
(``burs-sjc/bjt``), wire credits (``(Bloomberg) --``, ``BANGKOK (AP) —``), copyright footers
and the headline repeated as the first line. Keyword rules only ever match a whole short
line, so a real paragraph that mentions "subscribe" is never touched. The wire agency a
credit names is kept in `wire`; a body cut off by a paywall prompt is flagged `paywalled`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import apache_beam as beam

from newsbeam.transforms.errors import ERRORS, fail_entries
from newsbeam.transforms.metrics import count
from newsbeam.transforms.write import Batches, unspill

SHORT_LINE_WORDS = 14
HEADLINE_SEARCH_LINES = 6  # how far down the body a repeated headline is looked for
LABEL_WORDS = 5  # lines above it this short are labels: site name, section, kicker

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
    r"-?\s*advertisement\b.{0,40}|sponsored( content)?",
    r"click here to .{0,80}",
    r"this (article|story|content) is (only )?(available|for) (to )?(subscribers|members).{0,40}",
    r"(read|see) (more|also)\s*:.{0,80}",
    r"(first|originally) published (in|on|by) .{0,80}",
    r"for more (stories|news|articles) like this.{0,60}",
    r"most (read|popular|viewed|shared)( in .{0,40})?",
    r"sign up (for|to) .{0,100}",
    r"join (our|the) .{0,80}",
]
_PROMPT = re.compile(r"^(?:" + "|".join(_PROMPTS) + r")$", re.IGNORECASE)
# Tail markers after which the rest is paywall/promo chrome if it is all short lines.
_PAYWALL = re.compile(r"^(sign up to read|subscribe to (read|continue)|already a (member|subscriber))", re.IGNORECASE)
# A prompt with its button label glued on by extraction: "... in your inbox by 7am. Subscribe".
_BUTTON_TAIL = re.compile(r"[.!?:]\s+(Subscribe|Sign up|Sign in|Log in|Register|Join now|Try it free)( now)?$")
LONG_PROMPT_WORDS = 25  # button-tailed prompts and credit formulas run this long
_WIRE_SLUG = re.compile(r"^[a-z]{2,8}(?:-[a-z]{2,8})*(?:/[a-z]{2,8}(?:-[a-z]{2,8})*)+$")
# A notice, not a sentence about copyright: a © sign, "(c)", or "Copyright" followed by a sign or a year.
_COPYRIGHT = re.compile(
    r"^(?:©|\(c\)|copyright\s*(?:©|\(c\)|\d{4}\b)).{0,100}$|^.{0,60}\ball rights reserved\.?$", re.IGNORECASE
)
_WIRE_CREDIT = re.compile(r"^\(([A-Z][\w&.' -]{1,40})\)\s*(?:--|—|–|-)\s*")

# Wire agencies by the names their credits use; the key is what the `wire` column says.
AGENCIES = {
    "AP": r"AP|Associated Press|The Associated Press",
    "AFP": r"AFP|Agence France[- ]Presse",
    "Reuters": r"Reuters|Thomson Reuters",
    "Bloomberg": r"Bloomberg|Bloomberg News|Bloomberg L\.P\.",
    "dpa": r"dpa|Deutsche Presse[- ]Agentur",
    "PA": r"PA|PA Media|Press Association",
    "ANSA": r"ANSA",
    "EFE": r"EFE|Agencia EFE",
    "Europa Press": r"Europa Press",
    "Kyodo": r"Kyodo|Kyodo News",
    "Xinhua": r"Xinhua",
    "Yonhap": r"Yonhap",
    "UPI": r"UPI|United Press International",
    "APA": r"APA",
    "Belga": r"Belga",
    "ANP": r"ANP",
    "AAP": r"AAP|Australian Associated Press",
    "CP": r"CP|The Canadian Press",
    "Keystone-SDA": r"Keystone-SDA|SDA|sda",
    "KNA": r"KNA",
    "epd": r"epd",
    "Anadolu": r"Anadolu|Anadolu Agency|AA",
    "TASS": r"TASS",
    "Interfax": r"Interfax",
    "PTI": r"PTI|Press Trust of India",
    "IANS": r"IANS",
    "Lusa": r"Lusa",
    "NTB": r"NTB",
    "TT": r"TT",
    "Ritzau": r"Ritzau",
}
_AGENCY_NAMES = "|".join(f"(?:{names})" for names in AGENCIES.values())
_AGENCY_OF = [(wire, re.compile(rf"^(?:{names})$", re.IGNORECASE if len(wire) > 3 else 0)) for wire, names in AGENCIES.items()]
# "BANGKOK (AP) — text": the agency goes, the dateline stays.
_DATELINE_CREDIT = re.compile(rf"^([A-ZÀ-Þ][A-ZÀ-Þ.'’ -]{{1,40}}(?:,\s*[A-Z][\w.'’ -]{{1,30}})?)\s*\(({_AGENCY_NAMES})\)\s*(--|—|–|-|:)\s*")
_AGENCY_LINE = re.compile(
    rf"^(?:via\s+)?(?:the\s+)?({_AGENCY_NAMES})(?:\s+news)?\s*(?:wire|news ?wire|contributed to this (?:report|story)\.?)?$|"
    rf"^(?:by\s+)?(?:the\s+)?({_AGENCY_NAMES})$|"
    rf"^\((?:reporting|writing|additional reporting|editing) by [^)]{{2,200}}\)$",
    re.IGNORECASE,
)
# Credit formulas of wire copy: "— AP writer X in Paris contributed to this report.", "With files from …",
# "(Quelle: APA/sda/dpa)", "SDA/sep", "Mit Agenturmaterial." The agency, when named, goes to `wire`.
_CREDIT_LINE = re.compile(
    r"^[—–-]?\s*(?:.{0,120}\bcontributed to this (?:report|story|article)|(?:with )?(?:additional )?(?:reporting|files|material) "
    r"(?:by|from) .{2,120}|\((?:quelle|source|sources|fuente|fonte|bron)\s*:\s*[^)]{2,60}\)|"
    rf"(?:quelle|source|sources|fuente|fonte|bron)\s*:\s*(?:{_AGENCY_NAMES})(?:\s*[/,]\s*(?:{_AGENCY_NAMES}))*|"
    rf"\(?(?:{_AGENCY_NAMES})(?:/[\w-]{{1,12}})+\)?|mit (?:agentur|agenturen)material|mit material (?:von|der|des) .{{2,60}})\.?$",
    re.IGNORECASE,
)
# A photo credit: "Photo: AFP", "Fotos: Jane Doe", "Jane Doe/Getty Images", "STR/AFP via Getty Images".
# Not a wire credit: a photo from an agency says nothing of who wrote the text.
_PHOTO_CREDIT = re.compile(
    r"^(?:photos?|images?|pictures?|fotos?|bild(?:er)?|fotografie|illustrations?|grafik|credits?)\s*:\s*\S.{0,60}$|"
    rf"(?:/|\bvia\s)(?:getty images|shutterstock|imago|istock|alamy|picture alliance|epa|keystone|{_AGENCY_NAMES})"
    r"[\w /-]{0,30}$",
    re.IGNORECASE,
)
CREDIT_WORDS = 10
# A line that gives an e-mail address is a contact box or an author's bio ("Got a story? Email …").
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
CONTACT_WORDS = 25
# What an embedded social post leaves: its attribution ("— Name (@handle) July 18, 2026") or a
# text ending in its picture link.
_EMBEDDED_POST = re.compile(r"^[—–-]\s*.{1,80}\(@\w{1,15}\)\s+\w+\.?\s+\d{1,2},?\s+\d{4}$|\bpic\.twitter\.com/\w+$")
# Time stamps of the page, not of the story: "Stand: 22.04.2024, 06:00 Uhr", "Uppdaterad 15.59 | Publicerad 14.14".
# A clock time (06:00, 15.59) or a date of three parts (22.04.2024, 1/1/13); not a decimal (4.7, 13.15%).
_CLOCK_OR_DATE = re.compile(r"\b(?:\d{1,2}[.:/]\d{1,2}[.:/]\d{2,4}|\d{1,2}[:.]\d{2})\b(?![.,]?\d|%)")
# A table row as trafilatura writes one ("| Route | 1,240 |"): data, never a stamp or a card's title.
_TABLE_ROW = re.compile(r"^\|.*\|$")
TIMESTAMP_WORDS = 8
_SENTENCE_END = re.compile(r"[!?…\"'”“»«)\]。！？」』]$|[^\W\d_]\.$")  # "… 2024." is a date, not a sentence
_NAMED_AGENCY = re.compile(rf"\b({_AGENCY_NAMES})\b")
_COPYRIGHT_AGENCY = re.compile(rf"(?:©|\(c\)|copyright)\s*\d{{0,4}}\s*(?:the\s+)?({_AGENCY_NAMES})\b", re.IGNORECASE)


_AGENCY_WORDS = re.compile(r"\b(wire|news agency|press agency|presse-agentur|nachrichtenagentur|agence|agencia|agenzia)\b", re.IGNORECASE)


def agency(name: str | None) -> str | None:
    """The wire agency a name stands for: the canonical name of a known one, the name itself of another.

    Abbreviations match in their own case ("AP", "dpa"), so "ap" in a credit line written in
    another case is tried upper- and lower-cased too.
    """
    name = (name or "").strip()
    for candidate in dict.fromkeys((name, name.upper(), name.lower())):
        known = next((wire for wire, pattern in _AGENCY_OF if pattern.match(candidate)), None)
        if known:
            return known
    return name if _AGENCY_WORDS.search(name) and len(name) <= 40 else None


class Stripped(NamedTuple):
    text: str
    removed: list
    wire: str | None
    paywalled: bool


def _short(line: str) -> bool:
    return len(line.split()) <= SHORT_LINE_WORDS


def _timestamp(line: str, words: list[str]) -> bool:
    """A short line mostly of dates and clock times, with no sentence in it."""
    if len(words) > TIMESTAMP_WORDS or not _CLOCK_OR_DATE.search(line) or _SENTENCE_END.search(line):
        return False
    return sum(bool(_CLOCK_OR_DATE.search(w)) or w.strip(",.").isdigit() for w in words) >= 0.4 * len(words)


def _doubled(words: list[str]) -> bool:
    """A teaser card's title twice over (image text, then heading): "Tax row deepens Tax row deepens"."""
    half = len(words) // 2
    return len(words) >= 4 and len(words) % 2 == 0 and words[:half] == words[half:]


def _is_chrome(line: str) -> bool:
    stripped = line.strip()
    words = stripped.split()
    if len(words) <= LONG_PROMPT_WORDS and _BUTTON_TAIL.search(stripped):
        return True
    if len(words) <= CONTACT_WORDS and _EMAIL.search(stripped) or _EMBEDDED_POST.search(stripped):
        return True
    if len(words) <= CREDIT_WORDS and _PHOTO_CREDIT.search(stripped):
        return True
    if not _TABLE_ROW.match(stripped) and (_doubled(words) or _timestamp(stripped, words)):
        return True
    if not _short(stripped):
        return False
    return bool(_PROMPT.match(stripped.lstrip("-–•* ")) or _WIRE_SLUG.match(stripped) or _COPYRIGHT.match(stripped))


def _same_words(a: str, b: str) -> bool:
    words = lambda s: re.findall(r"\w+", s.casefold())
    return bool(a) and words(a) == words(b)


# Learned chrome: a short line that recurs in at least this many distinct documents of one
# source, and in at least this share of them, is that source's boilerplate.
MIN_REPEAT_DOCS = 3
MIN_REPEAT_SHARE = 0.2
# Chrome lines are short; a long sentence that recurs is more likely a template of real news
# (a market report, a weather line) than a prompt, so it is never learned.
MAX_LEARNED_WORDS = 25


def line_key(line: str) -> str:
    """A line's identity for learning: its words, case-folded. Digits stay: "5 killed" is not "50 killed"."""
    words = " ".join(re.findall(r"\w+", line.casefold()))
    return hashlib.blake2b(words.encode("utf-8"), digest_size=8).hexdigest()


@dataclass
class SourceChrome:
    """What one source's pages repeat: line key -> number of distinct documents it was seen in."""

    docs: int = 0
    lines: Counter = field(default_factory=Counter)

    def add(self, text: str) -> None:
        self.docs += 1
        self.lines.update({line_key(l) for l in text.split("\n") if l.strip() and len(l.split()) <= MAX_LEARNED_WORDS})

    def merged(self, other: "SourceChrome") -> "SourceChrome":
        return SourceChrome(self.docs + other.docs, self.lines + other.lines)

    def boilerplate(self) -> frozenset:
        floor = max(MIN_REPEAT_DOCS, MIN_REPEAT_SHARE * self.docs)
        return frozenset(key for key, n in self.lines.items() if n >= floor)


def learn_source_chrome(texts) -> SourceChrome:
    """Line repetition over one source's documents; copies of one article count once.

    A copy is a text seen before, or one sharing a paragraph too long to be chrome with an
    earlier text: a feed that lists one story three times must not teach that the story's
    short paragraphs are boilerplate.
    """
    learned, seen, seen_long = SourceChrome(), set(), set()
    for text in texts:
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        long_keys = {line_key(line) for line in text.split("\n") if len(line.split()) > MAX_LEARNED_WORDS}
        if digest in seen or long_keys & seen_long:
            continue
        seen.add(digest)
        seen_long |= long_keys
        learned.add(text)
    return learned


def announces_missing(last_line: str) -> bool:
    """A body's last line that announces what follows ("Read our live blog:"): what it announces, extraction left out."""
    return last_line.endswith(":") and len(last_line.split()) <= CONTACT_WORDS


def strip_chrome(text: str, titles=(), authors=(), boilerplate: frozenset = frozenset()) -> Stripped:
    """The body without chrome lines, the lines removed, the wire agency credited, and the paywall flag.

    `titles` are the headlines the feed and the page give; one repeated as the first line goes.
    `authors` may name an agency ("Associated Press"), which sets `wire` too. Lines whose
    `line_key` is in `boilerplate` (learned from the source's other pages) go first.
    """
    lines = [line.strip() for line in (text or "").split("\n")]
    lines = [line for line in lines if line]
    removed: list[str] = []
    if boilerplate:
        learned = [line_key(line) in boilerplate for line in lines]
        removed = [line for line, drop in zip(lines, learned) if drop]
        lines = [line for line, drop in zip(lines, learned) if not drop]
    wires: list[str] = [w for w in map(agency, authors or ()) if w]
    paywalled = False
    for i, line in enumerate(lines):
        if _PAYWALL.match(line) and all(_short(rest) for rest in lines[i:]):
            removed.extend(lines[i:])
            lines = lines[:i]
            paywalled = True
            break
    kept = []
    for line in lines:
        credit = _AGENCY_LINE.match(line) if _short(line) or line.startswith("(") else None
        if credit:
            name = credit.group(1) or credit.group(2)
            wires.append(agency(name) if name else "Reuters")  # "(Reporting by …)" is Reuters' form
            removed.append(line)
        elif len(line.split()) <= LONG_PROMPT_WORDS and _CREDIT_LINE.match(line):
            named = _NAMED_AGENCY.search(line)
            wires.append(agency(named.group(1)) if named else None)
            removed.append(line)
        elif _is_chrome(line):
            removed.append(line)
            slug = _WIRE_SLUG.match(line)
            copyright_ = _COPYRIGHT_AGENCY.search(line)
            if slug and "/" in line:
                wires.append("AFP")  # desk slugs like burs-sjc/bjt sign AFP copy
            elif copyright_:
                wires.append(agency(copyright_.group(1)))
        else:
            kept.append(line)
    if len(kept) > 1 and announces_missing(kept[-1]):
        removed.append(kept.pop())
    # The headline repeated near the top, with the kicker and section labels above it.
    for i, line in enumerate(kept[:HEADLINE_SEARCH_LINES]):
        if any(_same_words(line, t) for t in titles if t):
            if all(len(above.split()) <= LABEL_WORDS for above in kept[:i]):
                removed.extend(kept[: i + 1])
                kept = kept[i + 1 :]
            break
    if kept:
        dateline = _DATELINE_CREDIT.match(kept[0])
        credit = _WIRE_CREDIT.match(kept[0])
        if dateline:
            wires.append(agency(dateline.group(2)))
            removed.append(f"({dateline.group(2)})")
            kept[0] = f"{dateline.group(1).rstrip()} {dateline.group(3)} {kept[0][dateline.end():]}"
        elif credit and len(kept[0]) > credit.end():
            wires.append(agency(credit.group(1)) or credit.group(1))  # "(Name) --" opens wire copy
            removed.append(credit.group(0).strip())
            kept[0] = kept[0][credit.end():]
    wire = next((w for w in wires if w), None)
    return Stripped("\n".join(kept), removed, wire, paywalled)


def with_stripped(doc: dict, stripped: Stripped) -> dict:
    """The document with its stripped text, wire and paywall flag (a paywall the page declares counts too)."""
    authors = [a for a in doc.get("authors") or [] if not agency(a)]
    paywalled = stripped.paywalled or doc.get("accessible_for_free") is False
    return {**doc, "text": stripped.text, "wire": stripped.wire, "paywalled": paywalled, "authors": authors}


def strip_document(doc: dict, boilerplate: frozenset = frozenset()) -> tuple[dict, Stripped]:
    """strip_chrome on a pipeline document, with the headlines and authors it carries."""
    stripped = strip_chrome(doc["text"], (doc.get("title"), *doc.get("page_titles", ())), doc.get("authors"), boilerplate)
    return with_stripped(doc, stripped), stripped


def strip_source(docs: list[dict], known: SourceChrome | None = None) -> tuple[SourceChrome, list[tuple[dict, Stripped]]]:
    """One source's documents without chrome: what they repeat (with what earlier runs knew) goes too.

    Returns what these documents taught, and each document with its Stripped result.
    """
    learned = learn_source_chrome(d["text"] for d in docs)
    boilerplate = (known or SourceChrome()).merged(learned).boilerplate()
    return learned, [strip_document(doc, boilerplate) for doc in docs]


def state_rows(source: str, learned: SourceChrome, known: SourceChrome) -> list[dict]:
    """What to keep of a run's learning: lines seen twice now or known before, and the source's page count."""
    rows = [{"source": source, "line_key": None, "docs": learned.docs}]
    rows += [
        {"source": source, "line_key": key, "docs": n}
        for key, n in sorted(learned.lines.items())
        if n >= 2 or key in known.lines
    ]
    return rows


def chrome_from_rows(rows) -> dict[str, SourceChrome]:
    """Stored state rows (source, line_key, docs) -> what earlier runs learned, per source."""
    learned: dict[str, SourceChrome] = {}
    for row in rows:
        source = learned.setdefault(row["source"], SourceChrome())
        if row["line_key"] is None:
            source.docs += row["docs"]
        else:
            source.lines[row["line_key"]] += row["docs"]
    return learned


class StripChrome(beam.PTransform):
    """Documents -> documents without chrome, learned per source; plus the `learned` state rows.

    Documents are grouped by source so each source's repeated lines are learned from all its
    pages in the run, added to what earlier runs stored; all-chrome pages go to `errors`. They are
    grouped in batches, spilled to files under `spill` when given (see write.Batches): then a
    local run holds one source's pages at a time, not the run's.
    """

    def __init__(self, stored_chrome, spill: str | None = None):
        super().__init__()
        self._stored_chrome, self._spill = stored_chrome, spill

    def expand(self, docs):
        return (
            docs
            | "KeyBySource" >> beam.Map(lambda d: (d["source"] or "", d))
            | "Batch" >> Batches(self._spill)
            | "GroupBySource" >> beam.GroupByKey()
            | "LearnAndStrip" >> beam.ParDo(_LearnAndStripFn(), stored=self._stored_chrome).with_outputs(
                ERRORS, LEARNED, main="documents"
            )
        )


LEARNED = "learned"


class _LearnAndStripFn(beam.DoFn):
    def process(self, keyed, stored):
        source, batches = keyed
        known = stored.get(source) or SourceChrome()
        learned, results = strip_source([doc for batch in batches for doc in unspill(batch, consume=True)], known)
        for row in state_rows(source, learned, known):
            yield beam.pvalue.TaggedOutput(LEARNED, row)
        for doc, stripped in results:
            if stripped.removed:
                count("chrome_lines_removed", len(stripped.removed))
            if stripped.text:
                yield doc
                continue
            count("chrome_only_pages")
            yield from fail_entries(doc["entries"], "strip_chrome", "only_chrome", "nothing but chrome lines left")
