"""Baponi's client names on top of corral's SDK.

Code written for the hosted Baponi service runs unchanged against a corral
server:

    from baponi import Baponi
    client = Baponi()                   # $BAPONI_API_KEY, $BAPONI_BASE_URL
    r = client.execute(code="ls", language="bash", timeout=300, thread_id="t1")

Baponi and AsyncBaponi are corral.Client and corral.AsyncClient that look
at BAPONI_* environment variables before CORRAL_* ones.  The exceptions
are corral's own classes, so `except baponi.RateLimitError` and `except
corral.RateLimitError` catch the same thing.
"""
from corral import (APIConnectionError, APIError, APITimeoutError, AsyncClient,
                    AuthenticationError, Client, ConfigurationError, ConflictError, CorralError,
                    Execution, ExecutionResult, ForbiddenError, InternalServerError,
                    NotFoundError, PayloadTooLargeError, PermissionDeniedError,
                    QuotaExceededError, RateLimitError, ServiceUnavailableError, ThreadBusyError,
                    Usage, ValidationError, __version__)

BaponiError = CorralError


class Baponi(Client):
    """A blocking client; see corral.Client.  Env: BAPONI_* first, then CORRAL_*."""

    _KEY_VARS = ("BAPONI_API_KEY", "CORRAL_API_KEY")
    _URL_VARS = ("BAPONI_BASE_URL", "CORRAL_BASE_URL")


class AsyncBaponi(AsyncClient):
    """The asyncio client; see corral.AsyncClient.  Env: BAPONI_* first, then CORRAL_*."""

    _KEY_VARS = ("BAPONI_API_KEY", "CORRAL_API_KEY")
    _URL_VARS = ("BAPONI_BASE_URL", "CORRAL_BASE_URL")


__all__ = [
    "Baponi", "AsyncBaponi", "ExecutionResult", "Execution", "Usage",
    "BaponiError", "CorralError", "ConfigurationError", "APIError", "APIConnectionError",
    "APITimeoutError", "ValidationError", "AuthenticationError", "ForbiddenError",
    "PermissionDeniedError", "NotFoundError", "ThreadBusyError", "ConflictError",
    "PayloadTooLargeError", "RateLimitError", "QuotaExceededError", "InternalServerError",
    "ServiceUnavailableError", "__version__",
]
