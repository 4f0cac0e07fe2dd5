"""`python -m export evaluate`: BLEU and chrF of a model directory on a test TSV, decoded by the
service's own engine (onnxruntime through service.translator), greedy and beam."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .data import read_tsv


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory, e.g. models/eng-pol")
    p.add_argument("--data", default=None, help="English<TAB>Polish test TSV (default: the model's test.tsv)")
    p.add_argument("--beams", type=int, nargs="+", default=[1, 3, 5],
                   help="beam sizes to score (1 = greedy; 3 = the service's default)")
    p.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    p.add_argument("--write", action="store_true", help="store the figures in the model's model.json")


def translate_all(tr, sources: list[str], beam: int, batch_sentences: int) -> list[str]:
    from tqdm import tqdm

    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))   # similar lengths batch well
    out = [""] * len(sources)
    with tqdm(total=len(sources), desc=f"beam {beam}", file=sys.stderr, mininterval=2, ncols=90) as bar:
        for i in range(0, len(order), batch_sentences):
            idx = order[i:i + batch_sentences]
            for j, r in zip(idx, tr.translate_batch([sources[j] for j in idx], beam_size=beam)):
                out[j] = r.text
            bar.update(len(idx))
    return out


def evaluate(model_dir: Path, data: Path, beams=(1, 3, 5), limit: int = 0) -> dict:
    import sacrebleu

    from service.translator import Translator

    pairs = read_tsv(data)[:limit or None]
    src, refs = [p[0] for p in pairs], [p[1] for p in pairs]
    tr = Translator(model_dir, provider="cpu")
    result = {"test_set": str(Path(data).name), "pairs": len(pairs), "metrics": "sacrebleu corpus BLEU / chrF, one reference per pair"}
    for k in beams:
        name = "greedy" if k == 1 else f"beam{k}"
        t0 = time.time()
        hyps = translate_all(tr, src, k, max(8, 64 // k))
        result[name] = {"beam_size": k, "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
                        "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
                        "seconds": round(time.time() - t0, 1)}
        print(f"{name}: BLEU {result[name]['bleu']}  chrF {result[name]['chrf']}  ({len(pairs)} pairs)", flush=True)
    return result


def run(args) -> dict:
    model_dir = Path(args.model)
    data = Path(args.data) if args.data else model_dir / "test.tsv"
    result = evaluate(model_dir, data, args.beams, args.limit)
    if args.write:
        meta = json.loads((model_dir / "model.json").read_text())
        meta["quality"] = result
        (model_dir / "model.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    print(json.dumps(result, indent=1))
    return result
