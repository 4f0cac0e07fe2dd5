"""One error hierarchy for the service; the HTTP layer maps each class to a status, once (service/app.py STATUS)."""
from __future__ import annotations


class TranslatorError(Exception):
    """Base: `kind` is a machine-readable type, str(e) the message for users."""

    kind = "internal_error"


class InvalidInput(TranslatorError):
    kind = "invalid_input"


class PayloadTooLarge(InvalidInput):
    kind = "payload_too_large"


class Unauthorized(TranslatorError):
    """No API key where the service requires one."""

    kind = "unauthorized"


class Forbidden(TranslatorError):
    """An API key (or metrics token) that is not valid."""

    kind = "forbidden"


class NotFound(TranslatorError):
    """Something the request names does not exist (or no longer: a translated file past its lifetime)."""

    kind = "not_found"


class RateLimited(TranslatorError):
    """A key or client address over its request rate; answered with Retry-After."""

    kind = "rate_limited"


class Overloaded(TranslatorError):
    kind = "overloaded"


class TimedOut(TranslatorError):
    kind = "timeout"


class ClientClosedRequest(TranslatorError):
    """The client disconnected before its answer was ready (nginx's 499; nobody receives this response)."""

    kind = "client_closed_request"


class ModelError(TranslatorError):
    """The model failed while decoding (not the user's fault)."""

    kind = "model_error"


class ModelLoadError(TranslatorError):
    """The model directory is missing, incomplete or inconsistent (raised at start-up)."""
