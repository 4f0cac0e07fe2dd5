"""The engine in its own process (TRANSLATOR_ENGINE_PROCESS=on, the default of `python -m service`).

Why: the engine's decoder thread needs the GIL between model runs (its per-step bookkeeping is Python). In the
server process it shares that GIL with the event loop, and when a flood of requests has to be refused the event
loop holds it most of the time: the decoder waits, cores stay idle, and the admitted requests slow down
(docs/benchmarks/profile.md, "the engine in its own process"). In its own process the engine has its own GIL.
TGI splits its router and model server the same way.

`ProcessEngine` is the server's side (an engine_client.EngineClient: admission, futures); the child runs
`_engine_main`: it loads the model, runs the Engine, and reads the server's messages on its main thread (no event
loop: a request is queued straight from there, the decoder thread sends the reports). The messages are
service/messages.py's Structs, as msgpack over a multiprocessing pipe. The engine's metrics are buffered in the
child and sent every METRICS_EVERY_S in a Report, then recorded in the server's registry, so /metrics (multiprocess
mode with several workers included) is the same as with the engine in threads.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from typing import Any

import msgspec

from .engine import SHUTTING_DOWN, Engine
from .engine_client import EngineClient, ModelFacts
from .errors import ModelError, ModelLoadError, Overloaded
from .messages import Cancel, Failed, FromEngine, MetricsUpdate, Ready, Report, Stop, Stopped, Submit, ToEngine
from .scheduler import Scheduler
from .translator import load_translator

log = logging.getLogger(__name__)
METRICS_EVERY_S = 0.05
RSS_EVERY_S = 1.0
_encode = msgspec.msgpack.Encoder().encode
_to_engine = msgspec.msgpack.Decoder(ToEngine).decode
_from_engine = msgspec.msgpack.Decoder(FromEngine).decode


class ProcessEngine(EngineClient):
    def __init__(self, settings: Any, scheduler: Scheduler | None = None):
        super().__init__(settings.max_queue)
        self.settings, self.scheduler = settings, scheduler
        self.model: ModelFacts | None = None
        self.pid: int | None = None
        self.on_exit = None                # called if the engine process ends while the server still needs it
        self.lost = False                  # the engine process ended without being asked to
        self._proc = self._conn = None
        self._alive = self._stopping = False
        self._stopped: asyncio.Future | None = None

    # -- start and stop ---------------------------------------------------------------------------
    @property
    def launched(self) -> bool:
        return self._proc is not None

    def launch(self, timeout: float = 600.0) -> None:
        """Starts the engine process and waits (blocking) until its model is loaded and warmed up. Raises
        ModelLoadError with the engine's one-line reason when it cannot load the model."""
        ctx = mp.get_context("spawn")      # not fork: the server may already have threads (and CUDA must not be forked)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_engine_main, args=(child, self.settings, self.scheduler),
                                 name="translator-engine", daemon=True)
        self._proc.start()
        child.close()
        try:
            if not self._conn.poll(timeout):
                self._proc.kill()
                raise ModelLoadError(f"the engine process did not load the model within {timeout:.0f} s")
            msg = _from_engine(self._conn.recv_bytes())
        except (EOFError, OSError):
            self._proc.join(10)
            raise ModelLoadError(f"the engine process exited while loading the model (exit code "
                                 f"{self._proc.exitcode})") from None
        if isinstance(msg, Failed):
            self._proc.join(10)
            raise ModelLoadError(msg.reason)
        self.model, self.pid = ModelFacts(msg.info, msg.provider), msg.pid

    def start(self) -> None:
        """Called on the server's event loop once launched: from now on the engine's messages are read there."""
        if not self.launched:
            raise RuntimeError("ProcessEngine.launch() must run first")
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._conn.fileno(), self._on_readable)
        # uvloop makes a watched descriptor non-blocking; the pipe is read and written a whole message at a time,
        # so a message that arrives in pieces (a large Report), or a full pipe on send, must wait, not fail
        os.set_blocking(self._conn.fileno(), True)
        self._alive = True

    @property
    def running(self) -> bool:
        return self._alive and not self._stopping

    async def stop(self, timeout: float = 30.0) -> None:
        """The engine finishes queued and active work (up to `timeout` s), refuses what is left, and exits."""
        if self._proc is None:
            return
        self._stopping = True
        if self._alive:
            self._stopped = self._loop.create_future()
            try:
                self._conn.send_bytes(_encode(Stop(timeout)))
                await asyncio.wait_for(asyncio.shield(self._stopped), timeout + 15)
            except (OSError, asyncio.TimeoutError):
                log.warning("engine process: no clean stop; killing it")
                self._proc.kill()
        await asyncio.to_thread(self._proc.join, 15)
        self._lost()

    # -- messages -------------------------------------------------------------------------------------
    def _send(self, msg: Submit | Cancel) -> None:
        try:
            self._conn.send_bytes(_encode(msg))
        except OSError:                   # it has just died; _on_readable is about to learn it
            if isinstance(msg, Submit):
                raise ModelError("the translation engine stopped; this request was not translated") from None

    def _catch_up(self) -> None:
        """Before refusing for a full queue: the reports already in the pipe (the event loop may be busy)."""
        if self._alive:
            self._on_readable()

    def _on_readable(self) -> None:
        try:
            while self._conn.poll():
                msg = _from_engine(self._conn.recv_bytes())
                if isinstance(msg, Report):
                    self.on_report(msg)
                elif isinstance(msg, Stopped) and self._stopped is not None and not self._stopped.done():
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
        self._fail_all(err)
        if not self._stopping and self.on_exit is not None:
            self.on_exit()


# -- the engine process --------------------------------------------------------------------------
class BufferedRecorder:
    """The engine's metrics (engine.Recorder) in the engine process: kept until the next MetricsUpdate."""

    def __init__(self) -> None:
        self.lock, self.gauges, self.observations = threading.Lock(), {}, []

    def observe(self, name: str, value: float, stage: str = "") -> None:
        with self.lock:
            self.observations.append((name, stage, value))

    def set(self, name: str, value: float) -> None:
        with self.lock:
            self.gauges[name] = value

    def take(self) -> MetricsUpdate | None:
        with self.lock:
            if not self.gauges and not self.observations:
                return None
            update = MetricsUpdate(self.gauges, self.observations)
            self.gauges, self.observations = {}, []
        return update


def _rss() -> int:
    """This process's resident memory in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _engine_main(conn, settings: Any, scheduler: Scheduler | None) -> None:
    """The engine process: loads the model, runs the Engine, and reads the server's messages on its main thread
    until told to stop or the server process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole process group; the server stops us
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        tr = load_translator(settings)
        tr.warmup()
    except Exception as e:                           # one line for the server to print before it exits
        conn.send_bytes(_encode(Failed(str(e) if isinstance(e, ModelLoadError) else f"{type(e).__name__}: {e}")))
        conn.close()
        return
    lock, recorder = threading.Lock(), BufferedRecorder()

    def send(msg: Report | Ready | Stopped) -> None:
        data = _encode(msg)
        with lock:
            try:
                conn.send_bytes(data)
            except (OSError, ValueError):            # the server process is gone
                pass

    engine = Engine(tr, send, recorder, settings.max_batch, scheduler, max(1, settings.max_queue // 2))
    engine.start()
    send(Ready(tr.info, tr.provider, os.getpid()))
    timeout, flushed, rss_at = 0.0, time.monotonic(), 0.0
    while True:
        try:
            msg = _to_engine(conn.recv_bytes()) if conn.poll(METRICS_EVERY_S) else None
        except (EOFError, OSError):                  # the server process is gone: stop at once
            break
        if isinstance(msg, Stop):
            timeout = msg.timeout
            break
        if msg is not None:
            engine.handle(msg)
        if (now := time.monotonic()) - flushed >= METRICS_EVERY_S:
            flushed = now
            if now - rss_at >= RSS_EVERY_S:
                rss_at = now
                recorder.set("engine_rss", _rss())
            report, update = engine.take_report(), recorder.take()
            if report is not None or update is not None:
                report = report or Report()
                report.metrics = update
                send(report)
    engine.stop(timeout)                             # finishes the work (up to timeout), refuses what is left
    send(Report(metrics=recorder.take()))
    send(Stopped())
