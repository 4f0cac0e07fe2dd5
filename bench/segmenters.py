"""`python -m bench.segmenters`: the two sentence segmenters considered for service/segment.py, side by side on
tricky English, on random punctuation-heavy strings (characters lost, crashes), and for speed.

pysbd is not a dependency of the project: `pip install pysbd` into a scratch virtualenv with sentencex to run
this (docs/segmentation.md has the figures)."""
from __future__ import annotations

import random
import time

import sentencex

from service.segment import _ODD_SPACE

try:
    import pysbd
except ImportError as e:
    raise SystemExit("needs pysbd, which the project does not depend on: pip install pysbd") from e

CASES = [
    "I was born in Japan and lived there for ten years, and then moved to the U.S. It was hard at first.",
    "Dr. Smith arrived at 3 p.m. on Monday. He met Mr. Jones and Mrs. Brown.",
    "The price rose by 3.5 percent to $12.75. Analysts were surprised.",
    '"Are you coming?" she asked. "Yes," he said. "I\'ll be there."',
    "Wait... what happened? I don't know... Let me think.",
    "He works at Acme Inc. in New York. The company, e.g. its staff, likes it.",
    "See https://example.com/a.b?c=1. Write to me at john.doe@example.com. Thanks!",
    "The U.S. Army and the U.K. Navy met. Then they left.",
    "She has a Ph.D. in physics. She teaches at St. Louis University.",
    "It was the U.S.A. vs. the U.S.S.R. at the time. Tensions were high.",
    "It cost approx. 5 dollars. That's cheap.",
    "Is it 3.14? Or 3.15?",
    "..?!",
]
ALPHABET = "ab .?!\n\t\"'.U.S.Dr.\u2026 \u00a0x1()[]\u00ab\u00bb;:-,"


def main() -> None:
    seg = pysbd.Segmenter(language="en", clean=False)
    differ = 0
    for text in CASES:
        a, b = [s.strip() for s in seg.segment(text)], [s.strip() for s in sentencex.segment("en", text)]
        if a != b:
            differ += 1
            print(f"{text!r}\n  pysbd:     {a}\n  sentencex: {b}")
    print(f"{differ} of {len(CASES)} cases split differently")
    rng = random.Random(1)
    texts = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))) for _ in range(3000)]
    squeeze = str.maketrans("", "", " \t\n\u00a0")
    lost = sum("".join(seg.segment(t)).translate(squeeze) != t.translate(squeeze) for t in texts)
    panics = 0
    for t in texts:
        try:
            sentencex.segment("en", t)
        except BaseException:            # pyo3's PanicException
            panics += 1
    print(f"random strings: pysbd lost characters in {lost} of {len(texts)}; sentencex panicked on {panics}")
    # what service/segment.py hands sentencex: non-ASCII spaces as ASCII ones, on a wider alphabet
    wide = ALPHABET + "\u2009\u3000\u0141\u0142\u0105\u0119\u00c9\u00e9\U0001F600\u4e2d\u3002\uff01\uff1f\u201c\u201d\u2018\u2019"
    rng = random.Random(3)
    panics = bad = 0
    for _ in range(20000):
        t = _ODD_SPACE.sub(" ", "".join(rng.choice(wide) for _ in range(rng.randint(0, 60))))
        try:
            bad += "".join(sentencex.segment("en", t)) != t
        except BaseException:
            panics += 1
    print(f"20000 random strings, non-ASCII spaces as ASCII: sentencex panicked on {panics}, pieces not adding "
          f"up in {bad}")
    page = " ".join(CASES[:-1]) * 2
    for name, run in (("pysbd", lambda: seg.segment(page)), ("sentencex", lambda: list(sentencex.segment("en", page)))):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            run()
            n += 1
        print(f"{name}: {(time.perf_counter() - t0) / n * 1e3 / len(page) * 1000:.2f} ms per 1000 characters")


if __name__ == "__main__":
    main()
