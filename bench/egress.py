#!/usr/bin/env python3
"""bench/egress.py - what the egress proxy costs a sandbox's downloads and
connections, measured in one run on this machine (issue 5).

    bench/egress.py /abs/path/to/build/corral   (bench/egress.sh runs this)

Starts a local HTTP server on 127.0.0.2 (a process of its own serving a
100 MiB file from a temporary directory with sendfile(), so that it is not
the bottleneck), `corral serve` on a free loopback port with a temporary
state directory, an `unlimited` key, and the environment `default` set to
`--network allowlist --allow 127.0.0.2:PORT`; then:

1. throughput: BENCH_DOWNLOADS (default 9) downloads of the file per
   candidate after one warm-up round, interleaved round by round, each
   timed by curl itself (`-w '%{speed_download}'`, so a sandbox's start is
   not counted):
     direct    curl on the host, straight to the server;
     absolute  the same curl command in a sandbox, where http_proxy sends
               it through the proxy (absolute-form GET);
     connect   the same with -p: a CONNECT tunnel through the proxy;
   medians and the ratio proxy / direct (goal >= 0.80);
2. the latency of one CONNECT: BENCH_CONNECTS (default 200) times, after
   BENCH_WARMUP (default 20) warm-ups, a Python loop in a sandbox connects
   to the proxy on 127.0.0.1:3128, sends `CONNECT 127.0.0.2:PORT`, reads the
   200 answer and closes; beside the same loop on the host making a plain
   TCP connection to the server and closing it.  The difference of the
   medians is the latency the proxy adds to a connection.

Figures are printed, never checked: the script fails only when something
does not work.
"""
import http.client
import json
import os
import shlex
import shutil
import signal
import socketserver
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import die, env_count, free_port, percentile

UPSTREAM_HOST = "127.0.0.2"
BLOB_MIB = 100
GOAL = 0.80
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
              "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
# curl expands the \n itself.
CURL_FORMAT = "%{speed_download} %{size_download} %{http_code} %{http_connect}\\n"

# The latency loop, run as is on the host (mode direct) and in a sandbox
# (mode connect); prints the samples in nanoseconds as JSON.
LATENCY_SCRIPT = r'''
import json, socket, sys, time
mode, host, port, n, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
req = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
addr = ("127.0.0.1", 3128) if mode == "connect" else (host, port)
out = []
for i in range(warm + n):
    t0 = time.perf_counter_ns()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(addr)
    if mode == "connect":
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    s.close()
    dt = time.perf_counter_ns() - t0
    if mode == "connect" and not buf.startswith((b"HTTP/1.1 200 ", b"HTTP/1.0 200 ")):
        sys.exit(f"the proxy answered {buf[:300]!r} to CONNECT {host}:{port}")
    if i >= warm:
        out.append(dt)
print(json.dumps(out))
'''


# --- the upstream server (a process of its own: `egress.py --upstream FILE`)

class BlobHandler(socketserver.BaseRequestHandler):
    """GET /blob answers the file with sendfile(); one request per connection."""

    def handle(self):
        sock = self.request
        sock.settimeout(60)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                d = sock.recv(4096)
                if not d or len(head) > 16384:
                    return           # a CONNECT probe closes here, unanswered
                head += d
            parts = head.split(b"\r\n", 1)[0].split()
            if len(parts) < 2 or parts[0] != b"GET" or parts[1] != b"/blob":
                sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                return
            with open(self.server.blob, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size)
                sock.sendfile(f)
        except OSError:
            pass


class BlobServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def serve_upstream(blob):
    srv = BlobServer((UPSTREAM_HOST, 0), BlobHandler)
    srv.blob = blob
    print(srv.server_address[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv.serve_forever()


def start_upstream(blob, log):
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--upstream", blob],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        proc.wait()
        die(f"the local HTTP server on {UPSTREAM_HOST} did not start; see {log.name}")
    return proc, int(line)


# --- corral

def start_server(corral, state, log):
    port = free_port()
    proc = subprocess.Popen([corral, "serve", "--listen", f"127.0.0.1:{port}",
                             "--state-dir", state, "--log-level", "error"],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            die(f"corral serve exited with {proc.returncode}; see {log.name}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            ok = c.getresponse().status == 200
            c.close()
            if ok:
                return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            die("corral serve did not become healthy within 15 s")
        time.sleep(0.02)


def corral_cli(corral, *args):
    p = subprocess.run([corral, *args], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        die(f"'corral {' '.join(args[:2])}' failed: {p.stderr.strip()}")
    return p.stdout.strip()


class Sandbox:
    """Executions over one keep-alive connection."""

    def __init__(self, port, key, target):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=180)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.target = target

    def run(self, code):
        body = json.dumps({"code": code, "language": "bash", "timeout": 120}).encode()
        self.conn.request("POST", "/v1/sandbox/execute", body=body, headers=self.headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            die(f"the server answered {r.status}: {data[:300]!r}")
        reply = json.loads(data)
        if reply.get("status") != "success" or reply.get("exit_code") != 0:
            die(f"the sandbox failed: exit {reply.get('exit_code')}, "
                f"stderr {reply.get('stderr', '')[:500]!r}, error {reply.get('error')!r}")
        net = reply.get("network") or {}
        if self.target not in (net.get("allowed") or []) or net.get("denied"):
            die(f"the proxy did not carry the sandbox's traffic to {self.target}: "
                f"network {net!r}")
        return reply["stdout"]

    def close(self):
        self.conn.close()


# --- measuring

def parse_curl(out, tunnel):
    """Bytes per second from curl's -w line, after checking what it got
    (the whole file; a CONNECT answered 200 with -p, none without)."""
    f = out.split()
    expect = BLOB_MIB << 20
    if (len(f) != 4 or f[2] != "200" or int(float(f[1])) != expect
            or f[3] != ("200" if tunnel else "000")):
        die(f"unexpected curl result {out.strip()!r} (want: speed {expect} 200 "
            f"{'200' if tunnel else '000'})")
    return float(f[0])


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--upstream":
        serve_upstream(sys.argv[2])
        return
    if len(sys.argv) != 2:
        die("usage: bench/egress.py /abs/path/to/corral")
    corral = os.path.abspath(sys.argv[1])
    if not os.access(corral, os.X_OK):
        die(f"'{corral}' is not an executable corral binary (run make first)")
    curl = shutil.which("curl")
    if not curl:
        die("curl is not installed (Debian package curl)")
    downloads = env_count("BENCH_DOWNLOADS", 9, 1)
    connects = env_count("BENCH_CONNECTS", 200, 1)
    warmup = env_count("BENCH_WARMUP", 20, 0)
    for v in PROXY_VARS:                    # the host's side is direct
        os.environ.pop(v, None)

    tmp = tempfile.mkdtemp(prefix="corral-bench-egress.")
    procs = []
    logs = []
    try:
        blob = os.path.join(tmp, "blob")
        chunk = os.urandom(1 << 20)
        with open(blob, "wb") as f:
            for _ in range(BLOB_MIB):
                f.write(chunk)
        ulog = open(os.path.join(tmp, "upstream.log"), "wb")
        logs.append(ulog)
        upstream, uport = start_upstream(blob, ulog)
        procs.append(upstream)
        target = f"{UPSTREAM_HOST}:{uport}"
        url = f"http://{target}/blob"

        state = os.path.join(tmp, "state")
        slog = open(os.path.join(tmp, "serve.log"), "wb")
        logs.append(slog)
        server, sport = start_server(corral, state, slog)
        procs.append(server)
        key = corral_cli(corral, "key", "create", "--env", "default", "--plan", "unlimited",
                         "--state-dir", state)
        corral_cli(corral, "env", "set", "default", "--network", "allowlist",
                   "--allow", target, "--state-dir", state)
        sandbox = Sandbox(sport, key, target)

        direct_argv = [curl, "-sS", "-o", "/dev/null", "-w", CURL_FORMAT, url]
        sandbox_cmd = shlex.join(["curl", "-sS", "-o", "/dev/null", "-w", CURL_FORMAT, url])
        tunnel_cmd = shlex.join(["curl", "-p", "-sS", "-o", "/dev/null", "-w", CURL_FORMAT,
                                 url])

        def direct():
            p = subprocess.run(direct_argv, capture_output=True, text=True, timeout=120)
            if p.returncode != 0:
                die(f"curl {url} failed on the host: {p.stderr.strip()}")
            return parse_curl(p.stdout, False)

        cands = [("direct", direct),
                 ("absolute", lambda: parse_curl(sandbox.run(sandbox_cmd), False)),
                 ("connect", lambda: parse_curl(sandbox.run(tunnel_cmd), True))]

        print(f"corral egress bench: {BLOB_MIB} MiB over HTTP from {target}, "
              f"{downloads} downloads per candidate after 1 warm-up, interleaved; "
              f"{connects} connections per candidate after {warmup} warm-ups")
        print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs; the server: "
              "Python, sendfile() from a file in the page cache")
        print("commands (speed: curl's own -w timing, not the sandbox's start):")
        print(f"  direct    {sandbox_cmd}  (host)")
        print(f"  absolute  {sandbox_cmd}  (sandbox; http_proxy: absolute-form GET via "
              "127.0.0.1:3128)")
        print(f"  connect   {tunnel_cmd}  (sandbox; a CONNECT tunnel)")
        print()

        speeds = {name: [] for name, _ in cands}
        for r in range(1 + downloads):
            k = r % len(cands)
            for name, fn in cands[k:] + cands[:k]:
                s = fn()
                if r >= 1:
                    speeds[name].append(s)

        med = {name: statistics.median(s) for name, s in speeds.items()}
        print(f"{'download':<9} {'median_GB/s':>12} {'min_GB/s':>10} {'max_GB/s':>10} "
              f"{'/direct':>8}")
        for name, _ in cands:
            s = speeds[name]
            print(f"{name:<9} {med[name] / 1e9:12.2f} {min(s) / 1e9:10.2f} "
                  f"{max(s) / 1e9:10.2f} {med[name] / med['direct']:8.2f}")
        print()

        # Latency: the loop on the host, then in a sandbox.
        largs = [UPSTREAM_HOST, str(uport), str(connects), str(warmup)]
        p = subprocess.run([sys.executable, "-c", LATENCY_SCRIPT, "direct", *largs],
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            die(f"the direct connect loop failed: {p.stderr.strip()}")
        lat_direct = json.loads(p.stdout)
        code = (f"python3 - connect {shlex.join(largs)} <<'PY'\n"
                f"{LATENCY_SCRIPT}\nPY\n")
        lat_proxy = json.loads(sandbox.run(code))
        sandbox.close()

        print(f"{'connection':<22} {'median_us':>10} {'p90_us':>10} {'min_us':>10}")
        rows = [("direct TCP connect", lat_direct), ("CONNECT via the proxy", lat_proxy)]
        for name, s in rows:
            print(f"{name:<22} {statistics.median(s) / 1e3:10.1f} "
                  f"{percentile(s, 90) / 1e3:10.1f} {min(s) / 1e3:10.1f}")
        added = (statistics.median(lat_proxy) - statistics.median(lat_direct)) / 1e3
        added90 = (percentile(lat_proxy, 90) - percentile(lat_direct, 90)) / 1e3
        print()

        print(f"proxy / direct throughput = {med['absolute'] / med['direct']:.2f} (absolute-form), "
              f"{med['connect'] / med['direct']:.2f} (CONNECT) (medians; goal >= {GOAL:.2f})")
        print(f"added latency of one CONNECT = {added:.1f} us (medians), {added90:.1f} us (p90)")
        if med["direct"] < 1e9:
            print(f"note: the direct download ran at {med['direct'] / 1e9:.2f} GB/s, below "
                  "1 GB/s: the local server or curl may be the bottleneck, so the ratios "
                  "say little about the proxy")
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
