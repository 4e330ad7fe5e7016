"""`corral serve`: the Baponi-compatible HTTP API (issue 3, DESIGN.md 2-3).

Every test starts its own real server on a free loopback port with its own
state directory (the `server` fixture) and talks to it over HTTP as a
client would.  Nothing is mocked.  Where a test needs to know that an
execution has started, the sandboxed code drops a marker file in its
thread's home and the test polls for it on the host; where it needs a
row the API does not hand out (the trace id of an execution still
running, a month's usage), it reads or writes the store as a second
process would, like the admin CLI tests do.
"""
import calendar
import json
import math
import os
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (CORRAL, EXECUTE_FIELDS, ISO_UTC_RE, TRACE_RE, Server, assert_error, assert_ok,
                      cli_json, db_query, db_write, header, key_id, thread_home, wait_for)

MIB = 1024 * 1024


def this_month():
    return time.strftime("%Y-%m", time.gmtime())


def execute_raw(server, raw, key, headers=None):
    return server.request("POST", "/v1/sandbox/execute", raw=raw, key=key, headers=headers)


USAGE_FIELDS = {"plan", "month", "credits_used", "credits_remaining", "monthly_credits",
                "executions"}


def usage(server, key):
    """GET /v1/usage: the contract's fields (others are dropped here)."""
    st, _, body = server.request("GET", "/v1/usage", key=key)
    assert st == 200, (st, body)
    assert USAGE_FIELDS <= set(body), body
    return {k: body[k] for k in USAGE_FIELDS}


def assert_fields(body, fields):
    """Every field of the contract is there.  More are allowed (a client
    ignores what it does not know): `truncated` (DESIGN.md 4), say."""
    assert fields <= set(body), f"missing {sorted(fields - set(body))} in {body!r}"
    if "truncated" in body:
        assert body["truncated"] is False, body


def expected_credits(duration_ms):
    """One credit per started second of wall time, at least one."""
    return max(1, math.ceil(duration_ms / 1000))


def assert_credits(body):
    # duration_ms is rounded to the millisecond, so a run that took
    # 2000.4 ms may show 2000 and still have started its third second.
    assert body["credits_used"] in (expected_credits(body["duration_ms"]),
                                     expected_credits(body["duration_ms"] + 1)), body


# --- the reply: every field and every default ---------------------------------

def test_reply_fields_and_defaults(server, key):
    # Only `code`: the language is python (this is a syntax error in bash
    # and in node), the timeout 30 s, no thread.
    body = assert_ok(server.execute(key, code="print(2**10)"))
    assert_fields(body, EXECUTE_FIELDS)
    assert body["success"] is True
    assert body["status"] == "success"
    assert body["stdout"] == "1024\n"
    assert body["stderr"] == ""
    assert body["exit_code"] == 0
    assert body["error"] is None
    assert TRACE_RE.match(body["trace_id"]), body["trace_id"]
    assert isinstance(body["duration_ms"], int) and 0 <= body["duration_ms"] < 10000
    assert body["credits_used"] == 1
    # The default timeout is 30 s: what the store recorded for the run.
    rows = db_query(server, "SELECT timeout_ms, language, thread_id, delivery_mode"
                    " FROM executions WHERE trace_id = ?", (body["trace_id"],))
    assert rows == [(30000, "python", None, "inline")]


def test_one_byte_of_code(server, key):
    body = assert_ok(server.execute(key, code="1"))
    assert (body["status"], body["stdout"], body["stderr"]) == ("success", "", ""), body


def test_trace_ids_are_unique(server, key):
    ids = {assert_ok(server.execute(key, code="echo", language="bash"))["trace_id"]
           for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("language,code,out", [
    ("python", "import sys; print(sys.version_info[0], 6*7)", "3 42\n"),
    ("node", "console.log(typeof process.versions.node, 6*7)", "string 42\n"),
    ("bash", "echo ${BASH_VERSINFO[0]:+bash} $((6*7))", "bash 42\n"),
])
def test_languages(server, key, language, code, out):
    body = assert_ok(server.execute(key, code=code, language=language))
    assert (body["status"], body["stdout"], body["stderr"]) == ("success", out, ""), body


def test_nonzero_exit_is_200_failed(server, key):
    body = assert_ok(server.execute(key, language="bash",
                                    code="echo out; echo err >&2; exit 3"))
    assert_fields(body, EXECUTE_FIELDS)
    assert body["success"] is False and body["status"] == "failed"
    assert body["exit_code"] == 3
    assert body["stdout"] == "out\n" and body["stderr"] == "err\n"
    assert body["error"] is None or isinstance(body["error"], str)
    assert TRACE_RE.match(body["trace_id"])
    # A python exception: also just a failed run with the traceback.
    body = assert_ok(server.execute(key, code="raise SystemExit('boom')"))
    assert body["status"] == "failed" and body["exit_code"] == 1 and "boom" in body["stderr"]


def test_timeout_returns_output_so_far(server, key):
    t0 = time.monotonic()
    body = assert_ok(server.execute(key, language="bash", timeout=1,
                                    code="echo before; echo e >&2; sleep 30; echo after"))
    assert time.monotonic() - t0 < 10
    assert body["status"] == "timeout" and body["success"] is False, body
    assert body["stdout"] == "before\n" and body["stderr"] == "e\n"
    assert 900 <= body["duration_ms"] < 5000, body
    assert_credits(body)


def test_fractional_timeout(server, key):
    body = assert_ok(server.execute(key, language="bash", timeout=0.5, code="sleep 10"))
    assert body["status"] == "timeout", body
    assert 400 <= body["duration_ms"] < 3000, body


def test_credits_per_started_second(server, key):
    quick = assert_ok(server.execute(key, language="bash", code="true"))
    assert quick["credits_used"] == 1
    slow = assert_ok(server.execute(key, language="bash", code="sleep 1.2"))
    assert slow["status"] == "success" and slow["duration_ms"] >= 1200
    assert slow["credits_used"] >= 2
    assert_credits(slow)
    # Usage adds them up, per key.
    other = server.create_key(plan="unlimited")
    u = usage(server, key)
    assert u == {"plan": "unlimited", "month": this_month(),
                 "credits_used": quick["credits_used"] + slow["credits_used"],
                 "credits_remaining": None, "monthly_credits": None, "executions": 2}, u
    assert usage(server, other)["credits_used"] == 0
    assert usage(server, other)["executions"] == 0
    # A failed run and a timed-out one are billed too.
    failed = assert_ok(server.execute(key, language="bash", code="exit 1"))
    assert failed["credits_used"] == 1
    assert usage(server, key)["executions"] == 3
    # The operator sees the same figures.
    cli = cli_json(server, "usage")
    assert cli["credits"] == quick["credits_used"] + slow["credits_used"] + 1
    assert cli["executions"] == 3


@pytest.mark.parametrize("plan,monthly", [("free", 1000), ("pro", 100000)])
def test_usage_of_a_metered_plan(server, plan, monthly):
    k = server.create_key(plan=plan)
    assert usage(server, k) == {"plan": plan, "month": this_month(), "credits_used": 0,
                                "credits_remaining": monthly, "monthly_credits": monthly,
                                "executions": 0}
    body = assert_ok(server.execute(k, language="bash", code="echo hi"))
    u = usage(server, k)
    assert u["credits_used"] == body["credits_used"] == 1
    assert u["credits_remaining"] == monthly - 1 and u["executions"] == 1


def test_env_vars_reach_the_code(server, key):
    env = {"FOO": "bar", "_under1": "x y", "WITH_EQ": "a=b", "EMPTY": "", "UNI": "h\u00e9"}
    body = assert_ok(server.execute(
        key, language="bash", env_vars=env,
        code='printf "%s|%s|%s|%s|%s\\n" "$FOO" "$_under1" "$WITH_EQ" "${EMPTY-unset}" "$UNI"'))
    assert body["stdout"] == "bar|x y|a=b||h\u00e9\n", body
    # They are per execution: the next one does not see them.
    body = assert_ok(server.execute(key, language="bash", code='echo "${FOO-unset}"'))
    assert body["stdout"] == "unset\n"
    # The sandbox's own variables are still there.
    body = assert_ok(server.execute(key, code="import os; print(os.environ['HOME'])",
                                    env_vars={"A": "1"}))
    assert body["stdout"] == "/home/baponi\n"


def test_unknown_fields_are_ignored(server, key):
    body = assert_ok(server.execute(key, code="print('ok')", bogus=1, metadata={"a": [1]},
                                    stream=False))
    assert body["stdout"] == "ok\n"


def test_null_optional_fields_mean_their_default(server, key):
    """SDKs send None as null: that is the field's default, not an error."""
    body = assert_ok(server.execute(key, code="print(2**10)", language=None, timeout=None,
                                    thread_id=None, env_vars=None))
    assert body["status"] == "success" and body["stdout"] == "1024\n", body
    rows = db_query(server, "SELECT timeout_ms, language, thread_id FROM executions"
                    " WHERE trace_id = ?", (body["trace_id"],))
    assert rows == [(30000, "python", None)]


def test_out_of_memory(server, key):
    # The environment 'default' has 512 MiB.
    body = assert_ok(server.execute(key, code="x = bytearray(1 << 30); print(len(x))"))
    assert body["status"] == "oom" and body["success"] is False, body
    assert isinstance(body["error"], str) and body["error"], body


def test_output_that_is_not_utf8_still_gives_json(server, key):
    body = assert_ok(server.execute(key, language="bash",
                                    code="printf 'a\\xff\\xfeb'; printf '\\xc3' >&2"))
    assert body["status"] == "success", body
    assert body["stdout"].startswith("a") and body["stdout"].endswith("b"), body
    assert isinstance(body["stderr"], str)


def test_output_is_capped(server, key):
    body = assert_ok(server.execute(key, language="bash", code=(
        "head -c 20000000 /dev/zero | tr '\\0' a; echo tail >&2")))
    assert body["status"] == "success", {k: v for k, v in body.items() if k != "stdout"}
    assert 0 < len(body["stdout"]) <= 10 * MIB and set(body["stdout"]) == {"a"}
    assert body["stderr"] == "tail\n"
    assert body.get("truncated", True) is True
    st, _, got = server.request("GET", f"/v1/executions/{body['trace_id']}", key=key)
    assert st == 200 and len(got["stdout"]) <= 10 * MIB


def test_timeout_at_the_plan_cap_is_accepted(server):
    free = server.create_key(plan="free")
    body = assert_ok(server.execute(free, language="bash", code="echo capped", timeout=60))
    assert body["stdout"] == "capped\n"


# --- validation_error (400) ----------------------------------------------------

BAD_BODIES = [
    # (test id, raw request body)
    ("bad JSON", b'{"code": "print(1)"'),
    ("not JSON at all", b"print(1)"),
    ("empty body", b""),
    ("trailing garbage", b'{"code": "print(1)"} {}'),
    ("invalid UTF-8", b'{"code": "print(\xff)"}'),
    ("body an array", b'["print(1)"]'),
    ("body a string", b'"print(1)"'),
    ("body null", b"null"),
    ("body a number", b"42"),
]


@pytest.mark.parametrize("raw", [b for _, b in BAD_BODIES], ids=[i for i, _ in BAD_BODIES])
def test_bad_body_is_validation_error(server, key, raw):
    assert_error(execute_raw(server, raw, key), 400, "validation_error")


BAD_FIELDS = [
    # (test id, body, text the message must hold, case-insensitively)
    ("code missing", {"language": "python"}, "code"),
    ("code empty", {"code": ""}, "code"),
    ("code a number", {"code": 5}, "code"),
    ("code null", {"code": None}, "code"),
    ("code a list", {"code": ["print(1)"]}, "code"),
    ("code an object", {"code": {"a": 1}}, "code"),
    ("language a number", {"code": "print(1)", "language": 3}, "language"),
    ("language unknown", {"code": "print(1)", "language": "ruby"}, "language"),
    ("language empty", {"code": "print(1)", "language": ""}, "language"),
    ("timeout a string", {"code": "print(1)", "timeout": "30"}, "timeout"),
    ("timeout a bool", {"code": "print(1)", "timeout": True}, "timeout"),
    ("timeout a list", {"code": "print(1)", "timeout": [30]}, "timeout"),
    ("timeout zero", {"code": "print(1)", "timeout": 0}, "timeout"),
    ("timeout negative", {"code": "print(1)", "timeout": -1}, "timeout"),
    ("timeout negative fraction", {"code": "print(1)", "timeout": -0.5}, "timeout"),
    ("thread_id a number", {"code": "print(1)", "thread_id": 7}, "thread_id"),
    ("thread_id empty", {"code": "print(1)", "thread_id": ""}, "thread_id"),
    ("thread_id with a space", {"code": "print(1)", "thread_id": "a b"}, "thread_id"),
    ("thread_id with a slash", {"code": "print(1)", "thread_id": "a/b"}, "thread_id"),
    ("thread_id climbing", {"code": "print(1)", "thread_id": "../x"}, "thread_id"),
    ("thread_id dot-dot", {"code": "print(1)", "thread_id": ".."}, "thread_id"),
    ("thread_id dot", {"code": "print(1)", "thread_id": "."}, "thread_id"),
    ("thread_id 129 chars", {"code": "print(1)", "thread_id": "x" * 129}, "thread_id"),
    ("thread_id non-ASCII", {"code": "print(1)", "thread_id": "t\u00e9"}, "thread_id"),
    ("thread_id newline", {"code": "print(1)", "thread_id": "a\n"}, "thread_id"),
    ("env_vars a string", {"code": "print(1)", "env_vars": "A=B"}, "env_vars"),
    ("env_vars a list", {"code": "print(1)", "env_vars": [["A", "B"]]}, "env_vars"),
    ("env_vars value a number", {"code": "print(1)", "env_vars": {"A": 1}}, "A"),
    ("env_vars value null", {"code": "print(1)", "env_vars": {"A": None}}, "A"),
    ("env_vars value an object", {"code": "print(1)", "env_vars": {"A": {}}}, "A"),
    ("env var name digit first", {"code": "print(1)", "env_vars": {"1A": "x"}}, "1A"),
    ("env var name dash", {"code": "print(1)", "env_vars": {"A-B": "x"}}, "A-B"),
    ("env var name empty", {"code": "print(1)", "env_vars": {"": "x"}}, "env"),
    ("env var name space", {"code": "print(1)", "env_vars": {"A B": "x"}}, "A B"),
    ("env var name equals", {"code": "print(1)", "env_vars": {"A=B": "x"}}, "A=B"),
    ("env var name non-ASCII", {"code": "print(1)", "env_vars": {"\u00c9": "x"}}, "env"),
    ("env var PATH", {"code": "print(1)", "env_vars": {"PATH": "/tmp"}}, "PATH"),
    ("env var HOME", {"code": "print(1)", "env_vars": {"HOME": "/tmp"}}, "HOME"),
    ("env var USER", {"code": "print(1)", "env_vars": {"USER": "root"}}, "USER"),
    ("env var LD_PRELOAD", {"code": "print(1)", "env_vars": {"LD_PRELOAD": "/x.so"}},
     "LD_PRELOAD"),
    ("env var LD_LIBRARY_PATH", {"code": "print(1)", "env_vars": {"LD_LIBRARY_PATH": "/x"}},
     "LD_LIBRARY_PATH"),
    ("env var LD_AUDIT", {"code": "print(1)", "env_vars": {"LD_AUDIT": "/x.so"}}, "LD_AUDIT"),
    ("forbidden among good ones", {"code": "print(1)",
                                   "env_vars": {"GOOD": "1", "LD_PRELOAD": "/x.so"}},
     "LD_PRELOAD"),
]


@pytest.mark.parametrize("body,needle", [(b, n) for _, b, n in BAD_FIELDS],
                         ids=[i for i, _, _ in BAD_FIELDS])
def test_bad_field_is_validation_error(server, key, body, needle):
    msg = assert_error(server.execute(key, **body), 400, "validation_error")
    assert needle.lower() in msg.lower(), msg
    # Nothing ran, nothing was billed.
    assert usage(server, key)["executions"] == 0
    assert db_query(server, "SELECT count(*) FROM executions") == [(0,)]


@pytest.mark.parametrize("plan,cap,over", [
    ("free", 60, 61), ("free", 60, 60.5), ("pro", 3600, 3601), ("unlimited", 86400, 86401),
    ("unlimited", 86400, 1e300)])
def test_timeout_over_the_plan_cap(server, plan, cap, over):
    k = server.create_key(plan=plan)
    msg = assert_error(server.execute(k, code="print(1)", timeout=over), 400, "validation_error")
    assert re.search(rf"\b{cap}\b", msg), f"message does not name the cap {cap}: {msg!r}"
    assert usage(server, k)["executions"] == 0


def test_good_thread_id_edges(server, key):
    for tid in ("A-z_0.9", "x" * 128, "..a", "a.."):
        body = assert_ok(server.execute(key, language="bash", code="echo ok", thread_id=tid))
        assert body["stdout"] == "ok\n", (tid, body)


@pytest.mark.parametrize("headers,needle", [
    ({"Accept": "application/x-ndjson"}, ("stream", "ndjson")),
    ({"Prefer": "respond-async"}, ("async",)),
])
def test_streaming_and_async_are_refused_for_now(server, key, headers, needle):
    body = {"code": "print('ran')", "webhook_url": "http://127.0.0.1:9/hook"}
    msg = assert_error(server.request("POST", "/v1/sandbox/execute", body=body, key=key,
                                      headers=headers), 400, "validation_error")
    assert any(n in msg.lower() for n in needle), msg
    # Not run inline behind the client's back.
    assert db_query(server, "SELECT count(*) FROM executions") == [(0,)]
    assert usage(server, key)["executions"] == 0


# --- payload_too_large (413) -------------------------------------------------

def test_code_of_exactly_one_mib_is_accepted(server, key):
    head = "print('big')\n"
    code = head + "#" * (MIB - len(head))
    assert len(code.encode()) == MIB
    body = assert_ok(server.execute(key, code=code))
    assert body["stdout"] == "big\n", {k: v for k, v in body.items() if k != "stdout"}


def test_code_over_one_mib(server, key):
    code = "print(1)\n" + "#" * (MIB - 8)
    assert len(code.encode()) == MIB + 1
    assert_error(server.execute(key, code=code), 413, "payload_too_large")
    # Bytes count, not characters: 524289 two-byte characters are 1 MiB + 2.
    code = "#" + "\u00e9" * (MIB // 2)
    assert len(code) < MIB and len(code.encode()) > MIB
    assert_error(server.execute(key, code=code), 413, "payload_too_large")
    assert usage(server, key)["executions"] == 0


def raw_request(server, head, body, timeout=30):
    """Send a request over a plain socket; a server may answer and close
    before the body is all sent (as for a body too large).  Returns
    (status, headers, parsed JSON) like Server.request()."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    with s:
        try:
            s.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    assert data, "the server closed the connection without a reply"
    head_text, _, payload = data.partition(b"\r\n\r\n")
    lines = head_text.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    try:
        return status, hdrs, json.loads(payload)
    except ValueError:
        return status, hdrs, payload.decode(errors="replace")


def post_head(server, key, length, extra=""):
    return (f"POST /v1/sandbox/execute HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n{extra}\r\n").encode()


# The body limit is 8 MiB: room for 1 MiB of code even when a client's
# JSON encoder escapes every byte (\\uXXXX), plus env_vars.
BODY_LIMIT = 8 * MIB


def test_body_over_the_limit(server, key):
    body = json.dumps({"code": "print(1)", "padding": "x" * BODY_LIMIT}).encode()
    assert_error(raw_request(server, post_head(server, key, len(body)), body),
                 413, "payload_too_large")
    # Chunked, with no length announced: the same.
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(c), c)
                       for c in (body[i:i + 65536] for i in range(0, len(body), 65536)))
    head = (f"POST /v1/sandbox/execute HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    assert_error(raw_request(server, head, chunked + b"0\r\n\r\n"), 413, "payload_too_large")
    assert usage(server, key)["executions"] == 0
    # A body just under the limit is fine.
    body = json.dumps({"code": "print(1)", "padding": "x" * (BODY_LIMIT - 100)}).encode()
    assert len(body) <= BODY_LIMIT
    st, _, got = raw_request(server, post_head(server, key, len(body)), body)
    assert st == 200 and got["stdout"] == "1\n", (st, got)


# --- unauthorized (401) ------------------------------------------------------

def test_missing_malformed_unknown_keys(server, key):
    body = json.dumps({"code": "print(1)"}).encode()
    fake = "sk-local-" + "A" * 43
    cases = [
        ({}, "no Authorization header"),
        ({"Authorization": "Bearer"}, "no key"),
        ({"Authorization": "Bearer "}, "empty key"),
        ({"Authorization": f"Basic {key}"}, "wrong scheme"),
        ({"Authorization": key}, "no scheme"),
        ({"Authorization": "Bearer not-a-key"}, "malformed key"),
        ({"Authorization": f"Bearer {fake}"}, "unknown key"),
        ({"Authorization": f"Bearer {key[:-1]}"}, "truncated key"),
        ({"Authorization": f"Bearer {key}x"}, "key with a tail"),
    ]
    for headers, what in cases:
        r = server.request("POST", "/v1/sandbox/execute", raw=body, headers=headers)
        assert_error(r, 401, "unauthorized")
        r = server.request("GET", "/v1/usage", headers=headers)
        assert_error(r, 401, "unauthorized")
    assert db_query(server, "SELECT count(*) FROM executions") == [(0,)]
    # And the real key works.
    assert assert_ok(server.execute(key, code="print(1)"))["stdout"] == "1\n"


def test_revoked_key(server):
    k = server.create_key(plan="unlimited")
    trace = assert_ok(server.execute(k, code="print(1)"))["trace_id"]
    p = server.cli("key", "revoke", k[:17])
    assert p.returncode == 0, p.stderr
    assert_error(server.execute(k, code="print(1)"), 401, "unauthorized")
    assert_error(server.request("GET", "/v1/usage", key=k), 401, "unauthorized")
    assert_error(server.request("GET", f"/v1/executions/{trace}", key=k), 401, "unauthorized")


def test_key_of_a_deleted_environment(server):
    assert server.cli("env", "create", "doomed").returncode == 0
    k = server.create_key(env="doomed")
    assert_ok(server.execute(k, code="print(1)"))
    assert server.cli("env", "delete", "doomed", "--force").returncode == 0
    assert_error(server.execute(k, code="print(1)"), 401, "unauthorized")


# --- not_found (404) and GET /v1/executions/{trace_id} ------------------------

EXECUTION_FIELDS = {"trace_id", "status", "exit_code", "stdout", "stderr", "error",
                    "duration_ms", "delivery_mode", "created_at", "completed_at",
                    "credits_used"}


def test_get_execution(server, key):
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    ran = assert_ok(server.execute(key, language="bash", code="echo out; echo err >&2; exit 4"))
    after = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    st, _, got = server.request("GET", f"/v1/executions/{ran['trace_id']}", key=key)
    assert st == 200, got
    assert_fields(got, EXECUTION_FIELDS)
    for f in ("trace_id", "status", "exit_code", "stdout", "stderr", "error", "duration_ms",
              "credits_used"):
        assert got[f] == ran[f], (f, got, ran)
    assert got["status"] == "failed" and got["exit_code"] == 4
    assert got["delivery_mode"] == "inline"
    for f in ("created_at", "completed_at"):
        assert ISO_UTC_RE.match(got[f]), got[f]
        assert before <= got[f][:19] + "Z" <= after, (f, got[f], before, after)
    assert got["created_at"] <= got["completed_at"]
    # Another key of the same environment sees it too.
    other = server.create_key(plan="free")
    st, _, got2 = server.request("GET", f"/v1/executions/{ran['trace_id']}", key=other)
    assert st == 200 and got2 == got


def test_get_execution_of_a_timeout(server, key):
    ran = assert_ok(server.execute(key, language="bash", timeout=0.5,
                                   code="echo partial; sleep 5"))
    st, _, got = server.request("GET", f"/v1/executions/{ran['trace_id']}", key=key)
    assert st == 200
    assert got["status"] == "timeout" and got["stdout"] == "partial\n"


def test_executions_of_another_environment_are_not_found(server, key):
    assert server.cli("env", "create", "other").returncode == 0
    stranger = server.create_key(env="other", plan="unlimited")
    trace = assert_ok(server.execute(key, code="print('mine')"))["trace_id"]
    r = server.request("GET", f"/v1/executions/{trace}", key=stranger)
    msg = assert_error(r, 404, "not_found")
    assert "mine" not in msg


@pytest.mark.parametrize("path", [
    "/v1/executions/trc_" + "0" * 32,
    "/v1/executions/trc_" + "f" * 32,
    "/v1/executions/not-a-trace-id",
    "/v1/executions/trc_" + "0" * 31 + "%00",
    "/v1/nothing-here",
    "/v1/sandbox/nothing",
])
def test_unknown_ids_and_paths_are_not_found(server, key, path):
    assert_error(server.request("GET", path, key=key), 404, "not_found")


# --- conflict (409): one execution at a time per thread ------------------------

def test_busy_thread_is_conflict_at_once(server, key):
    home = thread_home(server, "busy")
    assert server.cli("env", "create", "other").returncode == 0
    other = server.create_key(env="other", plan="unlimited")
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(server.execute, key, language="bash", thread_id="busy",
                            code="touch ~/running; sleep 3; echo first")
        wait_for(lambda: (home / "running").exists() or first.done(), 15,
                 "the first execution to start")
        assert not first.done(), first.result()
        # The same thread: refused at once, not queued.
        t0 = time.monotonic()
        msg = assert_error(server.execute(key, language="bash", thread_id="busy",
                                          code="echo second > ~/second"), 409, "conflict")
        assert time.monotonic() - t0 < 1.0
        assert "busy" in msg.lower() or "running" in msg.lower() or "thread" in msg.lower()
        # Another key of the same environment is refused as well.
        k2 = server.create_key(plan="unlimited")
        assert_error(server.execute(k2, language="bash", thread_id="busy", code="true"),
                     409, "conflict")
        # Another thread, and the same id in another environment, are free.
        assert assert_ok(server.execute(key, language="bash", thread_id="idle",
                                        code="echo idle"))["stdout"] == "idle\n"
        assert assert_ok(server.execute(other, language="bash", thread_id="busy",
                                        code="echo elsewhere"))["stdout"] == "elsewhere\n"
        # While it runs, GET shows it running with no output yet.
        (trace,), = db_query(server, "SELECT trace_id FROM executions WHERE thread_id = 'busy'"
                                     " AND status = 'running'")
        st, _, got = server.request("GET", f"/v1/executions/{trace}", key=key)
        assert st == 200 and got["status"] == "running", got
        assert got["stdout"] is None and got["stderr"] is None and got["completed_at"] is None
        body = assert_ok(first.result(timeout=30))
    assert body["stdout"] == "first\n" and body["trace_id"] == trace
    assert not (home / "second").exists()
    # Free again once it ended.
    assert assert_ok(server.execute(key, language="bash", thread_id="busy",
                                    code="echo again"))["stdout"] == "again\n"


# --- rate_limited (429): max_concurrent per key --------------------------------

@pytest.mark.parametrize("plan,limit", [("free", 2), ("pro", 16)])
def test_max_concurrent_per_key(server, plan, limit):
    k = server.create_key(plan=plan)
    homes = [thread_home(server, f"c{i}") for i in range(limit)]
    with ThreadPoolExecutor(limit + 2) as pool:
        running = [pool.submit(server.execute, k, language="bash", thread_id=f"c{i}",
                               code=f"touch ~/running; sleep 4; echo {i}")
                   for i in range(limit)]
        wait_for(lambda: all((h / "running").exists() for h in homes)
                 or any(f.done() for f in running), 30, f"{limit} executions to start")
        assert not any(f.done() for f in running), [f.result() for f in running if f.done()]
        t0 = time.monotonic()
        r = server.execute(k, language="bash", code="echo one too many")
        assert time.monotonic() - t0 < 1.0
        assert_error(r, 429, "rate_limited")
        retry = header(r[1], "Retry-After")
        assert retry is not None and retry.isdigit() and int(retry) >= 1, r[1]
        # The limit is per key: another key of the same plan still runs.
        k2 = server.create_key(plan=plan)
        assert assert_ok(server.execute(k2, language="bash", code="echo ok"))["stdout"] == "ok\n"
        outs = [assert_ok(f.result(timeout=60))["stdout"] for f in running]
    assert outs == [f"{i}\n" for i in range(limit)]
    # A refused request is not billed and not recorded as an execution.
    assert usage(server, k)["executions"] == limit
    # Slots are given back.
    assert assert_ok(server.execute(k, language="bash", code="echo back"))["stdout"] == "back\n"


def test_unlimited_plan_has_no_concurrency_limit(server, key):
    n = 20
    with ThreadPoolExecutor(n) as pool:
        futs = [pool.submit(server.execute, key, language="bash", code=f"sleep 1; echo {i}")
                for i in range(n)]
        outs = [f.result(timeout=60) for f in futs]
    assert [(r[0], r[2].get("stdout")) for r in outs] == [(200, f"{i}\n") for i in range(n)]


# --- quota_exceeded (429): monthly credits spent ----------------------------

def seconds_to_next_month():
    now = time.gmtime()
    y, m = (now.tm_year + 1, 1) if now.tm_mon == 12 else (now.tm_year, now.tm_mon + 1)
    return calendar.timegm((y, m, 1, 0, 0, 0)) - time.time()


def test_quota_exceeded(server):
    k = server.create_key(plan="free")
    # 999 of the free plan's 1000 credits already spent this month (as
    # the server itself would have recorded them), and some last month.
    db_write(server, "INSERT INTO usage (key_id, month, credits, executions) VALUES (?, ?, ?, ?)",
             (key_id(server, k), this_month(), 999, 999))
    db_write(server, "INSERT INTO usage (key_id, month, credits, executions) VALUES (?, ?, ?, ?)",
             (key_id(server, k), "2000-01", 5000, 1))
    u = usage(server, k)
    assert (u["credits_used"], u["credits_remaining"], u["executions"]) == (999, 1, 999), u
    # The last credit can be spent...
    body = assert_ok(server.execute(k, language="bash", code="echo last"))
    assert body["stdout"] == "last\n" and body["credits_used"] == 1
    u = usage(server, k)
    assert (u["credits_used"], u["credits_remaining"]) == (1000, 0), u
    # ...and then the plan is exhausted until the next month.
    r = server.execute(k, language="bash", code="echo more")
    assert_error(r, 429, "quota_exceeded")
    retry = header(r[1], "Retry-After")
    assert retry is not None and retry.isdigit(), r[1]
    assert abs(int(retry) - seconds_to_next_month()) < 120, (retry, seconds_to_next_month())
    assert usage(server, k)["executions"] == 1000
    # Other keys are not affected.
    k2 = server.create_key(plan="free")
    assert assert_ok(server.execute(k2, language="bash", code="echo fine"))["stdout"] == "fine\n"
    # Reading is still allowed with an exhausted plan.
    st, _, got = server.request("GET", f"/v1/executions/{body['trace_id']}", key=k)
    assert st == 200 and got["stdout"] == "last\n"


def test_quota_spent_beyond_the_limit(server):
    k = server.create_key(plan="free")
    db_write(server, "INSERT INTO usage (key_id, month, credits, executions) VALUES (?, ?, ?, ?)",
             (key_id(server, k), this_month(), 1000, 10))
    assert_error(server.execute(k, code="print(1)"), 429, "quota_exceeded")
    u = usage(server, k)
    assert u["credits_remaining"] == 0 and u["credits_used"] == 1000


def test_quota_of_a_configured_plan_spent_by_real_runs(server):
    """A plan made with `corral plan set` while the server runs, spent by
    executions rather than by a usage row written behind the server."""
    assert server.cli("plan", "set", "tiny", "--credits", "2").returncode == 0
    k = server.create_key(plan="tiny")
    for _ in range(2):
        assert assert_ok(server.execute(k, language="bash", code="true"))["credits_used"] == 1
    u = usage(server, k)
    assert (u["plan"], u["credits_used"], u["credits_remaining"], u["monthly_credits"]) == \
        ("tiny", 2, 0, 2), u
    r = server.execute(k, language="bash", code="true")
    assert_error(r, 429, "quota_exceeded")
    assert (header(r[1], "Retry-After") or "").isdigit(), r[1]


def test_plan_cap_below_the_default_timeout(server):
    assert server.cli("plan", "set", "short", "--max-timeout", "10").returncode == 0
    k = server.create_key(plan="short")
    msg = assert_error(server.execute(k, code="print(1)", timeout=11), 400, "validation_error")
    assert re.search(r"\b10\b", msg), msg
    # Without a timeout, the run gets the cap rather than a 400.
    body = assert_ok(server.execute(k, code="print(1)"))
    rows = db_query(server, "SELECT timeout_ms FROM executions WHERE trace_id = ?",
                    (body["trace_id"],))
    assert rows == [(10000,)]


# --- threads: persistence and isolation ---------------------------------------

def test_thread_home_persists_across_languages(server, key):
    r1 = assert_ok(server.execute(key, language="bash", thread_id="t1",
                                  code="mkdir -p ~/work && echo one > ~/work/f.txt && pwd"))
    assert r1["success"], r1
    r2 = assert_ok(server.execute(key, language="python", thread_id="t1", code=(
        "import os\n"
        "p = os.path.expanduser('~/work/f.txt')\n"
        "print(open(p).read().strip())\n"
        "open(p, 'a').write('two\\n')\n")))
    assert r2["stdout"] == "one\n", r2
    r3 = assert_ok(server.execute(key, language="node", thread_id="t1", code=(
        "const fs = require('fs');"
        "process.stdout.write(fs.readFileSync(require('os').homedir() + '/work/f.txt', 'utf8'))")))
    assert r3["stdout"] == "one\ntwo\n", r3
    # On the host, in the thread's home.
    assert (thread_home(server, "t1") / "work" / "f.txt").read_text() == "one\ntwo\n"


def test_no_thread_means_no_persistence(server, key):
    assert_ok(server.execute(key, language="bash", code="echo x > ~/scratch"))
    body = assert_ok(server.execute(key, language="bash", code="ls -A ~; test -e ~/scratch"))
    assert body["status"] == "failed" and "scratch" not in body["stdout"], body


def test_threads_are_isolated(server, key):
    assert server.cli("env", "create", "other").returncode == 0
    other = server.create_key(env="other", plan="unlimited")
    k2 = server.create_key(plan="free")
    assert_ok(server.execute(key, language="bash", thread_id="shared", code="echo A > ~/who"))
    # Same id, other environment: a different, empty home.
    body = assert_ok(server.execute(other, language="bash", thread_id="shared",
                                    code="ls -A ~; cat ~/who 2>/dev/null; echo B > ~/who"))
    assert "who" not in body["stdout"] and "A" not in body["stdout"], body
    # Other thread, same environment: empty too.
    body = assert_ok(server.execute(key, language="bash", thread_id="shared2",
                                    code="cat ~/who || echo none"))
    assert body["stdout"] == "none\n"
    # The first home is untouched, and it belongs to the environment, not
    # to a key: another key of 'default' sees it.
    body = assert_ok(server.execute(k2, language="bash", thread_id="shared", code="cat ~/who"))
    assert body["stdout"] == "A\n"
    body = assert_ok(server.execute(other, language="bash", thread_id="shared", code="cat ~/who"))
    assert body["stdout"] == "B\n"
    # No other home is visible from inside.
    body = assert_ok(server.execute(key, language="bash", thread_id="shared", code="ls -A /home"))
    assert body["stdout"] == "baponi\n", body


def test_thread_is_recorded_on_first_use(server, key):
    assert cli_json(server, "thread", "list", "--env", "default")["threads"] == []
    t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    assert_ok(server.execute(key, language="bash", thread_id="rec",
                             code="head -c 100000 /dev/zero > ~/blob"))
    threads = cli_json(server, "thread", "list", "--env", "default")["threads"]
    assert [t["thread_id"] for t in threads] == ["rec"], threads
    t = threads[0]
    assert ISO_UTC_RE.match(t["created_at"]) and ISO_UTC_RE.match(t["last_used_at"]), t
    assert t["created_at"] >= t0 and t["created_at"] <= t["last_used_at"]
    assert 100000 <= t["bytes"] < 10 * MIB, t
    # A later use moves last_used_at and the size; created_at stays.  (The
    # recorded use is moved into the past first: timestamps have one-second
    # resolution, and a test must not sleep.)
    db_write(server, "UPDATE threads SET last_used_at = '2001-01-01T00:00:00Z'"
             " WHERE thread_id = 'rec'")
    t1 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    assert_ok(server.execute(key, language="bash", thread_id="rec", code="rm ~/blob"))
    t2 = cli_json(server, "thread", "list", "--env", "default")["threads"][0]
    assert t2["created_at"] == t["created_at"] and t2["last_used_at"] >= t1, t2
    assert t2["bytes"] < 100000, t2
    # Executions without a thread record none; a refused one neither.
    assert_ok(server.execute(key, code="print(1)"))
    server.execute(key, code="", thread_id="refused")
    assert [t["thread_id"] for t in
            cli_json(server, "thread", "list", "--env", "default")["threads"]] == ["rec"]


# --- the seed examples -------------------------------------------------------

def test_one_shot_curl(server, key):
    """The README's one-liner, pasted into a shell as a user would."""
    cmd = f"""curl -sS -X POST {server.url}/v1/sandbox/execute \\
  -H "Authorization: Bearer {key}" \\
  -H "Content-Type: application/json" \\
  -d '{{"code": "print(\\"Hello from the sandbox\\")", "language": "python"}}'"""
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    body = json.loads(p.stdout)
    assert body["success"] is True and body["stdout"] == "Hello from the sandbox\n", body
    assert TRACE_RE.match(body["trace_id"])
    # The same with the key from the environment, as the docs show it.
    cmd = (f'curl -sS {server.url}/v1/sandbox/execute -H "Authorization: Bearer $CORRAL_API_KEY"'
           """ -H 'Content-Type: application/json' -d '{"code": "echo hi", "language": "bash"}'""")
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "CORRAL_API_KEY": key})
    assert json.loads(p.stdout)["stdout"] == "hi\n", p.stdout + p.stderr
    # And curl -f fails on an error reply, as scripts rely on.
    cmd = (f"curl -sSf {server.url}/v1/sandbox/execute -H 'Authorization: Bearer nope'"
           """ -d '{"code": "echo hi"}'""")
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert p.returncode == 22, (p.returncode, p.stdout, p.stderr)


def readme_code_blocks(text):
    """Fenced and indented code blocks of a Markdown file, in order."""
    blocks, cur, fenced = [], None, False
    for line in text.splitlines() + [""]:
        if line.startswith("```"):
            if fenced:
                blocks.append("\n".join(cur) + "\n")
                cur, fenced = None, False
            else:
                cur, fenced = [], True
        elif fenced:
            cur.append(line)
        elif line.startswith("    ") or (cur is not None and not line.strip()):
            cur = (cur or []) + [line[4:]]
        elif cur is not None:
            blocks.append("\n".join(cur).strip() + "\n")
            cur = None
    return blocks


def test_readme_curl_works_as_pasted(server, tmp_path):
    """The README's create-a-key and curl blocks (issue 3, item 1), pasted
    into one shell in a checkout, with only the base URL changed to this
    server's."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")).read()
    blocks = readme_code_blocks(readme)
    at = [i for i, b in enumerate(blocks) if "curl" in b and "/v1/sandbox/execute" in b]
    assert at, "README.md shows no curl to /v1/sandbox/execute"
    start = max([i for i, b in enumerate(blocks[:at[0] + 1]) if "key create" in b] or [at[0]])
    cmd = "".join(blocks[start:at[0] + 1])
    cmd = re.sub(r"https?://(127\.0\.0\.1|localhost):8080", server.url, cmd)
    # A checkout as the README assumes: build/corral and the server's
    # ./corral-data under the shell's working directory.
    os.symlink(os.path.dirname(os.path.abspath(CORRAL)), tmp_path / "build")
    os.symlink(server.state_dir, tmp_path / "corral-data")
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_STATE_DIR"}
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60, env=env,
                       cwd=tmp_path)
    assert p.returncode == 0, (cmd, p.stderr)
    body = json.loads(p.stdout[p.stdout.index("{"):])
    assert body.get("success") is True and body.get("exit_code") == 0, (cmd, body)
    assert body["stdout"], body


def test_three_call_seed_pattern(server, key):
    """clone / agent / push, reduced to what runs without a network."""
    tid = "seed-" + str(os.getpid())
    clone = assert_ok(server.execute(key, language="bash", timeout=300, thread_id=tid, code=(
        "set -e\n"
        "mkdir -p ~/repo && cd ~/repo\n"
        "printf 'def greet():\\n    return \"hello\"\\n' > app.py\n"
        "echo cloned")))
    assert (clone["status"], clone["stdout"]) == ("success", "cloned\n"), clone
    agent = assert_ok(server.execute(key, language="python", timeout=300, thread_id=tid, code=(
        "import os\n"
        "p = os.path.expanduser('~/repo/app.py')\n"
        "src = open(p).read()\n"
        "open(p, 'w').write(src.replace('hello', 'hello, world'))\n"
        "print('edited', len(src))")))
    assert agent["status"] == "success" and agent["stdout"].startswith("edited "), agent
    push = assert_ok(server.execute(key, language="bash", timeout=300, thread_id=tid, code=(
        "cd ~/repo && python3 -c 'import app; print(app.greet())' && cat app.py")))
    assert push["status"] == "success", push
    assert push["stdout"] == 'hello, world\ndef greet():\n    return "hello, world"\n', push
    assert len({clone["trace_id"], agent["trace_id"], push["trace_id"]}) == 3


# --- health, metrics, admin ----------------------------------------------------

def test_healthz(server):
    st, _, _ = server.request("GET", "/healthz")
    assert st == 200


def parse_metrics(text):
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$", line)
        assert m, f"not Prometheus text: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples


def test_metrics(server, key):
    assert_ok(server.execute(key, language="bash", code="echo ok"))
    assert_ok(server.execute(key, language="bash", code="echo ok"))
    assert_ok(server.execute(key, language="bash", code="exit 2"))
    assert_ok(server.execute(key, language="bash", code="sleep 5", timeout=0.3))
    st, hdrs, text = server.request("GET", "/metrics")
    assert st == 200 and isinstance(text, str), (st, text)
    assert (header(hdrs, "Content-Type") or "").startswith("text/plain"), hdrs
    assert "# TYPE corral_executions_total counter" in text
    assert "# TYPE corral_execution_duration_seconds histogram" in text
    assert "# TYPE corral_executions_running gauge" in text
    assert "# TYPE corral_credits_used_total counter" in text
    m = parse_metrics(text)
    assert m.get('corral_executions_total{status="success"}') == 2, m
    assert m.get('corral_executions_total{status="failed"}') == 1, m
    assert m.get('corral_executions_total{status="timeout"}') == 1, m
    assert m.get("corral_executions_running") == 0
    assert m.get("corral_credits_used_total") == 4
    assert m.get("corral_execution_duration_seconds_count") == 4
    assert 0.3 <= m.get("corral_execution_duration_seconds_sum", -1) < 10
    buckets = sorted((float(re.search(r'le="([^"]+)"', k).group(1)), v) for k, v in m.items()
                     if k.startswith("corral_execution_duration_seconds_bucket"))
    assert buckets and buckets[-1] == (float("inf"), 4), buckets
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets


def test_metrics_show_running_executions(server, key):
    home = thread_home(server, "m")
    with ThreadPoolExecutor(1) as pool:
        f = pool.submit(server.execute, key, language="bash", thread_id="m",
                        code="touch ~/running; sleep 2")
        wait_for(lambda: (home / "running").exists() or f.done(), 15, "the run to start")
        m = parse_metrics(server.request("GET", "/metrics")[2])
        assert m.get("corral_executions_running") == 1, m
        assert_ok(f.result(timeout=30))
    m = parse_metrics(server.request("GET", "/metrics")[2])
    assert m.get("corral_executions_running") == 0


def test_admin_token_and_endpoints(server, key):
    assert server.admin_token and re.fullmatch(r"cra-[A-Za-z0-9_-]{43}", server.admin_token), \
        server.stdout_lines
    for path in ("/admin/v1/environments", "/admin/v1/keys", "/admin/v1/usage",
                 "/admin/v1/threads?env=default"):
        assert_error(server.request("GET", path), 401, "unauthorized")
        assert_error(server.request("GET", path, key=key), 401, "unauthorized")
        assert_error(server.request("GET", path, key="cra-" + "A" * 43), 401, "unauthorized")
    st, _, envs = server.request("GET", "/admin/v1/environments", key=server.admin_token)
    assert st == 200 and "default" in json.dumps(envs), envs
    st, _, keys = server.request("GET", "/admin/v1/keys", key=server.admin_token)
    assert st == 200 and key[:17] in json.dumps(keys) and key not in json.dumps(keys), keys
    st, _, _ = server.request("GET", "/admin/v1/usage", key=server.admin_token)
    assert st == 200
    # The admin token is not an API key.
    assert_error(server.execute(server.admin_token, code="print(1)"), 401, "unauthorized")


def admin(server, method, path, body=None):
    return server.request(method, "/admin/v1/" + path, body=body, key=server.admin_token)


def test_admin_environment_network(server):
    """'network' is a mode alone or {"mode", "allow"}; every reply shows
    the object, the entries normalized."""
    st, _, e = admin(server, "POST", "environments", {"name": "n1", "network": "allowlist"})
    assert st == 201 and e["network"] == {"mode": "allowlist", "allow": []}, e
    st, _, e = admin(server, "POST", "environments", {"name": "n2", "network": {
        "mode": "allowlist", "allow": ["Example.COM.", "*.x.org:443", "[2001:DB8::1]:443"]}})
    want = {"mode": "allowlist", "allow": ["example.com", "*.x.org:443", "[2001:db8::1]:443"]}
    assert st == 201 and e["network"] == want, e
    st, _, got = admin(server, "GET", "environments/n2")
    assert st == 200 and got == e
    st, _, envs = admin(server, "GET", "environments")
    assert st == 200
    assert {x["name"]: x["network"] for x in envs["environments"]} == {
        "default": {"mode": "none", "allow": []},
        "n1": {"mode": "allowlist", "allow": []}, "n2": want}
    # The CLI shows the same object; the store keeps the policy text.
    assert cli_json(server, "env", "show", "n2") == got
    assert db_query(server, "SELECT network FROM environments WHERE name = 'n2'") == \
        [("allowlist: example.com, *.x.org:443, [2001:db8::1]:443",)]

    st, _, e = admin(server, "PATCH", "environments/n2",
                     {"network": {"mode": "open", "allow": ["10.0.0.5"]}})
    assert st == 200 and e["network"] == {"mode": "open", "allow": ["10.0.0.5"]}, e
    # Without 'network', the policy stays; 'allow' may be left out.
    st, _, e = admin(server, "PATCH", "environments/n2", {"memory_mib": 1024})
    assert st == 200 and e["network"] == {"mode": "open", "allow": ["10.0.0.5"]}, e
    st, _, e = admin(server, "PATCH", "environments/n2", {"network": {"mode": "open"}})
    assert st == 200 and e["network"] == {"mode": "open", "allow": []}, e
    st, _, e = admin(server, "PATCH", "environments/n1", {"network": "none"})
    assert st == 200 and e["network"] == {"mode": "none", "allow": []}, e

    # Refused with a sentence naming the entry; nothing changes.
    st, _, before = admin(server, "GET", "environments")
    bad = [
        ({"mode": "allowlist", "allow": ["ok.example", "a..b"]}, "egress entry 'a..b': empty label"),
        ({"mode": "allowlist", "allow": ["*."]}, "egress entry '*.': "),
        ({"mode": "allowlist", "allow": ["127.1"]}, "egress entry '127.1': "),
        ({"mode": "open", "allow": ["a.example"]}, "egress entry 'a.example': mode 'open'"),
        ({"mode": "none", "allow": ["a.example"]}, "egress mode 'none' takes no entries"),
        ("everything", "unknown egress mode 'everything'"),
        ("allowlist: a.example", "unknown egress mode"),
        ({"mode": "bogus"}, "unknown egress mode 'bogus'"),
        ({"allow": []}, "'network.mode' is required"),
        ({"mode": "allowlist", "allow": "a.example"}, "'network.allow' must be an array of strings"),
        ({"mode": "allowlist", "allow": [1]}, "'network.allow' must be an array of strings"),
        ({"mode": "allowlist", "allows": ["a.example"]}, "'network' takes only 'mode' and 'allow'"),
        (42, "'network' must be a mode"),
        (None, "'network' must be a mode"),
    ]
    for value, needle in bad:
        msg = assert_error(admin(server, "PATCH", "environments/n2", {"network": value}),
                           400, "validation_error")
        assert needle in msg, (value, msg)
        msg = assert_error(admin(server, "POST", "environments",
                                 {"name": "n3", "network": value}), 400, "validation_error")
        assert needle in msg, (value, msg)
    assert admin(server, "GET", "environments")[2] == before
    assert_error(admin(server, "GET", "environments/n3"), 404, "not_found")

    # What was stored survives a restart.
    st, _, e = admin(server, "PATCH", "environments/n2",
                     {"network": {"mode": "allowlist", "allow": ["*.Example.org:443"]}})
    assert st == 200, e
    server.stop()
    again = Server(server.state_dir).start()
    try:
        st, _, got = again.request("GET", "/admin/v1/environments/n2", key=server.admin_token)
        assert st == 200 and got == e
        assert got["network"] == {"mode": "allowlist", "allow": ["*.example.org:443"]}
    finally:
        again.stop()


def test_admin_token_is_printed_only_once(server):
    assert server.admin_token
    server.stop()
    again = Server(server.state_dir).start()
    try:
        assert again.admin_token is None, again.stdout_lines
        st, _, _ = again.request("GET", "/admin/v1/environments", key=server.admin_token)
        assert st == 200
    finally:
        again.stop()
