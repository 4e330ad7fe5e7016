"""Python client for corral, the self-hosted sandbox service for AI agents.

    import corral
    client = corral.Client()            # $CORRAL_API_KEY, $CORRAL_BASE_URL
    r = client.execute("print(6 * 7)")
    print(r.stdout, r.exit_code, r.trace_id)

The HTTP API is compatible with the hosted Baponi service; the `baponi`
module of this distribution offers the same client under Baponi's names.
Standard library only.
"""
from ._client import DEFAULT_BASE_URL, DEFAULT_TIMEOUT, AsyncClient, Client
from ._errors import (APIConnectionError, APIError, APITimeoutError, AuthenticationError,
                      ConfigurationError, ConflictError, CorralError, ForbiddenError,
                      InternalServerError, NotFoundError, PayloadTooLargeError,
                      PermissionDeniedError, QuotaExceededError, RateLimitError,
                      ServiceUnavailableError, ThreadBusyError, ValidationError)
from ._models import Execution, ExecutionResult, Usage

__version__ = "0.1.0"

__all__ = [
    "Client", "AsyncClient", "ExecutionResult", "Execution", "Usage",
    "CorralError", "ConfigurationError", "APIError", "APIConnectionError", "APITimeoutError",
    "ValidationError", "AuthenticationError", "ForbiddenError", "PermissionDeniedError",
    "NotFoundError", "ThreadBusyError", "ConflictError", "PayloadTooLargeError",
    "RateLimitError", "QuotaExceededError", "InternalServerError", "ServiceUnavailableError",
    "DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "__version__",
]
