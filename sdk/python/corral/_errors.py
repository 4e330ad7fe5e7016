"""Exceptions: one class per error code of the API.

Every refusal from the server is a flat JSON object
``{"error": "<code>", "message": "<sentence>"}`` with an HTTP status; the
client raises the class registered for the code (or, for a code it does
not know, the one for the status), always a subclass of :class:`APIError`.
"""
from __future__ import annotations

import email.utils
import time
from typing import Any, Dict, Mapping, Optional, Type


class CorralError(Exception):
    """Base class of everything this package raises on purpose."""


class ConfigurationError(CorralError, ValueError):
    """The client cannot be used as configured (e.g. no API key)."""


class APIConnectionError(CorralError):
    """No HTTP reply: the server could not be reached or the connection broke."""


class APITimeoutError(APIConnectionError):
    """The server did not answer within the client's timeout."""


class APIError(CorralError):
    """The server refused the request.

    Attributes: ``status`` (HTTP status), ``code`` (the ``error`` field, e.g.
    ``"validation_error"``), ``message`` (the server's sentence), ``body``
    (the parsed reply, or its text when it was not JSON) and ``headers``.
    """

    def __init__(self, message: str, *, status: Optional[int] = None, code: Optional[str] = None,
                 body: Any = None, headers: Optional[Mapping[str, str]] = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.body = body
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        if self.code:
            return "%s (%s, HTTP %s)" % (self.message, self.code, self.status)
        return "%s (HTTP %s)" % (self.message, self.status)

    def __repr__(self) -> str:
        return "%s(status=%r, code=%r, message=%r)" % (
            type(self).__name__, self.status, self.code, self.message)


class ValidationError(APIError):
    """400 ``validation_error``: a field is missing, of the wrong type or out of range."""


class AuthenticationError(APIError):
    """401 ``unauthorized``: the key is missing, unknown or revoked."""


class ForbiddenError(APIError):
    """403 ``forbidden``: the key may not do this (or the plan lacks the feature)."""


PermissionDeniedError = ForbiddenError


class NotFoundError(APIError):
    """404 ``not_found``: no such execution (or thread) in this key's environment."""


class ThreadBusyError(APIError):
    """409 ``conflict``: another execution is running on the same thread."""


ConflictError = ThreadBusyError


class PayloadTooLargeError(APIError):
    """413 ``payload_too_large``: the request body is over the server's limit."""


class _RetryAfterError(APIError):
    @property
    def retry_after(self) -> Optional[float]:
        """Seconds to wait before trying again (the Retry-After header), or None."""
        return parse_retry_after(_header(self.headers, "Retry-After"))


class RateLimitError(_RetryAfterError):
    """429 ``rate_limited``: too many executions at once for this key."""


class QuotaExceededError(_RetryAfterError):
    """429 ``quota_exceeded``: the plan's monthly credits are spent."""


class InternalServerError(APIError):
    """500 ``internal_error``: the server failed; the request may be retried."""


class ServiceUnavailableError(APIError):
    """503 ``unavailable``: the server is shutting down or overloaded."""


ERROR_CODES: Dict[str, Type[APIError]] = {
    "validation_error": ValidationError,
    "unauthorized": AuthenticationError,
    "forbidden": ForbiddenError,
    "not_found": NotFoundError,
    "conflict": ThreadBusyError,
    "payload_too_large": PayloadTooLargeError,
    "rate_limited": RateLimitError,
    "quota_exceeded": QuotaExceededError,
    "internal_error": InternalServerError,
    "unavailable": ServiceUnavailableError,
}

STATUS_CODES: Dict[int, Type[APIError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ThreadBusyError,
    413: PayloadTooLargeError,
    429: RateLimitError,
    500: InternalServerError,
    503: ServiceUnavailableError,
}


def _header(headers: Mapping[str, str], name: str) -> Optional[str]:
    for k, v in headers.items():
        if k.lower() == name.lower():
            return v
    return None


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        secs = float(value)
        return secs if secs >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_reply(status: int, headers: Mapping[str, str], body: Any, text: str) -> APIError:
    """The exception for a non-2xx reply (parsed JSON `body`, raw `text`)."""
    code = message = None
    if isinstance(body, dict):
        if isinstance(body.get("error"), str):
            code = body["error"]
        elif isinstance(body.get("error"), dict):
            # A nested {"error": {"code", "message"}} from a proxy or another server.
            inner = body["error"]
            code = inner.get("code") if isinstance(inner.get("code"), str) else None
            message = inner.get("message") if isinstance(inner.get("message"), str) else None
        if message is None and isinstance(body.get("message"), str):
            message = body["message"]
    if message is None:
        snippet = (text or "").strip()
        message = snippet[:200] if snippet else "HTTP %d with no error message" % status
    cls = ERROR_CODES.get(code or "") or STATUS_CODES.get(status) or APIError
    if status >= 500 and cls is APIError:
        cls = InternalServerError if status != 503 else ServiceUnavailableError
    return cls(message, status=status, code=code, body=body if body is not None else text,
               headers=headers)
