"""service/segment.py: sentences found where English puts them, and the text's layout kept exactly."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from service.segment import Segmented, split


@pytest.mark.parametrize("text, sentences", [
    ("I was born in Japan and lived there for ten years, and then moved to the U.S. It was hard at first.",
     ["I was born in Japan and lived there for ten years, and then moved to the U.S.", "It was hard at first."]),
    ("Dr. Smith arrived at 3 p.m. on Monday. He met Mr. Jones.",
     ["Dr. Smith arrived at 3 p.m. on Monday.", "He met Mr. Jones."]),
    ("The price rose by 3.5 percent to $12.75. Analysts were surprised.",
     ["The price rose by 3.5 percent to $12.75.", "Analysts were surprised."]),
    ('"Are you coming?" she asked. "Yes," he said.', ['"Are you coming?" she asked.', '"Yes," he said.']),
    ("Wait... what happened? I don't know... Let me think. He paused\u2026 then spoke.",
     ["Wait... what happened?", "I don't know...", "Let me think.", "He paused\u2026 then spoke."]),
    ("See https://example.com/a.b?c=1. Write to john.doe@example.com now!",
     ["See https://example.com/a.b?c=1.", "Write to john.doe@example.com now!"]),
    ("No final punctuation", ["No final punctuation"]),
])
def test_sentences_of_tricky_english(text, sentences):
    seg = split(text)
    assert seg.sentences == sentences
    assert seg.text == text


def test_layout_kept_exactly():
    text = "  Title\n\nFirst one.  Second one!\r\n\tIndented line? Yes.\n\n\n Last.  \n"
    seg = split(text)
    assert seg.sentences == ["Title", "First one.", "Second one!", "Indented line?", "Yes.", "Last."]
    assert seg.gaps == ["  ", "\n\n", "  ", "\r\n\t", " ", "\n\n\n ", "  \n"]
    assert seg.join(["A", "B", "C", "D", "E", "F"]) == "  A\n\nB  C\r\n\tD E\n\n\n F  \n"


def test_every_line_break_ends_a_sentence():
    assert split("a line without a stop\nand the next one").sentences == ["a line without a stop",
                                                                          "and the next one"]


@pytest.mark.parametrize("text", ["", " ", "\n\n", " \t\r\n\u00a0\u2009"])
def test_blank_text_has_no_sentences(text):
    seg = split(text)
    assert seg.sentences == [] and seg.gaps == [text] and seg.join([]) == text


def test_non_ascii_spaces_do_not_break_the_segmenter():
    """sentencex 1.0.32 panics on "U \\xa0.U." as it is; segment.py hands it ASCII spaces instead."""
    for text in ["U \u00a0.U.", "D.D\tD\u00a0. ", "Dr.\u00a0Smith left. Bye.", "Mr. \u0141. Wa\u0142\u0119sa came."]:
        seg = split(text)
        assert seg.text == text and all(s.strip() == s and s for s in seg.sentences)


def test_pieces_without_letters_or_digits_are_kept_as_they_are():
    seg = split("Hello there. ...\n* * *\n\u2014 The end. \U0001F600")
    assert seg.sentences == ["Hello there.", "\u2014 The end."]
    assert seg.gaps == ["", " ...\n* * *\n", " \U0001F600"]
    assert split(".").sentences == [] and split(".").text == "."


def test_join_needs_one_translation_per_sentence():
    with pytest.raises(ValueError):
        split("One. Two.").join(["Jeden."])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .?!\n\r\t\"'U.S.Dr\u2026\u00a0\u2028\u0142\u00e9\u201c\u201d1(),")),
               max_size=80))
def test_no_character_is_ever_lost(text):
    seg = split(text)
    assert isinstance(seg, Segmented) and len(seg.gaps) == len(seg.sentences) + 1
    assert seg.text == text
    assert all(s == s.strip() and "\n" not in s and "\r" not in s for s in seg.sentences)
    assert all(any(c.isalnum() for c in s) for s in seg.sentences)
    assert not any(c.isalnum() for g in seg.gaps for c in g)
