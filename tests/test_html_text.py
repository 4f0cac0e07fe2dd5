"""service/html_text.py: text nodes out, translations in, everything else as it was, and well-formed output."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given, settings, strategies as st

from service.errors import InvalidInput
from service.html_text import HtmlDocument

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Checker(HTMLParser):
    """Fails on an end tag that does not close the innermost open element, or elements left open."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):    # <br/>
        pass

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def well_formed(html: str) -> bool:
    c = _Checker()
    c.feed(html)
    c.close()
    return not c.open


def upper(doc: HtmlDocument) -> str:
    return doc.render([t.upper() for t in doc.texts])


def test_nested_inline_tags_keep_their_place():
    doc = HtmlDocument('<p>I see <b>a <i>big</i> cat</b> here.</p>')
    assert doc.texts == ["I see ", "a ", "big", " cat", " here."]
    out = upper(doc)
    assert out == "<p>I SEE <b>A <i>BIG</i> CAT</b> HERE.</p>" and well_formed(out)


def test_attributes_are_kept_not_translated():
    doc = HtmlDocument('<a href="/x?a=1&amp;b=2" title="Hello there" class=big>Click here</a>'
                       '<img alt="A cat" src=cat.png>')
    assert doc.texts == ["Click here"]
    out = upper(doc)
    assert out == '<a href="/x?a=1&amp;b=2" title="Hello there" class="big">CLICK HERE</a>' \
                  '<img alt="A cat" src="cat.png"/>'
    assert well_formed(out)


def test_entities_decoded_for_the_model_and_escaped_again():
    doc = HtmlDocument("<p>Fish &amp; chips &lt;b&gt; cost&nbsp;5&#8364;.</p>")
    assert doc.texts == ["Fish & chips <b> cost\u00a05\u20ac."]
    out = doc.render(["Ryba & frytki <i> kosztuje\u00a05\u20ac."])
    assert out == "<p>Ryba &amp; frytki &lt;i&gt; kosztuje\u00a05\u20ac.</p>"   # a translation cannot inject tags


def test_script_style_code_pre_comments_untouched():
    html = ("<!DOCTYPE html><html><head><title>My page</title><style>p > a { color: red }</style>"
            "<script>if (a < b) { x = '<p>Hello</p>'; }</script></head><body><!-- Hello comment -->"
            "<p>Hello world.</p><pre>keep  this text</pre><p>Run <code>make test</code> now.</p>"
            '<div translate="no">Brand Name <span>Inc.</span></div><div translate="no"><p translate="yes">'
            "Yes please.</p></div><kbd>Ctrl</kbd></body></html>")
    doc = HtmlDocument(html)
    assert doc.texts == ["My page", "Hello world.", "Run ", " now.", "Yes please."]
    out = upper(doc)
    assert "<script>if (a < b) { x = '<p>Hello</p>'; }</script>" in out
    assert "<style>p > a { color: red }</style>" in out and "<!-- Hello comment -->" in out
    assert "<pre>keep  this text</pre>" in out and "<p>RUN <code>make test</code> NOW.</p>" in out
    assert "Brand Name <span>Inc.</span>" in out and "YES PLEASE." in out and "<kbd>Ctrl</kbd>" in out
    assert "<title>MY PAGE</title>" in out and out.startswith("<!DOCTYPE html>")
    assert well_formed(out)


@pytest.mark.parametrize("html", [
    "<p>Hello <b>world</p><div>Unclosed",
    "<p>unclosed <i>italic <b>bold",
    "</p></div>stray end tags<br>",
    "<<p>>a < b & c",
    "<td>cell</tr><li>item<li>other",
    "<p title='unterminated>text",
])
def test_malformed_input_gives_well_formed_output(html):
    doc = HtmlDocument(html)
    out = upper(doc)
    assert well_formed(out), out
    again = HtmlDocument(out)                        # and parsing the output finds the same translated texts
    assert again.texts == [t.upper() for t in doc.texts]


def test_whitespace_only_nodes_and_empty_document():
    doc = HtmlDocument("\n\n<ul>\n  <li>One</li>\n  <li>Two</li>\n</ul>  \n")
    assert doc.texts == ["One", "Two"]
    assert upper(doc) == "\n\n<ul>\n  <li>ONE</li>\n  <li>TWO</li>\n</ul>  \n"      # whitespace as it was
    empty = HtmlDocument("")
    assert empty.texts == [] and empty.render([]) == ""


def test_render_twice_and_count_checked():
    doc = HtmlDocument("<p>a</p><p>b</p>")
    assert doc.render(["x", "y"]) == "<p>x</p><p>y</p>"
    assert doc.render(["z", "w"]) == "<p>z</p><p>w</p>"      # alternatives render from the same document
    with pytest.raises(ValueError):
        doc.render(["only one"])


def test_markup_the_parser_rejects_is_invalid_input():
    with pytest.raises(InvalidInput, match=r"cannot be parsed as HTML \(expected name token at '<!\[ foo'\)"):
        HtmlDocument("<p>Hi <![ foo")


PIECES = list("<>/!?[]-'\"=&#; \nabpiCDATA") + ["<b>", "</b>", "<p>", "</p>", "<br>", "<!--", "-->", "<script>"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
def test_any_markup_is_rejected_clearly_or_comes_back_well_formed(html):
    try:
        doc = HtmlDocument(html)
    except InvalidInput:
        return
    out = upper(doc)
    assert well_formed(out), out
    squeeze = lambda texts: "".join("".join(texts).split())      # adjacent text nodes may merge when re-read
    assert squeeze(HtmlDocument(out).texts) == squeeze(t.upper() for t in doc.texts)
