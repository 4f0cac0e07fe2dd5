"""The benchmark's opponents, plugged into the service's own engine (service/engine.py) as scheduling policies.

- naive decoding is continuous batching with max_batch=1 (no policy of its own);
- `RequestLevelBatching` is the request-level dynamic batching of Triton/TorchServe: gather up to max_batch rows,
  or wait `wait_ms` for more, decode that batch to completion (finished rows ride along until it drains, answers
  leave when it has), then take the next; the next batch is encoded while the current one decodes, as a Triton
  ensemble of encoder and decoder models would.

`engine(translator, max_batch, mode, batch_wait_ms)` builds the in-process engine for a strategy;
`python -m bench.baselines` serves the API like `python -m service` (same TRANSLATOR_* settings), with the
engine process running the strategy in BENCH_BATCHING (continuous | static) and BENCH_BATCH_WAIT_MS.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from service.scheduler import Group, Scheduler


class RequestLevelBatching(Scheduler):
    drop_finished = False         # finished rows ride along until the batch drains

    def __init__(self, max_batch: int = 64, wait_ms: float = 0.0):
        super().__init__(max_batch, lookahead=0)
        self.wait_s = wait_ms / 1000
        self.first_encoded: float | None = None   # when the oldest encoded group became ready
        self.held: list = []                     # finished, answered when the batch drains

    def next_encode(self, live_rows: int) -> list:
        """The next batch's sentences (up to max_batch rows beside those already encoded), whatever is decoding."""
        return self._take_waiting(self.encoded_rows)

    def done_encoding(self, seqs: list, encoded: Any | None, now: float = 0.0) -> None:
        if encoded is not None and not self.encoded:
            self.first_encoded = now
        super().done_encoding(seqs, encoded, now)

    def next_join(self, live_rows: int, batch_rows: int, split, now: float = 0.0) -> tuple[list[Group], float | None]:
        """A new batch only once the last one has drained; an empty engine waits up to wait_s for it to fill."""
        if batch_rows or not self.encoded:
            return [], None
        more_coming = bool(self.waiting or self.encoding_rows)
        if self.wait_s and self.encoded_rows < self.max_batch and more_coming:
            left = (self.first_encoded or now) + self.wait_s - now
            if left > 0:
                return [], left
        groups, _ = super().next_join(0, 0, split, now)
        self.first_encoded = now if self.encoded else None
        return groups, None

    def release(self, finished: list, batch_rows: int) -> list:
        self.held += finished
        if batch_rows:
            return []
        out, self.held = self.held, []
        return out


def scheduler(max_batch: int, mode: str = "continuous", batch_wait_ms: float = 0.0) -> Scheduler:
    if mode == "static":
        return RequestLevelBatching(max_batch, batch_wait_ms)
    if mode != "continuous":
        raise ValueError(f"batching mode must be continuous or static, got {mode!r}")
    return Scheduler(max_batch)


def engine(translator, max_batch: int = 64, mode: str = "continuous", batch_wait_ms: float = 0.0,
           max_queue: int = 1_000_000):
    """The in-process engine (service.engine_client.LocalEngine) running one strategy."""
    from service.engine_client import LocalEngine

    return LocalEngine(translator, max_batch=max_batch, max_queue=max_queue,
                       scheduler=scheduler(max_batch, mode, batch_wait_ms))


def main() -> int:
    """`python -m service` with the engine process running BENCH_BATCHING's strategy."""
    import logging

    import uvicorn

    from service.app import create_app
    from service.engine_process import ProcessEngine
    from service.settings import Settings

    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level.upper())
    policy = scheduler(settings.max_batch, os.environ.get("BENCH_BATCHING", "continuous"),
                       float(os.environ.get("BENCH_BATCH_WAIT_MS", "0")))
    process = ProcessEngine(settings, policy)
    process.launch()
    uvicorn.run(create_app(settings, engine=process), host=settings.host, port=settings.port,
                log_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
