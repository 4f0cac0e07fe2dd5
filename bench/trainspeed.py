"""Training speed of model configurations side by side: target tokens per second of full training steps
(forward, loss, backward, clipping, Adam) on the same batches of a run's corpus, the configurations
alternating round by round in one process so the machine's drift hits them alike. It is what an epoch costs
on this machine: seconds per epoch = the run's training target tokens / tokens per second.

    python -m bench.trainspeed --run runs/lstm lstm:256:256:512:256 gru:256:256:512:256 lstm:128:128:256:128

A configuration is cell:emb:enc_hidden:dec_hidden:attn. Needs torch (the train extra).
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import sentencepiece as spm
import torch

from export.data import PAD, collate, encode_pairs, make_batches, read_tsv
from export.model import Seq2Seq, Seq2SeqConfig
from export.train import train_step


def parse(spec: str, src_vocab: int, tgt_vocab: int) -> Seq2SeqConfig:
    cell, emb, enc, dec, attn = spec.split(":")
    return Seq2SeqConfig(src_vocab=src_vocab, tgt_vocab=tgt_vocab, emb=int(emb), enc_hidden=int(enc),
                         dec_hidden=int(dec), attn=int(attn), cell=cell)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", help="cell:emb:enc_hidden:dec_hidden:attn")
    p.add_argument("--run", default="runs/lstm", help="a run directory (train.tsv and its tokenizers)")
    p.add_argument("--batches", type=int, default=20, help="training steps per configuration and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-len", type=int, default=100)
    p.add_argument("--out", default=None, help="also write the figures here as JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    run = Path(args.run)
    sp_en = spm.SentencePieceProcessor(model_file=str(run / "spm_en.model"))
    sp_pl = spm.SentencePieceProcessor(model_file=str(run / "spm_pl.model"))
    pairs = read_tsv(run / "train.tsv")
    train = encode_pairs(pairs, sp_en, sp_pl, args.max_len)
    epoch_tokens = sum(len(t) for _, t in train)
    # the same random sample of the epoch's (length-bucketed, shuffled) batches for every configuration
    batches = random.Random(0).sample(make_batches(train, 64, random.Random(1)), args.batches)
    data = [collate(train, b) for b in batches]
    tokens = sum(int((tout != PAD).sum()) for _, _, tout in data)
    models = {}
    for spec in args.configs:
        torch.manual_seed(0)
        model = Seq2Seq(parse(spec, sp_en.get_piece_size(), sp_pl.get_piece_size())).train()
        models[spec] = (model, torch.optim.Adam(model.parameters(), lr=1e-3))
    rates = {spec: [] for spec in models}
    for r in range(args.rounds + 1):               # round 0 warms up (allocator, thread pool) and is not kept
        for spec, (model, opt) in models.items():
            t0 = time.perf_counter()
            for src, tin, tout in data:
                train_step(model, opt, src, tin, tout, 0.1, 1.0)
            if r:
                rates[spec].append(tokens / (time.perf_counter() - t0))
    base = statistics.median(rates[args.configs[0]])
    out = []
    print(f"{len(train)} training pairs, {epoch_tokens} target tokens per epoch; {args.batches} batches of 64 "
          f"({tokens} target tokens) per configuration and round, {args.rounds} rounds, {args.threads} threads")
    for spec, (model, _) in models.items():
        med = statistics.median(rates[spec])
        row = {"config": spec, "parameters": model.num_params(), "tokens_per_s": round(med),
               "rounds": [round(x) for x in rates[spec]], "minutes_per_epoch": round(epoch_tokens / med / 60, 1),
               "speed_vs_first": round(med / base, 3)}
        out.append(row)
        print(f"{spec:24s} {row['parameters'] / 1e6:5.2f}M params  {row['tokens_per_s']:6d} tok/s "
              f"(rounds {row['rounds']})  {row['minutes_per_epoch']:5.1f} min/epoch  {row['speed_vs_first']:.2f}x")
    if args.out:
        Path(args.out).write_text(json.dumps({"epoch_tokens": epoch_tokens, "configs": out}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
