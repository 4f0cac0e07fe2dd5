"""The synchronous core: `Translator.translate_batch(texts, ...)`, like CTranslate2's. Knows nothing of HTTP.

One call decodes a list of sentences together: one encoder run for all of them, then one decoder step
per iteration for every unfinished row (beam k = k rows per sentence); rows of finished sentences are
dropped at once (the last rows move into them), so a short sentence stops costing compute when it ends.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sentencepiece as spm

from .errors import InvalidInput, ModelLoadError, PayloadTooLarge
from .placeholders import SYMBOLS, protect, rare_word, restore
from .runtime import ModelInfo, Runtime

# Guards against degenerate output, applied to every hypothesis (greedy and beam), chosen on FLORES-200 dev
# (docs/quality.md): no token n-gram of this size is produced a third time, and the output's length in
# target tokens stays between these multiples of the source's.
NO_REPEAT_NGRAM = 4
MAX_REPEATS = 2
MIN_LENGTH_RATIO = 0.5
MAX_LENGTH_RATIO = 2.0

# The batch's source axis (enc, keys, mask) is always a whole number of blocks of this many positions. The
# attention's softmax and sums over that axis are vectorised, with another code path for a partial block at
# the end; with whole blocks, a row's padding is only whole blocks of zeros, and its log-probs are bit for bit
# the same whatever the widest sentence beside it: a sentence translates the same alone and in any batch
# (tests/test_translator.py). 16 float32 lanes is AVX-512's width, a multiple of AVX2's 8 and NEON's 4.
SOURCE_BLOCK = 16


def source_width(tokens: int) -> int:
    """The source-axis width for a batch whose longest source has `tokens` tokens."""
    return -(-tokens // SOURCE_BLOCK) * SOURCE_BLOCK


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
                 inter_threads: int = 1, max_source_tokens: int = 256, max_output_tokens: int = 256,
                 io_binding: str | bool = "auto", encoder_threads: int = 0, guards: bool = True):
        self.model_dir = Path(model_dir)
        self.guards = guards        # False: the model's plain search, for parity checks against PyTorch
        self.info = ModelInfo.load(self.model_dir)
        files = self.info.files
        try:
            self.sp_src = spm.SentencePieceProcessor(model_file=str(self.model_dir / files.source_tokenizer))
            self.sp_tgt = spm.SentencePieceProcessor(model_file=str(self.model_dir / files.target_tokenizer))
        except Exception as e:  # sentencepiece raises OSError/RuntimeError for corrupt files
            raise ModelLoadError(f"cannot load the tokenizers in {self.model_dir}: {e}") from None
        if self.sp_src.get_piece_size() != self.info.src_vocab or self.sp_tgt.get_piece_size() != self.info.tgt_vocab:
            raise ModelLoadError(f"tokenizer vocabulary sizes in {self.model_dir} do not match model.json")
        self.runtime = Runtime(self.model_dir, self.info, provider, intra_threads, inter_threads, io_binding,
                               encoder_threads=encoder_threads)
        self.max_source_tokens = max_source_tokens
        self.max_output_tokens = max_output_tokens
        # a model trained with placeholders (model.json "placeholders": true) gets numbers, URLs, e-mails and
        # rare names as placeholder symbols, and its outputs get them back (service/placeholders.py)
        self.rare = rare_word(self.sp_src) if self.info.placeholders else None
        self.slot_ids = [self.sp_tgt.piece_to_id(p) for p in SYMBOLS] if self.info.placeholders else []
        # such a model never needs a digit of its own (every number of the source is in a placeholder), nor a
        # bare bracket of one: pieces it may not write, and the source pieces that lift the digit ban
        self.bracket_ids: list[int] = []
        self.digit_ids: list[int] = []
        self.source_digit_ids: frozenset[int] = frozenset()
        if self.info.placeholders:
            self.bracket_ids = _pieces(self.sp_tgt, lambda t: "⟦" in t or "⟧" in t, self.slot_ids)
            self.digit_ids = _pieces(self.sp_tgt, _has_digit, self.slot_ids)
            self.source_digit_ids = frozenset(_pieces(self.sp_src, _has_digit,
                                                      [self.sp_src.piece_to_id(p) for p in SYMBOLS]))

    @property
    def provider(self) -> str:
        return self.runtime.provider

    # -- tokens ---------------------------------------------------------------------------------
    def encode_source(self, text: str) -> list[int]:
        """Subword ids of one source sentence, with end-of-sentence; [] for a text in which the tokenizer finds
        nothing (empty, whitespace, or only characters its normalization drops, such as U+200B or U+FEFF)."""
        return self.encode_protected(text)[0]

    def encode_protected(self, text: str) -> tuple[list[int], list[str]]:
        """`encode_source`, and the spans replaced by placeholders (none unless the model has placeholders)."""
        text = " ".join(text.split())
        spans: list[str] = []
        if self.rare is not None and text:
            text, spans = protect(text, self.rare)
        ids = self.sp_src.encode(text) if text else []
        return (ids + [self.info.eos_id] if ids else []), spans

    def closed_for(self, ids: list[int]) -> list[int]:
        """Target pieces a sentence's output may not hold (besides placeholder slots the source does not have):
        for a model with placeholders, bare placeholder brackets, and digits unless the source (after
        `protect`) still holds one, so the model cannot invent a number."""
        if not self.slot_ids:
            return []
        return self.bracket_ids + ([] if self.source_digit_ids.intersection(ids) else self.digit_ids)

    def max_length_for(self, n_src: int) -> int:
        """Longest output allowed for a source of n_src tokens (Polish runs ~1.3x English in subwords)."""
        return min(self.max_output_tokens, int(MAX_LENGTH_RATIO * n_src) + 10)

    def min_length_for(self, n_src: int) -> int:
        """Shortest output allowed: end-of-sentence is not taken before this many tokens, so a long sentence
        cannot end half-way (n_src counts the source's end-of-sentence token)."""
        return int(MIN_LENGTH_RATIO * (n_src - 1)) if self.guards else 0

    def warmup(self) -> None:
        """Runs both graphs at a few shapes so the first real request does not pay for initialisation. Runs
        before serving starts, outside the source-token limit (a small TRANSLATOR_MAX_SOURCE_TOKENS must not
        stop the service from starting)."""
        limit, self.max_source_tokens = self.max_source_tokens, 1 << 30
        try:
            self.translate_batch(["Hello.", "This is a warm-up sentence for the service."], beam_size=2)
            self.translate_batch(["Warm up."])
        finally:
            self.max_source_tokens = limit

    # -- the public core ------------------------------------------------------------------------
    def translate_batch(self, texts: list[str], beam_size: int = 1, num_hypotheses: int = 1,
                        return_attention: bool = False, length_penalty: float = 1.0,
                        max_decoding_length: int | None = None) -> list[TranslationResult]:
        results, seqs = self.sequences(texts, beam_size, num_hypotheses, return_attention, length_penalty,
                                       max_decoding_length)
        if seqs:
            batch = DecodeBatch(self)
            batch.add(seqs)
            while batch.rows:
                batch.step()
            for seq in seqs:
                results[seq.tag] = seq.result
        return results  # type: ignore[return-value]

    def sequences(self, texts: list[str], beam_size: int = 1, num_hypotheses: int = 1,
                  return_attention: bool = False, length_penalty: float = 1.0,
                  max_decoding_length: int | None = None) -> tuple[list[TranslationResult | None], list[Sequence]]:
        """Validates and tokenizes texts -> (results, with blank texts already answered "", and one Sequence per
        other text, tagged with its index). Shared by translate_batch and the engine."""
        if beam_size < 1:
            raise InvalidInput(f"beam_size must be at least 1, got {beam_size}")
        if not 1 <= num_hypotheses <= beam_size:
            raise InvalidInput(f"num_hypotheses must be between 1 and beam_size ({beam_size}), got {num_hypotheses}")
        results: list[TranslationResult | None] = [None] * len(texts)
        seqs = []
        for i, text in enumerate(texts):
            try:
                text.encode("utf-8")   # a lone surrogate (possible in a Python str, not in JSON we accept) is not text
            except UnicodeEncodeError as e:
                raise InvalidInput(f"text {i} is not valid Unicode: it holds a lone surrogate "
                                   f"U+{ord(text[e.start]):04X} at character {e.start}") from None
            ids, spans = self.encode_protected(text)
            if len(ids) > self.max_source_tokens:
                raise PayloadTooLarge(f"text {i} has {len(ids)} subword tokens, which exceeds the limit of "
                                      f"{self.max_source_tokens}")
            if ids:
                seqs.append(Sequence(ids, beam_size, num_hypotheses, return_attention, length_penalty,
                                     max_decoding_length or self.max_length_for(len(ids)), tag=i,
                                     min_len=self.min_length_for(len(ids)), spans=spans, block=self.guards,
                                     slots=self.slot_ids, closed=self.closed_for(ids)))
            else:   # blank texts never reach the model
                results[i] = TranslationResult([Hypothesis("", 0.0, [], [] if return_attention else None)])
        return results, seqs


class Sequence:
    """One sentence being decoded with beam k (k = 1 is greedy): it occupies k rows of a DecodeBatch."""

    def __init__(self, src_ids: list[int], k: int = 1, nbest: int = 1, want_attn: bool = False,
                 length_penalty: float = 1.0, max_len: int = 100, tag=None, min_len: int = 0,
                 spans: list[str] | None = None, block: bool = True, slots: list[int] | tuple[int, ...] = (),
                 closed: list[int] | tuple[int, ...] = ()):
        self.spans = spans or []                                    # protected text, by placeholder slot
        self.block = block                                          # the guards below on
        # placeholder tokens (model.json "placeholders"): only the source's slots, each once per hypothesis;
        # a slot the source does not have would restore to nothing. `closed`: other tokens never allowed.
        self.open_slots = frozenset(slots[:len(self.spans)])
        self.closed = frozenset(slots[len(self.spans):]) | frozenset(closed) if block else frozenset()
        self.closed_ids = np.fromiter(self.closed, dtype=np.int64) if self.closed else None  # for beam rows
        self.src_ids, self.k, self.nbest, self.want_attn = src_ids, k, nbest, want_attn
        self.lp, self.max_len, self.tag = length_penalty, max_len, tag
        self.min_len = min(min_len, max_len - 1)
        self.t = 0                                                  # decoder steps taken
        self.finished: list[tuple[float, list[int], list | None]] = []
        self.result: TranslationResult | None = None

    def refused(self, toks: list[int], tok: int) -> bool:
        """Do the guards refuse `tok` after `toks`? (an n-gram repeated too often, a placeholder not allowed)"""
        if not self.block:
            return False
        if tok in self.closed or (tok in self.open_slots and tok in toks):
            return True
        return _repeats(toks, tok)

    def refusals(self, toks: list[int]) -> list[int]:
        """Every token `refused` after toks but those of `closed_ids` (for beam rows, which rank all tokens at
        once and mask `closed_ids` as one array)."""
        if not self.block:
            return []
        return _banned(toks) + [t for t in self.open_slots if t in toks]


class DecodeBatch:
    """Rows decoded together, one decoder step at a time. Sequences can be added between steps (one encoder
    run for all newcomers, written into free rows of the row store) and leave the step they finish: the
    sequences at the end of the batch move into the rows they free (`_layout`), so a retirement copies only
    as many rows as it frees. This is what both `translate_batch` and a continuous-batching scheduler run."""

    def __init__(self, translator: "Translator", drop_finished: bool = True):
        self.tr = translator
        self.drop_finished = drop_finished      # False: static batching, finished rows stay until all finish
        self.seqs: list[Sequence] = []          # in row order; each owns seq.k consecutive rows
        self.rows = 0
        self.tensors = translator.runtime.rows()   # enc, keys, mask, state: host arrays or bound OrtValues
        self.y = self.score = None
        self.toks: list[list[int]] = []         # per row: tokens so far
        self.attn: list[list[np.ndarray]] = []  # per row: attention rows so far (only for want_attn)

    @property
    def live_rows(self) -> int:
        """Rows still decoding (static batching keeps finished sentences' rows until the batch drains)."""
        if self.drop_finished:               # finished sentences leave the step they finish
            return self.rows
        return self.rows - sum(q.k for q in self.seqs if q.result is not None)

    def encode(self, seqs: list[Sequence]) -> tuple[list, np.ndarray]:
        """One encoder run for all these sentences -> what `add` takes. Touches nothing of the batch, so another
        thread may run it while this batch decodes (the engine's encoder thread does)."""
        S = source_width(max(len(q.src_ids) for q in seqs))
        src = np.full((len(seqs), S), self.tr.info.pad_id, dtype=np.int64)
        for b, q in enumerate(seqs):
            src[b, :len(q.src_ids)] = q.src_ids
        return self.tensors.encode(src), np.repeat(np.arange(len(seqs)), [q.k for q in seqs])

    def split_encoded(self, encoded: tuple[list, np.ndarray], j: int) -> tuple[tuple, tuple]:
        """`encode`'s result for sentences [:j] and [j:]."""
        new, rep = encoded
        parts = self.tensors.split(new, j)
        r = int(np.count_nonzero(rep < j))
        return (parts[0], rep[:r]), (parts[1], rep[r:] - j)

    def add(self, seqs: list[Sequence], encoded: tuple[list, np.ndarray] | None = None) -> None:
        """Adds these sentences after the batch's rows (encoding them first unless `encoded` is their `encode`)."""
        info = self.tr.info
        new, rep = encoded or self.encode(seqs)
        self.tensors.add(new, rep)              # their rows go after ours
        score = np.concatenate([[0.0] + [-math.inf] * (q.k - 1) for q in seqs])
        y = np.full(len(rep), info.bos_id, dtype=np.int64)
        if self.rows:
            score, y = np.concatenate([self.score, score]), np.concatenate([self.y, y])
        self.score, self.y = score, y
        self.seqs += seqs
        self.rows += len(rep)
        self.toks += [[] for _ in rep]
        self.attn += [[] for _ in rep]

    def step(self) -> list[Sequence]:
        """One decoder step for every row; returns the sequences that finished (their .result is set)."""
        eos = self.tr.info.eos_id
        logp, a = self.tensors.step(self.y, any(q.want_attn and q.result is None for q in self.seqs))
        V = logp.shape[1]
        pick = logp.argmax(1)                    # greedy rows: a row's running score does not change its argmax
        picks, picked = pick.tolist(), (self.score + logp[np.arange(len(pick)), pick]).tolist()
        done, offset = [], self._offsets()
        nxt: dict[int, list] = {}                # id(seq) -> its k new rows: (origin row, token, score, tokens, attn)
        for q in self.seqs:
            if q.result is not None:             # finished, riding along (static batching)
                continue
            k, o0 = q.k, offset[id(q)]
            q.t += 1
            early = q.t <= q.min_len             # end-of-sentence not allowed yet
            if k == 1:                           # greedy: plain Python numbers, no per-row numpy work
                tok, sc = picks[o0], picked[o0]
                if (tok == eos and early) or q.refused(self.toks[o0], tok):
                    tok = self._next_best(logp[o0], self.toks[o0], eos if early else -1, q)
                    sc = float(self.score[o0] + logp[o0, tok])
                ranked = [(o0, tok, sc)]
            else:
                block = logp[o0:o0 + k]
                bans = [(r, t) for r in range(k) for t in q.refusals(self.toks[o0 + r])]
                bans += [(r, eos) for r in range(k)] if early else []
                if bans or q.closed_ids is not None:   # banned continuations never rank (k rows stay alive)
                    block = block.copy()
                    if bans:
                        block[[r for r, _ in bans], [t for _, t in bans]] = -np.inf
                    if q.closed_ids is not None:
                        block[:, q.closed_ids] = -np.inf
                cand = (self.score[o0:o0 + k, None] + block).ravel()   # (k*V,)
                top = np.argpartition(-cand, 2 * k)[:2 * k]
                top = top[np.argsort(-cand[top])]
                ranked = [(o0 + c // V, c % V, sc) for c, sc in zip(top.tolist(), cand[top].tolist())]
            alive = []
            for rank, (o, tok, sc) in enumerate(ranked):
                if tok == eos or q.t >= q.max_len:
                    if rank < k:   # an end counts only if it ranks among the k best
                        path = self.toks[o] if tok == eos else self.toks[o] + [tok]
                        att = self.attn[o] + [a[o]] if q.want_attn else None
                        q.finished.append((sc / (len(path) + 1) ** q.lp, path, att))
                else:
                    alive.append((o, tok, sc))
                if len(alive) == k:
                    break
            if len(q.finished) >= k or q.t >= q.max_len or not alive:
                self._finish(q)
                done.append(q)
            else:
                nxt[id(q)] = [(o, tok, sc, self.toks[o] + [tok] if k > 1 else _append(self.toks[o], tok),
                               self.attn[o] + [a[o]] if q.want_attn else []) for o, tok, sc in alive]
        if self.drop_finished or not nxt:        # static batching: everyone stays until the batch drains
            keep = [q for q in self.seqs if id(q) in nxt]
        else:
            keep = self.seqs
        order = self._layout(keep)
        origins, new_tok, new_score, new_toks, new_attn = [], [], [], [], []
        for q in order:
            o0 = offset[id(q)]
            for o, tok, sc, toks, att in nxt.get(id(q)) or [(r, eos, 0.0, self.toks[r], []) for r in range(o0, o0 + q.k)]:
                origins.append(o); new_tok.append(tok); new_score.append(sc); new_toks.append(toks); new_attn.append(att)
        if order is not self.seqs:
            self._keep_sources(order, offset)
        # rows of one sequence share enc/keys/mask, so only the decoder state follows the beam origins
        self.tensors.reorder(origins)
        self.toks, self.attn = new_toks, new_attn
        self.score = np.array(new_score, dtype=np.float64)
        self.y = np.array(new_tok, dtype=np.int64)
        self.rows = len(origins)
        return done

    @staticmethod
    def _next_best(row: np.ndarray, toks: list[int], banned: int, q: Sequence) -> int:
        """The most probable token of this row that is not `banned` and that the guards do not refuse."""
        for tok in np.argsort(-row).tolist():
            if tok != banned and not q.refused(toks, tok):
                return tok
        return int(row.argmax())

    def _layout(self, keep: list[Sequence]) -> list[Sequence]:
        """The row order after the sequences not in `keep` leave: the last kept sequences move into the rows
        freed before them (when their beam widths match), everything else stays where it is, so leaving copies
        only the rows that move. Returns self.seqs itself when nothing changes."""
        if len(keep) == len(self.seqs):
            return self.seqs
        kept = {id(q) for q in keep}
        order = list(self.seqs)
        lo, hi = 0, len(order) - 1
        while True:
            while hi >= 0 and id(order[hi]) not in kept:   # sequences leaving from the end free their rows as they are
                hi -= 1
            while lo < hi and id(order[lo]) in kept:
                lo += 1
            if lo >= hi or order[lo].k != order[hi].k:     # done, or mixed beam widths: the rest stays in order
                break
            order[lo], order[hi] = order[hi], order[lo]
        return [q for q in order if id(q) in kept]

    def keep(self, seqs: list[Sequence]) -> None:
        """Drops every sequence not in seqs (e.g. its client went away), between steps."""
        wanted, offset = {id(q) for q in seqs}, self._offsets()
        rows = self._keep_sources(self._layout([q for q in self.seqs if id(q) in wanted]), offset)
        self.tensors.reorder(rows)
        idx = np.array(rows, dtype=np.int64)
        self.y, self.score = self.y[idx], self.score[idx]
        self.toks = [self.toks[r] for r in rows]
        self.attn = [self.attn[r] for r in rows]
        self.rows = len(rows)

    def _offsets(self) -> dict[int, int]:
        """id(sequence) -> its first row."""
        offset, off = {}, 0
        for q in self.seqs:
            offset[id(q)] = off
            off += q.k
        return offset

    def _keep_sources(self, order: list[Sequence], offset: dict[int, int]) -> list[int]:
        """The sequences in `order` keep their rows of enc/keys/mask, in that order (`offset`: where each was);
        the source axis may be trimmed to the longest source still there, in whole blocks. Returns the old row
        of each new row."""
        rows = [r for q in order for r in range(offset[id(q)], offset[id(q)] + q.k)]
        self.tensors.take(rows, source_width(max((len(q.src_ids) for q in order), default=0)))
        self.seqs = order
        return rows

    # host copies of the batch's tensors, for tests and debugging (with I/O binding on CUDA: a device->host copy)
    @property
    def enc(self) -> np.ndarray:
        return self.tensors.host()[0]

    @property
    def state(self) -> np.ndarray:
        return self.tensors.host()[3]

    def _finish(self, q: Sequence) -> None:
        sp, n = self.tr.sp_tgt, len(q.src_ids)
        best = sorted(q.finished, key=lambda h: -h[0])[:q.nbest]
        hyps = [Hypothesis(restore(sp.decode(p), q.spans) if q.spans else sp.decode(p), s,
                           [sp.id_to_piece(x) for x in p],
                           [row[:n].tolist() for row in att] if att is not None else None) for s, p, att in best]
        q.result = TranslationResult(hyps, [self.tr.sp_src.id_to_piece(x) for x in q.src_ids])


def _has_digit(text: str) -> bool:
    return any(c.isdigit() for c in text)


def _pieces(sp, test, skip) -> list[int]:
    """Ids of the pieces of tokenizer `sp` whose text passes `test`, but `skip` (a byte piece's text is its
    character if it is ASCII; other bytes are parts of characters)."""
    ids = []
    for i in range(sp.get_piece_size()):
        if i in skip or sp.is_control(i) or sp.is_unknown(i):
            continue
        if sp.is_byte(i):
            byte = int(sp.id_to_piece(i)[1:-1], 16)
            text = chr(byte) if byte < 0x80 else ""
        else:
            text = sp.id_to_piece(i)
        if test(text):
            ids.append(i)
    return ids


def _repeats(toks: list[int], tok: int, n: int = NO_REPEAT_NGRAM, limit: int = MAX_REPEATS) -> bool:
    """Would appending tok produce an n-gram that toks already holds `limit` times? (list.index runs in C and
    only visits earlier occurrences of tok, so this costs little per step.)"""
    if len(toks) < n + limit - 1:            # too short to hold `limit` earlier copies (they may overlap)
        return False
    head, found, i = toks[len(toks) - n + 1:], 0, n - 2
    while True:
        try:
            i = toks.index(tok, i + 1)
        except ValueError:
            return False
        if toks[i - n + 1:i] == head:
            found += 1
            if found >= limit:
                return True


def _banned(toks: list[int], n: int = NO_REPEAT_NGRAM, limit: int = MAX_REPEATS) -> list[int]:
    """Every token that `_repeats` would refuse after toks (for beam rows, which rank all tokens at once)."""
    if len(toks) < n + limit - 1:
        return []
    head, after, i = toks[len(toks) - n + 1:], {}, -1
    while True:
        try:
            i = toks.index(head[0], i + 1)
        except ValueError:
            break
        if i + n - 1 < len(toks) and toks[i:i + n - 1] == head:
            t = toks[i + n - 1]
            after[t] = after.get(t, 0) + 1
    return [t for t, c in after.items() if c >= limit]


def _append(xs: list, x) -> list:
    """Greedy rows never fork, so their token list can grow in place."""
    xs.append(x)
    return xs


def load_translator(settings) -> Translator:
    """The Translator a service.settings.Settings describes. Raises ModelLoadError with a one-line reason when
    the model directory or provider is unusable."""
    return Translator(settings.model_dir, provider=settings.provider, intra_threads=settings.intra_threads,
                      inter_threads=settings.inter_threads, max_source_tokens=settings.max_source_tokens,
                      io_binding=settings.io_binding, encoder_threads=settings.encoder_threads)
