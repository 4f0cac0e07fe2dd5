"""Batches requests across clients: `await Batcher.submit(texts, ...)` from the event loop, one worker thread
owns the translator (ORT releases the GIL, so the event loop keeps serving while the model runs).

Request-level batching (a continuous-batching engine replaces it later): each round the worker takes the
oldest waiting request plus every other waiting request with the same decoding options, up to `max_batch`
sentences (a single request larger than that is taken alone, whole), and runs ONE `translate_batch` for them.
If that call fails, each request of the batch is retried alone, so a failure reaches only its own request.
The queue is bounded in sentences: beyond `max_queue` a request is refused at once with `Overloaded` (503).
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
from .translator import TranslationResult, Translator

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Request:
    texts: list[str]
    options: tuple[int, int, bool]           # (beam_size, num_hypotheses, return_attention): batches share these
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(self, translator: Translator, max_batch: int = 64, max_queue: int = 1024):
        self.translator, self.max_batch, self.max_queue = translator, max_batch, max_queue
        self._queue: deque[_Request] = deque()
        self._waiting = 0                     # sentences in _queue
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- event-loop side ------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="translator-batcher", daemon=True)
        self._thread.start()

    async def stop(self, timeout: float = 30.0) -> None:
        """Finishes what is queued (up to `timeout` seconds), then refuses anything left; new submits get 503."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
        with self._cond:
            left, self._waiting = list(self._queue), 0
            self._queue.clear()
            metrics.QUEUE_SIZE.set(0)
        for r in left:
            _resolve(r, exc=Overloaded("the server is shutting down; retry on another instance"))

    async def submit(self, texts: list[str], beam_size: int = 1, num_hypotheses: int = 1,
                     return_attention: bool = False) -> list[TranslationResult]:
        if not texts:
            return []
        if len(texts) > self.max_queue:
            raise PayloadTooLarge(f"{len(texts)} texts in one request exceed the queue limit of {self.max_queue}")
        req = _Request(list(texts), (beam_size, num_hypotheses, return_attention),
                       asyncio.get_running_loop().create_future())
        with self._cond:
            if self._stopping or self._thread is None or not self._thread.is_alive():
                raise Overloaded("the translation engine is not running")
            if self._waiting + len(texts) > self.max_queue:
                raise Overloaded(f"the queue is full ({self._waiting} sentences waiting, limit {self.max_queue}); "
                                 "retry shortly")
            self._queue.append(req)
            self._waiting += len(texts)
            metrics.QUEUE_SIZE.set(self._waiting)
            self._cond.notify()
        try:
            return await req.future
        except asyncio.CancelledError:   # the client went away: drop the request if the worker has not taken it
            with self._cond:
                if req in self._queue:
                    self._queue.remove(req)
                    self._waiting -= len(req.texts)
                    metrics.QUEUE_SIZE.set(self._waiting)
            raise

    @property
    def queued_sentences(self) -> int:
        return self._waiting

    # -- worker thread --------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:       # stopping, and everything queued has been served
                    return
                batch = self._take()
                self._waiting -= sum(len(r.texts) for r in batch)
                metrics.QUEUE_SIZE.set(self._waiting)
            now = time.perf_counter()
            for r in batch:
                metrics.QUEUE_DURATION.observe(now - r.enqueued)
            try:
                self._run(batch)
            except Exception:             # a bug here must not kill the worker and hang every later request
                log.exception("batcher: unexpected error")
                for r in batch:
                    _resolve(r, exc=ModelError("internal error while scheduling this request; it was logged"))

    def _take(self) -> list[_Request]:
        """The oldest request, plus later ones with the same options while the batch stays <= max_batch."""
        head = self._queue.popleft()
        batch, n, rest = [head], len(head.texts), deque()
        for r in self._queue:
            if r.options == head.options and n + len(r.texts) <= self.max_batch:
                batch.append(r)
                n += len(r.texts)
            else:
                rest.append(r)
        self._queue = rest
        return batch

    def _run(self, batch: list[_Request]) -> None:
        try:
            results = self._translate([t for r in batch for t in r.texts], batch[0].options)
        except Exception as e:
            if len(batch) > 1:            # isolate the culprit: retry each request alone, so only it fails
                log.warning("a batch of %d requests failed (%s: %s); retrying them one by one",
                            len(batch), type(e).__name__, e)
                for r in batch:
                    self._run([r])
            elif isinstance(e, TranslatorError):   # e.g. a text too long for the model: the caller's error
                _resolve(batch[0], exc=e)
            else:
                log.exception("translate_batch failed for a request of %d sentences", len(batch[0].texts))
                _resolve(batch[0], exc=ModelError(f"the model failed on this request ({type(e).__name__}); "
                                                  "the error was logged; other requests are unaffected"))
            return
        i = 0
        for r in batch:
            _resolve(r, result=results[i:i + len(r.texts)])
            i += len(r.texts)

    def _translate(self, texts: list[str], options: tuple[int, int, bool]) -> list[TranslationResult]:
        beam_size, num_hypotheses, return_attention = options
        metrics.BATCH_SIZE.observe(len(texts))
        metrics.ACTIVE_SEQUENCES.set(len(texts))
        t0 = time.perf_counter()
        try:
            results = self.translator.translate_batch(texts, beam_size=beam_size, num_hypotheses=num_hypotheses,
                                                      return_attention=return_attention)
        finally:
            metrics.ACTIVE_SEQUENCES.set(0)
        metrics.INFERENCE_DURATION.labels(stage="decode").observe(time.perf_counter() - t0)
        for res in results:
            if res.source_tokens:         # blank texts never reach the model
                metrics.INPUT_TOKENS.observe(len(res.source_tokens))
                metrics.GENERATED_TOKENS.observe(len(res.hypotheses[0].tokens))
        return results


def _resolve(req: _Request, result=None, exc: BaseException | None = None) -> None:
    """Completes a request's future from any thread (futures belong to their event loop)."""
    def done() -> None:
        if not req.future.done():
            req.future.set_exception(exc) if exc is not None else req.future.set_result(result)
    try:
        req.future.get_loop().call_soon_threadsafe(done)
    except RuntimeError:                  # the event loop is closed: nobody is waiting any more
        pass
