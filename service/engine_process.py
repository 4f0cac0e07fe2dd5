"""The engine in its own process (TRANSLATOR_ENGINE_PROCESS=on, the default of `python -m service`).

Why: the engine's decoder thread needs the GIL between model runs (its per-step bookkeeping is Python). In the
server process it shares that GIL with the event loop, and when a flood of requests has to be refused the event
loop holds it most of the time: the decoder waits, cores stay idle, and the admitted requests slow down. Measured
here (2 cores, queue 32, 400 clients retrying at once, per-thread CPU from /proc): the decoder thread got 0.38 of a
core instead of 0.76, the whole server 1.46 of 2 cores, and admitted sentences/s fell from ~830 to ~350. In its own
process the engine has its own GIL; the server's event loop parses HTTP, answers, refuses and forwards, and the
operating system shares the cores (TRANSLATOR_HTTP_NICE lowers the server thread's priority below the engine's).
TGI splits its router and model server the same way.

`ProcessEngine` (server side) has Engine's interface (submit, refuse_if_full, queued_sentences, inflight, start,
stop), so app.py uses either. The engine process has no event loop: its main thread reads the pipe and queues
requests with Engine.enqueue, and the decoder thread sends each answer as the request finishes (a hop through an
event loop would add a wake-up per request). Messages over a pipe (multiprocessing.Connection, pickled tuples):
  server -> engine: ("submit", id, texts, beam, nbest, attention) | ("cancel", id) | ("stop", timeout)
  engine -> server: ("ready", ModelInfo, provider, pid) | ("failed", reason) once, then
                    ("ok", id, results) | ("err", id, error class, message) | ("metrics", gauges, observations)
                    | ("stopped",)
The queue limit is checked in the server process without a round trip: a shared array holds the engine's pending
count ([0], Engine.pending_out) and the sentences it has taken in ([1], counted once they are in its queue); the
server adds those it sent that the engine has not taken in yet. The engine checks again when it queues (the limit
is exact there; the server's view can only be higher). The engine process records its metrics and sends them
every 50 ms; the server applies them to its own registry, so /metrics (multiprocess mode with several workers
included) is the same as with the engine in threads.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import metrics
from .engine import NOT_RUNNING, SHUTTING_DOWN, Engine, refuse_oversized, refuse_when_full
from .errors import ModelError, ModelLoadError, Overloaded, TranslatorError
from .runtime import ModelInfo
from .translator import TranslationResult, load_translator

log = logging.getLogger(__name__)
METRICS_EVERY_S = 0.05
RSS_EVERY_S = 1.0
# Engine metrics, recorded in the engine process and replayed in the server's registry
ENGINE_METRICS = ("QUEUE_SIZE", "ACTIVE_SEQUENCES", "QUEUE_DURATION", "INFERENCE_DURATION", "BATCH_SIZE",
                  "GENERATED_TOKENS", "INPUT_TOKENS", "ENGINE_RSS")


@dataclass
class ModelFacts:
    """What the server process knows of the model without loading it, as the engine process reports it: the
    checked model.json and the provider in use (GET /v1/models reads translator.info.raw and .provider)."""

    info: ModelInfo
    provider: str


class ProcessEngine:
    def __init__(self, settings: Any):
        self.settings = settings
        self.max_queue, self.max_batch, self.mode = settings.max_queue, settings.max_batch, settings.batching
        self.inflight = 0                  # submit() calls not yet answered (graceful shutdown waits on it)
        self.model: ModelFacts | None = None
        self.pid: int | None = None
        self.on_exit = None                # called if the engine process ends while the server still needs it
        self._proc = self._conn = self._shared = self._loop = None
        self._futures: dict[int, asyncio.Future] = {}
        self._ids = itertools.count()
        self._sent = 0                     # sentences sent to the engine process, ever
        self._alive = self._stopping = False
        self.lost = False                  # the engine process ended without being asked to
        self._stopped: asyncio.Future | None = None

    # -- start and stop ---------------------------------------------------------------------------
    @property
    def launched(self) -> bool:
        return self._proc is not None

    def launch(self, timeout: float = 600.0) -> None:
        """Starts the engine process and waits (blocking) until its model is loaded and warmed up. Raises
        ModelLoadError with the engine's one-line reason when it cannot load the model."""
        ctx = mp.get_context("spawn")      # not fork: the server may already have threads (and CUDA must not be forked)
        self._shared = ctx.RawArray("q", 2)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_engine_main, args=(child, self.settings, self._shared),
                                 name="translator-engine", daemon=True)
        self._proc.start()
        child.close()
        try:
            if not self._conn.poll(timeout):
                raise ModelLoadError(f"the engine process did not load the model within {timeout:.0f} s")
            msg = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(10)
            raise ModelLoadError(f"the engine process exited while loading the model (exit code "
                                 f"{self._proc.exitcode})") from None
        except ModelLoadError:
            self._proc.kill()
            raise
        if msg[0] == "failed":
            self._proc.join(10)
            raise ModelLoadError(msg[1])
        _, info, provider, self.pid = msg
        self.model = ModelFacts(info, provider)

    def start(self) -> None:
        """Called on the server's event loop once launched: from now on its answers are read there."""
        if not self.launched:
            raise RuntimeError("ProcessEngine.launch() must run first")
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._conn.fileno(), self._on_readable)
        self._alive = True

    @property
    def running(self) -> bool:
        return self._alive

    async def stop(self, timeout: float = 30.0) -> None:
        """The engine finishes queued and active work (up to `timeout` s), refuses what is left, and exits."""
        if self._proc is None:
            return
        self._stopping = True
        if self._alive:
            self._stopped = self._loop.create_future()
            try:
                self._conn.send(("stop", timeout))
                await asyncio.wait_for(asyncio.shield(self._stopped), timeout + 15)
            except (OSError, asyncio.TimeoutError):
                log.warning("engine process: no clean stop; killing it")
                self._proc.kill()
        await asyncio.to_thread(self._proc.join, 15)
        self._lost()

    # -- requests ---------------------------------------------------------------------------------
    @property
    def queued_sentences(self) -> int:
        """Sentences waiting to join the batch: those the engine has queued, plus those on their way to it."""
        return self._sent - self._shared[1] + self._shared[0]

    def refuse_if_full(self, adding: int = 1) -> None:
        """Raises Overloaded (503 + Retry-After) when `adding` more sentences would not fit in the queue."""
        refuse_when_full(self.queued_sentences, adding, self.max_queue)

    async def submit(self, texts: list[str], beam_size: int = 1, num_hypotheses: int = 1,
                     return_attention: bool = False) -> list[TranslationResult]:
        if not texts:
            return []
        refuse_oversized(len(texts), self.max_queue)
        if not self._alive or self._stopping:
            raise Overloaded(NOT_RUNNING)
        self.refuse_if_full(len(texts))
        rid, fut = next(self._ids), self._loop.create_future()
        self._futures[rid] = fut
        self.inflight += 1
        try:
            self._sent += len(texts)
            try:
                self._conn.send(("submit", rid, texts, beam_size, num_hypotheses, return_attention))
            except OSError:              # it has just died; _on_readable is about to learn it
                raise ModelError("the translation engine stopped; this request was not translated") from None
            return await fut
        except asyncio.CancelledError:   # deadline or client gone: its sentences leave the queue and the batch
            if self._futures.pop(rid, None) is not None and self._alive:
                try:
                    self._conn.send(("cancel", rid))
                except OSError:
                    pass
            raise
        finally:
            self._futures.pop(rid, None)
            self.inflight -= 1

    # -- answers ------------------------------------------------------------------------------------
    def _on_readable(self) -> None:
        try:
            while self._conn.poll():
                msg = self._conn.recv()
                kind = msg[0]
                if kind == "ok" or kind == "err":
                    fut = self._futures.pop(msg[1], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg[2]) if kind == "ok" else fut.set_exception(msg[2](msg[3]))
                elif kind == "metrics":
                    _replay(msg[1], msg[2])
                elif kind == "stopped" and self._stopped is not None and not self._stopped.done():
                    self._stopped.set_result(None)
        except (EOFError, OSError):      # the engine process has ended
            self._lost()

    def _lost(self) -> None:
        """The engine process is gone: its requests fail at once (none hangs); unexpected unless stopping."""
        if self._loop is not None and self._alive:
            self._loop.remove_reader(self._conn.fileno())
        was_alive, self._alive = self._alive, False
        if not was_alive:
            return
        if self._stopping:
            err = Overloaded(SHUTTING_DOWN)
        else:
            self.lost = True
            self._proc.join(1)
            log.error("engine process %s ended unexpectedly (exit code %s); %d requests fail", self.pid,
                      self._proc.exitcode, len(self._futures))
            err = ModelError("the translation engine stopped while working on this request; it was logged")
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(err)
        self._futures.clear()
        metrics.QUEUE_SIZE.set(0)
        metrics.ACTIVE_SEQUENCES.set(0)
        if not self._stopping and self.on_exit is not None:
            self.on_exit()


_metric_cache: dict = {}


def _replay(gauges: dict, observations: list) -> None:
    """Applies the engine process's metric records to this process's registry."""
    def metric(name: str, labels: tuple):
        m = _metric_cache.get((name, labels))
        if m is None:
            m = getattr(metrics, name)
            m = _metric_cache[(name, labels)] = m.labels(**dict(labels)) if labels else m
        return m
    for (name, labels), v in gauges.items():
        metric(name, labels).set(v)
    for name, labels, v in observations:
        metric(name, labels).observe(v)


# -- the engine process --------------------------------------------------------------------------
class _Sink:
    """Collects the engine's metric calls (from its threads) until the next send."""

    def __init__(self):
        self.lock, self.gauges, self.observations = threading.Lock(), {}, []

    def install(self) -> None:
        for name in ENGINE_METRICS:
            setattr(metrics, name, _Recorder(self, name))

    def take(self) -> tuple[dict, list]:
        with self.lock:
            taken = self.gauges, self.observations
            self.gauges, self.observations = {}, []
        return taken


class _Recorder:
    def __init__(self, sink: _Sink, name: str, labels: tuple = ()):
        self.sink, self.name, self.label_items, self._children = sink, name, labels, {}

    def labels(self, **kw: str) -> "_Recorder":   # once a decoder step: made once per label set, like prometheus'
        key = tuple(sorted(kw.items()))
        if (child := self._children.get(key)) is None:
            child = self._children[key] = _Recorder(self.sink, self.name, key)
        return child

    def observe(self, v: float) -> None:
        with self.sink.lock:
            self.sink.observations.append((self.name, self.label_items, v))

    def set(self, v: float) -> None:
        with self.sink.lock:
            self.sink.gauges[(self.name, self.label_items)] = v


class _Inline:
    """The 'event loop' of a pipe answer: the engine's threads call its call_soon_threadsafe, which runs the
    callback right there (the answer is sent from the decoder thread, no hop through a loop)."""

    @staticmethod
    def call_soon_threadsafe(fn, *args) -> None:
        fn(*args)


_INLINE = _Inline()


class _Answer:
    """What Engine.enqueue takes for a future, in the engine process: the result or error goes down the pipe."""

    __slots__ = ("rid", "_done", "_send", "_open")

    def __init__(self, rid: int, send, open_requests: dict):
        self.rid, self._done, self._send, self._open = rid, False, send, open_requests

    def get_loop(self) -> _Inline:
        return _INLINE

    def done(self) -> bool:
        return self._done

    def set_result(self, results: list) -> None:
        self._done = True
        self._open.pop(self.rid, None)
        self._send(("ok", self.rid, results))

    def set_exception(self, e: BaseException) -> None:
        self._done = True
        self._open.pop(self.rid, None)
        if isinstance(e, TranslatorError):
            self._send(("err", self.rid, type(e), str(e)))
        else:
            self._send(("err", self.rid, ModelError, "internal error while translating this request; it was logged"))


def _rss() -> int:
    """This process's resident memory in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _engine_main(conn, settings: Any, shared) -> None:
    """The engine process: loads the model, runs the Engine, and reads the server's messages on its main thread
    (no event loop: a request is queued straight from here, its answer is sent by the decoder thread), until
    told to stop or the server process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole process group; the server stops us
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sink = _Sink()
    sink.install()
    try:
        tr = load_translator(settings)
        tr.warmup()
    except Exception as e:                           # one line for the server to print before it exits
        conn.send(("failed", str(e) if isinstance(e, ModelLoadError) else f"{type(e).__name__}: {e}"))
        conn.close()
        return
    engine = Engine(tr, max_batch=settings.max_batch, max_queue=settings.max_queue, mode=settings.batching,
                    batch_wait_ms=settings.batch_wait_ms)
    engine.pending_out = shared
    engine.start()
    lock = threading.Lock()

    def send(msg: tuple) -> None:
        with lock:
            try:
                conn.send(msg)
            except (OSError, ValueError):            # the server process is gone
                pass

    send(("ready", tr.info, tr.provider, os.getpid()))
    open_requests: dict = {}
    timeout, flushed, rss_at = 0.0, time.monotonic(), 0.0
    while True:
        try:
            msg = conn.recv() if conn.poll(METRICS_EVERY_S) else None
        except (EOFError, OSError):                  # the server process is gone: stop at once
            break
        if msg is None:
            pass
        elif msg[0] == "submit":
            rid, texts, beam, nbest, attention = msg[1:]
            answer = _Answer(rid, send, open_requests)
            try:
                req = engine.enqueue(texts, beam, nbest, attention, answer)
                if req is not None:
                    open_requests[rid] = req
                    if answer.done():                # answered (or failed) already by the engine's threads
                        open_requests.pop(rid, None)
            except Exception as e:                   # the request itself is refused (limits, queue full)
                if not isinstance(e, TranslatorError):
                    log.exception("engine process: unexpected error")
                answer.set_exception(e)
            finally:                                 # counted after it is in the engine's pending count
                shared[1] += len(texts)
        elif msg[0] == "cancel":
            if (req := open_requests.pop(msg[1], None)) is not None:
                engine.cancel(req)
        elif msg[0] == "stop":
            timeout = msg[1]
            break
        if (now := time.monotonic()) - flushed >= METRICS_EVERY_S:
            flushed = now
            if now - rss_at >= RSS_EVERY_S:
                rss_at = now
                metrics.ENGINE_RSS.set(_rss())
            gauges, observations = sink.take()
            if gauges or observations:
                send(("metrics", gauges, observations))
    asyncio.run(engine.stop(timeout=timeout))       # finishes the work (up to timeout), fails what is left
    send(("metrics", *sink.take()))
    send(("stopped",))
