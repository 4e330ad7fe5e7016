"""The seed workflow end to end (issue 5): three calls on one thread.

    1. git clone https://github.com/acme/demo.git /home/baponi/repo
    2. change it: by hand, or by the real Claude Code CLI
       (claude -p ... --dangerously-skip-permissions --output-format
       stream-json --verbose --max-turns 5)
    3. git add -A && git commit && git push origin HEAD

The "GitHub" is a smart-HTTP git server (git http-backend) over TLS on the
host's loopback that requires the connector's token; the "Anthropic API"
is a fake that speaks the Messages API with server-sent events.  The
github connector's base URL points at the git server, so the sandbox's
github.com URLs go there.  Two ways to hand the sandbox the credentials:

  inject  the token is in the sandbox's gitconfig; git reaches the server
          through corral's egress proxy (CONNECT), allowed literally;
  broker  the sandbox has no egress at all; git and Claude Code talk to
          corral's brokers on the sandbox's loopback, which add the real
          token and key upstream over TLS.  The secrets' bytes must appear
          nowhere inside the sandbox: files, environments, command lines,
          and the memory of every sandbox process (read from the host).
"""
import base64
import json
import os
import secrets as pysecrets
import shutil
import subprocess
import threading
import time

import pytest

from conftest import CORRAL, Server, thread_home, wait_for
from fakes import anthropic, gitserver, tls

GH_TOKEN = "ghp_seed" + pysecrets.token_hex(16)
ANT_KEY = "sk-ant-seed-" + pysecrets.token_hex(16)
CLAUDE = shutil.which("claude", path="/usr/bin:/usr/local/bin")


@pytest.fixture
def certs(tmp_path):
    return tls.make_certs(tmp_path / "tls")


@pytest.fixture
def git(tmp_path, certs):
    root = tmp_path / "git"
    gitserver.make_bare_repo(root, "acme/demo.git")
    with gitserver.GitServer(root, GH_TOKEN, host="127.0.0.2", tls=certs) as g:
        yield g


@pytest.fixture
def srv(tmp_path, certs):
    s = Server(tmp_path / "state", extra=["--upstream-ca", certs.ca]).start()
    yield s
    s.stop()


def cli(server, *args, input=None):
    p = subprocess.run([CORRAL, *args, "--state-dir", server.state_dir],
                       input=input, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def connector(server, type_, name, secret, *args):
    cli(server, "connector", "add", type_, "--name", name, *args, input=secret)
    cli(server, "connector", "attach", name, "--env", "default")


def call(server, key, code, thread, status="success", **kw):
    if thread:
        kw["thread_id"] = thread
    st, _, body = server.execute(key, code=code, language="bash", timeout=120, **kw)
    assert st == 200, body
    assert body["status"] == status, (body["stdout"][-2000:], body["stderr"][-2000:], body)
    return body


def forms(value):
    raw = value.encode()
    f = {value}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        e = enc(raw).decode()
        f |= {e, e.rstrip("=")}
    basic = base64.b64encode(f"x-access-token:{value}".encode()).decode()
    return f | {basic, basic.rstrip("=")}


CLONE = "git clone https://github.com/acme/demo.git /home/baponi/repo && git -C /home/baponi/repo log --oneline"
PUSH = ("cd /home/baponi/repo && git add -A && "
        "git -c user.name=Agent -c user.email=agent@example.test commit -q -m '{msg}' && "
        "git push origin HEAD 2>&1")


def assert_pushed(git, msg, line):
    bare = os.path.join(git.root, "acme/demo.git")
    assert gitserver.repo_log(bare)[0] == msg
    assert line in gitserver.repo_file(bare, "README.md")


def test_seed_inject_mode(srv, git, certs):
    # The token enters the sandbox (in its gitconfig) and git goes through
    # the proxy, which the policy lets reach the git server's address only.
    connector(srv, "github", "gh", GH_TOKEN, "--base-url", f"https://127.0.0.2:{git.port}/")
    cli(srv, "env", "set", "default", "--network", "allowlist", "--allow", f"127.0.0.2:{git.port}")
    key = srv.create_key()
    ca = open(certs.ca).read()
    env = {"GIT_SSL_CAINFO": "/home/baponi/.ca.pem"}

    b = call(srv, key, f"cat > ~/.ca.pem <<'EOF'\n{ca}EOF\n" + CLONE, "seed-i", env_vars=env)
    assert "initial commit" in b["stdout"]
    assert b["network"]["allowed"] == [f"127.0.0.2:{git.port}"]
    call(srv, key, "echo 'changed in corral' >> /home/baponi/repo/README.md", "seed-i")
    b = call(srv, key, PUSH.format(msg="change from the sandbox"), "seed-i", env_vars=env)
    assert_pushed(git, "change from the sandbox", "changed in corral")
    # The server saw the real token.
    assert git.authorized_requests()
    assert GH_TOKEN not in b["stdout"] + b["stderr"]


def sandbox_memory_holds(pids, needles):
    """Search the memory of processes `pids` (read from the host as root)
    for any of `needles`; the needles found."""
    found = set()
    for pid in pids:
        try:
            maps = open(f"/proc/{pid}/maps").read().splitlines()
            mem = open(f"/proc/{pid}/mem", "rb", 0)
        except OSError:
            continue
        with mem:
            for line in maps:
                addr, perms = line.split()[:2]
                if "r" not in perms:
                    continue
                lo, hi = (int(x, 16) for x in addr.split("-"))
                if hi - lo > (512 << 20):
                    continue
                try:
                    mem.seek(lo)
                    data = mem.read(hi - lo)
                except (OSError, ValueError, OverflowError):
                    continue
                for n in needles:
                    if n.encode() in data:
                        comm = open(f"/proc/{pid}/comm").read().strip()
                        found.add(f"{n[:12]} in {comm} ({pid}) {line.split()[-1] if len(line.split()) > 5 else 'anon'}")
    return found


def sandbox_pids(server):
    """Every process under the server: the sandboxes' inits and programs."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children = {}
    for line in out.splitlines():
        pid, ppid = (int(x) for x in line.split())
        children.setdefault(ppid, []).append(pid)
    todo, pids = [server.proc.pid], []
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            pids.append(c)
            todo.append(c)
    return pids


SCAN = r"""
{
  env; git config -l
  for p in /proc/[0-9]*; do cat $p/environ $p/cmdline 2>/dev/null; echo; done
  cat /etc/* /etc/*/* 2>/dev/null
  find /home /tmp /dev/shm -type f -exec cat {} + 2>/dev/null
} > /tmp/scan
cp /tmp/scan ~/scan && touch ~/scan-ready
"""


def test_seed_broker_mode_git_never_holds_the_token(srv, git):
    connector(srv, "github", "gh", GH_TOKEN, "--mode", "broker",
              "--base-url", f"https://127.0.0.2:{git.port}/")
    key = srv.create_key()  # network stays "none": the broker needs no egress

    b = call(srv, key, "git config --system --get-regexp url; " + CLONE, "seed-b")
    assert "url.http://127.0.0.1:3130/.insteadof https://github.com/" in b["stdout"]
    assert "initial commit" in b["stdout"]
    assert b["network"]["allowed"] == [f"127.0.0.2:{git.port}"]   # by the broker
    call(srv, key, "echo 'changed through the broker' >> /home/baponi/repo/README.md", "seed-b")
    # While the sandbox that pushed lives, its memory is read from the
    # host: no copy of the token, even in its init (a copy of the daemon,
    # which holds the token for the broker).  The sandbox waits for ~/go.
    code = (PUSH.format(msg="brokered change") + "\n" + SCAN +
            "while [ ! -e ~/go ]; do sleep 0.05; done; rm -f ~/go ~/scan-ready\n")
    result = {}
    t = threading.Thread(target=lambda: result.update(b=call(srv, key, code, "seed-b")))
    t.start()
    home = thread_home(srv, "seed-b")
    wait_for(lambda: (home / "scan-ready").exists(), 60, "the sandbox's scan")
    pids = sandbox_pids(srv)
    leaked = sandbox_memory_holds(pids, forms(GH_TOKEN))
    (home / "go").touch()
    t.join(60)
    assert len(pids) >= 2, pids
    # Under AddressSanitizer (make asan) every realloc moves and freed
    # blocks wait in a quarantine, so copies the normal allocator reuses or
    # never makes stay behind; the memory property is the production
    # build's, checked by make check.
    if "ASAN_OPTIONS" not in os.environ:
        assert not leaked, f"the token is in a sandbox process's memory: {leaked}"
    assert_pushed(git, "brokered change", "changed through the broker")
    assert all(r.authorization for r in git.authorized_requests())
    # Nothing the sandbox could read holds it: not its files, environments,
    # command lines, or gitconfig (read on the host: output is scrubbed).
    scan = (home / "scan").read_bytes()
    assert len(scan) > 1000
    for f in forms(GH_TOKEN):
        assert f.encode() not in scan, f
    out = result["b"]["stdout"] + result["b"]["stderr"]
    assert "[REDACTED" not in out and GH_TOKEN not in out


def test_a_sandbox_holds_no_copy_of_another_environments_secrets(srv):
    # Every sandbox's init starts as a copy of the daemon, which holds the
    # secrets of the executions running at that moment (their environment
    # strings, the scrubber's patterns).  Init drops that copy once the
    # program runs: a sandbox of environment "other", started while one of
    # "default" runs with an injected secret, holds no copy of it in any of
    # its processes, init included (read from the host).
    secret = "s3cr3t-" + pysecrets.token_hex(20)
    connector(srv, "env", "tok", secret + "\n", "--var", "SECRET_TOKEN")
    cli(srv, "env", "create", "other")
    key_a = srv.create_key()
    key_b = srv.create_key(env="other")
    home_b = None
    results = {}
    # The first prints it (scrubbed in its result, but its raw bytes pass
    # through the daemon's read buffers, on the stack of the thread that
    # also clones sandboxes), then waits.
    t_a = threading.Thread(target=lambda: results.update(
        a=call(srv, key_a, "echo $SECRET_TOKEN; touch ~/printed; sleep 3; echo ${#SECRET_TOKEN}",
               "first")))
    t_a.start()
    wait_for(lambda: (thread_home(srv, "first") / "printed").exists(), 10, "the first sandbox")
    t_b = threading.Thread(target=lambda: results.update(
        b=call(srv, key_b, "readlink /proc/self/ns/pid > ~/ns; mv ~/ns ~/ready; "
                           "while [ ! -e ~/go ]; do sleep 0.05; done", "scan")))
    t_b.start()
    home_b = thread_home(srv, "scan", env="other")
    wait_for(lambda: (home_b / "ready").exists(), 10, "the second sandbox")
    ns_b = (home_b / "ready").read_text().strip()

    def ns_of(pid):
        try:
            return os.readlink(f"/proc/{pid}/ns/pid")
        except OSError:
            return None
    pids_b = [p for p in sandbox_pids(srv) if ns_of(p) == ns_b]
    leaked = sandbox_memory_holds(pids_b, {secret})
    (home_b / "go").touch()
    t_b.join(30)
    t_a.join(30)
    assert len(pids_b) >= 2, pids_b          # init and the program at least
    assert results["a"]["stdout"] == f"[REDACTED:tok]\n{len(secret)}\n"
    if "ASAN_OPTIONS" not in os.environ:     # see test_seed_broker_mode_...
        assert not leaked, f"another environment's secret is in this sandbox: {leaked}"


@pytest.mark.skipif(CLAUDE is None, reason="Claude Code is installed by scripts/install-deps")
@pytest.mark.parametrize("network", ["none", "allowlist"])
def test_seed_with_claude_code_in_broker_mode(srv, git, certs, network):
    # The whole seed: clone, the real Claude Code CLI edits the clone
    # through the anthropic broker, push.  The sandbox holds only
    # placeholders.  With "none" it has no egress at all; with an empty
    # allowlist it has a proxy that refuses everything, and Claude Code's
    # own traffic to Anthropic's hosts (it tries without
    # CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC) is refused at once.
    with anthropic.FakeAnthropic(ANT_KEY, host="127.0.0.3", tls=certs,
                                 bash_command="cd /home/baponi/repo && "
                                              "echo 'edited by claude' >> README.md") as api:
        connector(srv, "anthropic", "claude", ANT_KEY, "--mode", "broker", "--base-url", api.url)
        connector(srv, "github", "gh", GH_TOKEN, "--mode", "broker",
                  "--base-url", f"https://127.0.0.2:{git.port}/")
        if network != "none":
            cli(srv, "env", "set", "default", "--network", network)
        key = srv.create_key()

        call(srv, key, CLONE, "seed-c")
        b = call(srv, key,
                 "cd /home/baponi/repo && echo \"key=$ANTHROPIC_API_KEY base=$ANTHROPIC_BASE_URL\" >&2 && "
                 "claude -p 'Append a line to README.md' --dangerously-skip-permissions "
                 "--output-format stream-json --verbose --max-turns 5 < /dev/null",
                 "seed-c", env_vars={"CLAUDE_CODE_MAX_RETRIES": "1"})
        assert "key=corral-brokered-credential base=http://127.0.0.1:3129" in b["stderr"]
        events = [json.loads(line) for line in b["stdout"].splitlines() if line.strip()]
        kinds = [e.get("type") for e in events]
        assert kinds[0] == "system" and kinds[-1] == "result", kinds
        assert events[-1]["is_error"] is False, events[-1]
        assert any(e.get("type") == "assistant" and any(
            c.get("type") == "tool_use" for c in e["message"]["content"]) for e in events)
        # The fake API got the real key on every request, never the placeholder.
        msgs = api.message_requests()
        assert msgs and all(r.headers.get("x-api-key") == ANT_KEY for r in msgs)
        assert not any(r.headers.get("x-api-key") == "corral-brokered-credential"
                       for r in api.requests)
        assert b["network"]["allowed"] == [f"127.0.0.3:{api.port}"]
        if network == "none":
            assert b["network"]["denied"] == []
        else:
            assert all(d.endswith(":443") for d in b["network"]["denied"]), b["network"]

        call(srv, key, PUSH.format(msg="change by claude"), "seed-c")
        assert_pushed(git, "change by claude", "edited by claude")
        # Claude Code's session state persists in the thread's home.
        assert (thread_home(srv, "seed-c") / ".claude").is_dir()
        for rel, data in _files(thread_home(srv, "seed-c")):
            for f in forms(ANT_KEY) | forms(GH_TOKEN):
                assert f.encode() not in data, rel


def _files(root):
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    yield p, f.read()
