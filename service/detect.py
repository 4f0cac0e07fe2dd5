"""Language identification for `POST /detect` and `source: "auto"`, with py3langid (a maintained fork of
langid.py: a naive Bayes model over byte n-grams for 141 languages, shipped inside the package; 4.5 MB
installed, numpy only; nothing is downloaded at run time).

Why py3langid: it is small and fast (0.06 ms a sentence here, docs/benchmarks/detect.md), and on the held-out
test split it keeps every English sentence English under the rule below. lingua-language-detector (what
LibreTranslate uses) is more accurate on very short texts but installs 96 MB, too much for a slim serving image.
Its cost is memory: loaded, it adds 74-82 MiB to the server process (detect.md has the figure).

The rule for `source: "auto"` (`Detector.judge`): a text is refused as not English only when it has at
least MIN_LETTERS letters AND the detector gives another language at least MIN_CONFIDENCE. Everything else, i.e.
short texts ("Hi", "OK", "Tom stood."), texts without letters (numbers, emoji, code), texts the detector
itself calls `zxx` ("no linguistic content": symbols, styled letters such as 𝕋𝕙𝕖) and ambiguous texts (no
language that sure), is translated as English, which is what this service assumes anyway. On the 1,588 English
sentences of the test split this rule refuses none; of their 1,588 Polish translations it refuses 1,467 (92%;
most of the rest are shorter than MIN_LETTERS letters). `source: "en"` never runs the detector.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar

from .errors import InvalidInput

MIN_LETTERS = 10        # fewer letters than this: too short to tell, translated as English
MIN_CONFIDENCE = 0.8    # a language other than English must be at least this sure to refuse a text
NO_LANGUAGE = "zxx"     # py3langid's class for "no linguistic content" (ISO 639-2), a reason to refuse nothing
TOP = 3                 # /detect lists at most this many languages
T = TypeVar("T")


class Detection(TypedDict):
    """LibreTranslate's shape: confidence in percent (0-100), language as an ISO 639 code (639-1 where one exists)."""

    language: str
    confidence: float


class Detector:
    """py3langid's identifier with normalised probabilities, loaded once (about 1 s: the model is xz-packed)."""

    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self._ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    def rank(self, text: str) -> list[tuple[str, float]]:
        """Every language with its probability (0-1), most likely first."""
        return self._ident.rank(text)

    def languages(self, text: str) -> list[tuple[str, float]]:
        """`rank` without `zxx`; empty when the text has no language: no letters, or `zxx` ranked first."""
        if not any(ch.isalpha() for ch in text):
            return []
        ranked = self.rank(text)
        return [] if ranked[0][0] == NO_LANGUAGE else [(lang, p) for lang, p in ranked if lang != NO_LANGUAGE]

    def detect(self, text: str) -> list[Detection]:
        """The most likely languages, LibreTranslate's shape. A text with no language (`languages`) gets
        LibreTranslate's answer for that case, English with confidence 0."""
        top = [(lang, round(p * 100, 1)) for lang, p in self.languages(text)[:TOP]]
        return [Detection(language=lang, confidence=c) for lang, c in top if c > 0] or \
            [Detection(language="en", confidence=0.0)]

    def judge(self, text: str) -> tuple[Detection | None, float]:
        """(the language `text` is written in when the rule above is sure it is not English, else None; and
        English's probability in percent, for LibreTranslate's `detectedLanguage`: 0 for a text with no
        language, as /detect says), from one run of the model."""
        ranked = self.languages(text)
        if not ranked:
            return None, 0.0
        english = round(dict(ranked).get("en", 0.0) * 100, 1)
        (lang, p) = ranked[0]
        if lang != "en" and p >= MIN_CONFIDENCE and sum(ch.isalpha() for ch in text) >= MIN_LETTERS:
            return Detection(language=lang, confidence=round(p * 100, 1)), english
        return None, english

    def not_english(self, text: str) -> Detection | None:
        """The language `text` is written in, when the rule above is sure it is not English; else None."""
        return self.judge(text)[0]


_LOCK = threading.Lock()
_DETECTOR: Detector | None = None


def detector() -> Detector:
    """The process's Detector, loaded on first use (the app loads it at start-up, off the event loop)."""
    global _DETECTOR
    with _LOCK:
        if _DETECTOR is None:
            _DETECTOR = Detector()
        return _DETECTOR


def detect_source(texts: list[str]) -> list[Detection]:
    """`source: "auto"`: every text must be English by the rule above (short and ambiguous texts are); a text
    detected as another language is a 400 that names it. Returns LibreTranslate's `detectedLanguage` for each
    text: English, with its probability in percent."""
    found, detected = detector(), []
    for i, text in enumerate(texts):
        other, english = found.judge(text)
        if other is not None:
            where = f"text {i}" if len(texts) > 1 else "the text"
            raise InvalidInput(f"{where} looks like {other['language']!r} (ISO 639 code; confidence "
                               f"{other['confidence']:g}%), not English: this service translates English to Polish "
                               "only; send English, or source 'en' to translate it as English anyway")
        detected.append(Detection(language="en", confidence=english))
    return detected


INLINE_CHARS = 2000   # more characters than this are detected in a worker thread, not on the event loop


async def off_the_loop_if_long(chars: int, fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) (a detection over `chars` characters) on the event loop when short, in a worker thread when
    long, so the largest request never holds the loop (costs: docs/benchmarks/detect.md)."""
    if chars <= INLINE_CHARS:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)
