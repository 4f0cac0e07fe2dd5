"""The messages between the server (service/engine_client.py) and the engine (service/engine.py): msgspec Structs.

In one process they are passed as they are; between processes (service/engine_process.py) they go over a pipe
as msgpack, decoded into the same types. Nothing else crosses: no pickled objects, no shared memory.

  server -> engine: Submit | Cancel | Stop
  engine -> server: Ready | Failed (once, at start), then Report (after each decoder iteration that has
                    something to say, and at once for what is answered without the model) | Stopped
"""
from __future__ import annotations

import msgspec

from .runtime import ModelInfo
from .translator import TranslationResult


class Submit(msgspec.Struct, tag=True, array_like=True):
    """Translate these texts; the answer is an Answer with the same id."""

    id: int
    texts: list[str]
    beam_size: int = 1
    num_hypotheses: int = 1
    return_attention: bool = False


class Cancel(msgspec.Struct, tag=True, array_like=True):
    """Nobody waits for this request any more (deadline, client gone): its sentences leave the queue and batch."""

    id: int


class Stop(msgspec.Struct, tag=True, array_like=True):
    """Finish the work in hand (up to timeout seconds), refuse what is left, and end."""

    timeout: float


class Answer(msgspec.Struct, array_like=True):
    """One request's results, one per text, or the error (a service.errors class name and its message)."""

    id: int
    results: list[TranslationResult] | None = None
    error: str = ""
    message: str = ""


class MetricsUpdate(msgspec.Struct, array_like=True):
    """The engine's metric records since the last report, for the server's registry (engine process only)."""

    gauges: dict[str, float] = {}
    observations: list[tuple[str, str, float]] = []     # (metric, stage label or "", value)


class Report(msgspec.Struct, tag=True, array_like=True):
    """What happened since the last report: `left` sentences left the queue (joined the batch, or were blank,
    refused, cancelled or failed before they did), and these requests were answered."""

    left: int = 0
    answers: list[Answer] = []
    metrics: MetricsUpdate | None = None


class Ready(msgspec.Struct, tag=True, array_like=True):
    """The engine process has loaded and warmed up the model."""

    info: ModelInfo
    provider: str
    pid: int


class Failed(msgspec.Struct, tag=True, array_like=True):
    """The engine process could not load the model (one line, for the server to print)."""

    reason: str


class Stopped(msgspec.Struct, tag=True, array_like=True):
    """The engine process has finished and is about to exit."""


ToEngine = Submit | Cancel | Stop
FromEngine = Report | Ready | Failed | Stopped
