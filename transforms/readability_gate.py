"""trafilatura's readability comparison, run only on pages where it can change the result.

Part of the Extract stage. In its default mode (balanced, not fast) trafilatura extracts a
page's body, then runs readability on the whole page and compares the two; that comparison
costs about a sixth of trafilatura's time. In trafilatura 2.3 (`external._prefer_readability`)
readability's text replaces trafilatura's own only when

- the own text is empty, or readability's is more than twice as long, or
- the own body has no paragraph text or more tables than paragraphs,

and the jusText rescue that follows looks only at a body that is short (under
`min_extracted_size` characters) or holds elements it calls unclean (nav, figure, iframe…).

Readability's text can never be longer than the page's text outside script, style and
fencedframe, which it drops first: everything else it does removes elements or moves text,
and a video iframe adds the five letters "VIDEO". So when the own text is at least half that
bound, has paragraphs, is not table-dominated, is long enough and clean, the comparison is
bound to return it unchanged, and is skipped. The result is the same text, to the character,
as trafilatura's own cascade; on both corpora of `benchmarks/extraction_quality.py` the gate
skips readability on about two pages in three.

The gate sits in front of `trafilatura.core.compare_extraction` and acts only for the options
`extractor(url)` makes: every other caller of trafilatura in the process (the benchmark's
plain side, a user's own code) gets trafilatura's cascade untouched. It is installed only on
the trafilatura versions whose comparison rules it was checked against (`VERIFIED`); on any
other, newsbeam runs trafilatura's full cascade, the same text at the plain speed.
"""

from __future__ import annotations

import trafilatura
import trafilatura.core as _core
import trafilatura.external as _external
from lxml.etree import XPath
from trafilatura.settings import Extractor
from trafilatura.utils import trim

VERIFIED = ("2.3.",)  # trafilatura releases whose _prefer_readability and compare_extraction are as described
VIDEO = len("VIDEO")  # what readability writes into each video iframe it keeps
_UNREAD = ("script", "style", "fencedframe")  # what readability drops before it reads a page
_PARAGRAPH_TEXT = XPath(".//p//text()")
_UNCLEAN = XPath(_external.SANITIZED_XPATH)


class _Gated(Extractor):
    """trafilatura's options, marked as newsbeam's: the gate acts only for these."""

    __slots__ = ()


def extractor(url: str | None) -> Extractor:
    """The options newsbeam extracts with: trafilatura's defaults, no comments, a Python document."""
    return (_Gated if INSTALLED else Extractor)(output_format="python", comments=False, url=url)


def readability_bound(raw_tree) -> int:
    """An upper bound on the length of the text readability can extract from `raw_tree`.

    Drops the elements readability drops first, as it does (their tails stay), so that
    readability, if it runs on `raw_tree` after this, does the same as on the tree before.
    """
    for elem in list(raw_tree.iter(_UNREAD)):
        elem.drop_tree()
    return len(trim(raw_tree.text_content())) + VIDEO * sum(1 for _ in raw_tree.iter("iframe"))


def comparison_can_change(body, text: str, raw_tree, options) -> bool:
    """Whether compare_extraction could return anything but (body, text) for these arguments.

    `raw_tree` is compare_extraction's own copy of the page: the bound, checked last, drops
    from it what readability would drop anyway.
    """
    if options.focus != "balanced" or len(text) < options.min_extracted_size:
        return True  # recall and precision have rules of their own; a short text goes to jusText
    if _UNCLEAN(body):
        return True  # jusText is consulted
    if not _PARAGRAPH_TEXT(body) or len(body.findall(".//table")) > len(body.findall(".//p")):
        return True  # readability may replace a structurally deficient body
    return readability_bound(raw_tree) > 2 * len(text)


_compare_extraction = _core.compare_extraction


def _gated_compare_extraction(cleaned_tree, raw_tree, body, text, options):
    if isinstance(options, _Gated) and not comparison_can_change(body, text, raw_tree, options):
        return body, text
    return _compare_extraction(cleaned_tree, raw_tree, body, text, options)


INSTALLED = trafilatura.__version__.startswith(VERIFIED) and _compare_extraction is _external.compare_extraction
if INSTALLED:
    _core.compare_extraction = _gated_compare_extraction
