"""HTML in, HTML out: `HtmlDocument(html).texts` are the text nodes to translate, `.render(translations)` the
document with those nodes replaced and everything else as it was (LibreTranslate's `format: "html"`).

Parsed by BeautifulSoup with Python's own html.parser (what LibreTranslate's translatehtml uses too): pure Python,
two small wheels (beautifulsoup4, soupsieve; no C library as lxml would bring), and it parses any input, however
malformed. The output is serialized from the parsed tree, so it is well-formed: every element closed and nested
(`<p>a <b>b</p>` -> `<p>a <b>b</b></p>`), void elements self-closed (`<br/>`), attribute values quoted, and `&`,
`<`, `>` in text escaped (translations included: a translation can never inject markup). Entities are decoded in
the text the model sees (`&amp;` -> `&`) and written back escaped; other characters (`&nbsp;`, Polish letters)
are written as themselves (BeautifulSoup's formatter "minimal"); attributes keep their order.

Translated: text nodes with something other than whitespace in them. Kept as they are: tags, attributes (their
values too: `title`, `alt`...), comments, the doctype, CDATA and processing instructions, and the text inside
<script>, <style>, <code>, <pre>, <kbd>, <samp> and <template>, or inside an element marked `translate="no"`
(HTML's own attribute; the nearest ancestor with the attribute decides).

Text nodes are translated one by one (each cut into sentences by service.segment), so a sentence that runs across
inline tags (`Click <a>here</a> to start.`) is translated in pieces: the markup stays where it was, at some cost
in fluency. html.parser does not apply HTML's implied end tags, so `<li>a<li>b</ul>` comes back as
`<li>a<li>b</li></li>`: well-formed, but nested where a browser would have closed the first item.
"""
from __future__ import annotations

from typing import Sequence

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.builder import HTMLTreeBuilder
from bs4.dammit import EntitySubstitution
from bs4.exceptions import ParserRejectedMarkup
from bs4.formatter import HTMLFormatter

from .errors import InvalidInput

KEEP_INSIDE = frozenset({"script", "style", "code", "pre", "kbd", "samp", "template"})
# BeautifulSoup shrinks whitespace-only strings to one "\n" or " " outside <pre> and <textarea>; with its root in
# this set it keeps all whitespace as it was (the set is otherwise used only when pretty-printing).
_KEEP_WHITESPACE = HTMLTreeBuilder.DEFAULT_PRESERVE_WHITESPACE_TAGS | {BeautifulSoup.ROOT_TAG_NAME}


class _AsWritten(HTMLFormatter):
    """BeautifulSoup's "minimal" formatter (escapes only &, <, >), with attributes in their original order
    instead of sorted."""

    def attributes(self, tag: Tag) -> list:
        return list((tag.attrs or {}).items())


_FORMATTER = _AsWritten(entity_substitution=EntitySubstitution.substitute_xml)


class HtmlDocument:
    def __init__(self, html: str):
        try:
            self.soup = BeautifulSoup(html, "html.parser", preserve_whitespace_tags=_KEEP_WHITESPACE)
        except ParserRejectedMarkup as e:      # html.parser gives up on a few inputs, e.g. "<![" + not a name
            reason = str(e).strip().splitlines()[-1].split(": ", 1)[-1]
            raise InvalidInput(f"it cannot be parsed as HTML ({reason}); write a literal '<' as &lt;") from None
        self._nodes = [s for s in self.soup.find_all(string=True)
                       if type(s) is NavigableString and s.strip() and _translatable(s)]

    @property
    def texts(self) -> list[str]:
        """The text nodes to translate, in document order (entities decoded)."""
        return [str(s) for s in self._nodes]

    def render(self, translations: Sequence[str]) -> str:
        """The document with text node i replaced by translations[i] (one per text). May be called again with
        other translations (the alternatives)."""
        if len(translations) != len(self._nodes):
            raise ValueError(f"{len(translations)} translations for {len(self._nodes)} text nodes")
        for i, t in enumerate(translations):
            node = NavigableString(t)
            self._nodes[i].replace_with(node)
            self._nodes[i] = node
        return self.soup.decode(formatter=_FORMATTER)


def _translatable(node: NavigableString) -> bool:
    """False inside KEEP_INSIDE elements and elements whose nearest `translate` attribute is "no"."""
    decided = False
    for parent in node.parents:
        if not isinstance(parent, Tag):
            continue
        if parent.name in KEEP_INSIDE:
            return False
        mark = parent.get("translate")
        if not decided and isinstance(mark, str):
            if mark.strip().lower() == "no":
                return False
            decided = True                 # translate="yes" nearer than any "no" above it
    return True
