"""The attention encoder-decoder, readable top to bottom.

    Seq2SeqConfig -> Encoder -> Attention -> Decoder -> Seq2Seq

Encoder: a bidirectional recurrent layer stack (LSTM by default, GRU as a switch).
The LSTM cell is the textbook one (torch's fused kernel computes exactly these):

    f_t = sigmoid(x_t W_f + h_{t-1} U_f + b_f)        forget gate
    i_t = sigmoid(x_t W_i + h_{t-1} U_i + b_i)        input gate
    g_t = tanh   (x_t W_g + h_{t-1} U_g + b_g)        candidate cell input (C-hat)
    o_t = sigmoid(x_t W_o + h_{t-1} U_o + b_o)        output gate
    c_t = f_t * c_{t-1} + i_t * g_t                    cell state
    h_t = o_t * tanh(c_t)                              hidden state

and the GRU cell (``cell="gru"``) uses an update gate z_t (plays forget+input) and a reset
gate r_t (how much of h_{t-1} feeds the candidate).

The backward direction is run as a forward pass over each sentence reversed *within its own
length*, so padding never leaks into real positions: a sentence decodes to the same result
alone or inside a padded batch (the service relies on this).

Attention: additive (Bahdanau): score_j = v^T tanh(W_q s_{t-1} + W_k h_j), masked softmax over
all encoder states h_j. The key projection W_k h_j is computed once, in the encoder.

Decoder (Bahdanau style, the context is fed into the recurrent input, the "input feeding"
of this family): one step is
    a_t   = attention(s_{t-1}, keys, mask)                (B, S)
    ctx_t = sum_j a_tj h_j                                (B, 2H)
    s_t   = Cell([emb(y_{t-1}); ctx_t], s_{t-1})
    o_t   = tanh(W_o [s_t; ctx_t; emb(y_{t-1})])          (B, E)
    logp  = log_softmax(o_t E_tgt^T + b)                  (B, V)   output embedding tied
The decoder state travels as one tensor (B, L, K, H): L layers, K = 2 (h, c) for LSTM, 1 for GRU,
so the service treats both cells the same way.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from service.contract import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Seq2SeqConfig:
    src_vocab: int
    tgt_vocab: int
    emb: int = 256          # embedding size (source and target)
    enc_hidden: int = 256   # per direction; encoder states are 2 * enc_hidden wide
    dec_hidden: int = 512
    attn: int = 256         # additive attention width
    enc_layers: int = 1
    dec_layers: int = 1
    cell: str = "lstm"      # "lstm" | "gru"
    dropout: float = 0.3
    pad_id: int = PAD_ID    # service/contract.py: the ids every tokenizer is trained with
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID

    @property
    def state_parts(self) -> int:
        return 2 if self.cell == "lstm" else 1

    def to_dict(self) -> dict:
        return asdict(self)


def _rnn(cfg: Seq2SeqConfig, inp: int, hidden: int, layers: int) -> nn.Module:
    cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cfg.cell]
    return cls(inp, hidden, num_layers=layers, batch_first=True,
               dropout=cfg.dropout if layers > 1 else 0.0)


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first lengths[b] steps, keep the padding where it is.  x: (B, S, D)."""
    S = x.shape[1]
    t = torch.arange(S, device=x.device).unsqueeze(0)                    # (1, S)
    L = lengths.unsqueeze(1)                                             # (B, 1)
    idx = torch.where(t < L, L - 1 - t, t)                               # (B, S)
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class Encoder(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.src_vocab, cfg.emb, padding_idx=cfg.pad_id)
        self.fwd = _rnn(cfg, cfg.emb, cfg.enc_hidden, cfg.enc_layers)
        self.bwd = _rnn(cfg, cfg.emb, cfg.enc_hidden, cfg.enc_layers)
        self.drop = nn.Dropout(cfg.dropout)
        self.key = nn.Linear(2 * cfg.enc_hidden, cfg.attn, bias=False)     # W_k, precomputed once
        n = cfg.dec_layers * cfg.state_parts
        self.bridge = nn.Linear(2 * cfg.enc_hidden, n * cfg.dec_hidden)    # initial decoder state

    def forward(self, src: torch.Tensor):
        """src: (B, S) ids -> enc (B, S, 2H), keys (B, S, A), mask (B, S), state (B, L, K, Hd)."""
        cfg = self.cfg
        mask = src != cfg.pad_id                                          # (B, S)
        lengths = mask.sum(1).clamp(min=1)                                # (B,)
        x = self.drop(self.emb(src))                                      # (B, S, E)
        out_f, _ = self.fwd(x)                                            # (B, S, H)
        out_b, _ = self.bwd(reverse_within_length(x, lengths))           # (B, S, H), reversed time
        out_b = reverse_within_length(out_b, lengths)
        enc = torch.cat([out_f, out_b], dim=-1) * mask.unsqueeze(-1)      # (B, S, 2H)
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, cfg.enc_hidden)
        summary = torch.cat([out_f.gather(1, last).squeeze(1), out_b[:, 0]], dim=-1)  # (B, 2H)
        B = src.shape[0]
        state = torch.tanh(self.bridge(summary)).view(B, cfg.dec_layers, cfg.state_parts, cfg.dec_hidden)
        enc = self.drop(enc)
        return enc, self.key(enc), mask, state


class Attention(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.query = nn.Linear(cfg.dec_hidden, cfg.attn)                  # W_q
        self.v = nn.Linear(cfg.attn, 1, bias=False)                       # v

    def forward(self, s_prev, keys, enc, mask):
        """s_prev (B, Hd), keys (B, S, A), enc (B, S, 2H), mask (B, S) -> ctx (B, 2H), weights (B, S)."""
        scores = self.v(torch.tanh(self.query(s_prev).unsqueeze(1) + keys)).squeeze(-1)  # (B, S)
        scores = scores.masked_fill(~mask, -1e9)
        weights = torch.softmax(scores, dim=-1)                                          # (B, S)
        ctx = torch.bmm(weights.unsqueeze(1), enc).squeeze(1)                            # (B, 2H)
        return ctx, weights


class Decoder(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        self.emb = nn.Embedding(cfg.tgt_vocab, cfg.emb, padding_idx=cfg.pad_id)
        self.attention = Attention(cfg)
        cell = {"lstm": nn.LSTMCell, "gru": nn.GRUCell}[cfg.cell]
        sizes = [cfg.emb + 2 * cfg.enc_hidden] + [cfg.dec_hidden] * (cfg.dec_layers - 1)
        self.cells = nn.ModuleList(cell(n, cfg.dec_hidden) for n in sizes)
        self.pre_out = nn.Linear(cfg.dec_hidden + 2 * cfg.enc_hidden + cfg.emb, cfg.emb)
        self.out_bias = nn.Parameter(torch.zeros(cfg.tgt_vocab))          # weights tied to self.emb
        self.drop = nn.Dropout(cfg.dropout)

    def step(self, y_prev, state, enc, keys, mask):
        """One step. y_prev (B,), state (B, L, K, Hd) -> logits (B, V), new state, attention (B, S)."""
        e = self.drop(self.emb(y_prev))                                   # (B, E)
        top = state[:, -1, 0]                                             # (B, Hd): s_{t-1}, last layer
        ctx, weights = self.attention(top, keys, enc, mask)               # (B, 2H), (B, S)
        x = torch.cat([e, ctx], dim=-1)
        new = []
        for i, cell in enumerate(self.cells):
            if self.cfg.cell == "lstm":
                h, c = cell(x, (state[:, i, 0], state[:, i, 1]))
                new.append(torch.stack([h, c], dim=1))                    # (B, 2, Hd)
            else:
                h = cell(x, state[:, i, 0])
                new.append(h.unsqueeze(1))                                # (B, 1, Hd)
            x = self.drop(h) if i + 1 < len(self.cells) else h
        o = torch.tanh(self.pre_out(torch.cat([x, ctx, e], dim=-1)))      # (B, E)
        logits = F.linear(self.drop(o), self.emb.weight, self.out_bias)   # (B, V)
        return logits, torch.stack(new, dim=1), weights


class Seq2Seq(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def forward(self, src, tgt_in):
        """Teacher forcing. src (B, S), tgt_in (B, T) starting with BOS -> logits (B, T, V)."""
        enc, keys, mask, state = self.encoder(src)
        outs = []
        for t in range(tgt_in.shape[1]):
            logits, state, _ = self.decoder.step(tgt_in[:, t], state, enc, keys, mask)
            outs.append(logits)
        return torch.stack(outs, dim=1)

    @torch.no_grad()
    def greedy(self, src, max_len: int = 100):
        """Reference greedy decode (for parity checks): src (B, S) -> list of id lists."""
        enc, keys, mask, state = self.encoder(src)
        B = src.shape[0]
        y = torch.full((B,), self.cfg.bos_id, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        out = [[] for _ in range(B)]
        for _ in range(max_len):
            logits, state, _ = self.decoder.step(y, state, enc, keys, mask)
            y = logits.argmax(-1)
            for b in range(B):
                if not done[b]:
                    if y[b].item() == self.cfg.eos_id:
                        done[b] = True
                    else:
                        out[b].append(y[b].item())
            if done.all():
                break
        return out

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
