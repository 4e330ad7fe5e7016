"""The test doubles of tests/integration/fakes/ checked on their own: the
smart-HTTP git server with its token, and the fake Anthropic API's
protocol, before the end-to-end tests lean on them."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from fakes import anthropic, gitserver, tls

TOKEN = "ghs_testtoken0123456789"
API_KEY = "sk-ant-test-0123456789"


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return tls.make_certs(tmp_path_factory.mktemp("tls"))


def git(*args, cwd=None, env=None, check=True):
    p = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=30)
    if check:
        assert p.returncode == 0, f"git {' '.join(args)}: {p.stderr}"
    return p


def test_certificate_covers_the_loopback_names(certs):
    p = subprocess.run(["openssl", "x509", "-in", certs.cert, "-noout", "-ext",
                        "subjectAltName"], capture_output=True, text=True, check=True)
    for name in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "DNS:localhost"):
        assert name in p.stdout
    subprocess.run(["openssl", "verify", "-CAfile", certs.ca, certs.cert], check=True,
                   capture_output=True)


def test_git_clone_and_push_with_the_token(tmp_path, certs):
    bare = gitserver.make_bare_repo(tmp_path / "repos", "acme/demo.git")
    assert gitserver.repo_log(bare) == ["initial commit"]
    env = gitserver.client_env(tmp_path, ca=certs.ca)
    with gitserver.GitServer(tmp_path / "repos", TOKEN, host="127.0.0.2", tls=certs) as gs:
        assert gs.url.startswith("https://127.0.0.2:")
        work = tmp_path / "work"
        git("clone", "-q", gs.repo_url("acme/demo.git", auth=True), str(work), env=env)
        assert git("branch", "--show-current", cwd=work, env=env).stdout.strip() == "main"
        with open(work / "README.md", "a") as f:
            f.write("a line from the test\n")
        # Over http.postBuffer (1 MiB): git sends this push chunked.
        (work / "blob.bin").write_bytes(os.urandom(1536 * 1024))
        git("add", ".", cwd=work, env=env)
        git("commit", "-q", "-m", "edit from the test", cwd=work, env=env)
        git("push", "-q", "origin", "main", cwd=work, env=env)
    assert gitserver.repo_log(bare) == ["edit from the test", "initial commit"]
    assert "a line from the test" in gitserver.repo_file(bare, "README.md")
    assert gs.errors == []
    good = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    packs = [r for r in gs.requests if r.path == "/acme/demo.git/git-receive-pack"]
    assert packs and all(r.authorization == good for r in packs)
    assert any(r.headers.get("Transfer-Encoding") == "chunked" for r in packs)
    assert {(r.method, r.path) for r in gs.authorized_requests()} >= {
        ("GET", "/acme/demo.git/info/refs"), ("POST", "/acme/demo.git/git-upload-pack"),
        ("POST", "/acme/demo.git/git-receive-pack")}


def test_git_server_refuses_a_wrong_or_missing_token(tmp_path):
    gitserver.make_bare_repo(tmp_path / "repos", "acme/demo.git")
    env = gitserver.client_env(tmp_path)
    with gitserver.GitServer(tmp_path / "repos", TOKEN, host="127.0.0.3") as gs:
        wrong = git("clone", "-q", gs.repo_url("acme/demo.git", token="nope"),
                    str(tmp_path / "w1"), env=env, check=False)
        assert wrong.returncode != 0 and "Authentication failed" in wrong.stderr
        anon = git("clone", "-q", gs.repo_url("acme/demo.git"), str(tmp_path / "w2"),
                   env=env, check=False)
        assert anon.returncode != 0
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(gs.url + "/acme/demo.git/info/refs?service=git-upload-pack",
                                   timeout=5)
        assert e.value.code == 401
        assert e.value.headers["WWW-Authenticate"] == 'Basic realm="git"'
    assert gs.requests and gs.authorized_requests() == []
    assert not (tmp_path / "w1").exists()


# --- the fake Anthropic API --------------------------------------------------

BASH_TOOL = {"name": "Bash", "description": "Run a command",
             "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}


def api_call(api, path, body=None, key=API_KEY, method="POST", context=None):
    """(status, headers, raw bytes) of one request to the fake."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api.url + path, data=data, method=method)
    req.add_header("anthropic-version", "2023-06-01")
    if data is not None:
        req.add_header("content-type", "application/json")
    if key is not None:
        req.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def sse_events(raw):
    """[(event, data)] of a text/event-stream body, checking its framing."""
    text = raw.decode()
    assert text.endswith("\n\n")
    events = []
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") \
            and lines[1].startswith("data: "), block
        name, data = lines[0][7:], json.loads(lines[1][6:])
        assert data["type"] == name
        events.append((name, data))
    return events


def test_fake_api_streams_a_tool_use_then_a_final_answer(certs):
    user = {"role": "user", "content": "append a line to README.md"}
    with anthropic.FakeAnthropic(API_KEY, tls=certs, bash_command="echo hi >> README.md") as api:
        ctx = tls.client_context(certs.ca)
        st, hdrs, raw = api_call(api, "/v1/messages?beta=true", context=ctx, body={
            "model": "claude-test-1", "max_tokens": 100, "stream": True,
            "tools": [BASH_TOOL], "messages": [user]})
        assert st == 200 and hdrs["Content-Type"].startswith("text/event-stream")
        ev = sse_events(raw)
        names = [n for n, _ in ev]
        assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
        assert ev[0][1]["message"]["model"] == "claude-test-1"
        start = next(d for n, d in ev if n == "content_block_start")
        assert start["content_block"]["type"] == "tool_use"
        assert start["content_block"]["name"] == "Bash"
        partial = "".join(d["delta"]["partial_json"] for n, d in ev
                          if n == "content_block_delta")
        assert all(d["delta"]["type"] == "input_json_delta" for n, d in ev
                   if n == "content_block_delta")
        assert json.loads(partial)["command"] == "echo hi >> README.md"
        assert "content_block_stop" in names
        delta = dict(ev)["message_delta"]
        assert delta["delta"]["stop_reason"] == "tool_use" and "output_tokens" in delta["usage"]

        tool_id = start["content_block"]["id"]
        st, _, raw = api_call(api, "/v1/messages?beta=true", context=ctx, body={
            "model": "claude-test-1", "max_tokens": 100, "stream": True, "tools": [BASH_TOOL],
            "messages": [user,
                         {"role": "assistant", "content": [start["content_block"]]},
                         {"role": "user", "content": [{"type": "tool_result",
                                                       "tool_use_id": tool_id,
                                                       "content": "ok"}]}]})
        ev = sse_events(raw)
        text = "".join(d["delta"]["text"] for n, d in ev if n == "content_block_delta")
        assert text == api.final_text
        assert dict(ev)["message_delta"]["delta"]["stop_reason"] == "end_turn"
    assert len(api.agent_requests()) == 2
    assert api.requests[0].query == "beta=true"
    assert api.requests[0].headers["anthropic-version"] == "2023-06-01"
    assert api.requests[0].body["messages"] == [user]


def test_fake_api_plain_json_count_tokens_and_probes():
    with anthropic.FakeAnthropic(API_KEY) as api:
        st, _, raw = api_call(api, "/v1/messages", body={
            "model": "claude-test-2", "max_tokens": 10,
            "messages": [{"role": "user", "content": "title?"}]})
        msg = json.loads(raw)
        assert st == 200 and msg["type"] == "message" and msg["role"] == "assistant"
        assert msg["model"] == "claude-test-2" and msg["stop_reason"] == "end_turn"
        assert msg["content"] == [{"type": "text", "text": api.reply_text}]
        assert msg["usage"]["input_tokens"] > 0

        st, _, raw = api_call(api, "/v1/messages/count_tokens", body={
            "model": "m", "messages": [{"role": "user", "content": "hello there"}]})
        assert st == 200 and json.loads(raw)["input_tokens"] > 0

        assert api_call(api, "/", key=None, method="HEAD")[0] == 200
        assert api_call(api, "/", key=None, method="GET")[0] == 200
        st, _, raw = api_call(api, "/v1/nothing", body={})
        assert st == 404 and json.loads(raw)["error"]["type"] == "not_found_error"

        api.queued_errors.append((529, "overloaded_error", "Overloaded"))
        st, _, raw = api_call(api, "/v1/messages", body={"model": "m", "messages": []})
        assert st == 529 and json.loads(raw)["error"]["type"] == "overloaded_error"
    assert [r.method for r in api.requests] == ["POST", "POST", "HEAD", "GET", "POST", "POST"]


@pytest.mark.parametrize("key", [None, "sk-ant-wrong"])
def test_fake_api_refuses_a_wrong_or_missing_key(key):
    with anthropic.FakeAnthropic(API_KEY) as api:
        st, _, raw = api_call(api, "/v1/messages?beta=true", key=key, body={
            "model": "m", "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]})
    assert st == 401
    assert json.loads(raw) == {"type": "error", "error": {
        "type": "authentication_error", "message": "invalid x-api-key"}}
    assert api.requests[0].headers.get("x-api-key") == key


def test_servers_listen_on_loopback_only():
    with pytest.raises(ValueError):
        anthropic.FakeAnthropic(API_KEY, host="0.0.0.0")


# --- the real Claude Code CLI against the fake, on the host -----------------

CLAUDE = shutil.which("claude", path="/usr/bin:/usr/local/bin")


@pytest.mark.skipif(not CLAUDE, reason="Claude Code is not installed (scripts/install-deps)")
def test_claude_code_runs_its_agent_loop_against_the_fake():
    # Not tmp_path: its parents are private to root, and the CLI refuses
    # --dangerously-skip-permissions as root, so it runs as nobody.
    base = tempfile.mkdtemp(prefix="corral-claude-")
    try:
        os.chmod(base, 0o755)
        home, repo = os.path.join(base, "home"), os.path.join(base, "repo")
        os.mkdir(home)
        bare = gitserver.make_bare_repo(os.path.join(base, "bare"), "demo.git")
        git("clone", "-q", bare, repo, env=gitserver.client_env(base))
        subprocess.run(["chown", "-R", "65534:65534", home, repo], check=True)
        with anthropic.FakeAnthropic(
                API_KEY, bash_command=f"cd {repo} && echo 'edited by claude' >> README.md") as api:
            env = {"PATH": "/usr/bin:/bin", "HOME": home, "ANTHROPIC_BASE_URL": api.url,
                   "ANTHROPIC_API_KEY": API_KEY, "CLAUDE_CODE_MAX_RETRIES": "1",
                   "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
            p = subprocess.run(
                ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLAUDE, "-p",
                 "append a line to README.md", "--dangerously-skip-permissions",
                 "--output-format", "stream-json", "--verbose", "--max-turns", "5"],
                cwd=repo, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=60)
        events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
        assert p.returncode == 0, (p.stderr, p.stdout[-2000:])
        result = events[-1]
        assert result["type"] == "result" and result["is_error"] is False, result
        assert result["result"] == api.final_text
        with open(os.path.join(repo, "README.md")) as f:
            assert f.read().endswith("edited by claude\n")
        assert len(api.agent_requests()) == 2
        assert all(r.headers["x-api-key"] == API_KEY for r in api.message_requests())
    finally:
        shutil.rmtree(base, ignore_errors=True)
