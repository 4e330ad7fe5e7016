#!/usr/bin/env python3
"""bench/api.py - what an API round trip costs next to bwrap alone
(DESIGN.md section 8), measured in one run on this machine.

    bench/api.py /abs/path/to/build/corral      (bench/api.sh runs this)

Starts `corral serve` on a free loopback port with a temporary state
directory, creates an `unlimited` key, then:

1. latency: BENCH_RUNS (default 200) inline round trips of `echo hi`
   (language bash, one thread_id) over one keep-alive connection,
   interleaved run by run with `bwrap` running `bash -c 'echo hi'` directly
   (posix_spawn, as bench/timeit.c does) with mounts comparable to a
   sandbox's and a home bound from a host directory like a thread's;
   median, p99, min and mean of each after BENCH_WARMUP (default 20)
   warm-ups;
2. throughput: executions per second at concurrency 1, 2 and 16
   (BENCH_EXECUTIONS, default 400, per level; each client its own
   connection and its own thread_id, since a thread runs one execution at
   a time), beside bwrap at the same concurrency.

The goal: the API round trip costs no more than bwrap alone (median ratio
api/bwrap <= 1.00).  The client is Python on both sides, so its overhead
falls on both figures.
"""
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import die, env_count, free_port, percentile


class Api:
    """One keep-alive connection to the server."""

    def __init__(self, port, key, thread_id):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.body = json.dumps({"code": "echo hi", "language": "bash",
                                "thread_id": thread_id}).encode()

    def once(self):
        self.conn.request("POST", "/v1/sandbox/execute", body=self.body, headers=self.headers)
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            die(f"the server answered {r.status}: {data[:300]!r}")
        reply = json.loads(data)
        if reply.get("stdout") != "hi\n" or reply.get("status") != "success":
            die(f"unexpected reply: {reply!r}")

    def close(self):
        self.conn.close()


class Bwrap:
    def __init__(self, argv):
        self.argv = argv
        self.devnull = os.open(os.devnull, os.O_RDWR)

    def once(self):
        pid = os.posix_spawn(self.argv[0], self.argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, self.devnull, 0),
                                           (os.POSIX_SPAWN_DUP2, self.devnull, 1)])
        _, status = os.waitpid(pid, 0)
        if status != 0:
            die(f"'{' '.join(self.argv)}' failed with wait status {status}")


def bwrap_argv(home):
    bwrap = shutil.which("bwrap")
    if not bwrap:
        die("bwrap is not installed (Debian package bubblewrap)")
    argv = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink("/" + link):
            argv += ["--symlink", os.readlink("/" + link), "/" + link]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
             "--bind", home, "/home/baponi", "--chdir", "/home/baponi",
             "--setenv", "HOME", "/home/baponi",
             "/bin/bash", "-c", "echo hi"]
    return argv


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
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            die("corral serve did not become healthy within 15 s")
        time.sleep(0.02)


def throughput(make_worker, concurrency, total):
    """Executions per second with `concurrency` clients sharing `total` runs."""
    workers = [make_worker(i) for i in range(concurrency)]
    for w in workers:                       # connect and warm each client
        w.once()
    left = [total]
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def loop(w):
        start.wait()
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            w.once()

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for w in workers:
        if hasattr(w, "close"):
            w.close()
    return total / elapsed


def main():
    if len(sys.argv) != 2:
        die("usage: bench/api.py /abs/path/to/corral")
    corral = os.path.abspath(sys.argv[1])
    if not os.access(corral, os.X_OK):
        die(f"'{corral}' is not an executable corral binary (run make first)")
    runs = env_count("BENCH_RUNS", 200, 1)
    warmup = env_count("BENCH_WARMUP", 20, 0)
    total = env_count("BENCH_EXECUTIONS", 400, 16)

    tmp = tempfile.mkdtemp(prefix="corral-bench-api.")
    state = os.path.join(tmp, "state")
    log = open(os.path.join(tmp, "serve.log"), "wb")
    proc, port = start_server(corral, state, log)
    try:
        p = subprocess.run([corral, "key", "create", "--env", "default", "--plan", "unlimited",
                            "--state-dir", state], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            die(f"cannot create a key: {p.stderr.strip()}")
        key = p.stdout.strip()

        homes = os.path.join(tmp, "homes")
        os.makedirs(os.path.join(homes, "0"))
        bwrap = Bwrap(bwrap_argv(os.path.join(homes, "0")))
        api = Api(port, key, "bench")
        bwrap.once()
        api.once()

        print(f"corral API bench: {runs} round trips per candidate after {warmup} warm-ups, "
              "interleaved")
        print(f"kernel {os.uname().release}, {os.cpu_count()} CPUs")
        print("commands:")
        print(f"  api    POST /v1/sandbox/execute {api.body.decode()} (keep-alive, inline)")
        print(f"  bwrap  {' '.join(bwrap.argv)}")
        print()

        samples = {"api": [], "bwrap": []}
        cands = [("api", api), ("bwrap", bwrap)]
        for r in range(warmup + runs):
            for name, c in cands[r % 2:] + cands[:r % 2]:
                t0 = time.perf_counter()
                c.once()
                dt = (time.perf_counter() - t0) * 1e6
                if r >= warmup:
                    samples[name].append(dt)
        api.close()

        print(f"{'candidate':<9} {'median_us':>12} {'p99_us':>12} {'min_us':>12} {'mean_us':>12}")
        for name in ("api", "bwrap"):
            s = samples[name]
            print(f"{name:<9} {statistics.median(s):12.1f} {percentile(s, 99):12.1f} "
                  f"{min(s):12.1f} {statistics.fmean(s):12.1f}")
        print()

        def make_bwrap(i):
            home = os.path.join(homes, f"c{i}")
            os.makedirs(home, exist_ok=True)
            return Bwrap(bwrap_argv(home))

        print(f"executions per second ({total} per level):")
        print(f"{'concurrency':<12} {'api':>10} {'bwrap':>10} {'api/bwrap':>10}")
        for c in (1, 2, 16):
            a = throughput(lambda i: Api(port, key, f"bench-{c}-{i}"), c, total)
            b = throughput(make_bwrap, c, total)
            print(f"{c:<12} {a:10.1f} {b:10.1f} {a / b:10.2f}")
        print()

        ratio = statistics.median(samples["api"]) / statistics.median(samples["bwrap"])
        ratio99 = percentile(samples["api"], 99) / percentile(samples["bwrap"], 99)
        print(f"api / bwrap = {ratio:.2f} (medians; goal <= 1.00), {ratio99:.2f} (p99)")
        if ratio <= 1.0:
            verdict = "goal met: the API round trip costs no more than bwrap alone"
        else:
            verdict = (f"goal missed: the API round trip costs {ratio:.2f} x bwrap alone "
                       "(goal <= 1.00 x)")
        print(f"verdict: {verdict}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
