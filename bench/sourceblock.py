"""What the whole-block source axis (service/translator.py SOURCE_BLOCK, 16) costs against the exact width
(a block of 1, as before), side by side in one process, alternating round by round:

1. the engine's compute ceiling (bench.run.compute_ceiling: a full batch of 64 rows, greedy and beam 3);
2. one sentence at a time: the median time of `translate_batch([s])`, greedy, over held-out sentences.

    python -m bench.sourceblock [--model models/eng-pol] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from bench.run import compute_ceiling, held_out_sentences
from service import translator as T

REPO = Path(__file__).resolve().parents[1]


def single(tr: T.Translator, sentences: list[str]) -> float:
    times = []
    for s in sentences:
        t0 = time.perf_counter()
        tr.translate_batch([s])
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(REPO / "models" / "eng-pol"))
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    model = Path(args.model)
    sentences = held_out_sentences(model)
    tr = T.Translator(model, provider="cpu", intra_threads=2, encoder_threads=1)
    tr.warmup()
    blocks, rows = (1, T.SOURCE_BLOCK), {}
    for r in range(args.rounds):
        for block in (blocks if r % 2 == 0 else blocks[::-1]):
            T.SOURCE_BLOCK = block
            got = rows.setdefault(block, {"greedy": [], "beam3": [], "single_ms": []})
            got["greedy"].append(compute_ceiling(tr, sentences[:400], n=2000)["sentences_per_s"])
            got["beam3"].append(compute_ceiling(tr, sentences[:400], n=600, warm=100, beam=3)["sentences_per_s"])
            got["single_ms"].append(single(tr, sentences[:300]))
            print(f"round {r + 1} block {block}: ceiling greedy {got['greedy'][-1]:.0f}/s, beam 3 "
                  f"{got['beam3'][-1]:.0f}/s, one sentence p50 {got['single_ms'][-1]:.2f} ms", flush=True)
    T.SOURCE_BLOCK = blocks[1]
    a, b = rows[blocks[1]], rows[blocks[0]]
    med = statistics.median
    print(f"block {blocks[1]} / block 1, medians over {args.rounds} rounds: ceiling greedy "
          f"{med(a['greedy']) / med(b['greedy']):.3f}x, beam 3 {med(a['beam3']) / med(b['beam3']):.3f}x; "
          f"one sentence's time {med(a['single_ms']) / med(b['single_ms']):.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
