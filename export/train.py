"""`python -m export train`: corpus -> split -> tokenizers -> trained checkpoint (+ loss curve)."""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import (PAD, collate, encode_pairs, make_batches, read_tsv, split_by_source,
                   train_tokenizer, write_tsv)
from .model import Seq2Seq, Seq2SeqConfig
from service.placeholders import SYMBOLS, protect, protect_pair, rare_word, restore


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None,
                   help="English<TAB>Polish corpus to split (e.g. ../shared/data/eng-pol.tsv); not needed when OUT "
                        "already holds train/val.tsv (from `python -m export corpus`)")
    p.add_argument("--out", required=True, help="run directory: split, tokenizers, checkpoints, curves")
    p.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    p.add_argument("--vocab", type=int, default=4000, help="subword vocabulary per language")
    p.add_argument("--emb", type=int, default=256)
    p.add_argument("--enc-hidden", type=int, default=256)
    p.add_argument("--dec-hidden", type=int, default=512)
    p.add_argument("--attn", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping threshold")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--patience", type=int, default=3, help="early stopping: epochs without val-loss gain")
    p.add_argument("--max-minutes", type=float, default=0, help="stop after the epoch that passes this budget")
    p.add_argument("--max-len", type=int, default=60, help="drop training pairs longer than this (tokens)")
    p.add_argument("--val", type=int, default=1000, help="English sentences held out for validation")
    p.add_argument("--test", type=int, default=1500, help="English sentences held out for test")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--set-lr", type=float, default=None, help="on --resume: continue with this learning rate")
    p.add_argument("--resume-from", default=None,
                   help="on --resume without OUT/last.pt: a snapshot (python -m export snapshot) to continue from")
    p.add_argument("--quiet", action="store_true", help="no per-batch progress bar")
    p.add_argument("--placeholders", action="store_true",
                   help="numbers, URLs, e-mails and rare names as placeholder tokens (service/placeholders.py)")
    p.add_argument("--save-minutes", type=float, default=10,
                   help="also checkpoint inside an epoch this often (a stopped run resumes mid-epoch)")
    p.add_argument("--track", default=str(Path(__file__).resolve().parents[2] / "shared/data/dev/flores200-dev.eng-pol.tsv"),
                   help="a dev set whose greedy chrF (first 200 pairs) is logged each epoch ('' for none)")


def prepare(args, out: Path):
    """Split and tokenizers: created once, reused on --resume (the split is saved beside the checkpoint; a
    snapshot given by --resume-from brings its tokenizers).
    With --placeholders the tokenizers learn the placeholder symbols and the pairs are marked (numbers first,
    then rare names, which need the source tokenizer to tell what is rare)."""
    if not (out / "train.tsv").exists():
        pairs = read_tsv(args.data)
        train, val, test = split_by_source(pairs, args.val, args.test, args.seed)
        for name, part in (("train", train), ("val", val), ("test", test)):
            write_tsv(out / f"{name}.tsv", part)
        print(f"split: {len(train)} train / {len(val)} val / {len(test)} test pairs (seed {args.seed})", flush=True)
    train, val = read_tsv(out / "train.tsv"), read_tsv(out / "val.tsv")
    symbols = SYMBOLS if args.placeholders else []
    if getattr(args, "resume_from", None) and not (out / "spm_en.model").exists():
        for name, blob in torch.load(args.resume_from, weights_only=False)["tokenizers"].items():
            (out / name).write_bytes(blob)
    if not (out / "spm_en.model").exists():
        marked = [protect_pair(en, pl) for en, pl in train] if symbols else train
        train_tokenizer([p[0] for p in marked], out / "spm_en", args.vocab, symbols)
        train_tokenizer([p[1] for p in marked], out / "spm_pl", args.vocab, symbols)
    import sentencepiece as spm

    sp_en = spm.SentencePieceProcessor(model_file=str(out / "spm_en.model"))
    sp_pl = spm.SentencePieceProcessor(model_file=str(out / "spm_pl.model"))
    if symbols:
        rare = rare_word(sp_en)
        train = [protect_pair(en, pl, rare) for en, pl in train]
        val = [protect_pair(en, pl, rare) for en, pl in val]
        n = sum("⟦" in en for en, _ in train)
        print(f"placeholders: {n} of {len(train)} training pairs carry at least one", flush=True)
    return sp_en, sp_pl, train, val


def batch_loss(model, src, tin, tout, smoothing: float):
    logits = model(src, tin)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tout.reshape(-1),
                           ignore_index=PAD, label_smoothing=smoothing)


def train_step(model, opt, src, tin, tout, smoothing: float, clip: float) -> float:
    """One optimiser step on one batch (gradients clipped by norm) -> its loss."""
    loss = batch_loss(model, src, tin, tout, smoothing)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss.item()


@torch.no_grad()
def evaluate_loss(model, examples, batch_size: int) -> float:
    """Validation loss: plain cross-entropy per target token (no smoothing)."""
    model.eval()
    total, tokens = 0.0, 0
    for idx in make_batches(examples, batch_size, None):
        src, tin, tout = collate(examples, idx)
        n = int((tout != PAD).sum())
        total += batch_loss(model, src, tin, tout, 0.0).item() * n
        tokens += n
    model.train()
    return total / max(tokens, 1)


@torch.no_grad()
def sample_chrf(model, pairs, sp_en, sp_pl, n: int = 300, rare=None) -> float:
    """Greedy chrF on the first n pairs, with the PyTorch reference decoder. With `rare` (placeholders on),
    raw sources are protected and the outputs restored, as the service does."""
    import sacrebleu

    model.eval()
    hyps, refs = [], []
    pairs = pairs[:n]
    for i in range(0, len(pairs), 64):
        chunk = pairs[i:i + 64]
        marked = [protect(p[0], rare) if rare else (p[0], []) for p in chunk]
        ids = [s[:150] + [2] for s in sp_en.encode([m[0] for m in marked])]
        S = max(map(len, ids))
        src = torch.tensor([s + [PAD] * (S - len(s)) for s in ids])
        out = [sp_pl.decode(h) for h in model.greedy(src, max_len=2 * S + 10)]
        hyps += [restore(h, m[1]) if rare else h for h, m in zip(out, marked)]
        refs += [p[1] for p in chunk]
    model.train()
    return sacrebleu.corpus_chrf(hyps, [refs]).score


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(ep, [h["train_loss"] for h in history], "o-", label="train (label-smoothed)")
    ax[0].plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
    ax[0].set_xlabel("epoch"); ax[0].set_ylabel("cross-entropy per token"); ax[0].legend(); ax[0].grid(alpha=.3)
    ax[1].plot(ep, [h["val_chrf"] for h in history], "o-", color="C2")
    ax[1].set_xlabel("epoch"); ax[1].set_ylabel("greedy chrF (300 val pairs)"); ax[1].grid(alpha=.3)
    fig.suptitle("eng→pol attention seq2seq training")
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)


def run(args) -> Path:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sp_en, sp_pl, train_pairs, val_pairs = prepare(args, out)
    train = encode_pairs(train_pairs, sp_en, sp_pl, args.max_len)
    val = encode_pairs(val_pairs, sp_en, sp_pl, 10_000)

    cfg = Seq2SeqConfig(src_vocab=sp_en.get_piece_size(), tgt_vocab=sp_pl.get_piece_size(), emb=args.emb,
                        enc_hidden=args.enc_hidden, dec_hidden=args.dec_hidden, attn=args.attn,
                        cell=args.cell, dropout=args.dropout)
    model = Seq2Seq(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    history, start_epoch, best, bad = [], 1, math.inf, 0
    partial = None                                  # an epoch stopped part-way: its batch order and position
    resume = out / "last.pt" if (out / "last.pt").exists() else Path(args.resume_from) if args.resume_from else None
    if args.resume and resume:
        ck = torch.load(resume, weights_only=False)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ck["model"].items()})
        sched.load_state_dict(ck["sched"])
        if "opt" in ck:
            opt.load_state_dict(ck["opt"])
        else:                                       # a snapshot: fresh Adam moments, the saved learning rate
            for g in opt.param_groups:
                g["lr"] = ck["sched"].get("_last_lr", [args.lr])[0]
        history, start_epoch, best, bad = ck["history"], ck["epoch"] + 1, ck["best"], ck["bad"]
        partial = ck.get("partial")
        if args.set_lr:
            for g in opt.param_groups:
                g["lr"] = args.set_lr
        where = f", {partial['pos']} batches into epoch {start_epoch}" if partial else ""
        print(f"resumed after epoch {ck['epoch']}{where} (best val loss {best:.3f}, lr {opt.param_groups[0]['lr']:.1e})",
              flush=True)
    print(f"model: {cfg.cell}, {model.num_params() / 1e6:.2f}M parameters; {len(train)} training pairs", flush=True)
    rare = rare_word(sp_en) if args.placeholders else None
    raw_val = read_tsv(out / "val.tsv")
    track = read_tsv(args.track)[:200] if args.track and Path(args.track).exists() else []

    def save(epoch: int, partial_state=None) -> None:
        tmp = out / "last.pt.tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "config": cfg.to_dict(), "epoch": epoch, "history": history, "best": best, "bad": bad,
                    "partial": partial_state}, tmp)
        tmp.replace(out / "last.pt")                  # a run killed while saving keeps the previous checkpoint

    t_start = time.time()
    rng = random.Random(args.seed + start_epoch)
    for epoch in range(start_epoch, args.epochs + 1):
        if bad >= args.patience:
            break
        t0, seen_tokens, total = time.time(), 0, 0.0
        if partial:
            batches, first, total = partial["batches"], partial["pos"], partial["total"]
            seen_tokens = partial.get("tokens", 0)
            rng.setstate(partial["rng"])
            t0 -= partial["seconds"]
        else:
            batches, first = make_batches(train, args.batch_size, rng), 0
        partial, last_save = None, time.time()
        bar = None
        if not args.quiet:
            from tqdm import tqdm
            bar = tqdm(total=len(batches), initial=first, desc=f"epoch {epoch}", file=sys.stdout, mininterval=30,
                       ncols=100)
        for i in range(first, len(batches)):
            src, tin, tout = collate(train, batches[i])
            total += train_step(model, opt, src, tin, tout, args.label_smoothing, args.clip)
            seen_tokens += int((tout != PAD).sum())
            if bar is not None:
                bar.update(1)
                if i % 20 == 0:
                    bar.set_postfix(loss=f"{total / (i + 1):.3f}", tok_s=f"{seen_tokens / (time.time() - t0):.0f}")
            if time.time() - last_save > args.save_minutes * 60:
                save(epoch - 1, {"batches": batches, "pos": i + 1, "total": total, "rng": rng.getstate(),
                                 "seconds": time.time() - t0, "tokens": seen_tokens})
                last_save = time.time()
        if bar is not None:
            bar.close()
        val_loss = evaluate_loss(model, val, 128)
        chrf = sample_chrf(model, raw_val, sp_en, sp_pl, rare=rare)
        dev_chrf = sample_chrf(model, track, sp_en, sp_pl, n=200, rare=rare) if track else None
        sched.step(val_loss)
        dt = time.time() - t0
        history.append(dict(epoch=epoch, train_loss=total / len(batches), val_loss=val_loss, val_chrf=chrf,
                            lr=opt.param_groups[0]["lr"], seconds=dt, tokens_per_s=seen_tokens / dt, dev_chrf=dev_chrf))
        if val_loss < best - 1e-4:
            best, bad = val_loss, 0
            torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "epoch": epoch,
                        "val_loss": val_loss, "val_chrf": chrf}, out / "best.pt")
        else:
            bad += 1
        save(epoch)
        (out / "history.json").write_text(json.dumps(history, indent=1))
        plot_curves(history, out / "loss_curve.png")
        elapsed = time.time() - t_start
        left = (args.epochs - epoch) * elapsed / (epoch - start_epoch + 1)
        if args.max_minutes:
            left = max(0.0, min(left, args.max_minutes * 60 - elapsed))
        print(f"epoch {epoch}: train {history[-1]['train_loss']:.3f}  val {val_loss:.3f}  chrF {chrf:.1f}  "
              f"{'' if dev_chrf is None else f'dev chrF {dev_chrf:.1f}  '}{seen_tokens / dt:.0f} tok/s  {dt / 60:.1f} min  lr {opt.param_groups[0]['lr']:.1e}  "
              f"ETA <= {left / 60:.0f} min{'  (best)' if bad == 0 else ''}", flush=True)
        if args.max_minutes and elapsed > args.max_minutes * 60:
            print(f"time budget of {args.max_minutes} min reached", flush=True)
            break
    if bad >= args.patience:
        print(f"early stop: no validation gain for {args.patience} epochs", flush=True)
    return out
