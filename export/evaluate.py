"""`python -m export evaluate`: how a model directory translates, decoded by the service's own engine
(onnxruntime through service.translator) at the beams asked for, on the model's test split and the dev sets.

Per set and beam: sacrebleu BLEU and chrF; the repetition rate (share of outputs in which one word 4-gram
occurs three times or more: the looping the decoder guards against); the number-preservation rate (share of
the source's digit sequences found in the output); invented numbers (outputs with a digit sequence the source
does not have); and chrF by source length (words).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

from .data import read_tsv

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
BUCKETS = [(1, 10), (11, 20), (21, 30), (31, 10_000)]


def evaluation_sets(model_dir: Path) -> list[Path]:
    """The sets `make evaluate` scores: the model's test split, then FLORES-200 dev and UD PUD when present."""
    dev = [DEV / "flores200-dev.eng-pol.tsv", DEV / "ud-pud.eng-pol.tsv"]
    return [Path(model_dir) / "test.tsv"] + [p for p in dev if p.exists()]


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model directory, e.g. models/eng-pol")
    p.add_argument("--data", nargs="+", default=None,
                   help="English<TAB>Polish TSVs (default: the model's test.tsv, then FLORES-200 dev and UD PUD "
                        "from ../shared/data/dev when present)")
    p.add_argument("--beams", type=int, nargs="+", default=[1, 3, 5],
                   help="beam sizes to score (1 = greedy; 3 = the service's default)")
    p.add_argument("--limit", type=int, default=0, help="only the first N pairs of each set")
    p.add_argument("--write", action="store_true", help="store the figures in the model's model.json")
    p.add_argument("--out", default=None, help="also write the figures as JSON here")
    p.add_argument("--protect", choices=["names", "numbers", "off"], default="names",
                   help="for a model trained with placeholders: what is protected (numbers also covers URLs and "
                        "e-mails; names adds rare names, the service's rule); to measure each one's effect")


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


def repeats(text: str, n: int = 4, times: int = 3) -> bool:
    """Does some word n-gram occur `times` times or more?"""
    w = text.split()
    return any(c >= times for c in Counter(tuple(w[i:i + n]) for i in range(len(w) - n + 1)).values())


def digit_sequences(text: str) -> Counter:
    return Counter(re.findall(r"\d+", text))


def numbers_kept(src: str, hyp: str) -> tuple[int, int]:
    """(digit sequences of the source found in the output, digit sequences of the source), as multisets."""
    want = digit_sequences(src)
    return sum((want & digit_sequences(hyp)).values()), sum(want.values())


def invents_numbers(src: str, hyp: str) -> bool:
    """Does the output hold a digit sequence the source does not (or more often than the source)?"""
    return bool(digit_sequences(hyp) - digit_sequences(src))


def score(src: list[str], hyps: list[str], refs: list[str]) -> dict:
    import sacrebleu

    kept = [numbers_kept(s, h) for s, h in zip(src, hyps)]
    found, total = sum(k for k, _ in kept), sum(n for _, n in kept)
    buckets = {}
    for lo, hi in BUCKETS:
        idx = [i for i, s in enumerate(src) if lo <= len(s.split()) <= hi]
        if idx:
            name = f"{lo}-{hi}" if hi < 10_000 else f"{lo}+"
            buckets[name] = {"pairs": len(idx), "chrf": round(sacrebleu.corpus_chrf(
                [hyps[i] for i in idx], [[refs[i] for i in idx]]).score, 2)}
    return {"bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
            "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
            "repetition_rate": round(sum(map(repeats, hyps)) / max(len(hyps), 1), 4),
            "repeating_outputs": sum(map(repeats, hyps)),
            "numbers_preserved": round(found / total, 4) if total else None, "digit_sequences": total,
            "invented_numbers": sum(map(invents_numbers, src, hyps)),
            "chrf_by_source_words": buckets}


def evaluate(model_dir: Path, data: Path, beams=(1, 3, 5), limit: int = 0, tr=None) -> dict:
    """One set: figures per beam (the shape model.json's "quality" has held since format 1, plus new keys)."""
    from service.translator import Translator

    pairs = read_tsv(data)[:limit or None]
    src, refs = [p[0] for p in pairs], [p[1] for p in pairs]
    tr = tr or Translator(model_dir, provider="cpu")
    result = {"test_set": str(Path(data).name), "pairs": len(pairs), "metrics": "sacrebleu corpus BLEU / chrF, one reference per pair"}
    for k in beams:
        name = "greedy" if k == 1 else f"beam{k}"
        t0 = time.time()
        hyps = translate_all(tr, src, k, max(8, 64 // k))
        result[name] = {"beam_size": k, **score(src, hyps, refs), "seconds": round(time.time() - t0, 1)}
        r = result[name]
        print(f"{Path(data).name} {name}: BLEU {r['bleu']}  chrF {r['chrf']}  repeating {r['repeating_outputs']}"
              f"/{len(pairs)}  numbers kept {r['numbers_preserved']}  invented {r['invented_numbers']}  by length "
              + " ".join(f"{b}:{v['chrf']}" for b, v in r["chrf_by_source_words"].items()), flush=True)
    return result


def run(args) -> dict:
    from service.translator import Translator

    model_dir = Path(args.model)
    sets = [Path(d) for d in args.data] if args.data else evaluation_sets(model_dir)
    tr = Translator(model_dir, provider="cpu")
    if tr.rare is not None and args.protect != "names":
        tr.rare = (lambda word: False) if args.protect == "numbers" else None
    results = [evaluate(model_dir, d, args.beams, args.limit, tr) for d in sets]
    if args.write:
        meta = json.loads((model_dir / "model.json").read_text())
        meta["quality"] = results[0]
        meta["quality_dev"] = results[1:]
        (model_dir / "model.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(json.dumps(results, indent=1))
    return results[0]
