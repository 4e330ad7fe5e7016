"""Shared fixtures for the integration tests.

The tests drive the real `build/corral` binary (path in $CORRAL) and copy
the static helper program ($HELPER, built from tests/helper/) into a
thread directory when they need probes that do not depend on the image.
"""
import json
import os
import shutil
import subprocess

import pytest

CORRAL = os.environ.get("CORRAL") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "corral"))
HELPER = os.environ.get("HELPER") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "tests", "sandbox-helper"))


def run(*args, timeout=60, input=None):
    """Run `corral run ARGS...`; return the CompletedProcess (text mode)."""
    return subprocess.run([CORRAL, "run", *args], capture_output=True, text=True,
                          timeout=timeout, input=input)


def run_json(*args, timeout=60, input=None):
    """Run `corral run --json ARGS...` and return the parsed result object."""
    p = run("--json", *args, timeout=timeout, input=input)
    assert p.stdout.strip(), f"no JSON on stdout; rc={p.returncode} stderr={p.stderr!r}"
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON: {p.stdout!r} stderr={p.stderr!r}")


@pytest.fixture
def thread_dir(tmp_path):
    """A fresh thread directory (created by corral on first use)."""
    return str(tmp_path / "thread")


@pytest.fixture
def helper_home(tmp_path):
    """A thread directory holding the static helper as ~/helper."""
    d = tmp_path / "home"
    d.mkdir()
    shutil.copy(HELPER, d / "helper")
    os.chmod(d / "helper", 0o755)
    # A pre-seeded thread home must belong to the sandbox user's host uid:
    # corral refuses to take over a directory of someone else's.
    give_to_sandbox(d)
    return str(d)


SANDBOX_HOST_UID = 101000


def give_to_sandbox(path):
    """chown -R a host directory to the sandbox user's host uid."""
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
            os.chown(n, SANDBOX_HOST_UID, SANDBOX_HOST_UID)


def helper(home, *args, extra=(), timeout=60):
    """Run the helper inside a sandbox whose home is `home`; return JSON result."""
    return run_json("--thread-dir", home, *extra, "--", "/home/baponi/helper", *args,
                    timeout=timeout)


# --- a real `corral serve` --------------------------------------------------

import re
import signal
import socket
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `corral serve` on a free loopback port with its own state dir."""

    def __init__(self, state_dir, extra=()):
        self.state_dir = str(state_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra = list(extra)
        self.proc = None
        self.admin_token = None
        self.stdout_lines = []

    def start(self, timeout=15):
        self.proc = subprocess.Popen(
            [CORRAL, "serve", "--listen", f"127.0.0.1:{self.port}", "--state-dir", self.state_dir,
             *self.extra],
            stdout=subprocess.PIPE, stderr=open(os.path.join(self.state_dir + ".log"), "ab"),
            text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"corral serve exited with {self.proc.returncode}: "
                                     + open(self.state_dir + ".log").read())
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.02)
        else:
            raise AssertionError("corral serve did not become healthy")
        # The admin token is printed once, on the first start only; the
        # "listening on" line closes what the server prints at start.
        import select
        fd = self.proc.stdout.fileno()
        raw = b""
        while b"listening on" not in raw and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                raw += chunk
        self.stdout_lines += raw.decode(errors="replace").splitlines()
        for line in self.stdout_lines:
            m = re.search(r"admin token[^:]*: (\S+)", line)
            if m:
                self.admin_token = m.group(1)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def cli(self, *args):
        """Run an admin verb against this server's state dir."""
        return subprocess.run([CORRAL, *args, "--state-dir", self.state_dir],
                              capture_output=True, text=True, timeout=30)

    def create_key(self, env="default", plan="unlimited", name=None):
        args = ["key", "create", "--env", env, "--plan", plan]
        if name:
            args += ["--name", name]
        p = self.cli(*args)
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()

    def request(self, method, path, body=None, key=None, headers=None, raw=None, timeout=60):
        """Return (status, headers, parsed JSON or text)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, hdrs, text = r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            status, hdrs, text = e.code, dict(e.headers), e.read().decode()
        try:
            return status, hdrs, json.loads(text)
        except ValueError:
            return status, hdrs, text

    def execute(self, key, **body):
        return self.request("POST", "/v1/sandbox/execute", body=body, key=key)


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path / "state").start()
    yield s
    s.stop()


# --- helpers for the HTTP API tests (test_api.py, test_ops.py) --------------

import sqlite3
from pathlib import Path

TRACE_RE = re.compile(r"^trc_[0-9a-f]{32}$")
ISO_UTC_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
EXECUTE_FIELDS = {"success", "stdout", "stderr", "exit_code", "error", "trace_id", "status",
                  "duration_ms", "credits_used"}


def wait_for(cond, deadline=10.0, what="the condition", interval=0.02):
    """Poll `cond` until it returns something true (returned) or fail."""
    end = time.monotonic() + deadline
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= end:
            raise AssertionError(f"gave up after {deadline} s waiting for {what}")
        time.sleep(interval)


def header(headers, name):
    """A reply header by name, case-insensitively (None when absent)."""
    for k, v in (headers or {}).items():
        if k.lower() == name.lower():
            return v
    return None


def assert_error(reply, status, code):
    """`reply` is Server.request()'s triple: a flat {"error", "message"}."""
    st, _, body = reply
    assert st == status and isinstance(body, dict) and body.get("error") == code, \
        f"expected {status} {code}, got {st} {body!r}"
    assert set(body) == {"error", "message"}, f"error body not flat: {body!r}"
    assert isinstance(body["message"], str) and body["message"].strip(), body
    return body["message"]


def assert_ok(reply):
    """A 200 execute reply; returns its body."""
    st, _, body = reply
    assert st == 200 and isinstance(body, dict), f"expected 200, got {st} {body!r}"
    return body


def cli_json(server, *args):
    p = server.cli(*args, "--json")
    assert p.returncode == 0, f"corral {' '.join(args)}: rc={p.returncode} {p.stderr!r}"
    return json.loads(p.stdout)


def env_id(server, env="default"):
    return cli_json(server, "env", "show", env)["id"]


def thread_home(server, thread_id, env="default"):
    """Where DESIGN.md 6 / state.h put a thread's home on the host."""
    return Path(server.state_dir) / "threads" / str(env_id(server, env)) / thread_id


def key_id(server, secret):
    keys = cli_json(server, "key", "list")["keys"]
    return next(k["id"] for k in keys if secret.startswith(k["prefix"]))


def db_query(server, sql, args=()):
    """Read the server's database as a second process would."""
    conn = sqlite3.connect(os.path.join(server.state_dir, "corral.db"), timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def db_write(server, sql, args=()):
    conn = sqlite3.connect(os.path.join(server.state_dir, "corral.db"), timeout=10)
    try:
        conn.execute(sql, args)
        conn.commit()
    finally:
        conn.close()


def host_pids_with_argv(*argv):
    """Host pids whose argv is exactly `argv` (e.g. "sleep", "1234567")."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read() == want:
                        found.append(int(pid))
            except OSError:
                pass
    return found


@pytest.fixture
def key(server):
    """An unlimited-plan key bound to the environment 'default'."""
    return server.create_key(env="default", plan="unlimited")


@pytest.fixture
def make_server(tmp_path):
    """Start servers with extra options (`--grace 2`); all stopped at the end.
    make_server(extra, state=None): state defaults to a fresh directory."""
    started = []

    def make(extra=(), state=None):
        state = state or tmp_path / f"state{len(started)}"
        s = Server(state, extra=extra).start()
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()
