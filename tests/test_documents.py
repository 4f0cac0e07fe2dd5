"""service/documents.py: a text's sentences out, their results back as one text (translation, alternatives,
scores, attention), for plain text and HTML."""
from __future__ import annotations

import pytest

from service.documents import combine, locate, prepare
from service.errors import PayloadTooLarge
from service.translator import Hypothesis, TranslationResult


def result(src: list[str], *hyps: tuple[str, float, int]) -> TranslationResult:
    """A sentence's result: hypotheses (text, score, number of tokens) with uniform attention rows."""
    n = len(src) + 1
    return TranslationResult([Hypothesis(t, s, [f"\u2581w{i}" for i in range(k)], [[1 / n] * n] * (k + 1))
                              for t, s, k in hyps], src + ["</s>"])


PARAGRAPH = "First one.  Second one!\n\nThird one?"


def test_paragraph_sentences_and_layout():
    t = prepare(PARAGRAPH)
    assert t.sentences == ["First one.", "Second one!", "Third one?"]
    out = combine(t, [result(["a"], ("Pierwsze.", -0.5, 2)), result(["b", "c"], ("Drugie!", -1.0, 3)),
                      result(["d"], ("Trzecie?", -0.2, 1))])
    assert out.text == "Pierwsze.  Drugie!\n\nTrzecie?"
    assert out.alternatives == [] and out.alternative_scores == []
    # the whole text's length-normalised log-probability: (-0.5*3 - 1.0*4 - 0.2*2) / (3+4+2)
    assert out.score == pytest.approx((-1.5 - 4.0 - 0.4) / 9)


def test_one_sentence_answers_as_before():
    t = prepare("  Hello there.  ")
    r = result(["x"], ("Cześć.", -0.3, 2), ("Hej.", -0.9, 1), ("Witaj.", -1.2, 1))
    out = combine(t, [r], attention=True)
    assert out.text == "  Cześć.  "                      # the whitespace around the sentence stays
    assert (out.alternatives, out.alternative_scores, out.score) == (["  Hej.  ", "  Witaj.  "], [-0.9, -1.2], -0.3)
    assert out.attention == {"source_tokens": ["x", "</s>"], "target_tokens": ["\u2581w0", "\u2581w1", "</s>"],
                             "weights": [[0.5, 0.5]] * 3}
    assert "sentences" not in out.attention


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_blank_text_is_empty(text):
    out = combine(prepare(text), [], attention=True)
    assert (out.text, out.alternatives, out.score) == ("", [], 0.0)
    assert out.attention == {"source_tokens": [], "target_tokens": [], "weights": []}


def test_symbols_only():
    """A text of symbols only goes to the model whole, as it always did; in a text with sentences, or as an HTML
    text node, symbols are kept as they are."""
    t = prepare(" ...\n")
    assert t.sentences == ["..."]
    assert combine(t, [result(["a"], ("X", -1.0, 1))]).text == " X\n"
    assert prepare("Hello. ...").sentences == ["Hello."]
    h = prepare("<p>Hello <b>you</b>.</p><p>\u2014</p>", "html")
    assert h.sentences == ["Hello", "you"]
    assert combine(h, [result(["a"], ("Cześć", -1.0, 1)), result(["b"], ("ty", -1.0, 1))]).text == \
        "<p>Cześć <b>ty</b>.</p><p>\u2014</p>"


def test_alternatives_rank_by_rank_falling_back_to_the_best():
    t = prepare("One. Two.")
    out = combine(t, [result(["a"], ("A1", -1.0, 1), ("A2", -2.0, 1), ("A3", -3.0, 1)),
                      result(["b"], ("B1", -1.0, 1))])
    assert out.text == "A1 B1" and out.alternatives == ["A2 B1", "A3 B1"]
    assert out.alternative_scores == [pytest.approx(-1.5), pytest.approx(-2.0)]
    same = combine(t, [result(["a"], ("A", -1.0, 1), ("A", -2.0, 1)), result(["b"], ("B", -1.0, 1))])
    assert same.alternatives == [] and same.alternative_scores == []   # "A B" again is not an alternative


def test_attention_block_diagonal_with_sentence_spans():
    t = prepare("One. Two.")
    out = combine(t, [result(["a"], ("A", -1.0, 1)), result(["b", "c"], ("B", -1.0, 2))], attention=True)
    att = out.attention
    assert att["source_tokens"] == ["a", "</s>", "b", "c", "</s>"]
    assert att["target_tokens"] == ["\u2581w0", "</s>", "\u2581w0", "\u2581w1", "</s>"]
    third = 1 / 3
    assert att["weights"] == [[0.5, 0.5, 0, 0, 0]] * 2 + [[0, 0, third, third, third]] * 3
    assert att["sentences"] == [
        {"source_start": 0, "source_end": 2, "target_start": 0, "target_end": 2},
        {"source_start": 2, "source_end": 5, "target_start": 2, "target_end": 5}]
    assert all(sum(row) == pytest.approx(1.0) for row in att["weights"])


def test_html_text_nodes_each_split():
    t = prepare("<p>Hello there. <b>Bold text.</b></p><script>var a = 'Do not.';</script>", "html")
    assert t.sentences == ["Hello there.", "Bold text."]
    out = combine(t, [result(["a"], ("Cześć.", -1.0, 1), ("Hej.", -2.0, 1)), result(["b"], ("Gruby.", -1.0, 1))])
    assert out.text == "<p>Cześć. <b>Gruby.</b></p><script>var a = 'Do not.';</script>"
    assert out.alternatives == ["<p>Hej. <b>Gruby.</b></p><script>var a = 'Do not.';</script>"]
    assert combine(prepare("<br>", "html"), []).text == "<br/>"


def test_errors_name_the_text_and_sentence():
    texts = [prepare(""), prepare("One. Two."), prepare("Three.")]
    assert str(locate(texts, PayloadTooLarge("text 1 has 500 subword tokens, which exceeds the limit of 384"))) == \
        "sentence 2 of text 1 has 500 subword tokens, which exceeds the limit of 384"
    moved = locate(texts, PayloadTooLarge("text 2 has 500 subword tokens, which exceeds the limit of 384"))
    assert isinstance(moved, PayloadTooLarge) and str(moved).startswith("text 2 has 500")
    other = PayloadTooLarge("something else")
    assert locate(texts, other) is other
