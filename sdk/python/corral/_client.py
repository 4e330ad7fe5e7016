"""The clients: :class:`Client` (blocking, urllib) and :class:`AsyncClient` (asyncio).

Both build the same requests and read replies the same way; only the
transport differs.  The blocking client uses urllib.request (and so honours
the usual *_proxy environment variables); the async one speaks HTTP/1.1
over asyncio streams itself, so many executions can wait at once without a
thread each, and cancelling the task closes the connection.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Mapping, Optional, Tuple

from ._errors import (APIConnectionError, APIError, APITimeoutError, ConfigurationError,
                      error_from_reply)
from ._models import Execution, ExecutionResult, Usage

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
# How long to wait for the server beyond the time the code itself may run:
# queueing, sandbox start-up and the reply's transfer.  Calls that run no
# code use it alone.
DEFAULT_TIMEOUT = 30.0
DEFAULT_EXECUTE_TIMEOUT = 30

_TRACE_SAFE = "-._~"


def _version() -> str:
    from . import __version__
    return __version__


class _Base:
    """Configuration and the request/reply logic both clients share."""

    # Environment variables read when an argument is None, first found wins.
    _KEY_VARS: Tuple[str, ...] = ("CORRAL_API_KEY", "BAPONI_API_KEY")
    _URL_VARS: Tuple[str, ...] = ("CORRAL_BASE_URL", "BAPONI_BASE_URL")

    def __init__(self, api_key: Optional[str] = None, base_url: Optional[str] = None,
                 timeout: Optional[float] = None, *, headers: Optional[Mapping[str, str]] = None):
        if api_key is None:
            api_key = next((os.environ[v] for v in self._KEY_VARS if os.environ.get(v)), None)
        if not api_key:
            raise ConfigurationError(
                "no API key: pass api_key=... or set %s" % " or ".join(self._KEY_VARS))
        if base_url is None:
            base_url = next((os.environ[v] for v in self._URL_VARS if os.environ.get(v)),
                            DEFAULT_BASE_URL)
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("base_url %r is not an http:// or https:// URL" % base_url)
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self._headers = dict(headers or {})

    def __repr__(self) -> str:
        return "%s(base_url=%r)" % (type(self).__name__, self.base_url)

    # -- requests ---------------------------------------------------------

    def _headers_for(self, has_body: bool) -> Dict[str, str]:
        h = {
            "Authorization": "Bearer " + self.api_key,
            "Accept": "application/json",
            "User-Agent": "corral-python/" + _version(),
        }
        if has_body:
            h["Content-Type"] = "application/json"
        h.update(self._headers)
        return h

    @staticmethod
    def _execute_body(code: str, language: str, timeout: Any, thread_id: Optional[str],
                      env_vars: Optional[Mapping[str, str]], extra: Mapping[str, Any]) -> Dict[str, Any]:
        if not isinstance(code, str):
            raise TypeError("code must be a str, not %s" % type(code).__name__)
        body: Dict[str, Any] = dict(extra)
        body.update(code=code, language=language, timeout=timeout)
        if thread_id is not None:
            body["thread_id"] = thread_id
        if env_vars is not None:
            body["env_vars"] = dict(env_vars)
        return body

    def _execute_http_timeout(self, timeout: Any) -> float:
        # The server answers once the code has run, so the wait is the
        # execution's own limit plus the client's margin.
        try:
            t = float(timeout)
        except (TypeError, ValueError):
            t = 0.0  # the server will refuse it at once
        return max(t, 0.0) + self.timeout

    @staticmethod
    def _trace_path(trace_id: str) -> str:
        if not isinstance(trace_id, str) or not trace_id:
            raise TypeError("trace_id must be a non-empty str")
        return "/v1/executions/" + urllib.parse.quote(trace_id, safe=_TRACE_SAFE)

    # -- replies ----------------------------------------------------------

    @staticmethod
    def _parse(status: int, headers: Mapping[str, str], raw: bytes) -> Dict[str, Any]:
        text = raw.decode("utf-8", errors="replace")
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        if not 200 <= status < 300:
            raise error_from_reply(status, headers, body, text)
        if not isinstance(body, dict):
            raise APIError("the server's reply is not a JSON object: %r" % text[:200],
                           status=status, code="invalid_response", body=text, headers=headers)
        return body


class Client(_Base):
    """A blocking client for a corral (or Baponi) server.

    ``api_key`` defaults to $CORRAL_API_KEY, then $BAPONI_API_KEY;
    ``base_url`` to $CORRAL_BASE_URL, then $BAPONI_BASE_URL, then
    http://127.0.0.1:8080.  ``timeout`` (seconds, default 30) is how long to
    wait for a reply; ``execute`` waits that long beyond its own timeout.
    Usable as a context manager.
    """

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release: every call uses its own connection."""

    def _request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
                 timeout: Optional[float] = None) -> Dict[str, Any]:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers=self._headers_for(data is not None))
        limit = self.timeout if timeout is None else timeout
        try:
            with urllib.request.urlopen(req, timeout=limit) as r:
                status, headers, raw = r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            status, headers = e.code, dict(e.headers or {})
            try:
                raw = e.read()
            except (OSError, ValueError):
                raw = b""
        except (socket.timeout, TimeoutError) as e:
            raise APITimeoutError("no reply from %s within %g s" % (self.base_url, limit)) from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, (socket.timeout, TimeoutError)):
                raise APITimeoutError("no reply from %s within %g s" % (self.base_url, limit)) from e
            raise APIConnectionError("cannot reach %s: %s" % (self.base_url, e.reason)) from e
        except (OSError, ValueError, http.client.HTTPException) as e:
            # ConnectionResetError, RemoteDisconnected, BadStatusLine, IncompleteRead...
            raise APIConnectionError("connection to %s failed: %s" % (self.base_url, e)) from e
        return self._parse(status, headers, raw)

    def execute(self, code: str, *, language: str = "python", timeout: Any = DEFAULT_EXECUTE_TIMEOUT,
                thread_id: Optional[str] = None, env_vars: Optional[Mapping[str, str]] = None,
                **extra: Any) -> ExecutionResult:
        """Run `code` in a sandbox and return what happened.

        A program that exits non-zero is not an exception: check
        ``result.success`` / ``result.exit_code``.  Refusals raise an
        :class:`APIError` subclass.  Further keyword arguments are sent as
        request fields as they are.
        """
        body = self._execute_body(code, language, timeout, thread_id, env_vars, extra)
        reply = self._request("POST", "/v1/sandbox/execute", body,
                              timeout=self._execute_http_timeout(timeout))
        return ExecutionResult._from_json(reply)

    def get_execution(self, trace_id: str) -> Execution:
        """The recorded execution `trace_id` (NotFoundError for another environment's)."""
        return Execution._from_json(self._request("GET", self._trace_path(trace_id)))

    def usage(self) -> Usage:
        """Credits used and left this month for the calling key."""
        return Usage._from_json(self._request("GET", "/v1/usage"))

    def health(self) -> bool:
        """True when GET /healthz answers {"status": "ok"}."""
        return self._request("GET", "/healthz").get("status") == "ok"


# --- asyncio ---------------------------------------------------------------------

async def _http_exchange(url: str, method: str, headers: Dict[str, str],
                         data: Optional[bytes]) -> Tuple[int, Dict[str, str], bytes]:
    """One HTTP/1.1 request on a fresh connection; (status, headers, body)."""
    u = urllib.parse.urlsplit(url)
    https = u.scheme == "https"
    port = u.port or (443 if https else 80)
    ctx = ssl.create_default_context() if https else None
    reader, writer = await asyncio.open_connection(
        u.hostname, port, ssl=ctx, server_hostname=u.hostname if https else None)
    try:
        target = (u.path or "/") + ("?" + u.query if u.query else "")
        host = u.netloc.rpartition("@")[2]
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: " + host, "Connection: close",
                 "Accept-Encoding: identity"]
        lines += ["%s: %s" % kv for kv in headers.items()]
        if data is not None:
            lines.append("Content-Length: %d" % len(data))
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (data or b""))
        await writer.drain()

        status_line = await reader.readline()
        parts = status_line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise APIConnectionError("bad HTTP status line from %s: %r" % (host, status_line[:100]))
        status = int(parts[1])
        hdrs: Dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            name = k.strip().title()
            hdrs[name] = (hdrs[name] + ", " + v.strip()) if name in hdrs else v.strip()

        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in hdrs.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = await reader.readline()
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            body = b"".join(chunks)
        elif "Content-Length" in hdrs:
            body = await reader.readexactly(int(hdrs["Content-Length"]))
        else:
            body = await reader.read()
        return status, hdrs, body
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except Exception:
            pass


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client`: same arguments, awaitable methods.

    Usable as ``async with AsyncClient() as client:``.  It connects directly
    (no HTTP proxy support).
    """

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Nothing to release: every call uses its own connection."""

    async def _request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
                       timeout: Optional[float] = None) -> Dict[str, Any]:
        data = json.dumps(body).encode("utf-8") if body is not None else None
        limit = self.timeout if timeout is None else timeout
        try:
            status, headers, raw = await asyncio.wait_for(
                _http_exchange(self.base_url + path, method, self._headers_for(data is not None),
                               data), limit)
        except asyncio.TimeoutError as e:
            raise APITimeoutError("no reply from %s within %g s" % (self.base_url, limit)) from e
        except APIConnectionError:
            raise
        except (OSError, ValueError, asyncio.IncompleteReadError) as e:
            raise APIConnectionError("cannot reach %s: %s" % (self.base_url, e)) from e
        return self._parse(status, headers, raw)

    async def execute(self, code: str, *, language: str = "python",
                      timeout: Any = DEFAULT_EXECUTE_TIMEOUT, thread_id: Optional[str] = None,
                      env_vars: Optional[Mapping[str, str]] = None, **extra: Any) -> ExecutionResult:
        """See :meth:`Client.execute`."""
        body = self._execute_body(code, language, timeout, thread_id, env_vars, extra)
        reply = await self._request("POST", "/v1/sandbox/execute", body,
                                    timeout=self._execute_http_timeout(timeout))
        return ExecutionResult._from_json(reply)

    async def get_execution(self, trace_id: str) -> Execution:
        """See :meth:`Client.get_execution`."""
        return Execution._from_json(await self._request("GET", self._trace_path(trace_id)))

    async def usage(self) -> Usage:
        """See :meth:`Client.usage`."""
        return Usage._from_json(await self._request("GET", "/v1/usage"))

    async def health(self) -> bool:
        """See :meth:`Client.health`."""
        return (await self._request("GET", "/healthz")).get("status") == "ok"
