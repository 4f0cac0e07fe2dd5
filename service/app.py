"""The HTTP layer: `create_app(settings)` -> a Litestar app with the LibreTranslate-compatible API.

The lifespan loads the model (unless one is passed in), warms it up and starts the Engine; only then is
/health/ready 200. Handlers get the engine, translator and settings by dependency injection. Every error
leaves through `error_response`: JSON `{"error": message, "type": kind}` with an honest status.
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.params import JSONBody

from . import __version__, metrics
from .errors import InvalidInput, Overloaded, PayloadTooLarge, TranslatorError
from .engine import Engine
from .settings import Settings
from .translator import Hypothesis, TranslationResult, Translator

log = logging.getLogger(__name__)

SOURCES, TARGETS = ("en", "auto"), ("pl",)    # "auto" is accepted as a source and means English
LANGUAGES = [{"code": "en", "name": "English", "targets": ["pl"]}, {"code": "pl", "name": "Polish", "targets": []}]
RETRY_AFTER_S = 1


# -- the edge: request and response bodies ----------------------------------------------------------
class TranslateRequest(msgspec.Struct):
    """LibreTranslate's body plus beam search and attention. Limits that depend on settings (characters per
    text, texts per request, beam) are checked in the handler, so the message can name the limit and value."""

    q: str | list[str]
    source: Annotated[str, msgspec.Meta(max_length=16)] = "en"
    target: Annotated[str, msgspec.Meta(max_length=16)] = "pl"
    format: Annotated[str, msgspec.Meta(max_length=16)] = "text"
    alternatives: Annotated[int, msgspec.Meta(ge=0, le=64)] = 0
    """Extra translations after the best one (n-best from beam search); beam_size is raised to alternatives+1."""
    beam_size: Annotated[int, msgspec.Meta(ge=1, le=64)] | None = None
    """Beam width (1 = greedy); default: the service's TRANSLATOR_DEFAULT_BEAM."""
    return_attention: bool = False
    api_key: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    """Accepted for LibreTranslate compatibility; not checked."""


class Attention(msgspec.Struct):
    source_tokens: list[str]                 # incl. the </s> the model saw
    target_tokens: list[str]                 # plus "</s>" when the hypothesis ended with it
    weights: list[list[float]]               # one row per target token, one column per source token


class TranslateResponse(msgspec.Struct, omit_defaults=True):
    """Mirrors q: for a string q each field is one value; for a list q each is a list with one entry per text."""

    translatedText: str | list[str]
    alternatives: list[Any] | None = None        # [str] or, for a list q, [[str]]
    alternative_scores: list[Any] | None = None  # aligned with alternatives
    score: float | list[float] | None = None     # of the best translation (length-normalised log-probability)
    attention: Attention | list[Attention] | None = None


def _attention(res: TranslationResult, h: Hypothesis) -> Attention:
    weights = h.attention or []
    target = h.tokens + ["</s>"] if len(weights) == len(h.tokens) + 1 else list(h.tokens)
    return Attention(res.source_tokens, target, weights)


def _response(q: str | list[str], results: list[TranslationResult], alternatives: int,
              attention: bool) -> TranslateResponse:
    one = isinstance(q, str)
    pick = (lambda xs: xs[0]) if one else (lambda xs: xs)
    out = TranslateResponse(pick([r.text for r in results]))
    if alternatives:
        out.alternatives = pick([[h.text for h in r.hypotheses[1:]] for r in results])
        out.alternative_scores = pick([[h.score for h in r.hypotheses[1:]] for r in results])
        out.score = pick([r.hypotheses[0].score for r in results])
    if attention:
        out.attention = pick([_attention(r, r.hypotheses[0]) for r in results])
    return out


# -- handlers ----------------------------------------------------------------------------------------
@post("/translate", status_code=200)
async def translate(data: JSONBody[TranslateRequest], engine: NamedDependency[Engine],
                    settings: NamedDependency[Settings]) -> TranslateResponse:
    t0 = time.perf_counter()
    try:
        texts, beam, nbest = _validate(data, settings)
        results = await engine.submit(texts, beam, nbest, data.return_attention)
        out = _response(data.q, results, data.alternatives, data.return_attention)
    finally:
        metrics.REQUEST_DURATION.observe(time.perf_counter() - t0)
    metrics.REQUESTS.labels(status="200").inc()   # failures are counted in error_response
    return out


def _validate(data: TranslateRequest, settings: Settings) -> tuple[list[str], int, int]:
    """-> (texts, beam_size, num_hypotheses), or raises with a message naming the limit and the value."""
    if data.source not in SOURCES or data.target not in TARGETS:
        raise InvalidInput(f"unsupported language pair {data.source!r} -> {data.target!r}: this service translates "
                           "English to Polish only (source 'en' or 'auto', target 'pl'); see GET /languages")
    if data.format != "text":
        raise InvalidInput(f"format {data.format!r} is not supported: only 'text'")
    texts = [data.q] if isinstance(data.q, str) else data.q
    if len(texts) > settings.max_texts:
        raise PayloadTooLarge(f"q has {len(texts)} texts; the limit is {settings.max_texts} per request")
    for i, t in enumerate(texts):
        if len(t) > settings.max_text_chars:
            raise PayloadTooLarge(f"text {i} has {len(t)} characters; the limit is {settings.max_text_chars}")
    # n-best needs a beam at least as wide as the list: alternatives=k asks for k+1 hypotheses, so the beam
    # is widened to k+1 when narrower (beam_size=5, alternatives=2 keeps beam 5 and returns its 3 best).
    nbest = data.alternatives + 1
    beam = max(data.beam_size or min(settings.default_beam, settings.max_beam), nbest)
    if beam > settings.max_beam:
        asked = f"beam_size {data.beam_size}" + (f" with alternatives {data.alternatives}" if nbest > 1 else "")
        raise InvalidInput(f"{asked} needs a beam of {beam}; the limit is {settings.max_beam} "
                           f"(so at most {settings.max_beam - 1} alternatives)")
    return texts, beam, nbest


@get("/languages", sync_to_thread=False)
def languages() -> list[dict[str, Any]]:
    return LANGUAGES


@get("/health/live", sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "alive"}


@get("/health/ready", sync_to_thread=False)
def ready(state: State) -> Response[dict[str, str]]:
    if state.get("ready"):
        return Response({"status": "ready"}, status_code=200)
    return Response({"status": "not ready", "error": "the model is loading or the server is shutting down"},
                    status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


@get("/v1/models", sync_to_thread=False)
def models(translator: NamedDependency[Translator]) -> dict[str, Any]:
    raw, arch = translator.info.raw, translator.info.raw.get("architecture", {})
    return {"models": [{
        "name": raw.get("name"), "version": raw.get("version"), "task": raw.get("task"),
        "architecture": arch.get("type"), "cell": arch.get("cell"), "parameters": arch.get("parameters"),
        "details": arch, "provider": translator.provider, "quality": raw.get("quality"),
        "created": raw.get("created"), "format_version": raw.get("format_version"),
        "training": raw.get("training")}]}


# -- errors: the one place exceptions become HTTP responses -----------------------------------------
def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else [exc.extra] if exc.extra else []
    parts = [f"{e.get('message', e)}" + (f" (at {e['key']!r})" if e.get("key") else "") if isinstance(e, dict)
             else str(e) for e in extra]
    return "invalid request: " + ("; ".join(parts) if parts else exc.detail)


def error_response(request: Request, exc: Exception) -> Response[dict[str, str]]:
    if isinstance(exc, TranslatorError):
        status, kind, message = exc.status, exc.kind, str(exc)
    elif isinstance(exc, ValidationException):
        status, kind, message = 400, InvalidInput.kind, _validation_message(exc)
    elif isinstance(exc, HTTPException):   # malformed JSON, body too large, unknown route, wrong method
        status, message = exc.status_code, exc.detail
        if status >= 500:
            log.exception("error on %s %s", request.method, request.url.path)
        kind = {400: InvalidInput.kind, 413: PayloadTooLarge.kind}.get(status, "http_error")
        if status == 400:
            message = f"invalid request: {message}"
        elif status == 404:
            message = f"no route {request.method} {request.url.path}; see GET /schema for the API"
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, kind, message = 500, "internal_error", "internal server error; it was logged"
    if request.url.path == "/translate":
        metrics.REQUESTS.labels(status=str(status)).inc()
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status in (429, 503) else None
    return Response({"error": message, "type": kind}, status_code=status, headers=headers)


# -- the app -----------------------------------------------------------------------------------------
def load_translator(settings: Settings) -> Translator:
    """Raises ModelLoadError with a one-line reason when the model directory or provider is unusable."""
    return Translator(settings.model_dir, provider=settings.provider, intra_threads=settings.intra_threads,
                      inter_threads=settings.inter_threads, max_source_tokens=settings.max_source_tokens)


def create_app(settings: Settings, translator: Translator | None = None) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        tr = app.state.translator or await asyncio.to_thread(load_translator, settings)
        await asyncio.to_thread(tr.warmup)
        engine = Engine(tr, max_batch=settings.max_batch, max_queue=settings.max_queue,
                        mode=settings.batching, batch_wait_ms=settings.batch_wait_ms)
        engine.start()
        app.state.translator, app.state.engine, app.state.ready = tr, engine, True
        log.info("model %s %s ready on %s", tr.info.raw.get("name"), tr.info.raw.get("version"), tr.provider)
        try:
            yield
        finally:
            app.state.ready = False
            await engine.stop()

    def provide_engine(state: State) -> Engine:
        if not state.get("ready"):
            raise Overloaded("the model is not ready yet (loading or shutting down); retry shortly")
        return state.engine

    def provide_translator(state: State) -> Translator:
        if state.get("translator") is None:
            raise Overloaded("the model is not loaded yet; retry shortly")
        return state.translator

    # the largest valid body: every text at the limit, each character JSON-escaped (\uXXXX), plus slack
    max_body = settings.max_texts * settings.max_text_chars * 6 + 64 * 1024
    return Litestar(
        route_handlers=[translate, languages, live, ready, models, metrics.PrometheusController],
        lifespan=[lifespan],
        state=State({"translator": translator, "engine": None, "ready": False}),
        dependencies={"engine": Provide(provide_engine, sync_to_thread=False),
                      "translator": Provide(provide_translator, sync_to_thread=False),
                      "settings": Provide(lambda: settings, sync_to_thread=False)},
        exception_handlers={Exception: error_response},
        middleware=[metrics.prometheus_config.middleware],
        openapi_config=OpenAPIConfig(title="English->Polish translation service", version=__version__,
                                     path="/schema"),
        request_max_body_size=max_body,
    )


def create_app_from_env() -> Litestar:
    """Factory for `uvicorn --factory service.app:create_app_from_env` (one model per worker process)."""
    return create_app(Settings.from_env())
