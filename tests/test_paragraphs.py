"""POST /translate with paragraphs and HTML (issue 12, parts 6 and 7), over HTTP on the tiny model: every sentence
decoded on its own and put back in the text's layout; format "html" translates text nodes only."""
from __future__ import annotations

import html

import pytest
from litestar.testing import TestClient

from service.app import create_app
from service.html_text import HtmlDocument
from service.settings import Settings
from test_html_text import well_formed

PARAGRAPH = ("I see a cat. Thank you.  Where is the station?\n"
             "\n"
             "We like the tea. How are you?\n"
             "\tI have a dog.")
SENTENCES = ["I see a cat.", "Thank you.", "Where is the station?", "We like the tea.", "How are you?",
             "I have a dog."]
LAYOUT = "{} {}  {}\n\n{} {}\n\t{}"


@pytest.fixture(scope="module")
def client(model_dir):
    settings = Settings(model_dir=model_dir, provider="cpu", intra_threads=1, max_texts=8, max_text_chars=400,
                        max_beam=4, max_queue=24, max_source_tokens=40)
    with TestClient(create_app(settings)) as c:
        yield c


def translate(client, **body) -> dict:
    r = client.post("/translate", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def alone(client, sentences: list[str], **body) -> list[str]:
    """Each sentence translated as a text of its own."""
    return translate(client, q=sentences, **body)["translatedText"]


@pytest.mark.parametrize("beam", [1, 3])
def test_six_sentences_with_a_blank_line_come_back_in_the_same_layout(client, beam):
    out = translate(client, q=PARAGRAPH, beam_size=beam)["translatedText"]
    each = alone(client, SENTENCES, beam_size=beam)
    assert all(each) and len(set(each)) == 6
    assert out == LAYOUT.format(*each)           # no sentence dropped, whitespace and line breaks as sent


def test_paragraph_in_a_list_equals_the_paragraph_alone(client):
    one = translate(client, q=PARAGRAPH)["translatedText"]
    many = translate(client, q=["Thank you.", PARAGRAPH, "", "  I see a cat.\n"])["translatedText"]
    assert many[1] == one and many[2] == ""
    assert many[3] == "  " + alone(client, ["I see a cat."])[0] + "\n"     # the whitespace around it too


def test_limits_count_characters_of_the_whole_text(client):
    text = " ".join(["Where is the station?"] * 19)[:400]     # 400 characters, 19 sentences: accepted
    assert len(text) == 400 and translate(client, q=text)["translatedText"]
    r = client.post("/translate", json={"q": text + "!"})
    assert r.status_code == 413
    assert r.json()["error"] == ("text 0 has 401 characters, which exceeds the text limit of 400 "
                                 "(TRANSLATOR_MAX_TEXT_CHARS)")


def test_too_many_sentences_in_all_is_413(client):
    r = client.post("/translate", json={"q": ["Yes. " * 13, "No. " * 12]})
    assert r.status_code == 413
    assert "25 sentences" in r.json()["error"] and "24" in r.json()["error"]


def test_a_sentence_over_the_token_limit_is_named(client):
    long = "I see " + " ".join(["a cat"] * 30) + "."
    r = client.post("/translate", json={"q": ["Thank you.", "I see a cat. " + long]})
    assert r.status_code == 413
    assert r.json()["error"].startswith("sentence 2 of text 1 has ") and "limit of 40" in r.json()["error"]
    r = client.post("/translate", json={"q": long})
    assert r.status_code == 413 and r.json()["error"].startswith("text 0 has ")


def test_attention_per_sentence(client):
    one = translate(client, q="I see a cat.", return_attention=True)["attention"]
    assert set(one) == {"source_tokens", "target_tokens", "weights"}     # one sentence: the shape as before
    text = "I see a cat. Thank you.\nHow are you?"
    att = translate(client, q=text, return_attention=True)["attention"]
    parts = [translate(client, q=s, return_attention=True)["attention"]
             for s in ["I see a cat.", "Thank you.", "How are you?"]]
    spans = att["sentences"]
    assert len(spans) == 3
    assert att["source_tokens"] == [t for p in parts for t in p["source_tokens"]]
    assert att["target_tokens"] == [t for p in parts for t in p["target_tokens"]]
    assert len(att["weights"]) == len(att["target_tokens"])
    for span, part in zip(spans, parts):
        rows = att["weights"][span["target_start"]:span["target_end"]]
        assert span["source_end"] - span["source_start"] == len(part["source_tokens"])
        for row, alone_row in zip(rows, part["weights"], strict=True):
            assert len(row) == len(att["source_tokens"]) and sum(row) == pytest.approx(1.0, abs=1e-3)
            assert row[span["source_start"]:span["source_end"]] == pytest.approx(alone_row, abs=1e-5)
            assert not any(row[:span["source_start"]]) and not any(row[span["source_end"]:])
    many = translate(client, q=[text, "Thank you."], return_attention=True)["attention"]
    assert many[0]["sentences"] == spans
    assert "sentences" not in many[1]


def test_alternatives_of_a_paragraph(client):
    body = translate(client, q="I see a cat.\nThank you.", alternatives=2)
    assert len(body["alternatives"]) == len(body["alternative_scores"]) <= 2
    assert all(a.count("\n") == 1 and a != body["translatedText"] for a in body["alternatives"])
    assert len(set(body["alternatives"])) == len(body["alternatives"])
    assert all(body["score"] >= s for s in body["alternative_scores"])


def test_html_text_nodes_translated_markup_kept(client):
    page = ('<p class="intro" title="I see a cat.">I see a cat. <b>Thank you.</b></p>\n'
            "<script>var s = 'I see a cat.'; if (a < b) {}</script><!-- Where is the station? -->"
            "<pre>I see a cat.</pre><p>Fish &amp; chips<br>How are you?</p>")
    out = translate(client, q=page, format="html")["translatedText"]
    cat, thanks, fish, how = (html.escape(t, quote=False) for t in
                              alone(client, ["I see a cat.", "Thank you.", "Fish & chips", "How are you?"]))
    assert out == (f'<p class="intro" title="I see a cat.">{cat} <b>{thanks}</b></p>\n'
                   "<script>var s = 'I see a cat.'; if (a < b) {}</script><!-- Where is the station? -->"
                   f"<pre>I see a cat.</pre><p>{fish}<br/>{how}</p>")
    assert well_formed(out)


@pytest.mark.parametrize("page", ["<p>I see a cat. <b>Thank you.</p><div>How are you?",
                                  "</span><li>I have a dog.<li><i>We like the tea.", "<<b>>I see a cat."])
def test_malformed_html_gives_well_formed_html(client, page):
    body = translate(client, q=[page, ""], format="html", alternatives=1, return_attention=True)
    out = body["translatedText"][0]
    assert well_formed(out) and len(HtmlDocument(out).texts) == len(HtmlDocument(page).texts)
    assert body["translatedText"][1] == ""
    assert all(well_formed(a) for a in body["alternatives"][0])
    assert len(body["attention"]) == 2


def test_html_the_parser_rejects_is_a_400(client):
    r = client.post("/translate", json={"q": ["<p>Fine.</p>", "Hi <![ there"], "format": "html"})
    assert r.status_code == 400
    assert r.json()["error"].startswith("text 1: it cannot be parsed as HTML (expected name token")


def test_plain_text_with_markup_is_not_parsed(client):
    out = translate(client, q="<b>I see a cat.</b>")["translatedText"]
    assert isinstance(out, str) and out           # format "text" hands the characters to the model as they are
