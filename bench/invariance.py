"""Batch invariance on whole evaluation sets: does a sentence translate the same alone as in a batch?

Every sentence of the Tatoeba test split, FLORES-200 dev and UD PUD is decoded alone (a batch of one) and in
batches of 64 rows (64 sentences greedy, 21 at beam 3: what the engine's batch holds), by the same in-process
Translator; the sentences whose translations differ are counted, and those whose best hypothesis's score
differs in any bit. One model directory or several, side by side:

    python -m bench.invariance models/eng-pol models/eng-pol-fp32 [--beams 1 3] [--limit N]

`--source-block 1` decodes with the exact source width, as the engine did before SOURCE_BLOCK
(service/translator.py), to show what the whole blocks change.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from export.data import read_tsv
from export.evaluate import evaluation_sets
from service import translator as T
from service.translator import Translator

ROWS = 64


def compare(tr: Translator, texts: list[str], beam: int) -> dict:
    per = max(1, ROWS // beam)
    t0 = time.perf_counter()
    batched = [r.hypotheses[0] for i in range(0, len(texts), per)
               for r in tr.translate_batch(texts[i:i + per], beam_size=beam)]
    t1 = time.perf_counter()
    alone = [tr.translate_batch([t], beam_size=beam)[0].hypotheses[0] for t in texts]
    t2 = time.perf_counter()
    differ = [(t, a.text, b.text) for t, a, b in zip(texts, alone, batched) if a.text != b.text]
    scores = sum(a.score != b.score for a, b in zip(alone, batched))
    return {"sentences": len(texts), "differ": len(differ), "scores_differ": scores, "examples": differ[:3],
            "batched_s": round(t1 - t0, 1), "alone_s": round(t2 - t1, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--beams", type=int, nargs="+", default=[1, 3])
    p.add_argument("--limit", type=int, default=0, help="only the first N sentences of each set")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--source-block", type=int, default=T.SOURCE_BLOCK)
    args = p.parse_args(argv)
    T.SOURCE_BLOCK = args.source_block
    rows = []
    for model in args.models:
        tr = Translator(model, provider="cpu")
        for path in evaluation_sets(Path(model)):
            texts = [s for s, _ in read_tsv(path)][:args.limit or None]
            for beam in args.beams:
                r = {"model": model, "set": path.name.split(".")[0], "beam": beam,
                     "source_block": args.source_block, **compare(tr, texts, beam)}
                rows.append(r)
                print(json.dumps({k: v for k, v in r.items() if k != "examples"}), flush=True)
                for t, a, b in r["examples"]:
                    print(f"  {t!r}\n    alone:   {a!r}\n    batched: {b!r}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    return 1 if any(r["differ"] or r["scores_differ"] for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
