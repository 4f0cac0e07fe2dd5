"""One settings object, read once: environment variables `TRANSLATOR_<FIELD>`, the same names as CLI flags.

`TRANSLATOR_PORT=9000 python -m service` and `python -m service --port 9000` are equivalent; a flag wins
over the environment, the environment over the defaults below.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "TRANSLATOR_"
PROVIDERS = ("auto", "cpu", "cuda")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


@dataclass(frozen=True)
class Settings:
    model_dir: Path = REPO_ROOT / "models" / "eng-pol"
    """TRANSLATOR_MODEL_DIR: the model directory written by `python -m export onnx` (default: <repo>/models/eng-pol)."""
    host: str = "127.0.0.1"
    """TRANSLATOR_HOST: address to bind."""
    port: int = 8000
    """TRANSLATOR_PORT: port to bind."""
    provider: str = "auto"
    """TRANSLATOR_PROVIDER: onnxruntime provider, cpu | cuda | auto (CUDA when available); cuda fails if absent."""
    intra_threads: int = field(default_factory=lambda: min(os.cpu_count() or 1, 8))
    """TRANSLATOR_INTRA_THREADS: onnxruntime intra-op threads (default: the CPU count, at most 8; 0 lets ORT pick)."""
    inter_threads: int = 1
    """TRANSLATOR_INTER_THREADS: onnxruntime inter-op threads."""
    max_batch: int = 64
    """TRANSLATOR_MAX_BATCH: most rows decoded together in one step (a sentence with beam k takes k rows);
    1 means no cross-request batching at all. 64: on 2 CPU cores a decoder step costs ~1.2 ms at batch 1
    and ~8 ms at 64 (shared/notes/calibration.md), so throughput still rises up to 64 while a step stays short."""
    batching: str = "continuous"
    """TRANSLATOR_BATCHING: continuous (admit and retire sentences every decoder step) | static (Triton-style
    request-level batching: gather up to max_batch rows or wait batch_wait_ms, decode to completion)."""
    batch_wait_ms: float = 0.0
    """TRANSLATOR_BATCH_WAIT_MS: static batching only: how long an empty engine waits for a batch to fill."""
    max_queue: int = 1024
    """TRANSLATOR_MAX_QUEUE: most sentences waiting for the model; beyond it requests get 503 + Retry-After."""
    max_text_chars: int = 1000
    """TRANSLATOR_MAX_TEXT_CHARS: longest text accepted, in characters (413 beyond)."""
    max_texts: int = 64
    """TRANSLATOR_MAX_TEXTS: most texts in one request's `q` list (413 beyond)."""
    default_beam: int = 3
    """TRANSLATOR_DEFAULT_BEAM: beam size when a request does not say (1 = greedy). 3, because on the held-out
    test split it lifts chrF from 49.4 (greedy) to 51.3 for 3 rows of compute per sentence (beam 5: 51.8)."""
    max_beam: int = 8
    """TRANSLATOR_MAX_BEAM: largest beam_size (and alternatives + 1) a request may ask for."""
    max_source_tokens: int = 256
    """TRANSLATOR_MAX_SOURCE_TOKENS: longest text accepted, in source subword tokens (413 beyond)."""
    workers: int = 1
    """TRANSLATOR_WORKERS: uvicorn worker processes (each loads its own copy of the model)."""
    log_level: str = "info"
    """TRANSLATOR_LOG_LEVEL: critical | error | warning | info | debug."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {self.provider!r}")
        if self.batching not in ("continuous", "static"):
            raise ValueError(f"batching must be continuous or static, got {self.batching!r}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        for name in ("intra_threads", "inter_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_batch", "max_queue", "max_text_chars", "max_texts", "max_beam", "default_beam", "max_source_tokens",
                     "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Settings":
        """Settings from TRANSLATOR_* variables; unset ones keep their defaults."""
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                try:
                    values[f.name] = hints[f.name](raw)
                except ValueError:
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a valid {hints[f.name].__name__}") \
                        from None
        return cls(**values)

    @classmethod
    def from_args(cls, argv: list[str] | None = None, env: Mapping[str, str] = os.environ) -> "Settings":
        """Settings from CLI flags over TRANSLATOR_* variables over defaults."""
        base = cls.from_env(env)
        args = build_parser(base).parse_args(argv)
        return dataclasses.replace(base, **vars(args))


def _field_docs() -> dict[str, str]:
    """The attribute docstrings above, for --help (one source of truth)."""
    tree = ast.parse(inspect.getsource(Settings))
    body, docs = tree.body[0].body, {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            docs[node.target.id] = nxt.value.value.split(": ", 1)[-1]
    return docs


def build_parser(defaults: Settings | None = None) -> argparse.ArgumentParser:
    """`--model-dir`, `--port`, ... one flag per Settings field, defaulting to `defaults` (env-derived)."""
    defaults = defaults or Settings.from_env()
    hints, docs = typing.get_type_hints(Settings), _field_docs()
    p = argparse.ArgumentParser(prog="python -m service",
                                description="English->Polish translation service (LibreTranslate-compatible API).")
    for f in dataclasses.fields(Settings):
        choices = {"provider": PROVIDERS, "log_level": LOG_LEVELS, "batching": ("continuous", "static")}.get(f.name)
        env_name = ENV_PREFIX + f.name.upper()
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=hints[f.name], choices=choices,
                       default=getattr(defaults, f.name), metavar=None if choices else f.name.upper(),
                       help=f"{docs.get(f.name, '')} [env {env_name}; now: %(default)s]")
    return p
