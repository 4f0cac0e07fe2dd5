"""Every Prometheus metric of the service, in one place (names in the style of TGI and Triton): plain
prometheus-client, no web framework (the engine process imports this module).

Module-level objects on prometheus_client's default registry: importing this module again, or creating
several apps in one process (the tests do), reuses them. Litestar's own HTTP metrics (`litestar_*`) and
`GET /metrics` are the HTTP layer's (service/app.py).
"""
from __future__ import annotations

import os

from prometheus_client import Counter, Gauge, Histogram, multiprocess

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REQUEST_DURATION = Histogram(
    "translator_request_duration_seconds", "POST /translate: from the handler's start to its answer (any outcome)",
    buckets=LATENCY_BUCKETS)
QUEUE_DURATION = Histogram(
    "translator_queue_duration_seconds", "time a request waited in the queue before the model took it",
    buckets=LATENCY_BUCKETS)
INFERENCE_DURATION = Histogram(
    "translator_inference_duration_seconds", "time in the model per engine iteration, by stage "
    "(encode: one encoder run for the admitted newcomers; decode: one decoder step for every active row)",
    ["stage"], buckets=LATENCY_BUCKETS)
BATCH_SIZE = Histogram("translator_batch_size", "sentences decoded together in one batch", buckets=SIZE_BUCKETS)
GENERATED_TOKENS = Histogram(
    "translator_generated_tokens", "target subword tokens of the best hypothesis, per sentence",
    buckets=SIZE_BUCKETS)
INPUT_TOKENS = Histogram("translator_input_tokens", "source subword tokens per sentence (incl. </s>)",
                         buckets=SIZE_BUCKETS)
REQUESTS = Counter("translator_requests_total", "POST /translate requests by HTTP status", ["status"])
REJECTED = Counter("translator_rejected_requests_total", "POST /translate requests refused or abandoned, by error type "
                   "(overloaded, rate_limited, unauthorized, forbidden, timeout, client_closed_request)",
                   ["reason"])
ENGINE_RSS = Gauge("translator_engine_resident_memory_bytes", "resident memory of the engine process, which holds the "
                   "model (0 when the engine runs in the server process: see process_resident_memory_bytes)",
                   multiprocess_mode="livesum")
HELD = Counter("translator_held_requests_total", "POST /translate requests that came back on a refused connection "
               "before its Retry-After and were held until then (app.EarlyRetries)")
# livesum: with several worker processes (prometheus-client multiprocess mode) the gauges add up over live workers
QUEUE_SIZE = Gauge("translator_queue_size", "sentences waiting for the model", multiprocess_mode="livesum")
ACTIVE_SEQUENCES = Gauge("translator_active_sequences", "sentences the model is decoding now",
                         multiprocess_mode="livesum")

INFERENCE_DURATION.labels(stage="encode")
INFERENCE_DURATION.labels(stage="decode")   # exported from the start: dashboards see zeros, not gaps


class EngineRecorder:
    """The engine's metrics (engine.Recorder) on this process's registry: the engine in threads records through
    it, and the engine process's records (messages.MetricsUpdate) are applied through it."""

    METRICS = {"queue_duration": QUEUE_DURATION, "input_tokens": INPUT_TOKENS, "inference_duration": INFERENCE_DURATION,
               "batch_size": BATCH_SIZE, "generated_tokens": GENERATED_TOKENS, "active_sequences": ACTIVE_SEQUENCES,
               "engine_rss": ENGINE_RSS}

    def __init__(self) -> None:
        self._children: dict = {}        # (name, stage) -> the metric or its child, looked up once (once a step)

    def _metric(self, name: str, stage: str):
        m = self._children.get((name, stage))
        if m is None:
            m = self.METRICS[name]
            m = self._children[(name, stage)] = m.labels(stage=stage) if stage else m
        return m

    def observe(self, name: str, value: float, stage: str = "") -> None:
        self._metric(name, stage).observe(value)

    def set(self, name: str, value: float) -> None:
        self._metric(name, "").set(value)

    def apply(self, update) -> None:
        for name, value in update.gauges.items():
            self.set(name, value)
        for name, stage, value in update.observations:
            self.observe(name, value, stage)


ENGINE = EngineRecorder()



def process_exited() -> None:
    """With several workers (PROMETHEUS_MULTIPROC_DIR set), drop this process's live gauges from the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())
