"""`corral exec`: the command-line client of a running server.

Each test starts a real `corral serve` (the `server` fixture) and runs
`corral exec` against it as a script would: the program's stdout and
stderr come out on ours, its exit code is ours (124 on timeout, 125 when
the server refused or could not be reached, 2 for bad options), and a
refusal reads `corral exec: <error code>: <message>`.
"""
import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import CORRAL

TRACE_RE = re.compile(r"^trc_[0-9a-f]{32}$")


def corral_exec(*args, url=None, key=None, input=None, env=None, timeout=120, text=True):
    """Run `corral exec [--url URL] [--key KEY] ARGS...` with a clean environment."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "BAPONI_"))}
    e.update(env or {})
    argv = [CORRAL, "exec"]
    if url:
        argv += ["--url", url]
    if key:
        argv += ["--key", key]
    return subprocess.run(argv + list(args), capture_output=True, text=text, input=input,
                          env=e, timeout=timeout)


@pytest.fixture
def key(server):
    return server.create_key(plan="unlimited")


@pytest.fixture
def ex(server, key):
    """corral_exec bound to the test's server and an unlimited key."""
    def run(*args, **kw):
        return corral_exec(*args, url=server.url, key=key, **kw)
    return run


def test_stdout_stderr_and_exit_code(ex):
    p = ex("--language", "bash", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    p = ex("print('hello from python')")
    assert (p.returncode, p.stdout, p.stderr) == (0, "hello from python\n", "")


def test_each_language(ex):
    assert ex("--language", "python", "print(6 * 7)").stdout == "42\n"
    assert ex("--language", "node", "console.log(6 * 7)").stdout == "42\n"
    assert ex("--language", "bash", "echo $((6 * 7))").stdout == "42\n"
    p = ex("--language", "node", "process.exit(7)")
    assert p.returncode == 7


def test_code_from_stdin(ex):
    p = ex("-", input="import sys\nprint('from stdin')\nsys.exit(9)\n")
    assert (p.returncode, p.stdout) == (9, "from stdin\n")
    p = ex("--language", "bash", "-", input="cat <<'EOF'\n-x $HOME \"q\"\nEOF\n")
    assert p.stdout == "-x $HOME \"q\"\n"


def test_code_starting_with_a_dash_after_double_dash(ex):
    p = ex("--language", "bash", "--", "-1 2>/dev/null; echo ran")
    assert p.stdout == "ran\n", p.stderr


def test_url_and_key_from_environment(server, key):
    p = corral_exec("print('env')", env={"CORRAL_BASE_URL": server.url + "/",
                                          "CORRAL_API_KEY": key})
    assert (p.returncode, p.stdout) == (0, "env\n"), p.stderr
    # Options win over the environment.
    p = corral_exec("print('opt')", url=server.url, key=key,
                    env={"CORRAL_BASE_URL": "http://127.0.0.1:1", "CORRAL_API_KEY": "sk-local-bad"})
    assert (p.returncode, p.stdout) == (0, "opt\n"), p.stderr


def test_missing_key_is_a_usage_error(server):
    p = corral_exec("print(1)", url=server.url)
    assert p.returncode == 2
    assert "corral exec: no API key" in p.stderr and "CORRAL_API_KEY" in p.stderr
    assert p.stdout == ""


def test_bad_options(ex, server, key):
    for args, what in [(("--language", "cobol", "x"), "--language"),
                       (("--timeout", "soon", "x"), "--timeout"),
                       (("--timeout", "-1", "x"), "--timeout"),
                       (("--env", "NOEQUALS", "x"), "--env"),
                       (("--bogus", "x"), "--bogus"),
                       (("--thread",), "needs a value"),
                       ((), "no code"),
                       (("a", "b"), "one argument")]:
        p = ex(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stderr.startswith("corral exec: ") and what in p.stderr, (args, p.stderr)
    p = corral_exec("x", url="ftp://127.0.0.1", key=key)
    assert p.returncode == 2 and "not an http:// or https:// URL" in p.stderr
    p = ex("--help")
    assert p.returncode == 0 and p.stdout.startswith("usage: corral exec")


def test_unreachable_server_is_a_clear_error(key):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = corral_exec("print(1)", url=f"http://127.0.0.1:{port}", key=key)
    assert p.returncode == 125
    assert p.stderr.startswith(f"corral exec: cannot reach http://127.0.0.1:{port}: "), p.stderr
    p = corral_exec("print(1)", url="http://no-such-host.invalid", key=key)
    assert p.returncode == 125 and "cannot reach http://no-such-host.invalid" in p.stderr


def test_api_errors_print_code_and_message(server, ex):
    p = corral_exec("print(1)", url=server.url, key="sk-local-not-a-key")
    assert p.returncode == 125 and p.stdout == ""
    assert re.match(r"^corral exec: unauthorized: \S.*\n$", p.stderr), p.stderr
    free = server.create_key(plan="free")
    p = corral_exec("--timeout", "61", "print(1)", url=server.url, key=free)
    assert p.returncode == 125
    assert re.match(r"^corral exec: validation_error: .*60.*\n$", p.stderr), p.stderr
    p = ex("--thread", "bad thread id", "print(1)")
    assert p.returncode == 125 and p.stderr.startswith("corral exec: validation_error: ")
    p = ex("--env", "LD_PRELOAD=/x", "print(1)")
    assert p.returncode == 125 and p.stderr.startswith("corral exec: validation_error: ")
    p = ex("")
    assert p.returncode == 125 and p.stderr.startswith("corral exec: validation_error: ")
    p = ex("-", input="#" * ((1 << 20) + 1))
    assert p.returncode == 125 and p.stderr.startswith("corral exec: payload_too_large: ")


def test_timeout_exits_124_with_partial_output(ex):
    start = time.monotonic()
    p = ex("--language", "bash", "--timeout", "1", "echo before; sleep 30; echo after")
    assert time.monotonic() - start < 15
    assert p.returncode == 124
    assert p.stdout == "before\n"
    assert "corral exec:" in p.stderr


def test_fractional_timeout(ex):
    p = ex("--language", "bash", "--timeout", "0.5", "sleep 5")
    assert p.returncode == 124


def test_thread_persists_between_calls(ex):
    assert ex("--language", "bash", "--thread", "cli-t1", "echo one > f.txt").returncode == 0
    assert ex("--thread", "cli-t1", "open('f.txt', 'a').write('two\\n')").returncode == 0
    p = ex("--language", "bash", "--thread", "cli-t1", "cat f.txt")
    assert (p.returncode, p.stdout) == (0, "one\ntwo\n")
    p = ex("--language", "bash", "--thread", "cli-t2", "cat f.txt")
    assert p.returncode == 1 and p.stdout == ""


def test_busy_thread_is_conflict(ex):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "p", ex("--language", "bash", "--thread", "cli-busy", "sleep 3; echo first")))
    t.start()
    time.sleep(0.7)
    p = ex("--language", "bash", "--thread", "cli-busy", "echo second")
    t.join(60)
    assert p.returncode == 125 and p.stderr.startswith("corral exec: conflict: "), p.stderr
    assert out["p"].returncode == 0 and out["p"].stdout == "first\n"


def test_env_vars(ex):
    p = ex("--language", "bash", "--env", "A=1", "--env", "B=x=y", "--env", "C=", 'echo "$A|$B|$C|"')
    assert (p.returncode, p.stdout) == (0, "1|x=y||\n"), p.stderr


def test_json_output(ex):
    p = ex("--json", "--language", "bash", "echo hi; exit 4")
    assert p.returncode == 4
    reply = json.loads(p.stdout)
    assert reply["stdout"] == "hi\n" and reply["exit_code"] == 4 and reply["status"] == "failed"
    assert TRACE_RE.match(reply["trace_id"])


def test_output_bytes_pass_through(ex):
    # Non-ASCII survives the JSON round trip; big output arrives whole.
    p = ex("import sys; sys.stdout.write('a b é ✓\\n'); sys.stderr.write('x' * 1000000)",
           text=False)
    assert p.returncode == 0
    assert p.stdout == "a b é ✓\n".encode()
    assert p.stderr == b"x" * 1000000


def test_killed_program_does_not_look_like_success(ex):
    p = ex("--language", "bash", "kill -9 $$")
    assert p.returncode not in (0, 124), (p.returncode, p.stderr)
