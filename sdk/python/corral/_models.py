"""What the API returns, as dataclasses that also read like mappings.

``result.stdout`` and ``result["stdout"]`` are the same thing, so code
written against a dict-returning client keeps working.  Fields the server
adds later do not break parsing: they are kept in ``extra``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional


class _MappingMixin:
    """Read-only mapping access to a dataclass's fields (and ``extra``)."""

    def _names(self):
        return [f.name for f in dataclasses.fields(self) if f.name != "extra"]

    def __getitem__(self, key: str) -> Any:
        if key in self._names():
            return getattr(self, key)
        extra = getattr(self, "extra", None) or {}
        if key in extra:
            return extra[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self._names() or key in (getattr(self, "extra", None) or {})

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def keys(self):
        return list(self._names()) + list((getattr(self, "extra", None) or {}).keys())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def to_dict(self) -> Dict[str, Any]:
        """All fields, including ones this version does not know, as a dict."""
        return {k: self[k] for k in self.keys()}

    @classmethod
    def _from_json(cls, data: Dict[str, Any]):
        known = {f.name for f in dataclasses.fields(cls) if f.name != "extra"}
        kwargs = {k: data.get(k) for k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra)


@dataclass
class ExecutionResult(_MappingMixin):
    """The reply of ``execute``.

    ``success`` is true only for a zero exit; ``status`` is one of
    ``success``, ``failed``, ``timeout``, ``oom``, ``cancelled``, ``blocked``.
    ``exit_code`` is None when the program did not exit by itself.
    ``network`` says what the execution's egress did:
    ``{"allowed": ["host:port", ...], "denied": ["host:port", ...]}``.
    """

    success: bool = False
    stdout: str = ""
    stderr: str = ""
    exit_code: Optional[int] = None
    error: Optional[str] = None
    trace_id: Optional[str] = None
    status: Optional[str] = None
    duration_ms: Optional[int] = None
    credits_used: Optional[int] = None
    network: Optional[Dict[str, List[str]]] = None
    extra: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def _from_json(cls, data: Dict[str, Any]) -> "ExecutionResult":
        r = super()._from_json(data)
        r.success = bool(r.success)
        r.stdout = r.stdout or ""
        r.stderr = r.stderr or ""
        return r


@dataclass
class Execution(_MappingMixin):
    """A recorded execution, from ``get_execution``.

    While it runs, ``status`` is ``running`` and the output fields are None.
    ``created_at`` and ``completed_at`` are ISO 8601 strings (UTC).
    """

    trace_id: Optional[str] = None
    status: Optional[str] = None
    exit_code: Optional[int] = None
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    error: Optional[str] = None
    duration_ms: Optional[int] = None
    delivery_mode: Optional[str] = None
    created_at: Optional[str] = None
    completed_at: Optional[str] = None
    credits_used: Optional[int] = None
    network: Optional[Dict[str, List[str]]] = None
    extra: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def success(self) -> bool:
        return self.status == "success"


@dataclass
class Usage(_MappingMixin):
    """Credits of the calling key for the current month.

    ``credits_remaining`` and ``monthly_credits`` are None on an unlimited plan.
    """

    plan: Optional[str] = None
    month: Optional[str] = None
    credits_used: Optional[int] = None
    credits_remaining: Optional[int] = None
    monthly_credits: Optional[int] = None
    executions: Optional[int] = None
    extra: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
