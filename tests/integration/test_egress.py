"""Egress: the per-environment policy, enforced by corral's proxy (issue 5).

Every server here listens on the host's loopback; nothing leaves the
machine.  A sandbox reaches them only through the proxy that corral serves
on 127.0.0.1:3128 inside its network namespace, and only when the policy
names their address literally (loopback is otherwise refused).  Refusals
are shown through the proxy's 403, the execution's network report, the
audit and /metrics, and the sandbox's own interfaces and routes.
"""
import hashlib
import http.server
import json
import os
import re
import socket
import socketserver
import subprocess
import threading

import pytest

from conftest import Server, header, wait_for
from fakes import tls


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/big/"):
            n = int(self.path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = bytes(range(256)) * 256
            left = n
            while left:
                k = min(left, len(chunk))
                self.wfile.write(chunk[:k])
                left -= k
            return
        body = f"hello from {self.server.name} {self.path}\n".encode()
        self.server.seen.append((self.command, self.path, dict(self.headers)))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Origin(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """An HTTP (or, with a context, HTTPS) server on the host's loopback."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host="127.0.0.2", name="origin", context=None):
        super().__init__((host, 0), _Handler)
        self.name = name
        self.seen = []
        if context:
            self.socket = context.wrap_socket(self.socket, server_side=True)
        self.host, self.port = self.server_address[:2]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.close()


@pytest.fixture
def key(server):
    return server.create_key()


def set_network(server, mode, *allow, env="default"):
    args = ["env", "set", env, "--network", mode]
    for a in allow:
        args += ["--allow", a]
    p = server.cli(*args)
    assert p.returncode == 0, p.stderr


def run(server, key, code, **kw):
    status, _, body = server.execute(key, code=code, language="bash", **kw)
    assert status == 200, body
    return body


def curl(url, *extra):
    """A curl line that prints the status code and the body, never hangs."""
    return (f"curl -sS -m 10 {' '.join(extra)} -o /tmp/body -w '%{{http_code}}\\n' '{url}'; "
            "echo rc=$?; cat /tmp/body; echo\n")


# --- none --------------------------------------------------------------------

def test_none_has_no_proxy_no_route_and_no_interface_but_lo(server, key):
    out = run(server, key, r"""
        env | grep -ci proxy || true
        echo routes: $(tail -n +2 /proc/net/route | wc -l) $(grep -vc ' lo$' /proc/net/ipv6_route)
        echo ifaces: $(tail -n +3 /proc/net/dev | cut -d: -f1)
        python3 - <<'EOF'
import errno, socket
for addr in [("192.0.2.1", 80), ("127.0.0.1", 3128)]:
    s = socket.socket()
    try:
        s.connect(addr)
        print(addr, "connected")
    except OSError as e:
        print(addr, errno.errorcode[e.errno])
EOF
    """)
    lines = out["stdout"].splitlines()
    assert lines[0] == "0"                       # no *_PROXY variable
    assert lines[1] == "routes: 0 0"             # no route, v4 or v6
    assert lines[2] == "ifaces: lo"
    # A program that ignores any proxy has nowhere to go: no route out
    # (refused locally, nothing is sent), and no proxy to talk to.
    assert lines[3] == "('192.0.2.1', 80) ENETUNREACH"
    assert lines[4] == "('127.0.0.1', 3128) ECONNREFUSED"
    assert out["network"] == {"allowed": [], "denied": []}


# --- allowlist ---------------------------------------------------------------

def test_allowlisted_address_is_reached_through_the_proxy(server, key, origin):
    set_network(server, "allowlist", f"{origin.host}:{origin.port}")
    out = run(server, key, "env | grep -i _proxy= | sort\n" +
              curl(f"http://{origin.host}:{origin.port}/some/path?q=1"))
    lines = out["stdout"].splitlines()
    assert lines[:6] == ["HTTPS_PROXY=http://127.0.0.1:3128", "HTTP_PROXY=http://127.0.0.1:3128",
                         "NO_PROXY=localhost,127.0.0.1", "http_proxy=http://127.0.0.1:3128",
                         "https_proxy=http://127.0.0.1:3128", "no_proxy=localhost,127.0.0.1"]
    assert lines[6:9] == ["200", "rc=0", "hello from origin /some/path?q=1"]
    assert out["network"] == {"allowed": [f"{origin.host}:{origin.port}"], "denied": []}
    # The origin got an origin-form request, without proxy headers, and
    # "Connection: close" (one request per proxied connection).
    method, path, hdrs = origin.seen[-1]
    assert (method, path) == ("GET", "/some/path?q=1")
    assert hdrs.get("Connection") == "close"
    assert not any(k.lower().startswith("proxy-") for k in hdrs)


def test_https_tunnel_through_connect(server, key, tmp_path):
    certs = tls.make_certs(tmp_path / "tls")
    o = Origin(context=tls.server_context(certs), name="tls-origin")
    try:
        set_network(server, "allowlist", f"127.0.0.2:{o.port}")
        ca = open(certs.ca).read()
        out = run(server, key, f"cat > /tmp/ca.pem <<'EOF'\n{ca}EOF\n" +
                  curl(f"https://127.0.0.2:{o.port}/secure", "--cacert /tmp/ca.pem"))
        assert out["stdout"].splitlines()[:3] == ["200", "rc=0", "hello from tls-origin /secure"]
        assert out["network"]["allowed"] == [f"127.0.0.2:{o.port}"]
    finally:
        o.close()


def test_big_download_arrives_whole(server, key, origin):
    n = 32 << 20
    set_network(server, "allowlist", f"{origin.host}:{origin.port}")
    out = run(server, key, f"curl -sS -m 60 http://{origin.host}:{origin.port}/big/{n} | tee >(wc -c >&2) | sha256sum")
    assert out["stderr"].strip() == str(n), out["stderr"]
    want = hashlib.sha256((bytes(range(256)) * 256 * (n // 65536 + 1))[:n]).hexdigest()
    assert out["stdout"].split()[0] == want


def test_not_listed_is_refused_with_a_403_naming_host_and_rule(server, key, origin):
    set_network(server, "allowlist", f"{origin.host}:{origin.port}", "*.example.org")
    out = run(server, key,
              curl("http://example.com/") + curl(f"http://{origin.host}:{origin.port + 1}/") +
              "curl -sS -m 10 -v https://evil.example.net/ 2>&1 | grep '< HTTP'\n")
    s = out["stdout"]
    assert "403\nrc=0\ncorral egress proxy: egress to 'example.com:80' refused: not in the allowlist" in s
    assert f"egress to '{origin.host}:{origin.port + 1}' refused" in s
    assert "HTTP/1.1 403 Forbidden" in s                # the CONNECT refusal
    assert sorted(out["network"]["denied"]) == sorted(
        ["example.com:80", f"{origin.host}:{origin.port + 1}", "evil.example.net:443"])
    assert out["network"]["allowed"] == []
    # The audit has each refusal, with its code and sentence.
    status, _, audit = server.request("GET", f"/admin/v1/audit?trace_id={out['trace_id']}",
                                      key=server.admin_token)
    assert status == 200, audit
    got = {d["target"]: d for d in audit["egress_denials"]}
    assert set(got) == set(out["network"]["denied"])
    assert got["example.com:80"]["code"] == "not_allowlisted"
    assert got["example.com:80"]["environment"] == "default"
    assert "not in the allowlist" in got["example.com:80"]["reason"]
    # And the execution record keeps the report.
    status, _, rec = server.request("GET", f"/v1/executions/{out['trace_id']}", key=key)
    assert rec["network"] == out["network"]


def test_metrics_count_verdicts(server, key, origin):
    set_network(server, "allowlist", f"{origin.host}:{origin.port}")
    run(server, key, curl(f"http://{origin.host}:{origin.port}/") + curl("http://example.com/"))
    status, _, text = server.request("GET", "/metrics")
    assert 'corral_egress_connections_total{verdict="allowed"} 1' in text
    assert 'corral_egress_connections_total{verdict="denied"} 1' in text


def test_a_name_that_resolves_to_loopback_is_refused(server, key, origin):
    # "localhost" is listed, but it resolves to the host's loopback; only a
    # literal entry opens a loopback address.
    set_network(server, "allowlist", "localhost")
    out = run(server, key, curl(f"http://localhost:{origin.port}/",
                                "--noproxy '' -x http://127.0.0.1:3128"))
    assert out["stdout"].startswith("403\nrc=0\ncorral egress proxy: egress to "
                                    f"'localhost:{origin.port}' refused: ")
    assert "loopback" in out["stdout"]
    # The sandbox is not told the address (it would learn the host's
    # internal DNS that way); the audit has the whole sentence.
    assert "127.0.0.1" not in out["stdout"].split("refused:")[1]
    status, _, audit = server.request("GET", f"/admin/v1/audit?trace_id={out['trace_id']}",
                                      key=server.admin_token)
    assert "127.0.0.1" in audit["egress_denials"][0]["reason"]
    # Listing the address itself opens it, for that name too.
    set_network(server, "allowlist", "localhost", "127.0.0.1")
    o = Origin(host="127.0.0.1", name="lo-origin")
    try:
        out = run(server, key, curl(f"http://localhost:{o.port}/x",
                                    "--noproxy '' -x http://127.0.0.1:3128"))
        assert out["stdout"].splitlines()[:3] == ["200", "rc=0", "hello from lo-origin /x"]
    finally:
        o.close()


# --- open: the internet, not the host's own network ----------------------------

@pytest.mark.parametrize("url, code, words", [
    ("http://10.1.2.3/", "private_address", "10.0.0.0/8"),
    ("http://192.168.1.1:8080/", "private_address", "192.168.0.0/16"),
    ("http://169.254.169.254/latest/meta-data/", "link_local", "metadata"),
    ("http://[::1]:80/", "loopback", "loopback"),
    ("http://0.0.0.0:80/", "unspecified", "unspecified"),
    ("http://[::ffff:127.0.0.1]:80/", "loopback", "loopback"),
])
def test_open_still_refuses_private_loopback_and_metadata(server, key, url, code, words):
    set_network(server, "open")
    out = run(server, key, curl(url))
    assert out["stdout"].startswith("403\nrc=0\ncorral egress proxy: "), out["stdout"]
    assert words in out["stdout"]
    status, _, audit = server.request("GET", f"/admin/v1/audit?trace_id={out['trace_id']}",
                                      key=server.admin_token)
    assert [d["code"] for d in audit["egress_denials"]] == [code]


def test_open_refuses_the_hosts_own_services(server, key):
    # corral's own API on the host's loopback, through the proxy.
    set_network(server, "open")
    out = run(server, key, curl(f"http://127.0.0.1:{server.port}/healthz",
                                "--noproxy '' -x http://127.0.0.1:3128") +
              f"curl -sS -m 10 -v --noproxy '' -x http://127.0.0.1:3128 https://127.0.0.1:{server.port}/ 2>&1 | grep '< HTTP'\n")
    assert out["stdout"].startswith("403\nrc=0\ncorral egress proxy: egress to "
                                    f"'127.0.0.1:{server.port}' refused: ")
    assert "HTTP/1.1 403 Forbidden" in out["stdout"]


# --- a program that ignores the proxy ------------------------------------------

def test_a_program_that_ignores_the_proxy_gets_no_network(server, key, origin):
    set_network(server, "allowlist", f"{origin.host}:{origin.port}")
    out = run(server, key, f"""python3 - <<'EOF'
import errno, socket
for addr in [("{origin.host}", {origin.port}), ("192.0.2.1", 443), ("10.0.0.1", 53)]:
    s = socket.socket()
    try:
        s.connect(addr)
        print("connected")
    except OSError as e:
        print(errno.errorcode[e.errno])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.sendto(b"x", ("192.0.2.1", 53))
    print("sent")
except OSError as e:
    print(errno.errorcode[e.errno])
EOF""")
    # The allowed origin is on the *host's* loopback: directly, the
    # sandbox reaches only its own, where nothing listens.
    assert out["stdout"].split() == ["ECONNREFUSED", "ENETUNREACH", "ENETUNREACH", "ENETUNREACH"]
    assert out["network"] == {"allowed": [], "denied": []}


# --- the proxy's own refusals --------------------------------------------------

PROBE = r"""python3 - <<'EOF'
import socket, sys
def ask(raw):
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(raw)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    head = data.split(b"\r\n", 1)[0].decode()
    print(head, "|", data.split(b"\r\n\r\n", 1)[-1].decode().strip())
ask(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
ask(b"GET https://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
ask(b"CONNECT example.com HTTP/1.1\r\n\r\n")
ask(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
ask(b"GET http://a/ HTTP/1.1\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n")
ask(b"CONNECT [::1]:0 HTTP/1.1\r\n\r\n")
ask(b"POST http://a/ HTTP/1.1\nContent-Length: 4\n\nab\r\n\r\n")
EOF"""


def test_malformed_requests_get_a_clear_answer(server, key):
    set_network(server, "open")
    out = run(server, key, PROBE)
    lines = out["stdout"].splitlines()
    assert len(lines) == 7, out
    assert lines[0].startswith("HTTP/1.1 400 Bad Request | corral egress proxy: this is a proxy")
    assert lines[1].startswith("HTTP/1.1 400 Bad Request | corral egress proxy: only http://")
    assert lines[2].startswith("HTTP/1.1 400 Bad Request | corral egress proxy: CONNECT needs host:port")
    assert lines[3].startswith("HTTP/1.1 400 Bad Request | corral egress proxy: the request is not valid HTTP")
    assert lines[4].startswith("HTTP/1.1 431 ")
    assert lines[5].startswith("HTTP/1.1 4")
    assert lines[6].startswith("HTTP/1.1 400 Bad Request | corral egress proxy: the request's lines must end in CRLF")


def test_proxy_variables_cannot_be_overridden(server, key):
    set_network(server, "open")
    status, _, body = server.execute(key, code="true", language="bash",
                                     env_vars={"HTTPS_PROXY": "http://elsewhere:1"})
    assert status == 400
    assert body["error"] == "validation_error"
    assert "HTTPS_PROXY" in body["message"] and "(network open)" in body["message"]


def test_idle_tunnel_is_closed(tmp_path):
    # A tunnel to a server that never speaks ends at the idle deadline.
    srv = Server(tmp_path / "state", extra=["--egress-idle", "1"]).start()
    listener = socket.socket()
    listener.bind(("127.0.0.2", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        key = srv.create_key()
        set_network(srv, "allowlist", f"127.0.0.2:{port}")
        out = run(srv, key, f"""python3 - <<'EOF'
import socket, time
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"CONNECT 127.0.0.2:{port} HTTP/1.1\\r\\nHost: 127.0.0.2:{port}\\r\\n\\r\\n")
print(s.recv(1024).split(b"\\r\\n")[0].decode())
t = time.monotonic()
s.settimeout(20)
try:
    got = "eof" if s.recv(1024) == b"" else "data"
except ConnectionResetError:
    got = "reset"  # a tunnel cut short is reset, not ended cleanly
print(got, round(time.monotonic() - t))
EOF""")
        lines = out["stdout"].splitlines()
        assert lines[0] == "HTTP/1.1 200 Connection established"
        got, secs = lines[1].rsplit(" ", 1)
        assert got == "reset" and int(secs) < 10
    finally:
        listener.close()
        srv.stop()


# --- what the security review found --------------------------------------------

class Upstream:
    """A TCP server on the host's loopback that records what it receives
    and, per connection, how long it stayed open."""

    def __init__(self, reply=b""):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.received = []
        self.closed_after = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        import time as _t
        t0 = _t.monotonic()
        data = b""
        c.settimeout(60)
        try:
            if self.reply:
                # An HTTP/1.1 origin that closes after its answer: read the
                # head and the body (Content-Length), answer, then take
                # whatever else arrives for a moment (nothing should).
                while b"\r\n\r\n" not in data:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", data)
                want = data.index(b"\r\n\r\n") + 4 + (int(m.group(1)) if m else 0)
                while len(data) < want:
                    b = c.recv(65536)
                    if not b:
                        break
                    data += b
                c.sendall(self.reply)
                c.settimeout(0.5)
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
        except (OSError, ValueError):
            pass
        with self.lock:
            self.received.append(data)
            self.closed_after.append(_t.monotonic() - t0)
        c.close()

    def close(self):
        self.sock.close()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_tunnels_end_with_the_execution_and_never_spin(server, key):
    # Sandbox code half-closes its tunnels, then resets them, against an
    # upstream that stays silent: the relay must neither spin nor keep the
    # upstream connection once the execution is over.
    up = Upstream()
    try:
        set_network(server, "allowlist", f"127.0.0.2:{up.port}")
        before = cpu_seconds(server.proc.pid)
        out = run(server, key, f"""python3 - <<'EOF'
import socket, struct, time
socks = []
for i in range(4):
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(b"CONNECT 127.0.0.2:{up.port} HTTP/1.1\\r\\n\\r\\n")
    assert s.recv(1024).startswith(b"HTTP/1.1 200")
    socks.append(s)
for s in socks[:2]:
    s.shutdown(socket.SHUT_WR)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
time.sleep(1.5)
print("done")
EOF""")
        assert out["stdout"] == "done\n"
        # All four upstream connections are closed soon after the end
        # (the idle timeout is 300 s).
        wait_for(lambda: len(up.closed_after) == 4, 10, "the upstream connections to close")
        spent = cpu_seconds(server.proc.pid) - before
        assert spent < 1.0, f"the daemon used {spent:.2f} s of CPU for four idle tunnels"
    finally:
        up.close()


def test_absolute_form_carries_one_request_with_the_urls_host(server, key):
    up = Upstream(reply=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    try:
        set_network(server, "allowlist", f"127.0.0.2:{up.port}")
        out = run(server, key, f"""python3 - <<'EOF'
import socket
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"POST http://127.0.0.2:{up.port}/a HTTP/1.1\\r\\nHost: other.example\\r\\n"
          b"Connection: keep-alive, X-Hop-Only, Content-Length\\r\\nX-Hop-Only: 1\\r\\nX-End-To-End: 2\\r\\n"
          b"Content-Length: 5\\r\\n\\r\\nhello"
          b"GET http://forbidden.example/secret HTTP/1.1\\r\\nHost: forbidden.example\\r\\n"
          b"Authorization: Bearer for-forbidden\\r\\n\\r\\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
print(data.split(b"\\r\\n")[0].decode(), data.endswith(b"ok"))
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"POST http://127.0.0.2:{up.port}/c HTTP/1.1\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n")
print(s.recv(65536).split(b"\\r\\n")[0].decode())
EOF""")
        assert out["stdout"].splitlines() == ["HTTP/1.1 200 OK True",
                                              "HTTP/1.1 411 Length Required"], out
        wait_for(lambda: len(up.received) == 1, 10, "the upstream to finish")
        got = up.received[0]
        assert got.startswith(b"POST /a HTTP/1.1\r\n"), got
        assert f"\r\nHost: 127.0.0.2:{up.port}\r\n".encode() in got
        assert b"other.example" not in got
        assert got.endswith(b"\r\n\r\nhello"), got
        assert b"forbidden" not in got
        assert b"X-Hop-Only" not in got and b"\r\nX-End-To-End: 2\r\n" in got
        # Content-Length is the parsed one, even when Connection names it.
        assert b"\r\nContent-Length: 5\r\n" in got
    finally:
        up.close()


def test_open_refuses_the_hosts_own_public_address(tmp_path):
    # The host's own addresses are its own services, reached over lo, not
    # the internet.  The server runs in a network namespace of its own
    # whose lo also holds 8.8.8.8 (an address the policy calls public),
    # with a web server on it: nothing leaves the machine.
    from conftest import CORRAL, free_port
    port, web = free_port(), free_port()
    state = tmp_path / "state"
    boot = (f"ip link set lo up && ip addr add 8.8.8.8/32 dev lo && "
            f"exec {CORRAL} serve --listen 127.0.0.1:{port} --state-dir {state}")
    proc = subprocess.Popen(["unshare", "-n", "sh", "-c", boot], stdout=subprocess.DEVNULL,
                            stderr=open(str(state) + ".log", "wb"))
    inside = ["nsenter", f"--net=/proc/{proc.pid}/ns/net"]
    webp = None
    try:
        def healthy():
            r = subprocess.run(inside + ["curl", "-sf", f"http://127.0.0.1:{port}/healthz"],
                               capture_output=True)
            return r.returncode == 0
        wait_for(healthy, 15, "corral serve in its namespace")
        webp = subprocess.Popen(inside + ["/usr/bin/python3", "-m", "http.server", "--bind",
                                          "8.8.8.8", str(web)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        key = subprocess.run([CORRAL, "key", "create", "--env", "default", "--state-dir",
                              str(state)], capture_output=True, text=True).stdout.strip()

        def execute(code):
            body = json.dumps({"code": code, "language": "bash"})
            r = subprocess.run(inside + ["curl", "-sS", "-H", f"Authorization: Bearer {key}",
                                         "-d", body, f"http://127.0.0.1:{port}/v1/sandbox/execute"],
                               capture_output=True, text=True, timeout=60)
            return json.loads(r.stdout)

        def set_net(*args):
            r = subprocess.run([CORRAL, "env", "set", "default", "--network", *args,
                                "--state-dir", str(state)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr

        wait_for(lambda: subprocess.run(inside + ["curl", "-sf", f"http://8.8.8.8:{web}/"],
                                        capture_output=True).returncode == 0, 15, "the web server")
        set_net("open")
        out = execute(curl(f"http://8.8.8.8:{web}/"))
        assert out["stdout"].startswith("403\nrc=0\ncorral egress proxy: egress to "
                                        f"'8.8.8.8:{web}' refused: 8.8.8.8 is an address of "
                                        "this host itself"), out
        assert out["network"]["denied"] == [f"8.8.8.8:{web}"]
        # Listed literally, it is reached, as any other address would be.
        set_net("open", "--allow", "8.8.8.8")
        out = execute(curl(f"http://8.8.8.8:{web}/"))
        assert out["stdout"].startswith("200\nrc=0\n"), out
        assert out["network"]["allowed"] == [f"8.8.8.8:{web}"]
    finally:
        if webp:
            webp.kill()
            webp.wait()
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("args, words", [
    (["--upstream-ca", "/nonexistent/ca.pem"], "--upstream-ca: cannot read '/nonexistent/ca.pem'"),
    (["--egress-idle", "0"], "--egress-idle"),
    (["--egress-idle", "soon"], "--egress-idle"),
    (["--upstream-ca"], "--upstream-ca"),
])
def test_serve_refuses_bad_egress_options(tmp_path, args, words):
    from conftest import CORRAL
    p = subprocess.run([CORRAL, "serve", "--listen", "127.0.0.1:1", "--state-dir",
                        str(tmp_path / "state"), *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p
    assert words in p.stderr and "corral serve --help" in p.stderr, p.stderr
    assert not (tmp_path / "state").exists()


class Streamer:
    """A TCP server on 127.0.0.2 that reads a request until the client
    half-closes, then sends `size` bytes and closes (or, with reset=True,
    resets the connection after them)."""

    def __init__(self, size, reset=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.size, self.reset = size, reset
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.settimeout(30)
            if not self.reset:
                while c.recv(65536):
                    pass
            else:
                c.recv(65536)
            block = bytes(range(256)) * 256
            left = self.size
            while left:
                k = min(left, len(block))
                c.sendall(block[:k])
                left -= k
            if self.reset:
                import struct
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self):
        self.sock.close()


def tunnel_to(port):
    """The start of a sandbox program: python3 with `s`, a socket tunnelled
    through the proxy to 127.0.0.2:port (the 200 read)."""
    return f"""python3 - <<'EOF'
import socket, time
s = socket.create_connection(("127.0.0.1", 3128))
s.sendall(b"CONNECT 127.0.0.2:{port} HTTP/1.1\\r\\n\\r\\n")
head = b""
while b"\\r\\n\\r\\n" not in head:
    head += s.recv(1)
assert head.startswith(b"HTTP/1.1 200 ")"""


def test_a_half_closed_tunnel_delivers_everything_to_a_slow_reader(server, key):
    # The client sends its request, half-closes, and reads slowly; the
    # upstream answers 8 MiB and closes.  All of it must arrive.
    up = Streamer(8 << 20)
    try:
        set_network(server, "allowlist", f"127.0.0.2:{up.port}")
        out = run(server, key, tunnel_to(up.port) + """
s.sendall(b"request")
s.shutdown(socket.SHUT_WR)
n = 0
while True:
    b = s.recv(65536)
    if not b:
        break
    n += len(b)
    time.sleep(0.002)
print(n)
EOF""")
        assert out["stdout"] == f"{8 << 20}\n", out
    finally:
        up.close()


def test_an_upstream_reset_reaches_the_sandbox_as_a_reset(server, key):
    # A transfer the upstream breaks off must not look whole.
    up = Streamer(1 << 20, reset=True)
    try:
        set_network(server, "allowlist", f"127.0.0.2:{up.port}")
        out = run(server, key, tunnel_to(up.port) + """
s.sendall(b"go")
n = 0
try:
    while True:
        b = s.recv(65536)
        if not b:
            print("clean end after", n)
            break
        n += len(b)
except ConnectionResetError:
    print("reset")
EOF""")
        assert out["stdout"] == "reset\n", out
    finally:
        up.close()


def test_absolute_form_keeps_a_bare_query(server, key):
    up = Upstream(reply=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    try:
        set_network(server, "allowlist", f"127.0.0.2:{up.port}")
        out = run(server, key, f"curl -sS --noproxy '' -x http://127.0.0.1:3128 "
                               f"'http://127.0.0.2:{up.port}?q=1'")
        assert out["stdout"] == "ok"
        wait_for(lambda: up.received, 10, "the upstream")
        assert len(up.received) == 1, up.received
        assert up.received[0].startswith(b"GET /?q=1 HTTP/1.1\r\n"), up.received[0]
    finally:
        up.close()
