"""The engine: continuous batching across requests (TGI's batching task is the model).

`await Engine.submit(texts, ...)` from the event loop; two worker threads own the model runs (ORT releases the
GIL, so the event loop keeps serving):
  - the encoder thread takes waiting sentences while the batch will have rows for them and runs the encoder
    once for all of them (the encoded rows wait in a ready list);
  - the decoder thread, every iteration, writes the ready rows into the batch (no model run), runs ONE decoder
    step for every active row (beam k = k rows; greedy is k = 1), and retires finished sentences at once,
    answering a request when its last sentence is done.
So newcomers are encoded on the other core while the batch decodes, a short request never waits for a long
one to finish, and a newcomer never waits for a batch to drain.

`mode="static"` is the request-level dynamic batching of Triton/TorchServe (gather up to max_batch rows or
wait `batch_wait_ms`, decode that batch to completion, then take the next; the next batch is encoded while
the current one decodes, as a Triton ensemble of encoder and decoder models would); max_batch=1 is no
batching at all. Both exist for the benchmark and for users who want them; continuous is the default.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .errors import ModelError, Overloaded, PayloadTooLarge, TranslatorError
from .translator import DecodeBatch, Sequence, TranslationResult, Translator

log = logging.getLogger(__name__)
MODES = ("continuous", "static")
GIL_SWITCH_S = 0.0005
SHUTTING_DOWN = "the server is shutting down; retry on another instance"
NOT_RUNNING = "the translation engine is not running"


@dataclass(eq=False)
class _Request:
    future: Any                           # asyncio.Future, or engine_process's pipe answer
    results: list
    left: int
    enqueued: float = field(default_factory=time.perf_counter)
    cancelled: bool = False


class Engine:
    def __init__(self, translator: Translator, max_batch: int = 64, max_queue: int = 1024,
                 mode: str = "continuous", batch_wait_ms: float = 0.0):
        if mode not in MODES:
            raise ValueError(f"batching mode must be one of {MODES}, got {mode!r}")
        self.translator, self.max_batch, self.max_queue = translator, max_batch, max_queue
        self.mode, self.batch_wait = mode, batch_wait_ms / 1000
        self._queue: deque[Sequence] = deque()    # waiting for the encoder
        self._ready: list[tuple[list[Sequence], Any]] = []   # encoded, waiting to join the batch
        self._ready_rows = 0
        self._encoding_rows = 0                   # rows the encoder thread is encoding now
        self.pending_out = None                   # a shared array whose [0] mirrors _pending (engine_process.py)
        self._pending = 0                         # sentences submitted and not yet in the batch (the queue limit)
        self._live = 0                            # rows decoding in the batch (published by the decoder thread)
        # The encoder may run this many rows ahead of the rows free now, so that rows freed by a step are filled
        # the next step instead of after an encoder run (HTTP, 32 clients, 2 rounds: 728 / 784 -> 789 / 789/s).
        self.lookahead = max_batch // 4
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.inflight = 0                         # submit() calls not yet answered (graceful shutdown waits on it)
        self._held: list[Sequence] = []           # static mode: finished, answered when the batch drains
        self._batch = self._new_batch()

    # -- event-loop side ------------------------------------------------------------------------
    def start(self) -> None:
        # The decoder thread needs the GIL between model runs, and a busy event loop holds it for up to the
        # switch interval (5 ms by default) each time: a convoy that stalls the batch when HTTP traffic is heavy.
        # At 0.5 ms (HTTP, 2 cores, queue 32; 32 clients / a flood of 400 no-backoff clients, sentences/s
        # answered): 573 / 210 by default, 641 / 363 at 0.5 ms, 651 / 335 at 0.1 ms.
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
        self._stopping = False
        self._threads = [threading.Thread(target=self._encode_loop, name="translator-encoder", daemon=True),
                         threading.Thread(target=self._decode_loop, name="translator-decoder", daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def running(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    async def stop(self, timeout: float = 30.0) -> None:
        """Finishes queued and active work (up to `timeout` s), then refuses what is left; new submits get 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            await asyncio.to_thread(t.join, timeout)
        with self._cond:
            left = list(self._queue) + [q for seqs, _ in self._ready for q in seqs]
            self._queue.clear()
            self._ready.clear()
            self._pending = self._ready_rows = 0
            metrics.QUEUE_SIZE.set(0)
        for q in left:
            self._fail(q.tag[0], Overloaded(SHUTTING_DOWN))

    @property
    def _pending(self) -> int:
        return self._pending_n

    @_pending.setter
    def _pending(self, n: int) -> None:
        self._pending_n = n
        if self.pending_out is not None:      # the server process reads it for its fast refusals
            self.pending_out[0] = n

    @property
    def queued_sentences(self) -> int:
        """Sentences waiting to join the batch (queued or being encoded)."""
        return self._pending

    def refuse_if_full(self, adding: int = 1) -> None:
        """Raises Overloaded (503 + Retry-After) when `adding` more sentences would not fit in the queue."""
        refuse_when_full(self._pending, adding, self.max_queue)

    async def submit(self, texts: list[str], beam_size: int = 1, num_hypotheses: int = 1,
                     return_attention: bool = False) -> list[TranslationResult]:
        """The translations of texts, once decoded (from the event loop)."""
        self.inflight += 1
        try:
            if not texts:
                return []
            future = asyncio.get_running_loop().create_future()
            req = self.enqueue(texts, beam_size, num_hypotheses, return_attention, future)
            try:
                return await future
            except asyncio.CancelledError:   # the client went away: its sentences leave the queue and the batch
                if req is not None:
                    self.cancel(req)
                raise
        finally:
            self.inflight -= 1

    def enqueue(self, texts: list[str], beam_size: int, num_hypotheses: int, return_attention: bool,
                future: Any) -> _Request | None:
        """Queues the texts' sentences (from any thread); `future` gets the results or the error, through its
        loop's call_soon_threadsafe (an asyncio future; engine_process.py passes one that sends them down a
        pipe). Raises at once what is wrong with the request itself (too many texts, too long, queue full).
        Returns the request (for cancel), or None when nothing needs the model (the future is already done)."""
        refuse_oversized(len(texts), self.max_queue)
        results, seqs = self.translator.sequences(texts, beam_size, num_hypotheses, return_attention)
        if not seqs:
            future.set_result(results)
            return None
        req = _Request(future, results, len(seqs))
        for q in seqs:
            q.tag = (req, q.tag)
        with self._cond:
            if self._stopping or not self.running:
                raise Overloaded(NOT_RUNNING)
            self.refuse_if_full(len(seqs))
            self._queue.extend(seqs)
            self._pending += len(seqs)
            metrics.QUEUE_SIZE.set(self._pending)
            self._cond.notify_all()
        return req

    def cancel(self, req: _Request) -> None:
        """Takes a request's sentences out of the queue, and out of the batch at the next step (any thread)."""
        req.cancelled = True
        with self._cond:
            before = len(self._queue)
            self._queue = deque(q for q in self._queue if q.tag[0] is not req)
            self._pending -= before - len(self._queue)
            metrics.QUEUE_SIZE.set(self._pending)

    # -- the encoder thread: newcomers are encoded while the decoder thread decodes -------------------
    def _encode_loop(self) -> None:
        while True:
            with self._cond:
                while not (seqs := self._take_waiting()):
                    if self._stopping and not self._queue:
                        self._cond.notify_all()
                        return
                    self._cond.wait()
            self._encode(seqs)

    def _take_waiting(self) -> list[Sequence]:
        """Waiting sentences, oldest first, while their rows fit in what the batch will have free (continuous:
        max_batch minus the rows decoding and those already encoded; static: the next batch). A lone sentence
        always fits. Called with the lock held."""
        used = self._ready_rows + (self._live - self.lookahead if self.mode == "continuous" else 0)
        rows, take = 0, []
        while self._queue and (used + rows + self._queue[0].k <= self.max_batch or used + rows == 0):
            q = self._queue.popleft()
            if q.tag[0].cancelled:
                self._pending -= 1
                continue
            take.append(q)
            rows += q.k
        self._encoding_rows = rows
        return take

    def _encode(self, seqs: list[Sequence]) -> None:
        """One encoder run for these sentences; they join the ready list (or fail alone)."""
        now = time.perf_counter()
        for q in seqs:
            metrics.QUEUE_DURATION.observe(now - q.tag[0].enqueued)
            metrics.INPUT_TOKENS.observe(len(q.src_ids))
        try:
            encoded = self._batch.encode(seqs)
        except Exception as e:            # fails only these newcomers; the running batch goes on
            self._fail_all(seqs, e)
            encoded = None
        metrics.INFERENCE_DURATION.labels(stage="encode").observe(time.perf_counter() - now)
        with self._cond:
            self._encoding_rows = 0
            if encoded is None:
                self._pending -= len(seqs)
            else:
                self._ready.append((seqs, encoded))
                self._ready_rows += sum(q.k for q in seqs)
            self._cond.notify_all()

    # -- the decoder thread -----------------------------------------------------------------------
    def _decode_loop(self) -> None:
        while True:
            batch = self._batch
            with self._cond:
                while not self._ready and not batch.rows:
                    if self._stopping and not self._queue and not self._encoding_rows:
                        return
                    self._cond.wait()
                if self.mode == "static" and not batch.rows and self.batch_wait:
                    deadline = time.perf_counter() + self.batch_wait   # let a batch gather (Triton's delay)
                    while self._ready_rows < self.max_batch and (self._queue or self._encoding_rows) \
                            and not self._stopping:
                        if not self._cond.wait(max(0.0, deadline - time.perf_counter())):
                            break
                groups = self._take_ready() if self.mode == "continuous" or not batch.rows else []
            try:
                self._iterate(batch, groups)
            except Exception:             # a bug here must not kill the worker and hang every later request
                log.exception("engine: unexpected error; failing the sentences in the batch")
                for q in [q for q in batch.seqs if q.result is None] + [q for seqs, _ in groups for q in seqs]:
                    self._fail(q.tag[0], ModelError("internal error while decoding this request; it was logged"))
                self._batch, self._held = self._new_batch(), []
            live = self._batch.live_rows
            if live < self._live and self._queue:          # rows freed: the encoder may take more
                with self._cond:
                    self._live = live
                    self._cond.notify_all()
            else:
                self._live = live

    def _new_batch(self) -> DecodeBatch:
        return DecodeBatch(self.translator, drop_finished=self.mode == "continuous")

    def _take_ready(self) -> list[tuple[list[Sequence], Any]]:
        """Encoded sentences, oldest first, while their rows fit in the batch (a lone sentence always fits). A
        group is split when only its leading sentences fit, so a big group (the encoder may run ahead of the
        free rows) never holds the batch below max_batch, nor pushes it over. Called with the lock held."""
        rows, take = self._batch.live_rows, []
        while self._ready:
            seqs, encoded = self._ready[0]
            j, r = 0, rows
            while j < len(seqs) and (r + seqs[j].k <= self.max_batch or r == 0):
                r, j = r + seqs[j].k, j + 1
            if j == 0:
                break
            if j < len(seqs):
                head, tail = self._batch.split_encoded(encoded, j)
                take.append((seqs[:j], head))
                self._ready[0] = (seqs[j:], tail)
            else:
                take.append(self._ready.pop(0))
            self._ready_rows -= r - rows
            self._pending -= j
            rows = r
            if j < len(seqs):
                break
        metrics.QUEUE_SIZE.set(self._pending)
        return take

    def _iterate(self, batch: DecodeBatch, groups: list[tuple[list[Sequence], Any]]) -> None:
        if any(q.tag[0].cancelled for q in batch.seqs):   # timed out, disconnected or failed elsewhere
            batch.keep([q for q in batch.seqs if not q.tag[0].cancelled])
            metrics.ACTIVE_SEQUENCES.set(_decoding(batch))
        for seqs, encoded in groups:      # writing encoded rows into the batch: no model run here
            try:
                batch.add(seqs, encoded)
            except Exception as e:        # fails only the newcomers; the running batch goes on
                self._fail_all(seqs, e)
        if not batch.rows:
            return
        decoding = _decoding(batch)
        metrics.BATCH_SIZE.observe(decoding)
        metrics.ACTIVE_SEQUENCES.set(decoding)
        t0 = time.perf_counter()
        try:
            done = batch.step()
        except Exception as e:            # fails only the sentences in this step
            self._fail_all([q for q in batch.seqs if q.result is None], e)
            self._held = []
            self._batch = self._new_batch()
            metrics.ACTIVE_SEQUENCES.set(0)
            return
        metrics.INFERENCE_DURATION.labels(stage="decode").observe(time.perf_counter() - t0)
        if self.mode == "static":               # answers leave when the whole batch has finished
            self._held += done
            done = self._held if not batch.rows else []
            if not batch.rows:
                self._held = []
        answered = []
        for q in done:
            req, i = q.tag
            req.results[i] = q.result
            metrics.GENERATED_TOKENS.observe(len(q.result.hypotheses[0].tokens))
            req.left -= 1
            if req.left == 0:
                answered.append(req)
        _resolve_all(answered)
        metrics.ACTIVE_SEQUENCES.set(_decoding(self._batch))

    def _fail_all(self, seqs: list[Sequence], e: Exception) -> None:
        log.error("model failure for %d sentences", len(seqs), exc_info=e)
        err = e if isinstance(e, TranslatorError) else ModelError(
            f"the model failed while decoding this request ({type(e).__name__}); the error was logged")
        for q in seqs:
            self._fail(q.tag[0], err)

    def _fail(self, req: _Request, exc: BaseException) -> None:
        req.cancelled = True              # its other sentences leave the queue/batch too
        _resolve(req, exc=exc)


def refuse_oversized(n_texts: int, max_queue: int) -> None:
    """413 for a request that could never fit in the queue (checked before the queue is: that is 503)."""
    if n_texts > max_queue:
        raise PayloadTooLarge(f"{n_texts} texts in one request exceed the queue limit of {max_queue}")


def refuse_when_full(pending: int, adding: int, max_queue: int) -> None:
    """503 (Overloaded, with Retry-After) when `adding` sentences do not fit beside `pending` in the queue."""
    if pending + adding > max_queue:
        raise Overloaded(f"the queue is full ({pending} sentences waiting, limit {max_queue}); retry shortly")


def _decoding(batch: DecodeBatch) -> int:
    """Sentences still being decoded (finished ones may ride along until their rows are dropped)."""
    return sum(1 for q in batch.seqs if q.result is None)


def _resolve_all(reqs: list[_Request]) -> None:
    """Answers these requests with their results: one wake-up of each event loop for all of them (each
    call_soon_threadsafe writes to the loop's self-pipe: ~60 µs of the decoder thread's time apiece here)."""
    by_loop: dict = {}
    for req in reqs:
        by_loop.setdefault(req.future.get_loop(), []).append(req)

    def done(batch: list[_Request]) -> None:
        for req in batch:
            if not req.future.done():
                req.future.set_result(req.results)
    for loop, batch in by_loop.items():
        try:
            loop.call_soon_threadsafe(done, batch)
        except RuntimeError:              # the event loop is closed: nobody is waiting any more
            pass


def _resolve(req: _Request, result=None, exc: BaseException | None = None) -> None:
    """Completes a request's future from any thread (futures belong to their event loop)."""
    def done() -> None:
        if not req.future.done():
            req.future.set_exception(exc) if exc is not None else req.future.set_result(result)
    try:
        req.future.get_loop().call_soon_threadsafe(done)
    except RuntimeError:                  # the event loop is closed: nobody is waiting any more
        pass
