"""The engine: continuous batching across requests (TGI's batching task is the model).

`await Engine.submit(texts, ...)` from the event loop; one worker thread owns the ORT sessions (they release
the GIL, so the event loop keeps serving). Every iteration the worker
  1. admits waiting sentences while the batch has rows free (one encoder run for all newcomers together),
  2. runs ONE decoder step for every active row (beam k = k rows; greedy is k = 1),
  3. retires finished sentences at once and answers a request when its last sentence is done.
A short request never waits for a long one to finish, and a newcomer never waits for a batch to drain.

`mode="static"` is the request-level dynamic batching of Triton/TorchServe (gather up to max_batch rows or
wait `batch_wait_ms`, decode that batch to completion, then take the next); max_batch=1 is no batching at all.
Both exist for the benchmark and for users who want them; continuous is the default.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from . import metrics
from .errors import ModelError, Overloaded, PayloadTooLarge, TranslatorError
from .translator import DecodeBatch, Sequence, TranslationResult, Translator

log = logging.getLogger(__name__)
MODES = ("continuous", "static")


@dataclass(eq=False)
class _Request:
    future: asyncio.Future
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
        self._queue: deque[Sequence] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.inflight = 0                         # submit() calls not yet answered (graceful shutdown waits on it)
        self._held: list[Sequence] = []           # static mode: finished, answered when the batch drains
        # Admit newcomers once this many rows are both free and waiting (or the batch is empty, or they have
        # waited a few steps). An encoder run costs about the same for 2 sentences as for 16 (it is sequential
        # over the source length), and through HTTP requests arrive one by one, so admitting a trickle every
        # step costs more than it gains (2 cores, HTTP, 32 clients: 1158/s admitting every step, 1330/s with
        # 8 rows / 3 steps; in-process, 269 admissions at ~5.6 ms each in 6 s when admitting every step).
        self.admit_rows = max(1, max_batch // 8)
        self.admit_after_steps = 3
        self._waited_steps = 0
        self._batch = self._new_batch()

    # -- event-loop side ------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="translator-engine", daemon=True)
        self._thread.start()

    async def stop(self, timeout: float = 30.0) -> None:
        """Finishes queued and active work (up to `timeout` s), then refuses what is left; new submits get 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
            metrics.QUEUE_SIZE.set(0)
        for q in left:
            self._fail(q.tag[0], Overloaded("the server is shutting down; retry on another instance"))

    @property
    def queued_sentences(self) -> int:
        return len(self._queue)

    def refuse_if_full(self, adding: int = 1) -> None:
        """Raises Overloaded (503 + Retry-After) when `adding` more sentences would not fit in the queue."""
        if len(self._queue) + adding > self.max_queue:
            raise Overloaded(f"the queue is full ({len(self._queue)} sentences waiting, limit "
                             f"{self.max_queue}); retry shortly")

    async def submit(self, texts: list[str], beam_size: int = 1, num_hypotheses: int = 1,
                     return_attention: bool = False) -> list[TranslationResult]:
        self.inflight += 1
        try:
            return await self._submit(texts, beam_size, num_hypotheses, return_attention)
        finally:
            self.inflight -= 1

    async def _submit(self, texts: list[str], beam_size: int, num_hypotheses: int,
                      return_attention: bool) -> list[TranslationResult]:
        if not texts:
            return []
        if len(texts) > self.max_queue:
            raise PayloadTooLarge(f"{len(texts)} texts in one request exceed the queue limit of {self.max_queue}")
        results, seqs = self.translator.sequences(texts, beam_size, num_hypotheses, return_attention)
        if not seqs:
            return results
        req = _Request(asyncio.get_running_loop().create_future(), results, len(seqs))
        for q in seqs:
            q.tag = (req, q.tag)
        with self._cond:
            if self._stopping or self._thread is None or not self._thread.is_alive():
                raise Overloaded("the translation engine is not running")
            self.refuse_if_full(len(seqs))
            self._queue.extend(seqs)
            metrics.QUEUE_SIZE.set(len(self._queue))
            self._cond.notify()
        try:
            return await req.future
        except asyncio.CancelledError:   # the client went away: its sentences leave the queue and the batch
            req.cancelled = True
            with self._cond:
                self._queue = deque(q for q in self._queue if q.tag[0] is not req)
                metrics.QUEUE_SIZE.set(len(self._queue))
            raise

    # -- worker thread --------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            batch = self._batch
            with self._cond:
                while not self._queue and not batch.rows and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._queue and not batch.rows:
                    return
                if self.mode == "static" and not batch.rows and self.batch_wait:
                    deadline = time.perf_counter() + self.batch_wait   # let a batch gather (Triton's delay)
                    while self._rows_waiting() < self.max_batch and not self._stopping:
                        if not self._cond.wait(max(0.0, deadline - time.perf_counter())):
                            break
                admit = self._take() if self.mode == "continuous" or not batch.rows else []
                metrics.QUEUE_SIZE.set(len(self._queue))
            try:
                self._iterate(batch, admit)
            except Exception:             # a bug here must not kill the worker and hang every later request
                log.exception("engine: unexpected error; failing the sentences in the batch")
                for q in [q for q in batch.seqs if q.result is None] + admit:
                    self._fail(q.tag[0], ModelError("internal error while decoding this request; it was logged"))
                self._batch, self._held = self._new_batch(), []

    def _new_batch(self) -> DecodeBatch:
        return DecodeBatch(self.translator, drop_finished=self.mode == "continuous")

    def _rows_waiting(self) -> int:
        return sum(q.k for q in self._queue)

    def _take(self) -> list[Sequence]:
        """Waiting sentences, oldest first, while their rows fit (a lone sentence always fits)."""
        rows, admit = self._batch.live_rows, []   # finished rows waiting to be dropped leave on admission
        if rows and self._queue and self.mode == "continuous":
            free = self.max_batch - rows
            self._waited_steps += 1
            if min(free, len(self._queue)) < self.admit_rows and self._waited_steps < self.admit_after_steps:
                return admit
        self._waited_steps = 0
        while self._queue and (rows + self._queue[0].k <= self.max_batch or rows == 0):
            q = self._queue.popleft()
            if not q.tag[0].cancelled:
                admit.append(q)
                rows += q.k
        return admit

    def _iterate(self, batch: DecodeBatch, admit: list[Sequence]) -> None:
        if any(q.tag[0].cancelled for q in batch.seqs):   # timed out, disconnected or failed elsewhere
            batch.keep([q for q in batch.seqs if not q.tag[0].cancelled])
            metrics.ACTIVE_SEQUENCES.set(_decoding(batch))
        if admit:
            now = time.perf_counter()
            for q in admit:
                metrics.QUEUE_DURATION.observe(now - q.tag[0].enqueued)
                metrics.INPUT_TOKENS.observe(len(q.src_ids))
            try:
                batch.add(admit)
            except Exception as e:        # fails only the newcomers; the running batch goes on
                self._fail_all(admit, e)
            metrics.INFERENCE_DURATION.labels(stage="encode").observe(time.perf_counter() - now)
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
        for q in done:
            req, i = q.tag
            req.results[i] = q.result
            metrics.GENERATED_TOKENS.observe(len(q.result.hypotheses[0].tokens))
            req.left -= 1
            if req.left == 0:
                _resolve(req, result=req.results)
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


def _decoding(batch: DecodeBatch) -> int:
    """Sentences still being decoded (finished ones may ride along until their rows are dropped)."""
    return sum(1 for q in batch.seqs if q.result is None)


def _resolve(req: _Request, result=None, exc: BaseException | None = None) -> None:
    """Completes a request's future from any thread (futures belong to their event loop)."""
    def done() -> None:
        if not req.future.done():
            req.future.set_exception(exc) if exc is not None else req.future.set_result(result)
    try:
        req.future.get_loop().call_soon_threadsafe(done)
    except RuntimeError:                  # the event loop is closed: nobody is waiting any more
        pass
