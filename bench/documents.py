"""`python -m bench.documents`: what cutting texts into sentences and putting them back costs the event loop,
per text, apart from the model (service/documents.py: prepare + combine, with results shaped as the engine's).

Prints microseconds per text for a one-sentence text (the common request), a 1000-character paragraph, and a
1000-character HTML fragment, each with and without attention. Run it wrapped: /work/tools/quiet.sh or on an idle
machine."""
from __future__ import annotations

import time

from service.documents import combine, prepare
from service.translator import Hypothesis, TranslationResult

SENTENCE = "I was born in Japan and lived there for ten years, and then moved to the U.S."
PARAGRAPH = ("Machine translation has improved a lot in recent years. Dr. Smith arrived at 3 p.m. on Monday. "
             "The price rose by 3.5 percent to $12.75.\n\nAnalysts were surprised... \"Are you coming?\" she "
             "asked. He works at Acme Inc. in New York. ") * 5
PAGE = ('<div class="post"><h2 title="A title">Machine translation today</h2>\n<p>It has improved a lot in '
        '<a href="/recent?years=5&amp;x=1">recent years</a>. Dr. Smith arrived at 3 p.m.</p>\n<ul><li>The price '
        "rose by 3.5 percent.</li><li>Analysts were <b>very</b> surprised.</li></ul><script>var x = 1 < 2;</script>"
        "<p>He works at Acme Inc. in New York. She asked &quot;why?&quot;</p></div>\n") * 3


def _result(text: str) -> TranslationResult:
    n_src, n_tgt = max(2, len(text) // 4), max(2, len(text) // 3)
    row = [1.0 / n_src] * n_src
    return TranslationResult([Hypothesis(text, -0.5, ["\u2581x"] * (n_tgt - 1), [row] * n_tgt)],
                             ["\u2581x"] * (n_src - 1) + ["</s>"])


def per_text_us(text: str, fmt: str, attention: bool, seconds: float = 1.0) -> tuple[float, int]:
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        doc = prepare(text, fmt)
        combine(doc, [_result(s) for s in doc.sentences], attention)
        n += 1
    return (time.perf_counter() - t0) / n * 1e6, len(prepare(text, fmt).sentences)


def main() -> None:
    for name, text, fmt in (("one sentence", SENTENCE, "text"), ("paragraph", PARAGRAPH[:1000], "text"),
                            ("HTML", PAGE[:1000], "html")):
        for attention in (False, True):
            us, k = per_text_us(text, fmt, attention)
            print(f"{name:13s} {len(text):5d} chars {k:3d} sentences  attention={str(attention):5s}  {us:8.0f} us")


if __name__ == "__main__":
    main()
