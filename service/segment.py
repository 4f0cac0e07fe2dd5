"""Texts into sentences and back: `split(text)` -> Segmented, `Segmented.join(translations)` -> the text's layout
with each sentence replaced by its translation.

The model translates one sentence at a time (it was trained on sentences), so a paragraph is cut into sentences,
each is decoded as its own sequence, and the translations are put back between the original whitespace:
  - every line break ends a sentence (as DeepL's default `split_sentences=1`): headings, list items and lines
    without final punctuation stay on their own lines, and the layout comes back exactly;
  - within a line, sentence boundaries come from sentencex (Wikimedia's rule-based segmenter: abbreviations such
    as "U.S." and "Dr.", decimals, quotes, ellipses; no data files, no downloads);
  - a sentence is the text between two boundaries with its surrounding whitespace moved to the gaps, so
    `gaps[0] + sentences[0] + gaps[1] + ... + sentences[-1] + gaps[-1] == text` always: no character is lost,
    whatever the segmenter says (its pieces are only used as boundary positions);
  - a piece with no letter or digit in it ("...", "* * *", "-", an emoji, a "." left between two HTML tags) has
    nothing to translate: it stays in the gap as it is (the model would invent words for it).

Why sentencex over pysbd (both tried on the same tricky English, 2026-12-02; docs/segmentation.md): the two split
abbreviations, decimals, quotes and ellipses the same way, but sentencex kept "https://example.com/a.b?c=1." whole
where pysbd cut it after "?", pysbd loses characters on some punctuation runs ("..?!" -> [".."]) and took 4-12 ms
per 1000 characters on the event loop against 0.02-0.25 ms (`python -m bench.segmenters`); pysbd's last release
is from 2021. sentencex 1.0.32 panics on some non-ASCII spaces after a period ("U \\xa0.U."), so it is given a
copy with every non-ASCII space as " " (same length, so offsets map one to one); a panic that still happens
leaves the line as one sentence.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Sequence

import sentencex

log = logging.getLogger(__name__)

_LINES = re.compile(r"[^\r\n]+")                 # a line's content, between line breaks
_ODD_SPACE = re.compile(r"[^\S \t\r\n]")         # whitespace other than ASCII (NBSP, thin space, U+2028...)


@dataclass(frozen=True)
class Segmented:
    """A text as sentences and the whitespace around them: len(gaps) == len(sentences) + 1."""

    sentences: list[str]    # each with a letter or digit, without leading or trailing whitespace
    gaps: list[str]         # kept as they are: whitespace, line breaks, pieces without a letter or digit

    def join(self, translations: Sequence[str]) -> str:
        """The text with sentence i replaced by translations[i] (one per sentence), gaps as they were."""
        if len(translations) != len(self.sentences):
            raise ValueError(f"{len(translations)} translations for {len(self.sentences)} sentences")
        parts = [self.gaps[0]]
        for t, gap in zip(translations, self.gaps[1:]):
            parts += (t, gap)
        return "".join(parts)

    @property
    def text(self) -> str:
        return self.join(self.sentences)


def split(text: str) -> Segmented:
    """`text` cut into sentences: at every line break, and where sentencex finds a boundary within a line."""
    sentences, gaps, end = [], [], 0          # end: where the text not yet in sentences/gaps starts
    for line in _LINES.finditer(text):
        for start, stop in _spans(line.group()):
            start, stop = start + line.start(), stop + line.start()
            gaps.append(text[end:start])
            sentences.append(text[start:stop])
            end = stop
    gaps.append(text[end:])
    return Segmented(sentences, gaps)


def _spans(line: str) -> list[tuple[int, int]]:
    """(start, stop) of each sentence in one line, whitespace trimmed; none for a line without letters or digits."""
    cuts = [0]
    for piece in _segment(_ODD_SPACE.sub(" ", line)):
        cuts.append(cuts[-1] + len(piece))
    if cuts[-1] != len(line):            # pieces that do not add up to the line: keep it whole
        cuts = [0, len(line)]
    spans = []
    for a, b in zip(cuts, cuts[1:]):
        chunk = line[a:b]
        if any(c.isalnum() for c in chunk):
            lead = len(chunk) - len(chunk.lstrip())
            spans.append((a + lead, a + len(chunk.rstrip())))
    return spans


def _segment(line: str) -> list[str]:
    try:
        return list(sentencex.segment("en", line))
    except BaseException as e:            # a Rust panic arrives as pyo3's PanicException, a BaseException
        if type(e).__name__ != "PanicException":
            raise
        log.warning("sentencex failed on a line of %d characters; translating it as one sentence", len(line))
        return [line]
