"""Decoding guards chosen on FLORES-200 dev: the n-gram repetition block and the length bounds of
service/translator.py, each setting decoded by the serving engine on the same sentences, side by side.

    python -m bench.guards --model models/eng-pol [--beam 3] [--out docs/benchmarks/guards.json]
    python -m bench.guards --model models/eng-pol --speed   # their cost: guards on vs off, alternating rounds

FLORES-200 dev is the set for choices (../shared/data/dev/README.md); UD PUD is reported for the chosen
setting only, as the untouched check.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from export.data import read_tsv
from export.evaluate import DEV, score, translate_all
from service import translator as T

SETTINGS = [  # (name, no-repeat n-gram limit on, min length ratio, max length ratio)
    ("no guards (before)", False, 0.0, 2.0),
    ("repeat block", True, 0.0, 2.0),
    ("repeat block, max 1.5x", True, 0.0, 1.5),
    ("repeat block, min 0.3x", True, 0.3, 2.0),
    ("repeat block, min 0.5x", True, 0.5, 2.0),
]


def apply(block: bool, lo: float, hi: float) -> None:
    T.MAX_REPEATS = 2 if block else 10_000
    T.MIN_LENGTH_RATIO, T.MAX_LENGTH_RATIO = lo, hi


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="models/eng-pol")
    p.add_argument("--beam", type=int, default=3)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--speed", action="store_true", help="time the guards instead of scoring them")
    args = p.parse_args(argv)
    if args.speed:
        return speed(args.model)
    tr = T.Translator(args.model, provider="cpu")
    rows = []
    for name, path in (("flores200-dev", DEV / "flores200-dev.eng-pol.tsv"), ("ud-pud", DEV / "ud-pud.eng-pol.tsv")):
        pairs = read_tsv(path)[:args.limit or None]
        src, refs = [s for s, _ in pairs], [r for _, r in pairs]
        for setting in (SETTINGS if name == "flores200-dev" else [SETTINGS[0], chosen]):
            apply(*setting[1:])
            hyps = translate_all(tr, src, args.beam, max(8, 64 // args.beam))
            r = {"set": name, "setting": setting[0], **score(src, hyps, refs)}
            r["mean_output_words"] = round(sum(len(h.split()) for h in hyps) / len(hyps), 2)
            rows.append(r)
            print(json.dumps({k: v for k, v in r.items() if k != "chrf_by_source_words"}), flush=True)
        if name == "flores200-dev":   # the best chrF among settings without repeating outputs
            ok = [(r["chrf"], s) for r, s in zip(rows, SETTINGS) if r["repeating_outputs"] == 0] or \
                 [(r["chrf"], s) for r, s in zip(rows, SETTINGS)]
            chosen = max(ok, key=lambda x: x[0])[1]
            print(f"chosen on FLORES-200 dev: {chosen[0]}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "beam": args.beam, "rows": rows}, indent=1))
    return 0


def speed(model: str, rounds: int = 4, batch: int = 32) -> int:
    """Sentences/s of translate_batch (batches of `batch` of the model's test sentences, greedy and beam 3) with
    the guards on and off, in alternating rounds in one process, so drift hits both alike."""
    import time

    src = [s for s, _ in read_tsv(Path(model) / "test.tsv")][:512]
    on, off = T.Translator(model, provider="cpu"), T.Translator(model, provider="cpu", guards=False)
    for beam in (1, 3):
        rates = {"on": [], "off": []}
        for _ in range(rounds):
            for name, tr in (("on", on), ("off", off)):
                t0 = time.perf_counter()
                for i in range(0, len(src), batch):
                    tr.translate_batch(src[i:i + batch], beam_size=beam)
                rates[name].append(len(src) / (time.perf_counter() - t0))
        med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
        print(f"beam {beam}: guards on {med['on']:.0f} / off {med['off']:.0f} sentences/s (medians of {rounds} "
              f"rounds, on/off {med['on'] / med['off']:.3f}); rounds on {[round(x) for x in rates['on']]} "
              f"off {[round(x) for x in rates['off']]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
