"""The three body types of every POST endpoint, as LibreTranslate accepts them: JSON, and the same fields as
`application/x-www-form-urlencoded` or `multipart/form-data` (what LibreTranslate's own clients send).

A handler reads its body with `read_body`, which turns a form into the endpoint's msgspec Struct, as JSON would
be, so the handler's validation, limits and errors are the same whatever the body type:
- a field sent once is a string, a field sent several times a list (`q=a&q=b` is `{"q": ["a", "b"]}`);
- strings convert to the field's declared type as msgspec converts them without `strict` (`"2"` for an integer,
  `"0.5"` for a number); a boolean is `true` or `false` (any case); what does not convert is a 400 naming the
  field;
- a list in a form has at least one item (the field sent once or more), so a form without `q` is a 400;
- a body sent with the form Content-Type that is a JSON object (`curl -d '{"q": ...}'` without a Content-Type
  header does that) is read as the JSON it is.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType

from .errors import InvalidInput

FORM_TYPES = (RequestEncodingType.URL_ENCODED, RequestEncodingType.MULTI_PART)
T = TypeVar("T")


async def form_fields(request: Request) -> dict[str, Any] | None:
    """The fields of a form body (str, UploadFile, or a list of them when repeated), or None when the body is not
    a form (JSON, or a JSON object sent with the urlencoded Content-Type)."""
    media, _ = request.content_type
    if media not in FORM_TYPES:
        return None
    body = await request.body()     # read whole (within the body limit) and kept for read_body
    if media == RequestEncodingType.URL_ENCODED and body.lstrip()[:1] == b"{":
        return None
    fields: dict[str, Any] = {}
    for key, value in (await request.form()).multi_items():
        if key in fields:
            fields[key] = (fields[key] if isinstance(fields[key], list) else [fields[key]]) + [value]
        else:
            fields[key] = value
    return fields


def from_form(fields: dict[str, Any], struct: type[msgspec.Struct]) -> msgspec.Struct:
    """A form's fields as `struct` (400 naming the field that does not fit)."""
    booleans = {f.encode_name for f in msgspec.inspect.type_info(struct).fields   # type: ignore[union-attr]
                if any(isinstance(getattr(t, "type", t), msgspec.inspect.BoolType)     # (Metadata wraps Meta'd ones)
                       for t in getattr(f.type, "types", (f.type,)))}
    values = {}
    for key, value in fields.items():
        if isinstance(value, UploadFile) or (isinstance(value, list) and any(isinstance(v, UploadFile) for v in value)):
            raise InvalidInput(f"invalid request: the field {key!r} is a file; send it as a plain form field")
        if key in booleans and isinstance(value, str):
            if value.lower() not in ("true", "false"):
                raise InvalidInput(f"invalid request: Expected `true` or `false`, got {value!r} - at `$.{key}`")
            value = value.lower() == "true"
        values[key] = value
    try:
        return msgspec.convert(values, struct, strict=False)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"invalid request: {e}") from None


async def read_body(request: Request, struct: type[T], decode_json: Callable[[bytes], T]) -> T:
    """The request's body as `struct`: a form's fields converted as above, anything else JSON (`decode_json`)."""
    fields = await form_fields(request)
    return decode_json(await request.body()) if fields is None else from_form(fields, struct)


def json_decoder(struct: type[T]) -> Callable[[bytes], T]:
    """bytes -> `struct`, types exactly as declared (no coercion of "3" or 0), 400 with msgspec's message."""
    decode = msgspec.json.Decoder(struct, strict=True).decode

    def decode_json(body: bytes) -> T:
        if not body.strip():
            raise InvalidInput('invalid request: the body is empty; send a JSON object such as {"q": "Hello"}')
        try:
            return decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as e:   # (msgspec's ValidationError is a DecodeError)
            raise InvalidInput(f"invalid request: {e}") from None
    return decode_json
