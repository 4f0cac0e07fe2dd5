"""Corpus reading, the seeded split by English sentence, subword tokenizers and batching."""
from __future__ import annotations

import random
from pathlib import Path

import sentencepiece as spm

from service.contract import BOS_ID as BOS, EOS_ID as EOS, PAD_ID as PAD, UNK_ID as UNK


def read_tsv(path: str | Path) -> list[tuple[str, str]]:
    """English<TAB>Polish per line; blank or malformed lines are skipped."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2 and parts[0].strip() and parts[1].strip():
                pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def write_tsv(path: str | Path, pairs: list[tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for en, pl in pairs:
            f.write(f"{en}\t{pl}\n")


def split_by_source(pairs, n_val: int, n_test: int, seed: int):
    """Split so that no English sentence is on two sides; all its translations go together."""
    sources = sorted({en for en, _ in pairs})
    random.Random(seed).shuffle(sources)
    n_val = min(n_val, len(sources) // 10 or 1)
    n_test = min(n_test, len(sources) // 10 or 1)
    val_src, test_src = set(sources[:n_val]), set(sources[n_val:n_val + n_test])
    train = [p for p in pairs if p[0] not in val_src and p[0] not in test_src]
    val = [p for p in pairs if p[0] in val_src]
    test = [p for p in pairs if p[0] in test_src]
    return train, val, test


def train_tokenizer(sentences: list[str], prefix: Path, vocab_size: int,
                    symbols: list[str] = ()) -> spm.SentencePieceProcessor:
    """A SentencePiece unigram model with fixed special ids: pad 0, bos 1, eos 2, unk 3; `symbols` (the
    placeholders) are single pieces, and characters outside the vocabulary fall back to bytes, not unk."""
    # The vocabulary cannot be larger than what the text supports (tiny fixture corpora).
    chars = len(set("".join(sentences)))
    vocab_size = max(min(vocab_size, len(set(" ".join(sentences).split())) + chars + 4), chars + 8)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_prefix=str(prefix), vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, pad_id=PAD, bos_id=BOS, eos_id=EOS, unk_id=UNK,
        hard_vocab_limit=False, num_threads=2, minloglevel=2, input_sentence_size=0,
        user_defined_symbols=list(symbols), byte_fallback=bool(symbols),
    )
    return spm.SentencePieceProcessor(model_file=f"{prefix}.model")


def encode_pairs(pairs, sp_src, sp_tgt, max_len: int):
    """-> list of (src ids + EOS, tgt ids + EOS), dropping pairs longer than max_len tokens."""
    out = []
    src_ids = sp_src.encode([p[0] for p in pairs])
    tgt_ids = sp_tgt.encode([p[1] for p in pairs])
    for s, t in zip(src_ids, tgt_ids):
        if len(s) < max_len and len(t) < max_len:
            out.append((s + [EOS], t + [EOS]))
    return out


def make_batches(examples, batch_size: int, rng: random.Random | None):
    """Length-bucketed batches (little padding); shuffled order when rng is given."""
    order = sorted(range(len(examples)),
                   key=lambda i: (len(examples[i][0]) + (rng.random() if rng else 0), len(examples[i][1])))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng:
        rng.shuffle(batches)
    return batches


def collate(examples, idx):
    """-> src (B, S), tgt_in (B, T) with BOS, tgt_out (B, T) with EOS, all padded with PAD."""
    import torch

    src = [examples[i][0] for i in idx]
    tgt = [examples[i][1] for i in idx]
    S, T = max(map(len, src)), max(map(len, tgt))
    src_t = torch.full((len(idx), S), PAD, dtype=torch.long)
    tin = torch.full((len(idx), T), PAD, dtype=torch.long)
    tout = torch.full((len(idx), T), PAD, dtype=torch.long)
    for b, (s, t) in enumerate(zip(src, tgt)):
        src_t[b, :len(s)] = torch.tensor(s)
        tin[b, :len(t)] = torch.tensor([BOS] + t[:-1])
        tout[b, :len(t)] = torch.tensor(t)
    return src_t, tin, tout
