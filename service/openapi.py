"""What GET /schema/openapi.json says beyond the handlers' own types.

- `ErrorBody`: the one shape of every error the service answers, `{"error": "...", "type": "..."}`.
- `TRANSLATE_RESPONSES` & co.: every status code each operation can answer, for the route decorators
  (`responses=`); `DocumentedOperation` adds the `Retry-After` header to the 429 and 503 responses.
- `RequestLimits`: the limits that depend on settings (characters per text, texts per request, beam_size,
  alternatives) and the accepted languages, written into the TranslateRequest schema of one app. The handler
  checks them itself, so its messages can name the limit and the value received.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import (OpenAPIHeader, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, RequestBody,
                                   Schema)
from litestar.plugins import OpenAPISchemaPlugin

from .documents import FORMATS

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

    from .settings import Settings


class ErrorBody(msgspec.Struct):
    """Every error the service answers has this body (LibreTranslate's `error`, plus a machine-readable type)."""

    error: Annotated[str, msgspec.Meta(description="What is wrong and how to fix it; names the limit and the value "
                                                   "received when a limit was crossed.")]
    type: Annotated[str, msgspec.Meta(description="Machine-readable kind: invalid_input, payload_too_large, "
                                                  "unauthorized, forbidden, not_found, rate_limited, overloaded, "
                                                  "not_ready, timeout, model_error, internal_error, http_error.")]


def error(description: str) -> ResponseSpec:
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


INTERNAL = error("internal_error: an unexpected error in the service; it was logged, the message says no more.")
TRANSLATE_RESPONSES: dict[int, ResponseSpec] = {
    400: error("invalid_input: the body is not UTF-8 JSON of the documented shape, a field has the wrong type, "
               "the language pair or format is not supported (see GET /languages), a text sent as format html cannot "
               "be parsed, or beam_size / alternatives is over its limit (TRANSLATOR_MAX_BEAM; alternatives at most "
               "TRANSLATOR_MAX_BEAM - 1)."),
    401: error("unauthorized: the service has API keys (TRANSLATOR_API_KEYS) and the request sent none "
               "(`Authorization: Bearer KEY`, `X-API-Key: KEY` or the body field `api_key`)."),
    403: error("forbidden: the API key sent is not valid."),
    413: error("payload_too_large: over a size limit: the body (TRANSLATOR_MAX_BODY_BYTES), texts per request "
               "(TRANSLATOR_MAX_TEXTS), characters per text (TRANSLATOR_MAX_TEXT_CHARS), subword tokens per sentence "
               "(TRANSLATOR_MAX_SOURCE_TOKENS) or sentences per request (TRANSLATOR_MAX_QUEUE); the message names "
               "the limit and the value received."),
    429: error("rate_limited: over TRANSLATOR_RATE_LIMIT requests per minute for this API key or client address; "
               "retry after Retry-After seconds."),
    500: error("model_error: the model failed while decoding (only the requests in that decoder step fail), or "
               "internal_error: an unexpected error; either way it was logged."),
    503: error("overloaded: the queue is full (TRANSLATOR_MAX_QUEUE sentences), or the model is not ready yet or the "
               "server is shutting down; retry after Retry-After seconds."),
    504: error("timeout: the request's deadline passed, queueing included (TRANSLATOR_REQUEST_TIMEOUT_S, or the "
               "request's own lower `timeout`); its sentences were dropped from the batch."),
}
READY_RESPONSES: dict[int, ResponseSpec] = {
    503: error("not_ready: the model is loading or the server is shutting down (`status` is \"not ready\"); "
               "retry after Retry-After seconds."),
    500: INTERNAL,
}
MODELS_RESPONSES: dict[int, ResponseSpec] = {
    503: error("overloaded: the model is not loaded yet; retry after Retry-After seconds."),
    500: INTERNAL,
}
METRICS_RESPONSES: dict[int, ResponseSpec] = {
    401: error("unauthorized: the service has a metrics token (TRANSLATOR_METRICS_TOKEN) and the request sent no "
               "`Authorization: Bearer TOKEN`."),
    403: error("forbidden: the metrics token sent is not valid."),
    500: INTERNAL,
}
PLAIN_RESPONSES: dict[int, ResponseSpec] = {500: INTERNAL}
KEY_RESPONSES = {k: TRANSLATE_RESPONSES[k] for k in (401, 403, 429)}
DETECT_RESPONSES: dict[int, ResponseSpec] = {
    400: error("invalid_input: the body is not JSON or a form of the documented shape, or a field has the wrong type."),
    **KEY_RESPONSES,
    413: error("payload_too_large: the body (TRANSLATOR_MAX_BODY_BYTES), texts per request (TRANSLATOR_MAX_TEXTS) or "
               "characters per text (TRANSLATOR_MAX_TEXT_CHARS) over its limit."),
    500: INTERNAL,
}
FILE_RESPONSES: dict[int, ResponseSpec] = {
    400: error("invalid_input: not multipart/form-data with a `file`, a file format that is not supported (the "
               "message lists the supported ones), a file that is not UTF-8 text, an unsupported language pair, or "
               "`source: auto` and the file is not English."),
    **KEY_RESPONSES,
    413: error("payload_too_large: the file (TRANSLATOR_MAX_FILE_BYTES), a sentence in it (TRANSLATOR_MAX_TEXT_CHARS "
               "or TRANSLATOR_MAX_SOURCE_TOKENS), or the body (TRANSLATOR_MAX_BODY_BYTES) over its limit."),
    500: TRANSLATE_RESPONSES[500],
    503: TRANSLATE_RESPONSES[503],
    504: error("timeout: the file was not translated within TRANSLATOR_REQUEST_TIMEOUT_S, queueing included."),
}
DOWNLOAD_RESPONSES: dict[int, ResponseSpec] = {
    400: error("invalid_input: the request is malformed (the file name is any text, so in practice never)."),
    404: error("not_found: no such file, or it is past its lifetime (TRANSLATOR_FILES_TTL_S)."),
    500: INTERNAL,
}
SUGGEST_RESPONSES: dict[int, ResponseSpec] = {
    403: error("forbidden: suggestions are disabled on this server (always: there is no suggestion store)."),
    500: INTERNAL,
}
HEALTH_RESPONSES: dict[int, ResponseSpec] = {
    503: error("not_ready: the model is loading or the server is shutting down; retry after Retry-After seconds."),
    500: INTERNAL,
}


FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class DocumentedOperation(Operation):
    """An Operation whose 429 and 503 responses document the Retry-After header the service sends with them
    (litestar's ResponseSpec has no headers), and whose JSON request body is documented as a form too, with the
    same schema (service/bodies.py: every POST endpoint takes the same fields as JSON, urlencoded or multipart)."""

    def __post_init__(self) -> None:
        content = self.request_body.content if isinstance(self.request_body, RequestBody) else {}
        if "application/json" in content:
            # the JSON schema, and: a list in a form is a repeated field, so it has at least one item
            form = Schema(all_of=[content["application/json"].schema, Schema(properties={"q": Schema(one_of=[
                Schema(type=OpenAPIType.STRING), Schema(type=OpenAPIType.ARRAY, min_items=1)])})])
            for media in FORM_MEDIA_TYPES:
                content.setdefault(media, OpenAPIMediaType(schema=form))
            self.request_body.description = (
                "JSON, or the same fields as a form (application/x-www-form-urlencoded or multipart/form-data): a "
                "list is sent as the field repeated (q=a&q=b), numbers and booleans as text (2, true).")
        for code in ("429", "503"):
            response = (self.responses or {}).get(code)
            if isinstance(response, OpenAPIResponse):
                response.headers = {**(response.headers or {}), "Retry-After": OpenAPIHeader(
                    schema=Schema(type=OpenAPIType.INTEGER, minimum=1), required=True,
                    description="Seconds to wait before retrying.")}


class RequestLimits(OpenAPISchemaPlugin):
    """Writes one app's limits into the schema of `struct` (the /translate request body): maxLength of every
    text, maxItems of the q list, the beam_size and alternatives maxima, and enums of the accepted source,
    target and format. The schema is built by the plugin that would have built it without this one; the bounds
    declared with msgspec.Meta are then written onto the typed variant of each property (litestar puts those
    of an `X | None` field beside the oneOf, and drops falsy ones such as gt=0)."""

    def __init__(self, struct: type, settings: Settings, sources: tuple[str, ...], targets: tuple[str, ...]):
        self.struct, self.settings, self.sources, self.targets = struct, settings, sources, targets

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return field_definition.annotation is self.struct

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        base = next(p for p in schema_creator.plugins if p is not self and schema_creator.plugin_supports_field(
            p, field_definition))
        schema = base.to_openapi_schema(field_definition=field_definition, schema_creator=schema_creator)
        props, s = schema.properties or {}, self.settings
        _msgspec_bounds(self.struct, props)
        for variant in _variants(props.get("q")):
            if variant.type == OpenAPIType.STRING:
                variant.max_length = s.max_text_chars
            elif variant.type == OpenAPIType.ARRAY and isinstance(variant.items, Schema):
                variant.max_items = s.max_texts
                variant.items.max_length = s.max_text_chars
        if isinstance(props.get("q"), Schema) and not props["q"].description:
            props["q"].description = (
                f"One text, or a list of at most {s.max_texts} (TRANSLATOR_MAX_TEXTS); each at most "
                f"{s.max_text_chars} characters (TRANSLATOR_MAX_TEXT_CHARS; markup included for format html). A "
                "text may hold several sentences and line breaks: it is cut into sentences (every line break ends "
                "one), each is translated on its own, and the translations are put back with the text's own "
                f"whitespace. Each sentence at most {s.max_source_tokens} subword tokens (TRANSLATOR_MAX_SOURCE_TOKENS; "
                "413 beyond), and at most TRANSLATOR_MAX_QUEUE sentences in all. Blank texts translate to \"\".")
        for name, values in (("source", self.sources), ("target", self.targets), ("format", FORMATS)):
            _typed(props.get(name), OpenAPIType.STRING, enum=list(values))
        _typed(props.get("beam_size"), OpenAPIType.INTEGER, maximum=s.max_beam)
        _typed(props.get("alternatives"), OpenAPIType.INTEGER, maximum=s.max_beam - 1)
        return schema


_BOUNDS = {"gt": "exclusive_minimum", "ge": "minimum", "lt": "exclusive_maximum", "le": "maximum"}
_TYPES = {msgspec.inspect.IntType: OpenAPIType.INTEGER, msgspec.inspect.FloatType: OpenAPIType.NUMBER,
          msgspec.inspect.StrType: OpenAPIType.STRING, msgspec.inspect.ListType: OpenAPIType.ARRAY}


def _msgspec_bounds(struct: type, props: dict[str, Any]) -> None:
    """Each field's msgspec.Meta bounds, on the variant of its schema that has the bounded type."""
    for f in msgspec.inspect.type_info(struct).fields:   # type: ignore[union-attr]
        kinds = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
        for t in kinds:
            if type(t) not in _TYPES:
                continue
            values = {key: getattr(t, attr) for attr, key in _BOUNDS.items() if getattr(t, attr, None) is not None}
            lengths = ("min_items", "max_items") if isinstance(t, msgspec.inspect.ListType) else \
                ("min_length", "max_length")
            values.update({key: getattr(t, attr) for attr, key in zip(("min_length", "max_length"), lengths)
                           if getattr(t, attr, None) is not None})
            _typed(props.get(f.encode_name), _TYPES[type(t)], **values)


def _variants(schema: Any) -> list[Schema]:
    """A schema and the alternatives of its oneOf/anyOf, if any."""
    if not isinstance(schema, Schema):
        return []
    return [schema] + [v for v in (schema.one_of or []) + (schema.any_of or []) if isinstance(v, Schema)]


def _typed(schema: Any, kind: OpenAPIType, **values: Any) -> None:
    """Sets values on the variant of a property's schema that has type `kind` (the schema itself when it has no
    oneOf), and drops the same keywords from beside a oneOf so that nothing contradicts them."""
    variants = _variants(schema)
    if not variants:
        return
    outer, alternatives = variants[0], variants[1:]
    for v in [v for v in alternatives if v.type == kind] or ([] if alternatives else [outer]):
        for k, value in values.items():
            setattr(v, k, value)
    if alternatives:
        for k in values:
            setattr(outer, k, None)
