"""Scheduling policy: which sentences the encoder takes next, and which encoded ones join the batch.

Pure (TGI's `Queue.next_batch` is the model): no threads, no locks, no model runs, no clock of its own; the
engine (service/engine.py) calls it under its lock and carries out what it decides. So it can be unit-tested by
feeding it sentences and row counts (tests/test_scheduler.py).

A sentence (translator.Sequence) decoded with beam k takes k rows; its `tag[0]` is its request, whose `cancelled`
says whether anyone still wants it. `Scheduler` is continuous batching: newcomers join the running batch between
decoder steps whenever rows are free, and finished sentences leave at once. Baselines for the benchmark (request-
level batching) are subclasses in bench/baselines.py.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

Group = tuple[list, Any]          # encoded sentences and the encoder's output for them (opaque here)


class Scheduler:
    drop_finished = True          # finished sentences leave the batch the step they finish

    def __init__(self, max_batch: int = 64, lookahead: int | None = None):
        self.max_batch = max_batch
        # The encoder may run this many rows ahead of the rows free now, so that rows freed by a step are filled
        # the next step instead of after an encoder run.
        self.lookahead = max_batch // 4 if lookahead is None else lookahead
        self.waiting: deque = deque()            # waiting for the encoder, oldest first
        self.encoding_rows = 0                    # rows the encoder is encoding now
        self.encoded: list[Group] = []            # encoded, waiting to join the batch, oldest first
        self.encoded_rows = 0
        self.pending = 0                          # sentences not yet in the batch (waiting, encoding, encoded)

    def clear(self) -> None:
        """Forgets every sentence not yet in the batch (the engine has refused them)."""
        self.waiting.clear()
        self.encoded.clear()
        self.encoding_rows = self.encoded_rows = self.pending = 0

    def add(self, seqs: list) -> None:
        """Newcomers, in arrival order."""
        self.waiting.extend(seqs)
        self.pending += len(seqs)

    def drop_cancelled(self) -> None:
        """Takes the sentences of cancelled requests out of the waiting line."""
        kept = deque(q for q in self.waiting if not q.tag[0].cancelled)
        self.pending -= len(self.waiting) - len(kept)
        self.waiting = kept

    @property
    def idle(self) -> bool:
        """Nothing waiting, being encoded, or encoded."""
        return not self.waiting and not self.encoding_rows and not self.encoded

    # -- the encoder's next run ---------------------------------------------------------------------------
    def next_encode(self, live_rows: int) -> list:
        """Waiting sentences for one encoder run, oldest first, while their rows fit in what the batch will have
        free: max_batch minus the rows decoding (less the lookahead) and those already encoded. When nothing else
        is coming, the first sentence is taken whatever its width (a beam wider than the batch is decoded
        alone). Cancelled ones are dropped on the way."""
        return self._take_waiting(self.encoded_rows + live_rows - self.lookahead)

    def _take_waiting(self, used: int) -> list:
        rows, take = 0, []
        while self.waiting and (used + rows + self.waiting[0].k <= self.max_batch or (rows == 0 and used <= 0)):
            q = self.waiting.popleft()
            if q.tag[0].cancelled:
                self.pending -= 1
                continue
            take.append(q)
            rows += q.k
        self.encoding_rows = rows
        return take

    def done_encoding(self, seqs: list, encoded: Any | None, now: float = 0.0) -> None:
        """The encoder's output for `seqs` (from next_encode), or None when the run failed (they are answered
        with the error and leave)."""
        self.encoding_rows = 0
        if encoded is None:
            self.pending -= len(seqs)
        else:
            self.encoded.append((seqs, encoded))
            self.encoded_rows += sum(q.k for q in seqs)

    # -- the batch's next step ------------------------------------------------------------------------------
    def next_join(self, live_rows: int, batch_rows: int, split: Callable[[Any, int], tuple[Any, Any]],
                  now: float = 0.0) -> tuple[list[Group], float | None]:
        """Encoded sentences that join the batch before its next step, oldest first, while their rows fit (a lone
        sentence always fits). A group is split (`split(encoded, j)` -> the first j sentences' part and the
        rest's) when only its leading sentences fit, so a big group never holds the batch below max_batch, nor
        pushes it over. Returns (groups, seconds to wait for more before deciding again, or None)."""
        rows, take = live_rows, []
        while self.encoded:
            seqs, encoded = self.encoded[0]
            j, r = 0, rows
            while j < len(seqs) and (r + seqs[j].k <= self.max_batch or r == 0):
                r, j = r + seqs[j].k, j + 1
            if j == 0:
                break
            if j < len(seqs):
                head, tail = split(encoded, j)
                take.append((seqs[:j], head))
                self.encoded[0] = (seqs[j:], tail)
            else:
                take.append(self.encoded.pop(0))
            self.encoded_rows -= r - rows
            self.pending -= j
            rows = r
            if j < len(seqs):
                break
        return take, None

    def release(self, finished: list, batch_rows: int) -> list:
        """The finished sentences that are answered now (continuous batching: all of them, at once)."""
        return finished
