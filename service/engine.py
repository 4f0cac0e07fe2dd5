"""The engine: continuous batching across requests (TGI's batching task is the model). Knows nothing of HTTP.

Messages in (`handle(Submit | Cancel)`, from any thread), Reports out (`report(Report)`, from its threads); see
service/messages.py. Two worker threads own the model runs (ORT releases the GIL):
  - the encoder thread asks the Scheduler which waiting sentences to encode next and runs the encoder once for
    all of them, while the batch decodes;
  - the decoder thread, every iteration, asks the Scheduler which encoded sentences join the batch, writes them
    into free rows (no model run), runs ONE decoder step for every active row (beam k = k rows; greedy is
    k = 1), and retires finished sentences at once, answering a request when its last sentence is done.
So a short request never waits for a long one to finish, and a newcomer never waits for a batch to drain.
Which sentences go where is the Scheduler's decision (service/scheduler.py, pure); this module carries it out.

The engine never refuses for a full queue: admission is the server's (service/engine_client.py). Each Report
says how many sentences left the queue since the last one, which is all the server needs to count its queue;
reports go out with answers, when the engine is idle, and whenever `take_report` is called.
Errors are service.errors exceptions, sent as (class name, message) in the request's Answer.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from .errors import ModelError, Overloaded, TranslatorError
from .messages import Answer, Cancel, Report, Submit
from .scheduler import Scheduler
from .translator import DecodeBatch, Sequence, Translator

log = logging.getLogger(__name__)
# The decoder thread needs the GIL between model runs, and a busy thread (the event loop in threads placement)
# holds it for up to the switch interval each time; a shorter interval lets it in sooner (docs/benchmarks/profile.md).
GIL_SWITCH_S = 0.0005
SHUTTING_DOWN = "the server is shutting down; retry on another instance"


class Recorder(Protocol):
    """Where the engine's metrics go: prometheus-client in the server's process (metrics.EngineRecorder), a
    buffer sent with the reports in the engine process (engine_process.BufferedRecorder)."""

    def observe(self, name: str, value: float, stage: str = "") -> None: ...

    def set(self, name: str, value: float) -> None: ...


@dataclass(eq=False)
class _Request:
    id: int
    results: list
    left: int                               # sentences not yet decoded
    enqueued: float = field(default_factory=time.perf_counter)
    cancelled: bool = False


class Engine:
    def __init__(self, translator: Translator, report: Callable[[Report], None], recorder: Recorder,
                 max_batch: int = 64, scheduler: Scheduler | None = None, report_at: int | None = None):
        self.translator, self.report, self.metrics = translator, report, recorder
        self.scheduler = scheduler or Scheduler(max_batch)
        # Sentences that leave the queue are reported with the next answers, unless this many or more were
        # waiting: then before the step, so that a front end refusing for a full queue learns of the room at once
        # (a message of its own before every step slows a lone client: docs/benchmarks/refactor.md; so not when the
        # queue is short).
        self.report_at = report_at
        self._cond = threading.Condition()
        self._requests: dict[int, _Request] = {}
        self._left = 0                       # sentences that left the queue since the last report
        self._answers: list[Answer] = []     # answers since the last report
        self._live = 0                       # rows decoding (published by the decoder thread for the encoder's)
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._batch = self._new_batch()

    # -- messages -------------------------------------------------------------------------------------
    def handle(self, msg: Submit | Cancel) -> None:
        """A request to queue (tokenized here, on the caller's thread) or to cancel."""
        if isinstance(msg, Cancel):
            return self._cancel(msg.id)
        try:
            results, seqs = self.translator.sequences(msg.texts, msg.beam_size, msg.num_hypotheses,
                                                      msg.return_attention)
        except TranslatorError as e:           # too many tokens, not text: the request itself is refused
            return self.report(Report(left=len(msg.texts), answers=[_failure(msg.id, e)]))
        if not seqs:                           # nothing for the model (blank texts)
            return self.report(Report(left=len(msg.texts), answers=[Answer(msg.id, results)]))
        req = _Request(msg.id, results, len(seqs))
        for q in seqs:
            q.tag = (req, q.tag)
        with self._cond:
            if self._stopping:
                refused = True
            else:
                refused = False
                self._requests[msg.id] = req
                self.scheduler.add(seqs)
                self._left += len(msg.texts) - len(seqs)     # blank texts never wait
                self._cond.notify_all()
        if refused:
            self.report(Report(left=len(msg.texts), answers=[_failure(msg.id, Overloaded(SHUTTING_DOWN))]))

    def _cancel(self, rid: int) -> None:
        with self._cond:
            req = self._requests.pop(rid, None)
            if req is None:
                return
            req.cancelled = True               # its rows leave the batch at the next step
            before = self.scheduler.pending
            self.scheduler.drop_cancelled()
            self._left += before - self.scheduler.pending
            report = self._take_report()
        if report is not None:
            self.report(report)

    def _take_report(self) -> Report | None:
        """What to tell the server since the last report, if anything (called with the lock held)."""
        if not self._left and not self._answers:
            return None
        report = Report(self._left, self._answers)
        self._left, self._answers = 0, []
        return report

    def take_report(self) -> Report | None:
        """What the engine has not reported yet, if anything (any thread): the engine process sends it with its
        periodic metrics, LocalEngine applies it before it decides on admission."""
        with self._cond:
            return self._take_report()

    # -- threads --------------------------------------------------------------------------------------
    def start(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_S))
        self._stopping = False
        self._threads = [threading.Thread(target=self._run, args=(self.encode_next,), name="translator-encoder",
                                          daemon=True),
                         threading.Thread(target=self._run, args=(self.decode_next,), name="translator-decoder",
                                          daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _run(iteration: Callable[[bool], bool]) -> None:
        while iteration(True):
            pass

    @property
    def running(self) -> bool:
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 30.0) -> None:
        """Finishes queued and active work (up to `timeout` s), then refuses what is left (blocking)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._cond:
            left = list(self._requests.values())
            self._requests.clear()
            self._left += self.scheduler.pending
            self.scheduler.clear()
            self._answers += [_failure(req.id, Overloaded(SHUTTING_DOWN)) for req in left]
            report = self._take_report()
        if report is not None:
            self.report(report)

    # -- the encoder: newcomers are encoded while the batch decodes --------------------------------------
    def encode_next(self, block: bool = False) -> bool:
        """One encoder run for the sentences the Scheduler picks. False when there is nothing to encode (with
        `block`: waits for work, and returns False only once stopping)."""
        with self._cond:
            while True:
                before = self.scheduler.pending
                seqs = self.scheduler.next_encode(self._live)
                self._left += before - self.scheduler.pending          # cancelled sentences dropped
                if seqs:
                    break
                if not block or (self._stopping and not self.scheduler.waiting):
                    self._cond.notify_all()
                    return False
                self._cond.wait()
        now = time.perf_counter()
        for q in seqs:
            self.metrics.observe("queue_duration", now - q.tag[0].enqueued)
            self.metrics.observe("input_tokens", len(q.src_ids))
        try:
            encoded = self._batch.encode(seqs)
        except Exception as e:            # fails only these newcomers; the running batch goes on
            self._fail_all(seqs, e)
            encoded = None
        self.metrics.observe("inference_duration", time.perf_counter() - now, "encode")
        with self._cond:
            before = self.scheduler.pending
            self.scheduler.done_encoding(seqs, encoded, time.perf_counter())
            self._left += before - self.scheduler.pending
            self._cond.notify_all()
        return True

    # -- the decoder ------------------------------------------------------------------------------------
    def decode_next(self, block: bool = False) -> bool:
        """Joins the encoded sentences the Scheduler picks, runs one decoder step and retires what finished; the
        answers of the last step go out before the step (with the sentences that left the queue since the last
        report). False when there is nothing to decode (with `block`: waits for work, and returns False only
        once stopping)."""
        batch = self._batch
        while True:
            with self._cond:
                before = self.scheduler.pending
                groups, wait = self.scheduler.next_join(batch.live_rows, batch.rows, batch.split_encoded,
                                                        time.perf_counter())
                self._left += before - self.scheduler.pending
                work = bool(groups or batch.rows)
                urgent = self._left and self.report_at is not None and \
                    self.scheduler.pending + self._left >= self.report_at
                report = self._take_report() if self._answers or urgent or not work else None
                done = not work and (not block or (self._stopping and self.scheduler.idle))
                if not work and not done and report is None:
                    self._cond.wait(wait)
                    continue
            if report is not None:
                self.report(report)
            if work:
                break
            if done:
                return False
        try:
            self._iterate(batch, groups)
        except Exception:                 # a bug here must not kill the worker and hang every later request
            log.exception("engine: unexpected error; failing the sentences in the batch")
            self._fail_all([q for q in batch.seqs if q.result is None] + [q for seqs, _ in groups for q in seqs],
                           ModelError("internal error while decoding this request; it was logged"))
            self._batch = self._new_batch()
        live = self._batch.live_rows
        if live < self._live and self.scheduler.waiting:    # rows freed: the encoder may take more
            with self._cond:
                self._live = live
                self._cond.notify_all()
        else:
            self._live = live
        return True

    def _new_batch(self) -> DecodeBatch:
        return DecodeBatch(self.translator, drop_finished=self.scheduler.drop_finished)

    def _iterate(self, batch: DecodeBatch, groups: list) -> None:
        if any(q.tag[0].cancelled for q in batch.seqs):   # timed out, disconnected or failed elsewhere
            batch.keep([q for q in batch.seqs if not q.tag[0].cancelled])
            self.metrics.set("active_sequences", _decoding(batch))
        for seqs, encoded in groups:      # writing encoded rows into the batch: no model run here
            try:
                batch.add(seqs, encoded)
            except Exception as e:        # fails only the newcomers; the running batch goes on
                self._fail_all(seqs, e)
        if not batch.rows:
            return
        decoding = _decoding(batch)
        self.metrics.observe("batch_size", decoding)
        self.metrics.set("active_sequences", decoding)
        t0 = time.perf_counter()
        try:
            finished = batch.step()
        except Exception as e:            # fails only the sentences in this step
            self._fail_all([q for q in batch.seqs if q.result is None], e)
            self._batch = self._new_batch()
            self._answer(self.scheduler.release([], 0))    # those held until the batch drained are done
            self.metrics.set("active_sequences", 0)
            return
        self.metrics.observe("inference_duration", time.perf_counter() - t0, "decode")
        self._answer(self.scheduler.release(finished, batch.rows))
        self.metrics.set("active_sequences", _decoding(self._batch))

    def _answer(self, finished: list[Sequence]) -> None:
        answers = []
        for q in finished:
            req, i = q.tag
            req.results[i] = q.result
            self.metrics.observe("generated_tokens", len(q.result.hypotheses[0].tokens))
            req.left -= 1
            if req.left == 0 and not req.cancelled:
                answers.append(Answer(req.id, req.results))
        if answers:
            with self._cond:
                for a in answers:
                    self._requests.pop(a.id, None)
                self._answers += answers

    def _fail_all(self, seqs: list[Sequence], e: Exception) -> None:
        log.error("model failure for %d sentences", len(seqs), exc_info=e)
        err = e if isinstance(e, TranslatorError) else ModelError(
            f"the model failed while decoding this request ({type(e).__name__}); the error was logged")
        with self._cond:
            for req in {id(q.tag[0]): q.tag[0] for q in seqs}.values():
                if not req.cancelled:
                    req.cancelled = True      # its other sentences leave the queue/batch too
                    self._requests.pop(req.id, None)
                    self._answers.append(_failure(req.id, err))


def _failure(rid: int, e: TranslatorError) -> Answer:
    return Answer(rid, error=type(e).__name__, message=str(e))


def _decoding(batch: DecodeBatch) -> int:
    """Sentences still being decoded (finished ones may ride along until their rows are dropped)."""
    return sum(1 for q in batch.seqs if q.result is None)
