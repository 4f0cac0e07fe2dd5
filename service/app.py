"""The HTTP layer: `create_app(settings)` -> a Litestar app with the LibreTranslate-compatible API.

The lifespan loads the model (unless one is passed in), warms it up and starts the Engine; only then is
/health/ready 200. Handlers get the engine, translator and settings by dependency injection. Every error
leaves through `error_response`: JSON `{"error": message, "type": kind}` with an honest status.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any, AsyncIterator, Coroutine, TypeVar

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, TooManyRequestsException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import CONTENT_TYPE_LATEST
from litestar.types import ASGIApp, Receive, Scope, Send

from . import __version__, metrics
from .openapi import (METRICS_RESPONSES, MODELS_RESPONSES, PLAIN_RESPONSES, READY_RESPONSES, TRANSLATE_RESPONSES,
                      DocumentedOperation, RequestLimits)
from .errors import (ClientClosedRequest, Forbidden, InvalidInput, ModelError, NotFound, Overloaded, PayloadTooLarge,
                     RateLimited, TimedOut, TranslatorError, Unauthorized)
from .bodies import read_body
from .demo import demo_page
from .detect import Detection, detect_source, off_the_loop_if_long
from .engine_client import LocalEngine, Model, TranslationEngine
from .engine_process import ProcessEngine
from .documents import FORMATS, TextResult, combine_all, locate, prepare_all
from .files import FileStore
from .settings import Settings
from .shutdown import drain_on_sigterm, uvicorn_server
from .translator import Translator, load_translator

log = logging.getLogger(__name__)
# The HTTP status of each error of the service (errors.py): the one place exceptions become status codes.
STATUS: dict[type[TranslatorError], int] = {
    TranslatorError: 500, InvalidInput: 400, PayloadTooLarge: 413, Unauthorized: 401, Forbidden: 403,
    RateLimited: 429, Overloaded: 503, TimedOut: 504, ClientClosedRequest: 499, ModelError: 500, NotFound: 404}


def status_of(e: TranslatorError) -> int:
    return next(STATUS[c] for c in type(e).__mro__ if c in STATUS)

SOURCES, TARGETS = ("en", "auto"), ("pl",)    # "auto": English unless detected otherwise (service/detect.py)
LANGUAGES = [{"code": "en", "name": "English", "targets": ["pl"]}, {"code": "pl", "name": "Polish", "targets": []}]
RETRY_AFTER_S = 1
LIMITED_PATHS = ("/translate", "/detect", "/translate_file")   # what TRANSLATOR_RATE_LIMIT counts
T = TypeVar("T")


# -- the edge: request and response bodies ----------------------------------------------------------
class TranslateRequest(msgspec.Struct):
    """LibreTranslate's body plus beam search and attention. Limits that depend on settings (characters per
    text, texts per request, beam) are checked in the handler, so the message can name the limit and value."""

    q: str | list[str]
    source: Annotated[str, msgspec.Meta(max_length=16)] = "en"
    target: Annotated[str, msgspec.Meta(max_length=16)] = "pl"
    format: Annotated[str, msgspec.Meta(
        max_length=16,
        description='"text" (default): each text is cut into sentences, translated, and put back in its layout '
                    '(whitespace and line breaks as sent). "html" (LibreTranslate\'s): each text is an HTML '
                    "document or fragment; its text nodes are translated (each cut into sentences) and tags, "
                    "attributes, comments and the insides of script, style, code and pre are kept; the answer is "
                    "well-formed HTML")] = "text"
    alternatives: Annotated[int, msgspec.Meta(ge=0)] = 0
    """Extra translations after the best one (n-best from beam search); beam_size is raised to alternatives+1.
    At most TRANSLATOR_MAX_BEAM - 1 (checked in the handler; the app's schema states the maximum)."""
    beam_size: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Beam width (1 = greedy); default: the service's TRANSLATOR_DEFAULT_BEAM."""
    return_attention: Annotated[bool, msgspec.Meta(
        description="add `attention` to the answer: the best hypothesis's attention weights, one row per target "
                    "token, one column per source token")] = False
    api_key: Annotated[str, msgspec.Meta(max_length=256)] | None = None
    """LibreTranslate's way to send an API key (headers `Authorization: Bearer KEY` / `X-API-Key` work too);
    checked only when the service has keys configured (TRANSLATOR_API_KEYS)."""
    timeout: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None
    """Deadline in seconds for this request, queueing included (504 past it); may only lower the service's
    TRANSLATOR_REQUEST_TIMEOUT_S."""


class AttentionSpan(msgspec.Struct):
    """One sentence's part of a text's attention matrix: rows target_start..target_end-1, columns
    source_start..source_end-1 (ends exclusive); its rows are zero outside its columns."""

    source_start: int
    source_end: int
    target_start: int
    target_end: int


class Attention(msgspec.Struct, omit_defaults=True):
    """Where the decoder looked: for the best hypothesis (greedy, or the best of the beam), one row of
    attention weights per target token over the source tokens; every row sums to 1. A blank text has
    empty lists. A text of several sentences (each decoded on its own) has one block-diagonal matrix: the
    sentences' source tokens side by side, their target tokens one after another, and `sentences` says
    which columns and rows are whose."""

    source_tokens: Annotated[list[str], msgspec.Meta(
        description="source subword pieces the model saw (SentencePiece, '▁' marks a word start), ending "
                    "with the end-of-sentence token '</s>'; one per column of `weights`")]
    target_tokens: Annotated[list[str], msgspec.Meta(
        description="target subword pieces generated, plus '</s>' when the hypothesis ended with it; one per "
                    "row of `weights`")]
    weights: Annotated[list[list[float]], msgspec.Meta(
        description="len(target_tokens) rows x len(source_tokens) columns; row i is the attention distribution "
                    "(non-negative, summing to 1) used to generate target token i")]
    sentences: Annotated[list[AttentionSpan] | None, msgspec.Meta(
        description="only for a text of several sentences: each sentence's columns and rows of `weights`, in "
                    "order")] = None


class DetectedSource(msgspec.Struct):
    language: str
    confidence: Annotated[float, msgspec.Meta(ge=0, le=100, description="in percent")]


class TranslateResponse(msgspec.Struct, omit_defaults=True):
    """Mirrors q: for a string q each field is one value; for a list q each is a list with one entry per text."""

    translatedText: str | list[str]
    alternatives: list[Any] | None = None        # [str] or, for a list q, [[str]] (documents.py: several sentences)
    alternative_scores: list[Any] | None = None  # aligned with alternatives
    score: float | list[float] | None = None     # of the best translation (length-normalised log-probability)
    attention: Annotated[Attention | list[Attention] | None, msgspec.Meta(
        description="only with return_attention: one Attention object for a string q, a list of them (one per "
                    "text) for a list q")] = None
    detectedLanguage: Annotated[DetectedSource | list[DetectedSource] | None, msgspec.Meta(
        description="only with source 'auto' (LibreTranslate's field): English, and how sure the detector is of it, "
                    "for each text; a text detected as another language is refused with 400 instead")] = None


def _response(q: str | list[str], results: list[TextResult], alternatives: int, attention: bool,
              detected: list[Detection] | None = None) -> TranslateResponse:
    one = isinstance(q, str)
    pick = (lambda xs: xs[0]) if one else (lambda xs: xs)
    out = TranslateResponse(pick([r.text for r in results]))
    if alternatives:
        out.alternatives = pick([r.alternatives for r in results])
        out.alternative_scores = pick([r.alternative_scores for r in results])
        out.score = pick([r.score for r in results])
    if attention:
        out.attention = pick([msgspec.convert(r.attention, Attention) for r in results])
    if detected is not None:
        out.detectedLanguage = pick([DetectedSource(**d) for d in detected])
    return out


# -- handlers ----------------------------------------------------------------------------------------
async def _translate(data: TranslateRequest, header_key: str | None, engine: TranslationEngine, settings: Settings, auth: "Auth",
                     receive: Receive) -> TranslateResponse:
    """What POST /translate does with a parsed body: the key before anything reaches the model, the limits, then
    every sentence of every text to the engine together (each its own sequence in the batch) under the request's
    deadline, and each text put back together from its sentences (documents.py)."""
    auth.check(header_key, data.api_key)
    texts, beam, nbest = _validate(data, settings)
    detected = await off_the_loop_if_long(sum(map(len, texts)), detect_source, texts) \
        if data.source == "auto" else None                   # (a 400 for a text that is not English)
    timeout = min(data.timeout or settings.request_timeout_s, settings.request_timeout_s)
    docs = prepare_all(texts, data.format)
    sentences = [s for d in docs for s in d.sentences]
    try:
        results = await _until_deadline(receive, engine.submit(sentences, beam, nbest, data.return_attention),
                                        timeout)
    except PayloadTooLarge as e:         # "text K" of the sentences -> the text of q (and its sentence)
        raise locate(docs, e) from None
    return _response(data.q, combine_all(docs, results, data.return_attention), data.alternatives,
                     data.return_attention, detected)


WATCH_AFTER_S = 0.05   # a request still running after this long starts watching for its client going away


async def _until_deadline(receive: Receive, work: Coroutine[Any, Any, T], timeout: float) -> T:
    """Awaits `work` unless the deadline passes (504) or the client disconnects first; either way the work is
    cancelled, which takes its sentences out of the queue and the batch (EngineClient.submit). Most requests end in
    a few ms, so the disconnect watcher (a task reading ASGI messages) starts only for those still running
    after WATCH_AFTER_S: one per request was a noticeable part of a one-client request (profile.md)."""
    task = asyncio.ensure_future(work)
    gone, watcher = False, None

    async def watch() -> None:
        nonlocal gone
        await _disconnected(receive)
        gone = True
        task.cancel()

    def start_watching() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = asyncio.get_running_loop().call_later(min(WATCH_AFTER_S, timeout), start_watching)
    try:
        return await asyncio.wait_for(task, timeout)
    except asyncio.CancelledError:
        if gone:                      # the watcher cancelled the work, not someone cancelling this handler
            raise ClientClosedRequest("the client disconnected before its translation was ready") from None
        raise
    except (asyncio.TimeoutError, TimeoutError):
        raise TimedOut(f"the translation did not finish within the request's deadline of {timeout:g} s "
                       "(queueing included); send fewer or shorter texts, or retry when the service is less "
                       "busy") from None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def _disconnected(receive: Receive) -> None:
    """Returns when the client closes the connection (the body has been read, so the next ASGI message is
    `http.disconnect`, which uvicorn sends when the connection drops, or after the response is sent)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Auth:
    """API keys (TRANSLATOR_API_KEYS / _FILE): none configured = open. Missing key 401, wrong key 403."""

    def __init__(self, keys: frozenset[str]):
        self.keys = [k.encode() for k in keys]

    def check(self, header_key: str | None, body_key: str | None) -> None:
        if not self.keys:
            return
        key = header_key or body_key
        if not key:
            raise Unauthorized("this service needs an API key: send it as `Authorization: Bearer KEY`, "
                               "`X-API-Key: KEY`, or the body field `api_key`")
        if not any(hmac.compare_digest(key.encode(), k) for k in self.keys):   # constant time
            raise Forbidden("the API key is not valid")


def request_key(request: ASGIConnection) -> str | None:
    """The API key in the request's headers, if any (the body's api_key is the handler's to read)."""
    return _key_in(request.headers.get("authorization", ""), request.headers.get("x-api-key"))


def _key_in(authorization: str, x_api_key: str | None) -> str | None:
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip() or None
    return x_api_key or None


_INT_FIELDS = {f.encode_name for f in msgspec.inspect.type_info(TranslateRequest).fields
               if any(isinstance(t, msgspec.inspect.IntType)
                      for t in getattr(f.type, "types", (f.type,)))}


def _strict(body: Any) -> TranslateRequest:
    """The body as TranslateRequest, types exactly as documented: litestar converts request bodies leniently
    (`"beam_size": "3"`, `"return_attention": 0` would pass), which the schema does not promise. An integral
    number such as 2.0 is an integer in JSON Schema, and so here too."""
    if isinstance(body, dict):
        body = {k: int(v) if k in _INT_FIELDS and isinstance(v, float) and v.is_integer() else v
                for k, v in body.items()}
    try:
        return msgspec.convert(body, TranslateRequest, strict=True)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"invalid request: {e}") from None


_DECODE = msgspec.json.Decoder(TranslateRequest, strict=True).decode
_ANY = msgspec.json.Decoder().decode


def decode_body(body: bytes) -> TranslateRequest:
    """POST /translate's body -> TranslateRequest, types exactly as documented; 400 with what is wrong otherwise.
    Strict JSON of the documented shape decodes in one msgspec call; anything else is looked at step by step so
    the message says what is wrong (not JSON, not an object, a field of the wrong type), in the words Litestar
    uses for its other routes."""
    try:
        return _DECODE(body)
    except (msgspec.DecodeError, ValueError):
        pass
    if not body.strip():
        raise InvalidInput('invalid request: the body is empty; send a JSON object such as {"q": "Hello"}')
    try:
        value = _ANY(body)
    except msgspec.DecodeError as e:
        raise InvalidInput(f"invalid request: {_json_message(str(e))}") from None
    try:
        msgspec.convert(value, TranslateRequest, strict=False)      # the shape, before the exact types
    except msgspec.ValidationError as e:
        message, _, where = str(e).partition(" - at `$")
        raise InvalidInput(f"invalid request: {message} (at {where.strip('.`') or 'data'!r})") from None
    return _strict(value)


def _validate(data: TranslateRequest, settings: Settings) -> tuple[list[str], int, int]:
    """-> (texts, beam_size, num_hypotheses), or raises with a message naming the limit and the value."""
    check_language_pair(data.source, data.target)
    if data.format not in FORMATS:
        raise InvalidInput(f"format {data.format!r} is not supported: only 'text' or 'html'")
    texts = check_texts(data.q, settings)
    if data.beam_size is not None and data.beam_size > settings.max_beam:
        raise InvalidInput(f"beam_size {data.beam_size} exceeds the limit of {settings.max_beam} (TRANSLATOR_MAX_BEAM)")
    if data.alternatives > settings.max_beam - 1:
        raise InvalidInput(f"alternatives {data.alternatives} exceeds the limit of {settings.max_beam - 1} (the best "
                           f"translation and its alternatives come from one beam of at most {settings.max_beam})")
    return (texts, *settings.beam_for(data.beam_size, data.alternatives))


def check_language_pair(source: str, target: str) -> None:
    if source not in SOURCES or target not in TARGETS:
        raise InvalidInput(f"unsupported language pair {source!r} -> {target!r}: this service translates "
                           "English to Polish only (source 'en' or 'auto', target 'pl'); see GET /languages")


def check_texts(q: str | list[str], settings: Settings) -> list[str]:
    """q as a list of texts, within the limits of texts per request and characters per text (413 otherwise)."""
    texts = [q] if isinstance(q, str) else q
    if len(texts) > settings.max_texts:
        raise PayloadTooLarge(f"q has {len(texts)} texts, which exceeds the limit of {settings.max_texts} texts per "
                              "request (TRANSLATOR_MAX_TEXTS)")
    for i, t in enumerate(texts):
        if len(t) > settings.max_text_chars:
            raise PayloadTooLarge(f"text {i} has {len(t)} characters, which exceeds the text limit of "
                                  f"{settings.max_text_chars} (TRANSLATOR_MAX_TEXT_CHARS)")
    return texts


@get("/languages", sync_to_thread=False, responses=PLAIN_RESPONSES)
def languages() -> list[dict[str, Any]]:
    return LANGUAGES


@get("/health/live", sync_to_thread=False, responses=PLAIN_RESPONSES)
def live() -> dict[str, str]:
    return {"status": "alive"}


@get("/health/ready", sync_to_thread=False, responses=READY_RESPONSES, operation_class=DocumentedOperation)
def ready(state: State) -> Response[dict[str, str]]:
    if state.get("ready"):
        return Response({"status": "ready"}, status_code=200)
    return Response({"status": "not ready", "error": "the model is loading or the server is shutting down",
                     "type": "not_ready"},
                    status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


@get("/v1/models", sync_to_thread=False, responses=MODELS_RESPONSES, operation_class=DocumentedOperation)
def models(state: State) -> dict[str, Any]:
    if state.get("translator") is None:
        raise Overloaded("the model is not loaded yet; retry shortly")
    translator: Model = state.translator
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
    if any(isinstance(e, dict) and e.get("key") == "data" and e.get("message") == "'data'" for e in extra):
        return 'invalid request: the body is empty; send a JSON object such as {"q": "Hello"}'
    parts = [f"{e.get('message', e)}" + (f" (at {e['key']!r})" if e.get("key") else "") if isinstance(e, dict)
             else str(e) for e in extra]
    return "invalid request: " + ("; ".join(parts) if parts else exc.detail)


def _json_message(detail: str) -> str:
    """msgspec's message for a body that is not JSON, with what it most likely means."""
    if "truncated" in detail:
        return (f"{detail}: the JSON ends early, or a string holds a lone UTF-16 surrogate escape (\\ud800-\\udbff "
                "without its low half), which is not text")
    if "surrogate" in detail:
        return f"{detail}: a string holds a lone UTF-16 surrogate escape, which is not text"
    return detail


def _body_too_large(request: Request) -> str:
    limit = request.route_handler.resolve_request_max_body_size()
    size = f"has {request.content_length} bytes" if request.content_length is not None else "is larger than that"
    return f"the request body {size}; the limit is {limit} bytes (TRANSLATOR_MAX_BODY_BYTES)"


def error_response(request: Request, exc: Exception) -> Response[dict[str, str]]:
    headers: dict[str, str] = {}
    if isinstance(exc, TranslatorError):
        status, kind, message = status_of(exc), exc.kind, str(exc)
    elif isinstance(exc, TooManyRequestsException):   # the rate limiter (litestar's RateLimitMiddleware)
        status, kind = 429, RateLimited.kind
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower().startswith("ratelimit")}
        reset = max(1, int(headers.get("RateLimit-Reset", RETRY_AFTER_S)))
        headers["Retry-After"] = str(reset)
        message = (f"rate limit exceeded: at most {headers.get('RateLimit-Limit', '?')} requests per minute per API "
                   f"key or client address; retry in {reset} s")
    elif isinstance(exc, ValidationException):
        status, kind, message = 400, InvalidInput.kind, _validation_message(exc)
    elif isinstance(exc, UnicodeDecodeError):   # litestar's JSON decoding lets it through: the body is not UTF-8
        status, kind = 400, InvalidInput.kind
        message = f"invalid request: the body is not valid UTF-8 ({exc.reason}); send UTF-8 JSON"
    elif isinstance(exc, HTTPException):   # malformed JSON, body too large, unknown route, wrong method
        status, message = exc.status_code, exc.detail
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}   # 405 names the methods
        if status >= 500:
            log.exception("error on %s %s", request.method, request.url.path)
        kind = {400: InvalidInput.kind, 413: PayloadTooLarge.kind}.get(status, "http_error")
        if status == 400:
            message = f"invalid request: {_json_message(message)}"
        elif status == 404:
            message = f"no route {request.method} {request.url.path}; see GET /schema for the API"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.url.path} (allowed: {headers.get('allow', '?')})"
        elif status == 413:
            message = _body_too_large(request)
    else:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        status, kind, message = 500, *INTERNAL
    counted = request.url.path == "/translate"
    if counted and (t0 := request.scope.get("state", {}).get("t0")) is not None:   # past the admission middleware
        metrics.REQUEST_DURATION.observe(time.perf_counter() - t0)
    body, headers = _error(status, kind, message, headers, counted=counted)
    return Response(body, status_code=status, headers=headers or None)


INTERNAL = ("internal_error", "internal server error; it was logged")


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None,
           counted: bool = True) -> tuple[dict[str, str], dict[str, str]]:
    """The one error shape, for both paths: body `{"error", "type"}`, Retry-After on 429 and 503; `counted`
    (an answer to POST /translate) adds it to translator_requests_total, and to _rejected_ when refused."""
    headers = dict(headers or {})
    if counted:
        metrics.REQUESTS.labels(status=str(status)).inc()
        if status in (401, 403, 429, 499, 503, 504):
            metrics.REJECTED.labels(reason=kind).inc()
    if status in (429, 503):
        headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    return {"error": message, "type": kind}, headers


class EarlyRetries:
    """Requests refused because the queue is full are told `Retry-After: 1`. A client that sends its next request
    on the same connection sooner is held until that second has passed, then admitted or refused like any other
    request (TRANSLATOR_HOLD_EARLY_RETRIES, on by default). Clients that honour Retry-After are never held, and
    their refusals stay immediate; clients that ignore it are paced to one refusal a second per connection
    instead of retrying thousands of times a second, which took about a core from the admitted requests on
    2 cores (`python -m bench.flood`). Counted in translator_held_requests_total."""

    MAX_ENTRIES = 65536
    SLACK_S = 0.05      # a client that waited its second by a coarse timer (uvloop's are 1 ms) is not held

    def __init__(self, hold_s: float = RETRY_AFTER_S):
        self.hold_s, self.until = hold_s, {}

    async def hold(self, scope: Scope) -> None:
        if not self.until:
            return
        until = self.until.pop(scope.get("client"), None)
        if until is not None and (delay := until - time.monotonic()) > self.SLACK_S:
            metrics.HELD.inc()
            await asyncio.sleep(delay)

    def refused(self, scope: Scope) -> None:
        if scope.get("client") is None:
            return
        now = time.monotonic()
        if len(self.until) >= self.MAX_ENTRIES:       # clients that never came back
            self.until = {k: t for k, t in self.until.items() if t > now}
            if len(self.until) >= self.MAX_ENTRIES:
                return
        self.until[scope["client"]] = now + self.hold_s


def admission(app: ASGIApp) -> ASGIApp:
    """Admission, the outermost Litestar middleware, for POST /translate only: before Litestar builds a Request or
    reads the body, 503 while the model is not ready; an early retry is held (EarlyRetries); then 503 while the
    queue is full (the engine boundary decides: TranslationEngine.refuse_if_full). It answers only refusals; an
    admitted request goes on to the route. Refusing a flood here costs less CPU than in the route (a
    before_request hook cost the server ~0.08 of a core more than the old fast path under a 400-client flood)."""
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/translate" or scope["method"] != "POST":
            return await app(scope, receive, send)
        state = scope["litestar_app"].state
        scope.setdefault("state", {})["t0"] = t0 = time.perf_counter()
        early = state.early_retries
        try:
            engine = ready_engine(state)
            if early is not None:
                await early.hold(scope)
            engine.refuse_if_full()
        except Overloaded as e:
            if early is not None and state.ready:
                early.refused(scope)
            metrics.REQUEST_DURATION.observe(time.perf_counter() - t0)
            body, headers = _error(503, e.kind, str(e))
            return await _json_response(503, _ENCODE(body), headers)(scope, receive, send)
        await app(scope, receive, send)
    return middleware


def ready_engine(state: State) -> TranslationEngine:
    """The engine, once the model is loaded and until shutdown begins; 503 otherwise."""
    if not state.get("ready"):
        raise Overloaded("the model is not ready yet (loading or shutting down); retry shortly")
    return state.engine


_JSON = (b"content-type", b"application/json")
_ENCODE = msgspec.json.Encoder().encode


def _json_response(status: int, payload: bytes, headers: dict[str, str] | None = None) -> ASGIApp:
    """A JSON answer as a bare ASGI app (what a Litestar handler may return as it is)."""
    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", b"%d" % len(payload)),
                                *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]})
        await send({"type": "http.response.body", "body": payload})
    return respond


def _documented_body(data: TranslateRequest) -> TranslateRequest:
    """Never called: Litestar's OpenAPI documents a route's request body from a `data` parameter of the handler or
    of one of its dependencies, and `translate` reads its body itself (decode_body)."""
    return data


@post("/translate", status_code=200, dependencies={"documented_body": Provide(_documented_body, sync_to_thread=False)}, responses={200: ResponseSpec(
      TranslateResponse, description="The translations, mirroring q.", generate_examples=False), **TRANSLATE_RESPONSES},
      operation_class=DocumentedOperation)
async def translate(request: Request) -> ASGIApp:
    """POST /translate, the one path (`admission` has refused a full queue before): the body is read through
    Litestar (413 over the limit, chunked bodies) and decoded by `decode_body`, checked, translated under the
    request's deadline, and encoded by msgspec into a bare ASGI response: dependency injection and Litestar's
    body parsing and response machinery cost more CPU per request than the rest of the HTTP layer."""
    state = request.app.state
    data = await read_body(request, TranslateRequest, decode_body)   # JSON, or a form (service/bodies.py)
    key = request_key(request) if state.auth.keys else None
    out = await _translate(data, key, state.engine, state.settings, state.auth, request.receive)
    metrics.REQUEST_DURATION.observe(time.perf_counter() - request.scope["state"]["t0"])
    metrics.REQUESTS.labels(status="200").inc()   # failures are counted (and timed) in error_response
    return _json_response(200, _ENCODE(out))


# Litestar's HTTP metrics (`litestar_*`, paths grouped by route template) for every route but /translate, which
# translator_requests_total and translator_request_duration_seconds count
prometheus_config = PrometheusConfig(app_name="translator", prefix="litestar", group_path=True,
                                     exclude=["^/metrics$", "^/translate$"])


class MetricsController(PrometheusController):
    """GET /metrics: litestar's PrometheusController, its OpenAPI entry saying what it answers: Prometheus text, not
    JSON, and the 401/403 of a metrics token."""

    get = get(media_type=CONTENT_TYPE_LATEST, responses=METRICS_RESPONSES, summary="Prometheus metrics",
              description="Prometheus text exposition format.")(PrometheusController.get.fn)


def _engine_lost(state: State, server: Any) -> None:
    """The engine process died (its requests already failed with 500): not ready, and the server exits with status
    1 (`python -m service`), so that its supervisor (Docker's restart policy, systemd, uvicorn for a worker)
    starts a fresh one instead of a server that can only refuse."""
    state.ready = False
    log.error("the engine process is gone; stopping this server so that it is restarted")
    if server is not None:
        server.should_exit = True


def create_app(settings: Settings, translator: Translator | None = None,
               engine: ProcessEngine | None = None) -> Litestar:
    """The app. With a `translator` (tests, embedding) the engine runs in threads of this process; otherwise it
    runs in its own process when settings.engine_process is on (`engine`: one already launched, as `python -m
    service` does so that a bad model stops it before the port is bound), else in threads."""
    auth = Auth(settings.keys())

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        placement: TranslationEngine
        if app.state.translator is None and (engine is not None or settings.engine_process == "on"):
            placement = process = engine or ProcessEngine(settings)
            if not process.launched:
                await asyncio.to_thread(process.launch)
            process.start()
            server = uvicorn_server()        # now, before drain_on_sigterm puts its own SIGTERM handler in
            process.on_exit = lambda: _engine_lost(app.state, server)
            where = f"process {os.getpid()}, engine process {process.pid}"
            if settings.http_nice:          # this thread (the event loop) only; the engine keeps its priority
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), settings.http_nice)
        else:
            tr = app.state.translator or await asyncio.to_thread(load_translator, settings)
            await asyncio.to_thread(tr.warmup)
            placement = LocalEngine(tr, max_batch=settings.max_batch, max_queue=settings.max_queue)
            placement.start()
            where = f"process {os.getpid()}"
        tr = placement.model
        app.state.translator, app.state.engine, app.state.ready = tr, placement, True
        drain_on_sigterm(app.state, placement, settings)
        log.info("model %s %s ready on %s (%s)", tr.info.raw.get("name"), tr.info.raw.get("version"),
                 tr.provider, where)
        try:
            yield
        finally:
            app.state.ready = False
            await placement.stop(timeout=settings.shutdown_grace_s)
            metrics.process_exited()

    def metrics_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        header = connection.headers.get("authorization", "")
        if not header:
            raise Unauthorized("GET /metrics needs `Authorization: Bearer TOKEN` (TRANSLATOR_METRICS_TOKEN)")
        if not hmac.compare_digest(header.encode(), f"Bearer {settings.metrics_token}".encode()):
            raise Forbidden("the metrics token is not valid")

    class Metrics(MetricsController):
        guards = [metrics_guard] if settings.metrics_token else None

    middleware = [admission, prometheus_config.middleware]
    if settings.rate_limit:   # per API key (from the headers) or client address, per worker process
        middleware.append(RateLimitConfig(
            rate_limit=("minute", settings.rate_limit), set_rate_limit_headers=True,
            identifier_for_request=lambda r: "key:" + key if (key := request_key(r)) else "addr:" + get_remote_address(r),
            check_throttle_handler=lambda r: r.url.path in LIMITED_PATHS).middleware)

    from .libretranslate import ROUTES, DetectRequest, files_lifespan   # (it imports this module)

    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    app = Litestar(
        route_handlers=[translate, languages, live, ready, models, Metrics, demo_page, *ROUTES],
        lifespan=[lifespan, files_lifespan],
        state=State({"translator": translator, "engine": None, "ready": False, "settings": settings, "auth": auth,
                     "early_retries": EarlyRetries() if settings.hold_early_retries == "on" else None,
                     "files": FileStore.for_settings(settings)}),
        exception_handlers={Exception: error_response},
        middleware=middleware,
        cors_config=CORSConfig(allow_origins=origins, allow_methods=["GET", "POST"]) if origins else None,
        openapi_config=OpenAPIConfig(title="English->Polish translation service", version=__version__,
                                     path="/schema"),
        request_max_body_size=settings.body_limit(),   # larger than the largest valid request (settings.py)
        plugins=[RequestLimits(TranslateRequest, settings, SOURCES, TARGETS),
                 RequestLimits(DetectRequest, settings, SOURCES, TARGETS)],
    )
    return app


def create_app_from_env() -> Litestar:
    """Factory for `uvicorn --factory service.app:create_app_from_env` (one model per worker process)."""
    return create_app(Settings.from_env())
