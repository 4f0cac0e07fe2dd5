"""The synchronous core: `Translator.translate_batch(texts, ...)`, like CTranslate2's. Knows nothing of HTTP.

One call decodes a list of sentences together: one encoder run for all of them, then one decoder step
per iteration for every unfinished row (beam k = k rows per sentence); rows of finished sentences are
dropped at once, so a short sentence stops costing compute when it ends.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sentencepiece as spm

from .errors import InvalidInput, ModelLoadError
from .runtime import ModelInfo, Runtime


@dataclass
class Hypothesis:
    text: str
    score: float                       # log-probability / (length incl. end-of-sentence) ** length_penalty
    tokens: list[str]                  # target subword pieces, without the end-of-sentence token
    attention: list[list[float]] | None = None   # one row per target step (incl. </s>), one column per source token


@dataclass
class TranslationResult:
    hypotheses: list[Hypothesis]       # best first
    source_tokens: list[str] = field(default_factory=list)   # incl. the </s> the model saw

    @property
    def text(self) -> str:
        return self.hypotheses[0].text


class Translator:
    def __init__(self, model_dir: str | Path, provider: str = "auto", intra_threads: int = 0,
                 inter_threads: int = 1, max_source_tokens: int = 256, max_output_tokens: int = 256):
        self.model_dir = Path(model_dir)
        self.info = ModelInfo.load(self.model_dir)
        files = self.info.raw["files"]
        try:
            self.sp_src = spm.SentencePieceProcessor(model_file=str(self.model_dir / files["source_tokenizer"]))
            self.sp_tgt = spm.SentencePieceProcessor(model_file=str(self.model_dir / files["target_tokenizer"]))
        except Exception as e:  # sentencepiece raises OSError/RuntimeError for corrupt files
            raise ModelLoadError(f"cannot load the tokenizers in {self.model_dir}: {e}") from None
        if self.sp_src.get_piece_size() != self.info.src_vocab or self.sp_tgt.get_piece_size() != self.info.tgt_vocab:
            raise ModelLoadError(f"tokenizer vocabulary sizes in {self.model_dir} do not match model.json")
        self.runtime = Runtime(self.model_dir, self.info, provider, intra_threads, inter_threads)
        self.max_source_tokens = max_source_tokens
        self.max_output_tokens = max_output_tokens

    @property
    def provider(self) -> str:
        return self.runtime.provider

    # -- tokens ---------------------------------------------------------------------------------
    def encode_source(self, text: str) -> list[int]:
        """Subword ids of one source sentence, with end-of-sentence; [] for an empty/blank text."""
        text = " ".join(text.split())
        return self.sp_src.encode(text) + [self.info.eos_id] if text else []

    def max_length_for(self, n_src: int) -> int:
        """Longest output allowed for a source of n_src tokens (Polish runs ~1.3x English in subwords)."""
        return min(self.max_output_tokens, 2 * n_src + 10)

    def warmup(self) -> None:
        """Runs both graphs at a few shapes so the first real request does not pay for initialisation."""
        self.translate_batch(["Hello.", "This is a warm-up sentence for the service."], beam_size=2)
        self.translate_batch(["Warm up."])

    # -- the public core ------------------------------------------------------------------------
    def translate_batch(self, texts: list[str], beam_size: int = 1, num_hypotheses: int = 1,
                        return_attention: bool = False, length_penalty: float = 1.0,
                        max_decoding_length: int | None = None) -> list[TranslationResult]:
        if beam_size < 1:
            raise InvalidInput(f"beam_size must be at least 1, got {beam_size}")
        if not 1 <= num_hypotheses <= beam_size:
            raise InvalidInput(f"num_hypotheses must be between 1 and beam_size ({beam_size}), got {num_hypotheses}")
        ids = [self.encode_source(t) for t in texts]
        for t, s in zip(texts, ids):
            if len(s) > self.max_source_tokens:
                raise InvalidInput(f"text of {len(s)} subword tokens exceeds the limit of {self.max_source_tokens}")
        results: list[TranslationResult | None] = [None] * len(texts)
        todo = [i for i, s in enumerate(ids) if s]
        for i, s in enumerate(ids):
            if not s:
                results[i] = TranslationResult([Hypothesis("", 0.0, [], [] if return_attention else None)])
        if todo:
            hyps = self._search([ids[i] for i in todo], beam_size, num_hypotheses, return_attention,
                                length_penalty, max_decoding_length)
            for i, h in zip(todo, hyps):
                results[i] = TranslationResult(h, [self.sp_src.id_to_piece(x) for x in ids[i]])
        return results  # type: ignore[return-value]

    # -- search ---------------------------------------------------------------------------------
    def _search(self, src_ids, k, nbest, want_attn, lp, max_len_override):
        """Batched beam search (k = 1 is greedy). Returns, per sentence, its n-best Hypothesis list."""
        eos, B = self.info.eos_id, len(src_ids)
        lens = np.array([len(s) for s in src_ids])
        src = np.full((B, lens.max()), self.info.pad_id, dtype=np.int64)
        for b, s in enumerate(src_ids):
            src[b, :len(s)] = s
        enc, keys, mask, state = self.runtime.encode(src)
        max_len = [max_len_override or self.max_length_for(n) for n in lens]

        sent = np.arange(B)                                  # sentence of each group of k rows
        rows = np.repeat(sent, k)
        enc, keys, mask, state = enc[rows], keys[rows], mask[rows], state[rows]
        score = np.tile(np.array([0.0] + [-math.inf] * (k - 1)), B)   # (R,) running log-prob per row
        toks: list[list[int]] = [[] for _ in rows]
        attn: list[list[np.ndarray]] = [[] for _ in rows]
        y = np.full(len(rows), self.info.bos_id, dtype=np.int64)
        finished: list[list[tuple[float, list[int], list]]] = [[] for _ in range(B)]

        for t in range(1, max(max_len) + 1):
            logp, state, a = self.runtime.step(y, state, enc, keys, mask)
            n = len(sent)
            V = logp.shape[1]
            cand = (score[:, None] + logp).reshape(n, k * V)                      # (n, k*V)
            if k == 1:
                top = cand.argmax(1)[:, None]
            else:
                top = np.argpartition(-cand, 2 * k, axis=1)[:, :2 * k]
                top = np.take_along_axis(top, np.argsort(-np.take_along_axis(cand, top, 1), 1), 1)
            keep_groups, origins, new_tok, new_score = [], [], [], []
            for g, b in enumerate(sent):
                alive = []
                for rank, c in enumerate(top[g]):
                    o, tok, sc = g * k + c // V, int(c % V), float(cand[g, c])
                    if tok == eos or t >= max_len[b]:
                        if rank < k:   # an end counts only if it ranks among the k best
                            path = toks[o] if tok == eos else toks[o] + [tok]
                            att = attn[o] + [a[o]] if want_attn else None
                            finished[b].append((sc / (len(path) + 1) ** lp, path, att))
                    else:
                        alive.append((o, tok, sc))
                    if len(alive) == k:
                        break
                if len(finished[b]) >= k or t >= max_len[b] or not alive:
                    continue
                keep_groups.append(g)
                for o, tok, sc in alive:
                    origins.append(o); new_tok.append(tok); new_score.append(sc)
            if not keep_groups:
                break
            origins = np.array(origins)
            if len(keep_groups) < n:                          # drop finished sentences' rows
                grows = (np.array(keep_groups)[:, None] * k + np.arange(k)).ravel()
                smax = int(lens[sent[keep_groups]].max())     # and trim padding no one needs now
                enc, keys, mask = enc[grows, :smax], keys[grows, :smax], mask[grows, :smax]
                sent = sent[keep_groups]
            state = state[origins]
            toks = [toks[o] + [tok] for o, tok in zip(origins, new_tok)]
            if want_attn:
                attn = [attn[o] + [a[o]] for o in origins]
            score = np.array(new_score)
            y = np.array(new_tok, dtype=np.int64)

        out = []
        for b in range(B):
            best = sorted(finished[b], key=lambda h: -h[0])[:nbest]
            out.append([Hypothesis(self.sp_tgt.decode(p), s, [self.sp_tgt.id_to_piece(x) for x in p],
                                   [row[:lens[b]].tolist() for row in att] if want_attn else None)
                        for s, p, att in best])
        return out
