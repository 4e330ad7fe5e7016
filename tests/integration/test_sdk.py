"""The Python SDK (sdk/python): installed offline, driven against a real server.

The SDK is installed once per run with `pip install --no-index --target`
into a temporary directory and imported from there, which is also the
proof that it installs on a machine with no package index (its build
backend is in the tree and needs nothing).  Every test then talks to a
real `corral serve` (the `server` fixture) through `corral.Client`,
`corral.AsyncClient` and the `baponi` spellings; the error classes the
server cannot be made to send on demand are checked against a stub HTTP
server that replies with canned errors.
"""
import asyncio
import http.server
import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile

import pytest

from conftest import Server

SDK_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "sdk", "python"))
TRACE_RE = re.compile(r"^trc_[0-9a-f]{32}$")
ISO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ENV_VARS = ("CORRAL_API_KEY", "CORRAL_BASE_URL", "BAPONI_API_KEY", "BAPONI_BASE_URL")


def have_pip():
    return subprocess.run([sys.executable, "-m", "pip", "--version"],
                          capture_output=True).returncode == 0


def pip_install(target, *extra):
    """`pip install --no-index --target TARGET ./sdk/python`; the CompletedProcess."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PIP_NO_INPUT="1")
    return subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--no-cache-dir",
         "--disable-pip-version-check", "--target", str(target), *extra, SDK_DIR],
        capture_output=True, text=True, timeout=300, env=env)


def backend_install(target, tmp):
    """Install without pip: build the wheel with the in-tree backend and unpack it
    (a pure-Python wheel is installed by unzipping it)."""
    code = ("import sys; sys.path.insert(0, '_build'); import corral_build; "
            "print(corral_build.build_wheel(sys.argv[1]))")
    p = subprocess.run([sys.executable, "-c", code, str(tmp)], cwd=SDK_DIR, capture_output=True,
                       text=True, timeout=120, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert p.returncode == 0, p.stderr
    with zipfile.ZipFile(os.path.join(str(tmp), p.stdout.strip())) as z:
        z.extractall(str(target))


@pytest.fixture(scope="module")
def sdk(tmp_path_factory):
    """The installed SDK: an object with .corral and .baponi, imported from the target."""
    target = tmp_path_factory.mktemp("sdk-target")
    if have_pip():
        p = pip_install(target)
        assert p.returncode == 0, f"pip install --no-index failed:\n{p.stdout}\n{p.stderr}"
    else:
        backend_install(target, tmp_path_factory.mktemp("sdk-wheel"))
    for name in ("corral", "baponi"):
        sys.modules.pop(name, None)
    sys.path.insert(0, str(target))
    try:
        corral = importlib.import_module("corral")
        baponi = importlib.import_module("baponi")
    finally:
        sys.path.remove(str(target))
    for m in (corral, baponi):
        assert m.__file__.startswith(str(target)), f"{m.__name__} imported from {m.__file__}"

    class SDK:
        pass

    s = SDK()
    s.corral, s.baponi, s.target = corral, baponi, target
    return s


@pytest.fixture
def clean_env(monkeypatch):
    for v in ENV_VARS:
        monkeypatch.delenv(v, raising=False)
    return monkeypatch


@pytest.fixture
def client(sdk, server, clean_env):
    return sdk.corral.Client(api_key=server.create_key(plan="unlimited"), base_url=server.url)


def in_background(fn, *args, **kw):
    """Run fn in a thread; returns a callable that joins it and returns (or raises)."""
    out = {}

    def run():
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as e:  # handed to the joining test
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout=60):
        t.join(timeout)
        assert not t.is_alive(), "background call did not finish"
        if "error" in out:
            raise out["error"]
        return out["value"]

    return join


# --- installation ------------------------------------------------------------------

@pytest.mark.skipif(not have_pip(), reason="python3-pip is not installed")
def test_pip_install_offline(sdk):
    target = sdk.target
    dist = [d for d in os.listdir(target) if d.endswith(".dist-info")]
    assert dist == [f"corral-{sdk.corral.__version__}.dist-info"], dist
    meta = open(os.path.join(target, dist[0], "METADATA"), encoding="utf-8").read()
    assert "\nName: corral\n" in meta and f"\nVersion: {sdk.corral.__version__}\n" in meta
    assert "Requires-Dist" not in meta, "the SDK must need nothing beyond the standard library"
    record = open(os.path.join(target, dist[0], "RECORD"), encoding="utf-8").read()
    for f in ("corral/__init__.py", "corral/_client.py", "baponi/__init__.py"):
        assert f + ",sha256=" in record, record


@pytest.mark.skipif(not have_pip(), reason="python3-pip is not installed")
def test_pip_builds_sdist_and_wheel_offline(tmp_path):
    # The sdist must itself install without an index (it carries the backend).
    sys.path.insert(0, os.path.join(SDK_DIR, "_build"))
    try:
        backend = importlib.import_module("corral_build")
        sdist = backend.build_sdist(str(tmp_path))
    finally:
        sys.path.remove(os.path.join(SDK_DIR, "_build"))
        sys.modules.pop("corral_build", None)
    target = tmp_path / "t"
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    p = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-cache-dir",
                        "--disable-pip-version-check", "--target", str(target),
                        str(tmp_path / sdist)], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (target / "corral" / "_client.py").exists() and (target / "baponi" / "__init__.py").exists()


# --- execute ---------------------------------------------------------------------

@pytest.mark.parametrize("language,code,out", [
    ("python", "import sys; print('py', sys.version_info[0])", "py 3\n"),
    ("node", "console.log('node', 6 * 7)", "node 42\n"),
    ("bash", "echo bash $((6 * 7))", "bash 42\n"),
])
def test_execute_each_language(client, language, code, out):
    r = client.execute(code, language=language)
    assert (r.success, r.status, r.exit_code, r.error) == (True, "success", 0, None), r
    assert r.stdout == out and r.stderr == ""
    assert TRACE_RE.match(r.trace_id), r.trace_id
    assert isinstance(r.duration_ms, int) and r.duration_ms >= 0
    assert isinstance(r.credits_used, int) and r.credits_used >= 1
    assert r.network == {"allowed": [], "denied": []}


def test_execute_defaults_to_python_and_reads_like_a_mapping(sdk, client):
    r = client.execute("print('hi')")
    assert r.stdout == "hi\n"
    assert r["stdout"] == "hi\n" and r.get("exit_code") == 0 and r.get("nope", 7) == 7
    assert "trace_id" in r and "nope" not in r
    d = r.to_dict()
    assert {"success", "stdout", "stderr", "exit_code", "error", "trace_id", "status",
            "duration_ms", "credits_used"} <= set(d)
    assert dict(r) == d
    assert isinstance(r, sdk.corral.ExecutionResult)


def test_env_vars(client):
    r = client.execute("echo \"$GREETING, $WHO\"", language="bash",
                       env_vars={"GREETING": "hello", "WHO": "wörld"})
    assert r.success and r.stdout == "hello, wörld\n"
    r = client.execute("import os; print(os.environ['X'])", env_vars={"X": "py"})
    assert r.stdout == "py\n"


def test_failing_exit_is_a_result_not_an_exception(client):
    r = client.execute("echo out; echo oops >&2; exit 3", language="bash")
    assert (r.success, r.status, r.exit_code) == (False, "failed", 3), r
    assert r.stdout == "out\n" and r.stderr == "oops\n"
    r = client.execute("raise SystemExit('bad')")
    assert (r.success, r.exit_code) == (False, 1) and "bad" in r.stderr


def test_timeout_status(client):
    t = time.monotonic()
    r = client.execute("echo before; sleep 30", language="bash", timeout=1)
    assert time.monotonic() - t < 15
    assert (r.success, r.status) == (False, "timeout"), r
    assert r.stdout == "before\n"


def test_thread_persistence_three_calls(client):
    """The seed's clone/agent/push pattern without a network: call 1 sets up a
    working copy, call 2 (the agent, in another language) edits it, call 3
    reads the result back; same thread_id throughout."""
    t = "sdk-repo-1"
    r1 = client.execute("mkdir -p repo && cd repo && printf 'line one\\n' > notes.txt && ls",
                        language="bash", thread_id=t)
    assert r1.success and r1.stdout == "notes.txt\n", r1
    r2 = client.execute("p = 'repo/notes.txt'\n"
                        "s = open(p).read().replace('one', 'ONE') + 'line two\\n'\n"
                        "open(p, 'w').write(s)\nprint(len(s))", thread_id=t)
    assert r2.success, r2
    r3 = client.execute("cat repo/notes.txt; pwd", language="bash", thread_id=t)
    assert r3.success and r3.stdout == "line ONE\nline two\n/home/baponi\n", r3
    assert len({r1.trace_id, r2.trace_id, r3.trace_id}) == 3
    # Another thread, or no thread, starts from an empty home.
    other = client.execute("ls repo 2>&1 || echo absent", language="bash", thread_id="sdk-repo-2")
    assert "absent" in other.stdout
    none = client.execute("ls repo 2>&1 || echo absent", language="bash")
    assert "absent" in none.stdout


def test_node_sees_the_thread_files_too(client):
    t = "sdk-mixed"
    assert client.execute("open('data.json', 'w').write('{\"n\": 41}')", thread_id=t).success
    r = client.execute("const d = require('fs').readFileSync('data.json', 'utf8');"
                       "console.log(JSON.parse(d).n + 1)", language="node", thread_id=t)
    assert r.stdout == "42\n", r


# --- get_execution and usage ---------------------------------------------------

def test_get_execution(sdk, client):
    r = client.execute("import sys; print('to out'); print('to err', file=sys.stderr); sys.exit(4)")
    e = client.get_execution(r.trace_id)
    assert isinstance(e, sdk.corral.Execution)
    assert e.trace_id == r.trace_id
    assert (e.status, e.exit_code, e.stdout, e.stderr) == ("failed", 4, "to out\n", "to err\n"), e
    assert e.success is False
    assert e.delivery_mode == "inline"
    assert ISO_RE.match(e.created_at) and ISO_RE.match(e.completed_at), e
    assert e.duration_ms == r.duration_ms and e.credits_used == r.credits_used
    assert e.network == r.network == {"allowed": [], "denied": []}
    assert e["status"] == "failed"


def test_usage(sdk, server, clean_env):
    c = sdk.corral.Client(api_key=server.create_key(plan="free"), base_url=server.url)
    u0 = c.usage()
    assert isinstance(u0, sdk.corral.Usage)
    assert u0.plan == "free" and re.match(r"^\d{4}-\d\d$", u0.month)
    assert (u0.credits_used, u0.executions) == (0, 0)
    assert isinstance(u0.monthly_credits, int) and u0.credits_remaining == u0.monthly_credits
    r = c.execute("print(1)")
    u1 = c.usage()
    assert u1.executions == 1 and u1.credits_used == r.credits_used >= 1
    assert u1.credits_remaining == u1.monthly_credits - u1.credits_used

    unl = sdk.corral.Client(api_key=server.create_key(plan="unlimited"), base_url=server.url).usage()
    assert unl.plan == "unlimited"
    assert unl.credits_remaining is None and unl.monthly_credits is None


# --- errors from the real server ---------------------------------------------------

def test_bad_key_is_authentication_error(sdk, server, clean_env):
    c = sdk.corral.Client(api_key="sk-local-not-a-real-key", base_url=server.url)
    with pytest.raises(sdk.corral.AuthenticationError) as ei:
        c.execute("print(1)")
    e = ei.value
    assert (e.status, e.code) == (401, "unauthorized") and e.message
    assert isinstance(e, sdk.corral.APIError) and isinstance(e, sdk.corral.CorralError)
    with pytest.raises(sdk.corral.AuthenticationError):
        c.usage()


def test_revoked_key_is_authentication_error(sdk, server, clean_env):
    k = server.create_key(plan="unlimited")
    c = sdk.corral.Client(api_key=k, base_url=server.url)
    assert c.execute("print(1)").success
    keys = json.loads(server.cli("key", "list", "--json").stdout)["keys"]
    kid = next(x["id"] for x in keys if k.startswith(x["prefix"]))
    assert server.cli("key", "revoke", str(kid)).returncode == 0
    with pytest.raises(sdk.corral.AuthenticationError):
        c.execute("print(1)")


def test_bad_language_is_validation_error(sdk, client):
    with pytest.raises(sdk.corral.ValidationError) as ei:
        client.execute("print(1)", language="cobol")
    assert (ei.value.status, ei.value.code) == (400, "validation_error")
    assert "cobol" in ei.value.message


def test_bad_fields_are_validation_errors(sdk, client):
    for kw in ({"thread_id": "no spaces allowed"}, {"env_vars": {"PATH": "/tmp"}},
               {"timeout": -1}):
        with pytest.raises(sdk.corral.ValidationError):
            client.execute("print(1)", **kw)
    with pytest.raises(sdk.corral.ValidationError):
        client.execute("")


def test_timeout_above_free_cap_is_validation_error(sdk, server, clean_env):
    c = sdk.corral.Client(api_key=server.create_key(plan="free"), base_url=server.url)
    assert c.execute("print(1)", timeout=60).success
    with pytest.raises(sdk.corral.ValidationError) as ei:
        c.execute("print(1)", timeout=61)
    assert "60" in ei.value.message, ei.value.message


def test_code_over_1mib_is_payload_too_large(sdk, client):
    assert client.execute("#" * (1 << 20)).success
    with pytest.raises(sdk.corral.PayloadTooLargeError) as ei:
        client.execute("#" * ((1 << 20) + 1))
    assert (ei.value.status, ei.value.code) == (413, "payload_too_large")


def test_unknown_trace_is_not_found(sdk, client):
    with pytest.raises(sdk.corral.NotFoundError) as ei:
        client.get_execution("trc_" + "0" * 32)
    assert (ei.value.status, ei.value.code) == (404, "not_found")
    with pytest.raises(sdk.corral.NotFoundError):
        client.get_execution("not-a-trace-id")


def test_other_environments_trace_is_not_found(sdk, server, client):
    assert server.cli("env", "create", "other").returncode == 0
    other = sdk.corral.Client(api_key=server.create_key(env="other"), base_url=server.url)
    r = client.execute("print('mine')")
    assert client.get_execution(r.trace_id).stdout == "mine\n"
    with pytest.raises(sdk.corral.NotFoundError):
        other.get_execution(r.trace_id)


def test_busy_thread_is_thread_busy_error(sdk, client):
    t = "sdk-busy"
    first = in_background(client.execute, "sleep 3; echo first", language="bash", thread_id=t)
    time.sleep(0.7)
    start = time.monotonic()
    with pytest.raises(sdk.corral.ThreadBusyError) as ei:
        client.execute("echo second", language="bash", thread_id=t)
    assert time.monotonic() - start < 2, "a busy thread must be refused at once, not queued"
    assert (ei.value.status, ei.value.code) == (409, "conflict")
    assert sdk.corral.ConflictError is sdk.corral.ThreadBusyError
    assert first().stdout == "first\n"
    # Once the first run is over the thread takes work again.
    assert client.execute("echo third", language="bash", thread_id=t).stdout == "third\n"


def test_concurrency_limit_is_rate_limit_error(sdk, server, clean_env):
    c = sdk.corral.Client(api_key=server.create_key(plan="free"), base_url=server.url)
    # The free plan runs two executions of a key at once.
    runs = [in_background(c.execute, "sleep 3", language="bash") for _ in range(2)]
    time.sleep(0.7)
    with pytest.raises(sdk.corral.RateLimitError) as ei:
        c.execute("print(1)")
    e = ei.value
    assert (e.status, e.code) == (429, "rate_limited")
    assert isinstance(e.retry_after, float) and e.retry_after >= 0
    assert not isinstance(e, sdk.corral.QuotaExceededError)
    for run in runs:
        assert run().success


def test_quota_is_quota_exceeded_error(sdk, server, clean_env):
    p = server.cli("plan", "set", "tiny", "--credits", "1")
    assert p.returncode == 0, p.stderr
    c = sdk.corral.Client(api_key=server.create_key(plan="tiny"), base_url=server.url)
    assert c.execute("print(1)").success
    with pytest.raises(sdk.corral.QuotaExceededError) as ei:
        c.execute("print(2)")
    e = ei.value
    assert (e.status, e.code) == (429, "quota_exceeded")
    # Retry-After points at the next month: more than zero, at most 31 days.
    assert e.retry_after is not None and 0 < e.retry_after <= 31 * 86400
    assert not isinstance(e, sdk.corral.RateLimitError)


def test_draining_server_is_service_unavailable(sdk, tmp_path, clean_env):
    s = Server(tmp_path / "drain").start()
    try:
        c = sdk.corral.Client(api_key=s.create_key(plan="unlimited"), base_url=s.url)
        running = in_background(c.execute, "sleep 2; echo done", language="bash")
        time.sleep(0.7)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(sdk.corral.ServiceUnavailableError) as ei:
            c.execute("print(1)")
        assert (ei.value.status, ei.value.code) == (503, "unavailable")
        assert running().stdout == "done\n"
    finally:
        s.stop()


def test_unreachable_server_is_connection_error(sdk, clean_env):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    c = sdk.corral.Client(api_key="k", base_url=f"http://127.0.0.1:{port}")
    with pytest.raises(sdk.corral.APIConnectionError) as ei:
        c.execute("print(1)")
    assert not isinstance(ei.value, sdk.corral.APIError)
    assert str(port) in str(ei.value)


def test_silent_server_is_timeout_error(sdk, clean_env):
    # A listening socket nobody accepts on: the connection opens, no reply comes.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = "http://127.0.0.1:%d" % sock.getsockname()[1]
        c = sdk.corral.Client(api_key="k", base_url=url, timeout=0.5)
        start = time.monotonic()
        with pytest.raises(sdk.corral.APITimeoutError):
            c.usage()
        ac = sdk.corral.AsyncClient(api_key="k", base_url=url, timeout=0.5)
        with pytest.raises(sdk.corral.APITimeoutError):
            asyncio.run(ac.usage())
        assert time.monotonic() - start < 10


# --- every error code, from a stub server ----------------------------------------

STUB_ERRORS = [
    (400, "validation_error", "ValidationError", {}),
    (401, "unauthorized", "AuthenticationError", {}),
    (403, "forbidden", "ForbiddenError", {}),
    (404, "not_found", "NotFoundError", {}),
    (409, "conflict", "ThreadBusyError", {}),
    (413, "payload_too_large", "PayloadTooLargeError", {}),
    (429, "rate_limited", "RateLimitError", {"Retry-After": "3"}),
    (429, "quota_exceeded", "QuotaExceededError", {"Retry-After": "86400"}),
    (500, "internal_error", "InternalServerError", {}),
    (503, "unavailable", "ServiceUnavailableError", {}),
]


@pytest.fixture
def stub():
    """An HTTP server answering every request with the reply in stub.reply."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def handle_one(self):
            n = int(self.headers.get("Content-Length") or 0)
            stub.requests.append((self.command, self.path, self.headers,
                                  self.rfile.read(n) if n else b""))
            status, headers, body = stub.reply
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = handle_one

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    class Stub:
        url = "http://127.0.0.1:%d" % srv.server_address[1]
        reply = (200, {}, {})
        requests = []

    stub = Stub()
    yield stub
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("status,code,cls,headers", STUB_ERRORS)
def test_each_error_code_maps_to_its_exception(sdk, stub, clean_env, status, code, cls, headers):
    stub.reply = (status, headers, {"error": code, "message": f"the {code} sentence"})
    expected = getattr(sdk.corral, cls)
    assert getattr(sdk.baponi, cls) is expected
    for call in (lambda: sdk.corral.Client(api_key="k", base_url=stub.url).execute("x"),
                 lambda: asyncio.run(sdk.corral.AsyncClient(api_key="k", base_url=stub.url)
                                     .execute("x"))):
        with pytest.raises(expected) as ei:
            call()
        e = ei.value
        assert type(e) is expected
        assert (e.status, e.code, e.message) == (status, code, f"the {code} sentence")
        if "Retry-After" in headers:
            assert e.retry_after == float(headers["Retry-After"])


def test_unknown_or_non_json_errors(sdk, stub, clean_env):
    c = sdk.corral.Client(api_key="k", base_url=stub.url)
    stub.reply = (418, {}, {"error": "teapot", "message": "short and stout"})
    with pytest.raises(sdk.corral.APIError) as ei:
        c.usage()
    assert (type(ei.value), ei.value.status, ei.value.code) == (sdk.corral.APIError, 418, "teapot")
    stub.reply = (502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>")
    with pytest.raises(sdk.corral.InternalServerError) as ei:
        c.usage()
    assert ei.value.status == 502 and "Bad Gateway" in ei.value.message
    stub.reply = (200, {}, b"not json")
    with pytest.raises(sdk.corral.APIError) as ei:
        c.usage()
    assert ei.value.code == "invalid_response"
    stub.reply = (429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
                  {"error": "rate_limited", "message": "slow down"})
    with pytest.raises(sdk.corral.RateLimitError) as ei:
        c.usage()
    assert ei.value.retry_after == 0


def test_request_shape(sdk, stub, clean_env):
    """What goes on the wire: path, headers, and only the fields that were given."""
    stub.reply = (200, {}, {"success": True, "stdout": "", "stderr": "", "exit_code": 0,
                            "error": None, "trace_id": "trc_" + "a" * 32, "status": "success",
                            "duration_ms": 1, "credits_used": 1, "new_field": [1]})
    c = sdk.corral.Client(api_key="sk-test", base_url=stub.url + "/")
    r = c.execute("print(1)")
    assert r.extra == {"new_field": [1]} and r["new_field"] == [1]
    c.execute("ls", language="bash", timeout=5, thread_id="t-1", env_vars={"A": "b"})
    asyncio.run(sdk.corral.AsyncClient(api_key="sk-test", base_url=stub.url)
                .execute("x", language="node"))
    (m1, p1, h1, b1), (_, _, _, b2), (m3, p3, h3, b3) = stub.requests
    assert (m1, p1, m3, p3) == ("POST", "/v1/sandbox/execute", "POST", "/v1/sandbox/execute")
    for h in (h1, h3):
        assert h["Authorization"] == "Bearer sk-test"
        assert h["Content-Type"] == "application/json"
    assert json.loads(b1) == {"code": "print(1)", "language": "python", "timeout": 30}
    assert json.loads(b2) == {"code": "ls", "language": "bash", "timeout": 5, "thread_id": "t-1",
                              "env_vars": {"A": "b"}}
    assert json.loads(b3) == {"code": "x", "language": "node", "timeout": 30}
    stub.reply = (200, {}, {"trace_id": "trc_x", "status": "running"})
    c.get_execution("trc_x")
    c.usage()
    assert [(m, p) for m, p, _, _ in stub.requests[3:]] == [
        ("GET", "/v1/executions/trc_x"), ("GET", "/v1/usage")]


# --- configuration -------------------------------------------------------------------

def test_config_from_corral_env_vars(sdk, server, clean_env):
    clean_env.setenv("CORRAL_API_KEY", server.create_key(plan="unlimited"))
    clean_env.setenv("CORRAL_BASE_URL", server.url)
    assert sdk.corral.Client().execute("print('env')").stdout == "env\n"


def test_config_from_baponi_env_vars(sdk, server, clean_env):
    clean_env.setenv("BAPONI_API_KEY", server.create_key(plan="unlimited"))
    clean_env.setenv("BAPONI_BASE_URL", server.url)
    assert sdk.corral.Client().execute("print('b')").stdout == "b\n"
    assert sdk.baponi.Baponi().execute("print('b')").stdout == "b\n"


def test_config_precedence(sdk, server, clean_env):
    good = server.create_key(plan="unlimited")
    clean_env.setenv("CORRAL_BASE_URL", server.url)
    clean_env.setenv("BAPONI_BASE_URL", "http://127.0.0.1:1")
    # corral.Client: CORRAL_* first.
    clean_env.setenv("CORRAL_API_KEY", good)
    clean_env.setenv("BAPONI_API_KEY", "sk-local-wrong")
    assert sdk.corral.Client().execute("print(1)").success
    # baponi.Baponi: BAPONI_* first.
    assert sdk.baponi.Baponi().base_url == "http://127.0.0.1:1"
    clean_env.setenv("BAPONI_BASE_URL", server.url)
    with pytest.raises(sdk.baponi.AuthenticationError):
        sdk.baponi.Baponi().execute(code="print(1)")
    # Arguments beat the environment.
    assert sdk.baponi.Baponi(api_key=good).execute(code="print(1)").success


def test_config_defaults_and_missing_key(sdk, clean_env):
    with pytest.raises(sdk.corral.ConfigurationError):
        sdk.corral.Client()
    with pytest.raises(sdk.baponi.BaponiError):
        sdk.baponi.Baponi()
    with pytest.raises(ValueError):
        sdk.corral.AsyncClient()
    c = sdk.corral.Client(api_key="k")
    assert c.base_url == "http://127.0.0.1:8080" and c.timeout > 0
    with pytest.raises(sdk.corral.ConfigurationError):
        sdk.corral.Client(api_key="k", base_url="ftp://example")


# --- the baponi spelling --------------------------------------------------------------

def test_baponi_module_as_documented(sdk, server, clean_env):
    clean_env.setenv("BAPONI_API_KEY", server.create_key(plan="unlimited"))
    clean_env.setenv("BAPONI_BASE_URL", server.url)
    from baponi import Baponi  # noqa: E402 - the sdk fixture put it in sys.modules
    assert Baponi is sdk.baponi.Baponi
    client = Baponi()
    r = client.execute(code="echo hi > f; cat f", language="bash", timeout=300, thread_id="bp-1")
    assert (r.success, r.stdout, r.exit_code) == (True, "hi\n", 0), r
    r = client.execute(code="cat f", language="bash", timeout=300, thread_id="bp-1")
    assert r.stdout == "hi\n"
    with Baponi() as c2:
        assert c2.execute("print('positional')").stdout == "positional\n"
    assert isinstance(client, sdk.corral.Client)


def test_async_baponi(sdk, server, clean_env):
    clean_env.setenv("BAPONI_API_KEY", server.create_key(plan="unlimited"))
    clean_env.setenv("BAPONI_BASE_URL", server.url)
    AsyncBaponi = sdk.baponi.AsyncBaponi

    async def main():
        async with AsyncBaponi() as client:
            start = time.monotonic()
            results = await asyncio.gather(
                client.execute(code="import time; time.sleep(1); print('py')"),
                client.execute(code="sleep 1; echo sh", language="bash"),
                client.execute(code="setTimeout(() => console.log('js'), 1000)", language="node"),
                client.execute(code="exit 5", language="bash", thread_id="abp-1"))
            elapsed = time.monotonic() - start
            execution = await client.get_execution(results[0].trace_id)
            usage = await client.usage()
            with pytest.raises(sdk.baponi.ValidationError):
                await client.execute(code="x", language="cobol")
            return results, elapsed, execution, usage

    results, elapsed, execution, usage = asyncio.run(main())
    assert [r.stdout for r in results] == ["py\n", "sh\n", "js\n", ""]
    assert [r.exit_code for r in results] == [0, 0, 0, 5]
    assert elapsed < 2.8, f"the three 1 s runs did not overlap ({elapsed:.1f} s)"
    assert execution.stdout == "py\n" and execution.status == "success"
    assert usage.executions == 4

    async def bad_key():
        async with AsyncBaponi(api_key="sk-local-nope") as client:
            await client.execute(code="print(1)")

    with pytest.raises(sdk.baponi.AuthenticationError):
        asyncio.run(bad_key())
