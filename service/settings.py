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
IO_BINDING = ("auto", "on", "off")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
ON_OFF = ("engine_process", "hold_early_retries")   # the settings that are on | off
SECRETS = ("api_keys", "metrics_token")          # never echoed by --help
FORM_OVERHEAD = 16 * 1024                        # multipart headers and the other fields around an uploaded file


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
    """TRANSLATOR_INTRA_THREADS: onnxruntime intra-op threads (default: the CPU count, at most 8; 0 lets ORT pick).
    The default keeps every core for the decoder under load; 1 gives the lowest single-request latency on 2 cores
    (docs/benchmarks/settings.md)."""
    encoder_threads: int = 1
    """TRANSLATOR_ENCODER_THREADS: onnxruntime intra-op threads of the encoder (0 = TRANSLATOR_INTRA_THREADS). The
    engine encodes newcomers on their own thread while the batch decodes; 1 leaves the other core to the decoder
    (docs/benchmarks/settings.md)."""
    inter_threads: int = 1
    """TRANSLATOR_INTER_THREADS: onnxruntime inter-op threads."""
    io_binding: str = "auto"
    """TRANSLATOR_IO_BINDING: auto | on | off. On: the decoder state and encoder outputs stay on the session's
    device between steps (ORT I/O binding), only log-probs come back to the host. auto = on for CUDA, off for
    CPU, where it gains nothing (docs/benchmarks/settings.md). Translations are identical either way."""
    max_batch: int = 64
    """TRANSLATOR_MAX_BATCH: most rows decoded together in one step (a sentence with beam k takes k rows);
    1 means no cross-request batching at all. 64: on 2 cores the engine kept full gives about the same
    sentences/s at 16, 32 and 64 rows (docs/benchmarks/settings.md), and 64 rows let beam-3 traffic (3 rows a
    sentence) and bursts of 64 clients into the batch instead of the queue."""
    max_queue: int = 1024
    """TRANSLATOR_MAX_QUEUE: most sentences waiting for the model; beyond it requests get 503 + Retry-After. Also the
    most sentences one request may hold in all its texts (413 beyond)."""
    max_text_chars: int = 1000
    """TRANSLATOR_MAX_TEXT_CHARS: longest text accepted, in characters (Unicode code points, of the whole text,
    markup included for format html; 413 beyond). 1000: a long paragraph. The service cuts a text into sentences
    and the model translates each on its own (service/documents.py); the limit is checked before any work."""
    max_texts: int = 64
    """TRANSLATOR_MAX_TEXTS: most texts in one request's `q` list (413 beyond). 64 x 1000 characters is in line
    with the per-request caps of public translation APIs (tens of thousands of characters), and 64 sentences
    fill one decoder batch (TRANSLATOR_MAX_BATCH) at greedy."""
    default_beam: int = 3
    """TRANSLATOR_DEFAULT_BEAM: beam size when a request does not say (1 = greedy). 3, because on the held-out
    test split it lifts chrF from 49.4 (greedy) to 51.3 for 3 rows of compute per sentence (beam 5: 51.8)."""
    max_beam: int = 8
    """TRANSLATOR_MAX_BEAM: largest beam_size a request may ask for (400 beyond); alternatives may be at most
    max_beam - 1 (the best translation plus the alternatives come from one beam). 8: beam 5 already gets all
    the chrF there is to get (51.8 vs 51.3 at beam 3), and a beam of k costs k decoder rows per sentence."""
    max_source_tokens: int = 384
    """TRANSLATOR_MAX_SOURCE_TOKENS: longest sentence accepted, in source subword tokens incl. end-of-sentence (413
    beyond); this is the limit that bounds one sequence's work. 384: ordinary English runs ~3.5 characters per token
    (1000-character stretches of the test split: 260-301 tokens), so a text within max_text_chars passes unless
    it tokenizes abnormally (long unbroken strings, rare scripts, characters that Unicode-normalize to several)."""
    max_body_bytes: int = 0
    """TRANSLATOR_MAX_BODY_BYTES: largest request body accepted, in bytes (413 beyond, before it is parsed).
    0 (the default) derives it from the limits above: the largest valid /translate request, every text at
    max_text_chars with every character written the longest way JSON allows (a 12-byte escaped surrogate pair),
    plus 64 KiB for whitespace (842 KB with the defaults), or TRANSLATOR_MAX_FILE_BYTES plus 16 KiB if larger.
    A value below the largest valid request or file upload is refused at start-up, since it would reject
    requests the other limits accept."""
    request_timeout_s: float = 30.0
    """TRANSLATOR_REQUEST_TIMEOUT_S: deadline of a /translate request, queueing included; past it the answer is
    504 and its sentences leave the batch. A request may ask for less with `"timeout"` (seconds), never more."""
    shutdown_grace_s: float = 20.0
    """TRANSLATOR_SHUTDOWN_GRACE_S: on SIGTERM, how long in-flight requests may take to finish before the
    process exits anyway (docker-compose's stop_grace_period must be longer)."""
    shutdown_drain_s: float = 1.0
    """TRANSLATOR_SHUTDOWN_DRAIN_S: on SIGTERM, how long /health/ready answers 503 (and new requests are refused)
    before the port closes, so a load balancer stops sending traffic first."""
    api_keys: str = ""
    """TRANSLATOR_API_KEYS: comma-separated API keys; when set (here or in api_keys_file), /translate needs one
    (header `Authorization: Bearer KEY`, `X-API-Key: KEY`, or LibreTranslate's body field `api_key`)."""
    api_keys_file: str = ""
    """TRANSLATOR_API_KEYS_FILE: a file with one API key per line (# comments allowed), added to api_keys."""
    metrics_token: str = ""
    """TRANSLATOR_METRICS_TOKEN: when set, GET /metrics needs `Authorization: Bearer TOKEN` (Prometheus:
    `authorization: {credentials: TOKEN}`); otherwise /metrics is open."""
    rate_limit: int = 0
    """TRANSLATOR_RATE_LIMIT: most /translate requests per minute per API key (or per client address without
    one), per worker process; beyond it 429 with Retry-After. 0 = no limit."""
    cors_origins: str = ""
    """TRANSLATOR_CORS_ORIGINS: comma-separated origins allowed to call the API from a browser (`*` for any);
    empty = CORS off (browsers allow same-origin pages only, like the demo page at /)."""
    engine_process: str = "on"
    """TRANSLATOR_ENGINE_PROCESS: on | off. On: the batching engine (model runs and their per-step Python) runs in
    a process of its own, so HTTP work never holds the GIL the decoder needs (service/engine_process.py has the
    measurement); off: in threads of the server process."""
    http_nice: int = 0
    """TRANSLATOR_HTTP_NICE: with engine_process on, the server's event-loop thread runs this much nicer (lower
    priority) than the engine, so that a flood of requests to refuse cannot take the engine's cores (0..19)."""
    hold_early_retries: str = "on"
    """TRANSLATOR_HOLD_EARLY_RETRIES: on | off. On: a request that comes back on a connection refused for a full
    queue before its Retry-After second is over is held until then, then admitted or refused (clients that
    ignore Retry-After cannot take the cores from the admitted requests; service/app.py EarlyRetries)."""
    max_file_bytes: int = 128 * 1024
    """TRANSLATOR_MAX_FILE_BYTES: largest file POST /translate_file accepts (413 beyond). 128 KiB is about 1,300
    lines of prose, a few seconds of the engine at beam 3 on 2 cores; it must fit in the request body limit."""
    files_dir: str = ""
    """TRANSLATOR_FILES_DIR: where translated files wait for their download (GET /download_file/...); empty = a
    folder `eng-pol-translator-files-<port>` in the system's temporary directory, shared by the workers."""
    files_ttl_s: float = 600.0
    """TRANSLATOR_FILES_TTL_S: how long a translated file can be downloaded (404 after it; then deleted)."""
    files_max_bytes: int = 64 * 1024 * 1024
    """TRANSLATOR_FILES_MAX_BYTES: most bytes of translated files kept at once; the oldest go first beyond it."""
    workers: int = 1
    """TRANSLATOR_WORKERS: uvicorn worker processes (each loads its own copy of the model)."""
    log_level: str = "info"
    """TRANSLATOR_LOG_LEVEL: critical | error | warning | info | debug."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {self.provider!r}")
        if self.io_binding not in IO_BINDING:
            raise ValueError(f"io_binding must be one of {', '.join(IO_BINDING)}, got {self.io_binding!r}")
        for name in ON_OFF:
            if getattr(self, name) not in ("on", "off"):
                raise ValueError(f"{name} must be on or off, got {getattr(self, name)!r}")
        if not 0 <= self.http_nice <= 19:
            raise ValueError(f"http_nice must be in 0..19, got {self.http_nice}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        for name in ("request_timeout_s", "shutdown_grace_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.shutdown_drain_s < 0 or self.shutdown_drain_s > self.shutdown_grace_s:
            raise ValueError(f"shutdown_drain_s must be in 0..shutdown_grace_s ({self.shutdown_grace_s}), "
                             f"got {self.shutdown_drain_s}")
        self.keys()                      # an unreadable api_keys_file stops the start, with its reason
        if self.rate_limit < 0:
            raise ValueError(f"rate_limit must be >= 0, got {self.rate_limit}")
        for name in ("intra_threads", "inter_threads", "encoder_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_batch", "max_queue", "max_text_chars", "max_texts", "max_beam", "default_beam", "max_source_tokens",
                     "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_file_bytes", "files_max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.files_ttl_s <= 0:
            raise ValueError(f"files_ttl_s must be > 0, got {self.files_ttl_s}")
        if self.max_body_bytes < 0:
            raise ValueError(f"max_body_bytes must be >= 0 (0 = derived from the other limits), "
                             f"got {self.max_body_bytes}")
        if 0 < self.max_body_bytes < self.largest_request_bytes():
            raise ValueError(f"max_body_bytes {self.max_body_bytes} is smaller than the largest valid request "
                             f"({self.largest_request_bytes()} bytes for max_texts {self.max_texts} x max_text_chars "
                             f"{self.max_text_chars}); raise it, or set 0 to derive it from those limits")
        if self.max_body_bytes and self.max_file_bytes + FORM_OVERHEAD > self.max_body_bytes:
            raise ValueError(f"max_file_bytes {self.max_file_bytes} does not fit in the request body limit "
                             f"{self.body_limit()} (with {FORM_OVERHEAD} bytes for the form around it); raise "
                             "max_body_bytes or lower max_file_bytes")

    def largest_request_bytes(self) -> int:
        """The largest valid POST /translate body, written without insignificant whitespace: every text at
        max_text_chars, each character as an escaped UTF-16 surrogate pair (12 bytes: the longest way JSON can
        write one character), 4 bytes of quotes and separator per text, and 8 KiB for the other fields at their
        longest (source/target/format 16 characters, api_key 256, numbers, booleans, the field names)."""
        return self.max_texts * (12 * self.max_text_chars + 4) + 8 * 1024

    def body_limit(self) -> int:
        """The request body limit in force: max_body_bytes, or when 0 the largest valid request plus 64 KiB (or
        the largest file POST /translate_file takes with its form around it, if that is larger)."""
        return self.max_body_bytes or max(self.largest_request_bytes() + 64 * 1024,
                                          self.max_file_bytes + FORM_OVERHEAD)

    def beam_for(self, beam_size: int | None, alternatives: int) -> tuple[int, int]:
        """-> (beam width, hypotheses to return) for a request. n-best needs a beam at least as wide as the list:
        alternatives=k asks for k+1 hypotheses, so the beam is widened to k+1 when narrower (beam_size=5,
        alternatives=2 keeps beam 5 and returns its 3 best); no beam_size means default_beam."""
        nbest = alternatives + 1
        return max(beam_size or min(self.default_beam, self.max_beam), nbest), nbest

    def keys(self) -> frozenset[str]:
        """The accepted API keys (api_keys plus api_keys_file); empty means the API is open."""
        keys = [k.strip() for k in self.api_keys.split(",")]
        if self.api_keys_file:
            try:
                lines = Path(self.api_keys_file).read_text().splitlines()
            except OSError as e:
                raise ValueError(f"api_keys_file {self.api_keys_file!r} cannot be read: {e.strerror}") from None
            keys += [ln.split("#", 1)[0].strip() for ln in lines]
        return frozenset(k for k in keys if k)

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
        choices = {"provider": PROVIDERS, "log_level": LOG_LEVELS,
                   "io_binding": IO_BINDING, **dict.fromkeys(ON_OFF, ("on", "off"))}.get(f.name)
        env_name = ENV_PREFIX + f.name.upper()
        p.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=hints[f.name], choices=choices,
                       default=getattr(defaults, f.name), metavar=None if choices else f.name.upper(),
                       help=f"{docs.get(f.name, '')} [env {env_name}; now: "
                            + (("(set)" if getattr(defaults, f.name) else "(unset)") if f.name in SECRETS
                               else "%(default)s") + "]")
    return p
