"""Decoder-step cost of model directories side by side: the median time of one decoder step (onnxruntime, the
service's own Runtime, 2 intra-op threads) at batch sizes 1, 8, 32 and 64, source length 20, the models
alternating round by round in one process so the machine's drift hits them alike.

    python -m bench.stepcost models/eng-pol runs/export-lstm-e1
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from service.translator import Translator


def step_ms(tr: Translator, batch: int, src_len: int = 20, steps: int = 60) -> float:
    src = np.full((batch, src_len), 5, dtype=np.int64)
    src[:, -1] = tr.info.eos_id
    enc, keys, mask, state = tr.runtime.encode(src)
    y = np.full(batch, tr.info.bos_id, dtype=np.int64)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        _, state, _ = tr.runtime.step(y, state, enc, keys, mask)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("models", nargs="+")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    trs = {m: Translator(m, provider="cpu", intra_threads=2) for m in args.models}
    for batch in (1, 8, 32, 64):
        got = {m: [] for m in trs}
        for _ in range(args.rounds):
            for m, tr in trs.items():
                got[m].append(step_ms(tr, batch))
        base = statistics.median(got[args.models[0]])
        print(f"batch {batch:3d}: " + "  ".join(
            f"{m}: {statistics.median(v):.3f} ms ({statistics.median(v) / base:.2f}x)" for m, v in got.items()),
            flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
