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
import socket
import socketserver
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
    out = run(server, key, f"curl -sS -m 60 http://{origin.host}:{origin.port}/big/{n} | sha256sum")
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
EOF"""


def test_malformed_requests_get_a_clear_answer(server, key):
    set_network(server, "open")
    out = run(server, key, PROBE)
    lines = out["stdout"].splitlines()
    assert len(lines) == 6, out
    assert lines[0].startswith("HTTP/1.1 400 Bad Request | corral egress proxy: this is a proxy")
    assert lines[1].startswith("HTTP/1.1 400 Bad Request | corral egress proxy: only http://")
    assert lines[2].startswith("HTTP/1.1 400 Bad Request | corral egress proxy: CONNECT needs host:port")
    assert lines[3].startswith("HTTP/1.1 400 Bad Request | corral egress proxy: the request is not valid HTTP")
    assert lines[4].startswith("HTTP/1.1 431 ")
    assert lines[5].startswith("HTTP/1.1 4")


def test_proxy_variables_cannot_be_overridden(server, key):
    set_network(server, "open")
    status, _, body = server.execute(key, code="true", language="bash",
                                     env_vars={"HTTPS_PROXY": "http://elsewhere:1"})
    assert status == 400
    assert body["error"] == "validation_error"
    assert "HTTPS_PROXY" in body["message"] and "proxy" in body["message"]


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
print(repr(s.recv(1024)), round(time.monotonic() - t))
EOF""")
        lines = out["stdout"].splitlines()
        assert lines[0] == "HTTP/1.1 200 Connection established"
        got, secs = lines[1].rsplit(" ", 1)
        assert got == "b''" and int(secs) < 10
    finally:
        listener.close()
        srv.stop()
