"""The engine boundary, seen from the server: `TranslationEngine`, the interface the HTTP layer uses, and the two
placements that satisfy it: `LocalEngine` (the Engine in threads of this process) and
engine_process.ProcessEngine (the Engine in a process of its own). Both are an `EngineClient`.

Admission lives here, in the front end, and nowhere else (TGI's split: the front end owns admission, the model
worker owns scheduling). The front end knows what it sent and what came back: the queue is every sentence it has
submitted that the engine has not yet reported out of the queue (into the batch, or blank, refused, cancelled or
failed first), so sentences on their way to the engine count as queued and no counter is shared or mirrored.
`refuse_if_full` is the one place that decides "queue full"; the engine never refuses for it. The engine reports
with every answer, when idle, and (engine process) every 50 ms, so the count is never below the truth and at
most one decoder step or 50 ms behind it; in threads the front end reads the engine's unreported news first.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import Protocol

from . import errors, metrics
from .engine import Engine
from .errors import ModelError, Overloaded, PayloadTooLarge
from .messages import Cancel, Report, Submit
from .runtime import ModelInfo
from .scheduler import Scheduler
from .translator import TranslationResult, Translator

log = logging.getLogger(__name__)
NOT_RUNNING = "the translation engine is not running"


class Model(Protocol):
    """What is loaded (GET /v1/models): the checked model.json and the onnxruntime provider in use."""

    info: ModelInfo
    provider: str


@dataclass
class ModelFacts:
    info: ModelInfo
    provider: str


class TranslationEngine(Protocol):
    """What the HTTP layer needs of the engine, wherever it runs."""

    model: Model
    inflight: int                       # submit() calls not yet answered (graceful shutdown waits on it)

    @property
    def running(self) -> bool: ...

    @property
    def queued_sentences(self) -> int: ...

    def refuse_if_full(self, adding: int = 1) -> None: ...

    async def submit(self, texts: list[str], beam_size: int = 1, num_hypotheses: int = 1,
                     return_attention: bool = False) -> list[TranslationResult]: ...

    def start(self) -> None: ...

    async def stop(self, timeout: float = 30.0) -> None: ...


class EngineClient:
    """Submits requests as messages and resolves them from the engine's Reports (on the event loop). A placement
    provides `_send(message)` and `running`, and calls `on_report` on the event loop."""

    model: Model

    def __init__(self, max_queue: int):
        self.max_queue = max_queue
        self.inflight = 0
        self.queued = 0                    # sentences submitted and not yet reported out of the queue
        self._futures: dict[int, asyncio.Future] = {}
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> bool:
        raise NotImplementedError

    @property
    def queued_sentences(self) -> int:
        self._catch_up()
        return self.queued

    def _catch_up(self) -> None:
        """Applies what the engine has not reported yet, where that is possible without a round trip."""

    def refuse_if_full(self, adding: int = 1) -> None:
        """Overloaded (503 + Retry-After at the HTTP edge) when `adding` more sentences do not fit in the queue."""
        if self.queued + adding > self.max_queue:
            self._catch_up()
        if self.queued + adding > self.max_queue:
            raise Overloaded(f"the queue is full ({self.queued} sentences waiting, limit {self.max_queue}); "
                             "retry shortly")

    async def submit(self, texts: list[str], beam_size: int = 1, num_hypotheses: int = 1,
                     return_attention: bool = False) -> list[TranslationResult]:
        """The translations of texts, once decoded. Raises what is wrong with the request (too many texts for the
        queue, queue full, engine not running) at once, the engine's errors when they come back."""
        if not texts:
            return []
        if len(texts) > self.max_queue:
            raise PayloadTooLarge(f"{len(texts)} sentences in one request exceed the queue limit of {self.max_queue} "
                                  "(TRANSLATOR_MAX_QUEUE); send fewer or shorter texts")
        if not self.running:
            raise Overloaded(NOT_RUNNING)
        self.refuse_if_full(len(texts))
        rid, future = next(self._ids), self._loop.create_future()
        self._futures[rid] = future
        self.inflight += 1
        self.queued += len(texts)
        metrics.QUEUE_SIZE.set(self.queued)
        try:
            self._send(Submit(rid, texts, beam_size, num_hypotheses, return_attention))
            return await future
        except asyncio.CancelledError:     # deadline or client gone: its sentences leave the queue and the batch
            if self._futures.pop(rid, None) is not None and self.running:
                self._send(Cancel(rid))
            raise
        finally:
            self._futures.pop(rid, None)
            self.inflight -= 1

    def _send(self, msg: Submit | Cancel) -> None:
        raise NotImplementedError

    def on_report(self, report: Report) -> None:
        """The engine's news, on the event loop: sentences out of the queue, answers, metrics."""
        if report.left:
            self.queued -= report.left
            metrics.QUEUE_SIZE.set(self.queued)
        for a in report.answers:
            future = self._futures.pop(a.id, None)
            if future is None or future.done():
                continue
            if a.error:
                future.set_exception(_error(a.error, a.message))
            else:
                future.set_result(a.results)
        if report.metrics is not None:
            metrics.ENGINE.apply(report.metrics)

    def _fail_all(self, err: Exception) -> None:
        """Every request in flight fails with err (the engine is gone)."""
        for future in self._futures.values():
            if not future.done():
                future.set_exception(err)
        self._futures.clear()
        self.queued = 0
        metrics.QUEUE_SIZE.set(0)
        metrics.ACTIVE_SEQUENCES.set(0)


def _error(name: str, message: str) -> Exception:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.TranslatorError):
        return cls(message)
    return ModelError(message)


class LocalEngine(EngineClient):
    """The Engine in threads of this process (TRANSLATOR_ENGINE_PROCESS=off, the in-process tests, the CLI and the
    benchmark): messages are passed as they are, requests tokenized on the event loop's thread, reports handed to
    the event loop with one wake-up each (one per decoder step at most)."""

    def __init__(self, translator: Translator, max_batch: int = 64, max_queue: int = 1024,
                 scheduler: Scheduler | None = None):
        super().__init__(max_queue)
        self.model = translator
        self.engine = Engine(translator, self._report, metrics.ENGINE, max_batch, scheduler, max(1, max_queue // 2))

    @property
    def running(self) -> bool:
        return self.engine.running

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.engine.start()

    async def stop(self, timeout: float = 30.0) -> None:
        """Finishes queued and active work (up to `timeout` s), then refuses what is left."""
        await asyncio.to_thread(self.engine.stop, timeout)
        await asyncio.sleep(0)             # the last reports, scheduled by engine.stop, are handled
        self.queued = 0
        metrics.QUEUE_SIZE.set(0)

    def _send(self, msg: Submit | Cancel) -> None:
        self.engine.handle(msg)

    def _catch_up(self) -> None:
        if (report := self.engine.take_report()) is not None:
            self.on_report(report)

    def _report(self, report: Report) -> None:    # from the engine's threads (or this loop's, for a blank text)
        try:
            self._loop.call_soon_threadsafe(self.on_report, report)
        except RuntimeError:                # the event loop is closed: nobody is waiting any more
            pass


__all__ = ["EngineClient", "LocalEngine", "Model", "ModelFacts", "TranslationEngine", "NOT_RUNNING"]
