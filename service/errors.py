"""One error hierarchy, mapped to HTTP status in one place (app.py's exception handler)."""
from __future__ import annotations


class TranslatorError(Exception):
    """Base: `status` is the HTTP status, `kind` a machine-readable type, str(e) the message for users."""

    status = 500
    kind = "internal_error"


class InvalidInput(TranslatorError):
    status = 400
    kind = "invalid_input"


class PayloadTooLarge(InvalidInput):
    status = 413
    kind = "payload_too_large"


class Unauthorized(TranslatorError):
    """No API key where the service requires one."""

    status = 401
    kind = "unauthorized"


class Forbidden(TranslatorError):
    """An API key (or metrics token) that is not valid."""

    status = 403
    kind = "forbidden"


class RateLimited(TranslatorError):
    """A key or client address over its request rate; answered with Retry-After."""

    status = 429
    kind = "rate_limited"


class Overloaded(TranslatorError):
    status = 503
    kind = "overloaded"


class TimedOut(TranslatorError):
    status = 504
    kind = "timeout"


class ClientClosedRequest(TranslatorError):
    """The client disconnected before its answer was ready (nginx's 499; nobody receives this response)."""

    status = 499
    kind = "client_closed_request"


class ModelError(TranslatorError):
    """The model failed while decoding (not the user's fault)."""

    status = 500
    kind = "model_error"


class ModelLoadError(TranslatorError):
    """The model directory is missing, incomplete or inconsistent (raised at start-up)."""
