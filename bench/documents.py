"""`python -m bench.documents`: what cutting texts into sentences and putting them back costs the event loop,
per text, apart from the model (service/documents.py: prepare + combine, with results shaped as the engine's).

Prints microseconds per text for a one-sentence text (the common request), a 1000-character paragraph, and a
1000-character HTML fragment, each with and without attention. With --model DIR it also times POST /translate
in-process (engine in threads, greedy): a paragraph of six sentences against its longest sentence alone and against
the six sentences as six requests one after another. Run it on an idle
machine."""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

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


SIX = ["Thank you very much for your help.", "I would like to buy a new car.", "Where is the train station?",
       "It is raining again.", "My brother lives in a small town near the sea.", "How are you?"]


def end_to_end(model_dir: Path, rounds: int = 30) -> None:
    from litestar.testing import TestClient

    from service.app import create_app
    from service.settings import Settings

    settings = Settings(model_dir=model_dir, provider="cpu", engine_process="off", default_beam=1)
    paragraph = " ".join(SIX[:3]) + "\n\n" + " ".join(SIX[3:])
    longest = max(SIX, key=len)
    with TestClient(create_app(settings)) as c:
        def ms(bodies: list[dict]) -> float:
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                for b in bodies:
                    assert c.post("/translate", json=b).status_code == 200
                times.append((time.perf_counter() - t0) * 1000)
            return statistics.median(times)
        ms([{"q": paragraph}])                                     # warm up
        print(f"POST /translate, median of {rounds}: paragraph of 6 sentences {ms([{'q': paragraph}]):.1f} ms; "
              f"its longest sentence alone {ms([{'q': longest}]):.1f} ms; "
              f"the 6 as 6 requests in a row {ms([{'q': s} for s in SIX]):.1f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", type=Path, help="also time POST /translate with this model directory")
    args = p.parse_args()
    for name, text, fmt in (("one sentence", SENTENCE, "text"), ("paragraph", PARAGRAPH[:1000], "text"),
                            ("HTML", PAGE[:1000], "html")):
        for attention in (False, True):
            us, k = per_text_us(text, fmt, attention)
            print(f"{name:13s} {len(text):5d} chars {k:3d} sentences  attention={str(attention):5s}  {us:8.0f} us")
    if args.model:
        end_to_end(args.model)


if __name__ == "__main__":
    main()
