"""The rest of LibreTranslate's API, so that its clients work unchanged (POST /translate and GET /languages are in
app.py): `POST /detect`, `GET /frontend/settings`, `POST /translate_file` with `GET /download_file/{name}`,
`POST /suggest` (always 403: suggestions are off, as on a LibreTranslate server started without them), and
`GET /health`. Bodies: JSON or the same fields as a form (service/bodies.py); errors: app.py's one error shape.

The handlers find the settings, the API keys, the engine and the file store in `app.state` (create_app puts
them there).
"""
from __future__ import annotations

import asyncio
import logging
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, AsyncIterator

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.di import Provide
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, JSONBody
from litestar.response import File

from .app import (LANGUAGES, RETRY_AFTER_S, _until_deadline, check_language_pair, check_texts, ready_engine,
                  request_key)
from .bodies import json_decoder, read_body
from .detect import detect_source, detector, off_the_loop_if_long
from .errors import Forbidden, InvalidInput, NotFound, PayloadTooLarge
from .files import FORMATS, download_name, format_of
from .openapi import (DETECT_RESPONSES, DOWNLOAD_RESPONSES, FILE_RESPONSES, HEALTH_RESPONSES, PLAIN_RESPONSES,
                      SUGGEST_RESPONSES, DocumentedOperation)

log = logging.getLogger(__name__)
NAMES = {lang["code"]: lang["name"] for lang in LANGUAGES}
FRONTEND_TIMEOUT_MS = 500      # LibreTranslate's default: how long its web page waits after typing to translate


# -- POST /detect ----------------------------------------------------------------------------------
class DetectRequest(msgspec.Struct):
    q: Annotated[str | list[str], msgspec.Meta(
        description="the text; a list of texts is detected as one text (LibreTranslate detects a list together too)")]
    api_key: Annotated[str, msgspec.Meta(max_length=256)] | None = None


class DetectedLanguage(msgspec.Struct):
    language: Annotated[str, msgspec.Meta(description="ISO 639 code (141 languages; 639-1 where one exists)")]
    confidence: Annotated[float, msgspec.Meta(ge=0, le=100, description="in percent")]


def _documented_body(data: JSONBody[DetectRequest]) -> DetectRequest:
    """Never called: it documents the request body in OpenAPI (as app.py's for /translate); `detect` reads it."""
    return data


_DECODE_DETECT = json_decoder(DetectRequest)


@post("/detect", status_code=200, responses=DETECT_RESPONSES, operation_class=DocumentedOperation,
      dependencies={"documented_body": Provide(_documented_body, sync_to_thread=False)})
async def detect(request: Request) -> list[DetectedLanguage]:
    """The languages the text is most likely written in, most likely first (at most 3), LibreTranslate's shape.
    A text without letters answers `[{"language": "en", "confidence": 0.0}]`, as LibreTranslate does."""
    state = request.app.state
    data = await read_body(request, DetectRequest, _DECODE_DETECT)     # JSON, or a form (service/bodies.py)
    state.auth.check(request_key(request), data.api_key)
    texts = check_texts(data.q, state.settings)
    text = "\n".join(texts)
    return [DetectedLanguage(**d) for d in await off_the_loop_if_long(len(text), detector().detect, text)]


# -- GET /frontend/settings ------------------------------------------------------------------------
class LanguageRef(msgspec.Struct):
    code: str
    name: str


class FrontendLanguages(msgspec.Struct):
    source: LanguageRef
    target: LanguageRef


class FrontendSettings(msgspec.Struct):
    charLimit: Annotated[int, msgspec.Meta(description="characters per text (TRANSLATOR_MAX_TEXT_CHARS)")]
    frontendTimeout: Annotated[int, msgspec.Meta(description="LibreTranslate's web page: ms to wait after typing")]
    apiKeys: Annotated[bool, msgspec.Meta(description="whether the service has API keys")]
    keyRequired: Annotated[bool, msgspec.Meta(description="whether /translate, /detect and /translate_file need one")]
    suggestions: Annotated[bool, msgspec.Meta(description="always false: POST /suggest is not offered")]
    filesTranslation: bool
    supportedFilesFormat: Annotated[list[str], msgspec.Meta(description="file extensions /translate_file takes")]
    language: FrontendLanguages


@get("/frontend/settings", sync_to_thread=False, responses=PLAIN_RESPONSES)
def frontend_settings(request: Request) -> FrontendSettings:
    """LibreTranslate's settings for its web page, with this service's values."""
    settings, keys = request.app.state.settings, bool(request.app.state.auth.keys)
    return FrontendSettings(
        charLimit=settings.max_text_chars, frontendTimeout=FRONTEND_TIMEOUT_MS, apiKeys=keys, keyRequired=keys,
        suggestions=False, filesTranslation=True, supportedFilesFormat=list(FORMATS),
        language=FrontendLanguages(source=LanguageRef("en", NAMES["en"]), target=LanguageRef("pl", NAMES["pl"])))


# -- POST /translate_file, GET /download_file/{name} -----------------------------------------------
@dataclass
class TranslateFileForm:
    file: UploadFile
    source: str = "en"
    target: str = "pl"
    api_key: str | None = None


class TranslatedFile(msgspec.Struct):
    translatedFileUrl: Annotated[str, msgspec.Meta(
        description="where to download the translated file (GET, for TRANSLATOR_FILES_TTL_S seconds)")]


async def one_file_upload(request: Request) -> None:
    """Before the handler: a multipart body (read here, and kept for the handler) with exactly one file in `file`."""
    if request.content_type[0] != RequestEncodingType.MULTI_PART:
        raise InvalidInput("POST /translate_file takes multipart/form-data with the file in the field `file` (and "
                           f"`source`, `target`, `api_key` as form fields); got {request.content_type[0] or 'no body'}")
    files = (await request.form()).getall("file", [])
    if len(files) != 1 or not isinstance(files[0], UploadFile):
        raise InvalidInput("invalid request: the field `file` must be one file upload (with its file name: its "
                           f"extension says the format); got {len(files)} field(s) of that name"
                           + ("" if not files or isinstance(files[0], UploadFile) else ", as text"))


@post("/translate_file", status_code=200, before_request=one_file_upload, responses=FILE_RESPONSES,
      operation_class=DocumentedOperation)
async def translate_file(request: Request, data: Annotated[TranslateFileForm, Body(
        media_type=RequestEncodingType.MULTI_PART)]) -> TranslatedFile:
    """Translates an uploaded file (see /frontend/settings for the formats) and answers where to download it,
    LibreTranslate's shape. Each line is translated as a text, at the service's default beam."""
    state = request.app.state
    settings = state.settings
    state.auth.check(request_key(request), data.api_key or None)
    check_language_pair(data.source, data.target)
    ext = format_of(data.file.filename)
    content = await data.file.read()
    if len(content) > settings.max_file_bytes:
        raise PayloadTooLarge(f"the file has {len(content)} bytes, which exceeds the limit of {settings.max_file_bytes}"
                              " bytes (TRANSLATOR_MAX_FILE_BYTES)")
    doc = FORMATS[ext](content, settings.max_text_chars)
    if data.source == "auto":
        text = "\n".join(doc.texts)
        await off_the_loop_if_long(len(text), detect_source, [text])
    engine = ready_engine(state)
    beam, _ = settings.beam_for(None, 0)
    translated: list[str] = []

    async def translate_all() -> None:
        step = settings.max_texts
        for start in range(0, len(doc.texts), step):
            try:
                results = await engine.submit(doc.texts[start:start + step], beam, 1, False)
            except InvalidInput as e:   # a limit of one text ("text 3 has ... tokens"): name its line instead
                raise type(e)(re.sub(r"^text (\d+)", lambda m: f"line {doc.lines[start + int(m[1])]}", str(e))) \
                    from None
            translated.extend(r.text for r in results)

    await _until_deadline(request.receive, translate_all(), settings.request_timeout_s)
    stored = await asyncio.to_thread(state.files.put, doc.join(translated), download_name(data.file.filename, ext))
    return TranslatedFile(request.url_for("download_file", file_name=stored))


@get("/download_file/{file_name:str}", name="download_file", sync_to_thread=False, responses=DOWNLOAD_RESPONSES,
     operation_class=DocumentedOperation)
def download_file(request: Request, file_name: FromPath[str]) -> File:
    """A translated file, as an attachment named like the uploaded one."""
    path = request.app.state.files.path(file_name)
    if path is None:
        raise NotFound(f"no translated file {file_name!r}: it was never made, or it is older than "
                       f"{request.app.state.settings.files_ttl_s:g} s (TRANSLATOR_FILES_TTL_S); translate it again")
    return File(path=path, filename=file_name.split(".", 1)[1], content_disposition_type="attachment",
                media_type="text/plain" if file_name.endswith(".txt") else None)


@asynccontextmanager
async def files_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Deletes expired translated files at start and then every minute (each upload sweeps too), and loads the
    language detector off the event loop, so that the first /detect does not wait for it (about 1 s)."""
    async def sweep() -> None:
        while True:
            try:
                await asyncio.to_thread(app.state.files.sweep)
            except OSError as e:
                log.warning("could not sweep the translated files in %s: %s", app.state.files.root, e)
            await asyncio.sleep(60)

    await asyncio.to_thread(detector)
    task = asyncio.create_task(sweep())
    try:
        yield
    finally:
        task.cancel()


# -- POST /suggest, GET /health --------------------------------------------------------------------
@post("/suggest", status_code=200, responses=SUGGEST_RESPONSES, operation_class=DocumentedOperation,
      sync_to_thread=False)
def suggest() -> dict[str, bool]:
    """LibreTranslate's suggestion box: off here, as on a LibreTranslate server without --suggestions."""
    raise Forbidden("suggestions are disabled on this server: it keeps no suggestions (/frontend/settings says "
                    "suggestions: false)")


@get("/health", sync_to_thread=False, responses=HEALTH_RESPONSES, operation_class=DocumentedOperation)
def health(request: Request) -> Response[dict[str, str]]:
    """LibreTranslate's health check: `{"status": "ok"}` once the model is ready (as GET /health/ready)."""
    if request.app.state.get("ready"):
        return Response({"status": "ok"})
    return Response({"status": "not ready", "error": "the model is loading or the server is shutting down",
                     "type": "not_ready"}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


ROUTES = [detect, frontend_settings, translate_file, download_file, suggest, health]
