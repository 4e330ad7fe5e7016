"""`corral serve` in operation (issue 3, item 7; DESIGN.md 6): a crash
mid-execution, a SIGTERM drain, a client that never finishes sending, and
many sleeping executions through one server at once.

Each test starts its own servers, each on a free port with its own state
directory.  Sandboxed code marks that it has started by creating a file in
its thread's home, which the test polls for on the host; a sandbox process
is found on the host by its exact command line (`sleep` with a number no
other process uses).
"""
import os
import random
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import (TRACE_RE, Server, assert_error, assert_ok, cli_json, db_query,
                      host_pids_with_argv, thread_home, wait_for)


def unique_seconds():
    """A sleep length no other process on the host is likely to use."""
    return str(random.randrange(1_000_000, 9_999_999))


def corral_cgroups(pid):
    """Cgroup directories executions of the corral process `pid` use
    (<hierarchy>/.../corral/<pid>-<n>, as tests/integration/test_run.py)."""
    left = []
    for root, dirs, _ in os.walk("/sys/fs/cgroup"):
        if os.path.basename(root) == "corral":
            left += [os.path.join(root, d) for d in dirs if d.startswith(f"{pid}-")]
            dirs[:] = []
    return left


def running_trace(server, thread_id):
    rows = db_query(server, "SELECT trace_id FROM executions WHERE thread_id = ?"
                            " AND status = 'running'", (thread_id,))
    return rows[0][0] if len(rows) == 1 else None


def execute_quietly(server, key, **body):
    """An execute whose connection may be cut: the reply, or the exception."""
    try:
        return server.execute(key, **body)
    except OSError as e:          # URLError, ConnectionResetError, RemoteDisconnected
        return e


def start_marked(pool, server, key, thread_id, code, **kw):
    """Submit an execution whose code first touches ~/running; return the
    future once the sandbox is running (and its trace id, from the store)."""
    home = thread_home(server, thread_id)
    fut = pool.submit(execute_quietly, server, key, language="bash", thread_id=thread_id,
                      code="touch ~/running; " + code, **kw)
    wait_for(lambda: (home / "running").exists() or fut.done(), 20,
             f"the execution on thread {thread_id} to start")
    assert not fut.done(), fut.result()
    return fut, wait_for(lambda: running_trace(server, thread_id), 5, "its running row")


# --- crash ---------------------------------------------------------------------

def test_crash_mid_execution(make_server):
    server = make_server()
    key = server.create_key(plan="unlimited")
    n = unique_seconds()
    home = thread_home(server, "crashy")
    with ThreadPoolExecutor(1) as pool:
        fut, trace = start_marked(pool, server, key, "crashy",
                                  f"echo precious > ~/keep.txt; mkdir -p ~/d/e; "
                                  f"echo deep > ~/d/e/f; sleep {n}", timeout=600)
        wait_for(lambda: host_pids_with_argv("sleep", n), 10, "the sandbox's sleep")
        old_pid = server.proc.pid
        # (So that the check after the restart is not vacuous.)
        assert corral_cgroups(old_pid), "no corral/<pid>-<n> cgroup for the running execution"
        server.stop(signal.SIGKILL)
        assert server.proc.returncode == -signal.SIGKILL
        reply = fut.result(timeout=30)
    assert isinstance(reply, Exception) or reply[0] != 200, reply

    # Restart on the same state directory.
    again = make_server(state=server.state_dir)
    # No sandbox process of the dead server survives (by the time the new
    # one is up, or very soon after), and no cgroup of it is left.
    wait_for(lambda: not host_pids_with_argv("sleep", n), 10,
             f"'sleep {n}' of the killed server to be gone")
    wait_for(lambda: not corral_cgroups(old_pid), 10,
             f"the cgroups of the killed server (pid {old_pid}) to be removed")

    # The execution is recorded as failed, with an error saying why.
    st, _, got = again.request("GET", f"/v1/executions/{trace}", key=key)
    assert st == 200, got
    assert got["status"] == "failed", got
    assert isinstance(got["error"], str) and got["error"].strip(), got
    assert got["completed_at"] is not None, got

    # The thread's files are intact, on the host and from inside, and
    # the thread is not left busy.
    assert (home / "keep.txt").read_text() == "precious\n"
    assert (home / "d" / "e" / "f").read_text() == "deep\n"
    body = assert_ok(again.execute(key, language="bash", thread_id="crashy",
                                   code="cat ~/keep.txt ~/d/e/f"))
    assert body["stdout"] == "precious\ndeep\n", body
    threads = cli_json(again, "thread", "list", "--env", "default")["threads"]
    assert [t["thread_id"] for t in threads] == ["crashy"], threads
    # And the server works as before.
    assert assert_ok(again.execute(key, code="print('up')"))["stdout"] == "up\n"


def test_crash_with_many_running(make_server):
    """Several executions, some on threads, some not: all failed, none left."""
    server = make_server()
    key = server.create_key(plan="unlimited")
    n = unique_seconds()
    with ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(execute_quietly, server, key, language="bash", timeout=600,
                            code=f"sleep {n}", **({"thread_id": f"t{i}"} if i % 2 else {}))
                for i in range(6)]
        wait_for(lambda: len(host_pids_with_argv("sleep", n)) == 6, 20, "6 sandboxes to run")
        traces = [r[0] for r in db_query(server, "SELECT trace_id FROM executions"
                                                 " WHERE status = 'running'")]
        assert len(traces) == 6
        server.stop(signal.SIGKILL)
        for f in futs:
            f.result(timeout=30)
    again = make_server(state=server.state_dir)
    wait_for(lambda: not host_pids_with_argv("sleep", n), 10, "every sandbox to be gone")
    for t in traces:
        st, _, got = again.request("GET", f"/v1/executions/{t}", key=key)
        assert st == 200 and got["status"] == "failed" and got["error"], got
    # Nothing billed for the platform's failure.
    st, _, u = again.request("GET", "/v1/usage", key=key)
    assert st == 200 and u["credits_used"] == 0, u


# --- drain ---------------------------------------------------------------------

def test_drain_lets_running_work_finish(make_server):
    server = make_server(["--grace", "20"])
    key = server.create_key(plan="unlimited")
    with ThreadPoolExecutor(2) as pool:
        fut, trace = start_marked(pool, server, key, "drain", "sleep 2; echo done")
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)

        # New work is refused with 503 as soon as the signal is seen (until
        # then, a request may still be served).
        def refused():
            r = execute_quietly(server, key, language="bash", code="echo new")
            return r if isinstance(r, Exception) or r[0] != 200 else None
        r = wait_for(refused, 1.5, "new work to be refused")
        assert not isinstance(r, Exception), f"connection failed instead of 503: {r!r}"
        assert_error(r, 503, "unavailable")
        # The running execution completes normally.
        body = assert_ok(fut.result(timeout=30))
    assert body["status"] == "success" and body["stdout"] == "done\n", body
    assert body["trace_id"] == trace
    # Then the server exits by itself, cleanly, well before the grace ends.
    server.proc.wait(timeout=15)
    assert server.proc.returncode == 0
    assert time.monotonic() - t0 < 15
    # What it recorded stays.
    again = make_server(state=server.state_dir)
    st, _, got = again.request("GET", f"/v1/executions/{trace}", key=key)
    assert st == 200 and got["status"] == "success" and got["stdout"] == "done\n", got


def test_drain_kills_work_past_the_grace(make_server):
    server = make_server(["--grace", "1"])
    key = server.create_key(plan="unlimited")
    n = unique_seconds()
    with ThreadPoolExecutor(1) as pool:
        fut, trace = start_marked(pool, server, key, "long", f"echo started; sleep {n}",
                                  timeout=600)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=20)
        elapsed = time.monotonic() - t0
        reply = fut.result(timeout=30)
    assert 0.8 <= elapsed < 10, f"server exited {elapsed:.1f} s after SIGTERM with --grace 1"
    assert server.proc.returncode == 0, server.proc.returncode
    assert not host_pids_with_argv("sleep", n), "the sandbox outlived the server"
    # If the client got an answer, it says what became of its run.
    if not isinstance(reply, Exception):
        body = assert_ok(reply)
        assert body["status"] in ("failed", "cancelled") and body["trace_id"] == trace, body
        assert body["stdout"] == "started\n", body
    again = make_server(state=server.state_dir)
    st, _, got = again.request("GET", f"/v1/executions/{trace}", key=key)
    assert st == 200, got
    assert got["status"] in ("failed", "cancelled"), got
    assert got["error"] and got["completed_at"], got
    if not isinstance(reply, Exception):
        assert got["status"] == reply[2]["status"]
    # The thread is usable again.
    body = assert_ok(again.execute(key, language="bash", thread_id="long", code="ls ~"))
    assert "running" in body["stdout"]


def test_drain_with_nothing_running_exits_at_once(make_server):
    server = make_server(["--grace", "30"])
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=10)
    assert server.proc.returncode == 0
    assert time.monotonic() - t0 < 5


# --- a client that never finishes sending --------------------------------------

def test_slow_body_is_dropped(make_server):
    server = make_server(["--request-timeout", "2"])
    key = server.create_key(plan="unlimited")
    head = (f"POST /v1/sandbox/execute HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: 100\r\n\r\n").encode()
    cases = {
        "body unfinished": head + b'{"code": "print(',
        "headers unfinished": b"POST /v1/sandbox/execute HTTP/1.1\r\nHost: x\r\n",
        "nothing sent": b"",
    }
    socks = {}
    t0 = time.monotonic()
    for what, data in cases.items():
        s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        s.sendall(data)
        socks[what] = s
    # Meanwhile the server answers others at once.
    t1 = time.monotonic()
    assert assert_ok(server.execute(key, code="print('served')"))["stdout"] == "served\n"
    assert time.monotonic() - t1 < 1.5
    for what, s in socks.items():
        with s:
            try:
                while s.recv(4096):
                    pass              # a 408 reply is fine; then it must close
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise AssertionError(f"{what}: still open after 20 s (--request-timeout 2)")
        elapsed = time.monotonic() - t0
        assert 1.5 <= elapsed < 10, f"{what}: dropped after {elapsed:.1f} s, expected about 2"
    # Nothing ran.
    assert db_query(server, "SELECT count(*) FROM executions") == [(1,)]


def test_many_slow_clients_do_not_block_the_server(make_server):
    server = make_server(["--request-timeout", "3"])
    key = server.create_key(plan="unlimited")
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
            s.sendall(b"POST /v1/sandbox/execute HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n"
                      b"\r\n{")
            socks.append(s)
        t0 = time.monotonic()
        assert assert_ok(server.execute(key, code="print('ok')"))["stdout"] == "ok\n"
        assert time.monotonic() - t0 < 1.5
    finally:
        for s in socks:
            s.close()


# --- 100 concurrent executions ---------------------------------------------------

def test_hundred_concurrent_sleeps(make_server):
    server = make_server()
    key = server.create_key(plan="unlimited")
    n = 100

    def one(i):
        # Half on their own thread, half without one.
        extra = {"thread_id": f"par-{i}"} if i % 2 else {}
        return server.request("POST", "/v1/sandbox/execute", key=key, timeout=180,
                              body={"language": "bash", "code": f"sleep 2; echo {i}", **extra})

    t0 = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(one, range(n)))
    wall = time.monotonic() - t0
    bad = [(i, r[0], r[2]) for i, r in enumerate(replies)
           if r[0] != 200 or r[2].get("status") != "success" or r[2].get("stdout") != f"{i}\n"]
    assert not bad, f"{len(bad)} of {n} wrong, first: {bad[:3]}"
    assert len({r[2]["trace_id"] for r in replies}) == n
    assert all(TRACE_RE.match(r[2]["trace_id"]) for r in replies)
    assert all(2000 <= r[2]["duration_ms"] < 60000 for r in replies)
    # 100 x 2 s one after another would take 200 s.
    assert wall < 60, f"100 concurrent 'sleep 2' took {wall:.1f} s"
    st, _, u = server.request("GET", "/v1/usage", key=key)
    assert u["executions"] == n and u["credits_used"] == sum(r[2]["credits_used"] for r in replies)
    st, _, text = server.request("GET", "/metrics")
    assert "corral_executions_running 0" in text
    print(f"100 concurrent 'sleep 2': {wall:.1f} s wall")


def test_restart_keeps_keys_and_threads(make_server):
    server = make_server()
    key = server.create_key(plan="free")
    assert_ok(server.execute(key, language="bash", thread_id="kept", code="echo 1 > ~/n"))
    server.stop()
    assert server.proc.returncode == 0
    again = make_server(state=server.state_dir)
    body = assert_ok(again.execute(key, language="bash", thread_id="kept", code="cat ~/n"))
    assert body["stdout"] == "1\n"
    st, _, u = again.request("GET", "/v1/usage", key=key)
    assert u["executions"] == 2, u


def test_sigterm_while_a_request_is_being_parsed_does_not_crash(tmp_path):
    """A request in flight when SIGTERM arrives is answered (503, or a
    result if it got in first); the server drains and exits 0, never
    stopping libmicrohttpd with a connection suspended (which aborts)."""
    s = Server(tmp_path / "state").start()
    key = s.create_key()
    # A large body that takes the JSON parser a while after it arrives.
    body = ('{"pad":[' + ",".join(["0"] * 400000) + '],"code":"echo hi","language":"bash"}').encode()
    head = (f"POST /v1/sandbox/execute HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\n"
            f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", s.port), timeout=60) as c:
        c.sendall(head + body[:-10])
        s.proc.send_signal(signal.SIGTERM)
        c.sendall(body[-10:])
        reply = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert s.proc.wait(timeout=60) == 0, open(s.state_dir + ".log").read()
    status = int(reply.split(b" ", 2)[1])
    assert status in (200, 503), reply[:300]
