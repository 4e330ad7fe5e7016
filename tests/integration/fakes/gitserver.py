"""A smart-HTTP git server for the tests: `git http-backend` run as CGI.

    repo = make_bare_repo(root, "acme/demo.git")     # one commit on main
    with GitServer(root, token="s3cret", host="127.0.0.2", tls=certs) as gs:
        url = gs.repo_url("acme/demo.git")            # https://127.0.0.2:PORT/acme/demo.git
        ... git clone/push with GIT_SSL_CAINFO=certs.ca ...
        gs.requests        # [GitRequest(method, path, query, authorization, headers)]

Every request must carry HTTP Basic auth as user `x-access-token` (the
`user` argument) with the configured token, as GitHub takes an
installation token; anything else gets 401 with
`WWW-Authenticate: Basic realm="git"`. Pushes are enabled
(http.receivepack=true). git sends large pushes with
`Transfer-Encoding: chunked` and may gzip request bodies: both are passed
to http-backend as it expects (no CONTENT_LENGTH; HTTP_CONTENT_ENCODING).
The CGI's output is streamed back chunked.
"""
import base64
import collections
import os
import subprocess
import threading

from ._server import BackgroundServer, QuietHandler

GitRequest = collections.namedtuple("GitRequest", "method path query authorization headers")


def _git(*args, cwd=None, input=None, env=None):
    p = subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True,
                       env=env, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {p.stderr.decode(errors='replace')}")
    return p.stdout.decode().strip()


def make_bare_repo(root, name, branch="main", files=None, message="initial commit"):
    """Create the bare repository `root`/`name` (say "acme/demo.git") with one
    commit on `branch` (HEAD points at it) holding `files` ({path: text},
    default a README.md) and pushes enabled. Returns its path."""
    path = os.path.join(str(root), name)
    os.makedirs(path, exist_ok=True)
    _git("init", "-q", "--bare", "-b", branch, path)
    _git("--git-dir", path, "config", "http.receivepack", "true")
    files = files or {"README.md": "# demo\n\nA repository served by the tests' git server.\n"}
    entries = []
    for fname, text in sorted(files.items()):
        if "/" in fname:
            raise ValueError("make_bare_repo takes top-level files only")
        data = text.encode() if isinstance(text, str) else text
        blob = _git("--git-dir", path, "hash-object", "-w", "--stdin", input=data)
        entries.append(f"100644 blob {blob}\t{fname}")
    tree = _git("--git-dir", path, "mktree", input=("\n".join(entries) + "\n").encode())
    env = dict(os.environ, GIT_AUTHOR_NAME="Fixture", GIT_AUTHOR_EMAIL="fixture@example.com",
               GIT_COMMITTER_NAME="Fixture", GIT_COMMITTER_EMAIL="fixture@example.com",
               GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")
    commit = _git("--git-dir", path, "commit-tree", tree, "-m", message, env=env)
    _git("--git-dir", path, "update-ref", f"refs/heads/{branch}", commit)
    return path


def repo_log(path, ref="main"):
    """Subjects of the commits on `ref` of repository `path`, newest first."""
    return _git("--git-dir", str(path), "log", "--format=%s", ref).splitlines()


def repo_file(path, file, ref="main"):
    """The text of `file` at `ref` in repository `path`."""
    return _git("--git-dir", str(path), "show", f"{ref}:{file}")


def client_env(home, ca=None, **extra):
    """An environment for a git client in tests: no user or system config
    (nor their credential helpers), no prompts, an identity for commits,
    and GIT_SSL_CAINFO=`ca` when given."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
           "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}
    if ca:
        env["GIT_SSL_CAINFO"] = str(ca)
    env.update(extra)
    return env


class _GitHandler(QuietHandler):
    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def _authorized(self):
        got = self.headers.get("Authorization")
        want = "Basic " + base64.b64encode(
            f"{self.fake.user}:{self.fake.token}".encode()).decode()
        return got == want

    def _serve(self):
        fake = self.fake
        path, _, query = self.path.partition("?")
        with fake.lock:
            fake.requests.append(GitRequest(self.command, path, query,
                                            self.headers.get("Authorization"),
                                            dict(self.headers.items())))
        if not self._authorized():
            body = b"authentication required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            # The body (if any) is left unread: hang up after answering.
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
            return
        self._run_cgi(path, query)

    def _run_cgi(self, path, query):
        fake = self.fake
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": fake.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": fake.root,
            # Pushes on, and no "dubious ownership" refusal whoever made the repos.
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.receivepack", "GIT_CONFIG_VALUE_0": "true",
            "GIT_CONFIG_KEY_1": "safe.directory", "GIT_CONFIG_VALUE_1": "*",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": fake.host,
            "SERVER_PORT": str(fake.port),
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_USER": fake.user,
            "AUTH_TYPE": "Basic",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type") or "",
        }
        length = None
        if not chunked and self.headers.get("Content-Length") is not None:
            length = int(self.headers["Content-Length"])
            env["CONTENT_LENGTH"] = str(length)
        # Without CONTENT_LENGTH http-backend reads its input to EOF: what a
        # chunked body needs.
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        proc = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        errors = []
        feeder = threading.Thread(target=self._feed, args=(proc.stdin, chunked, length),
                                  daemon=True)
        feeder.start()
        err_reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()),
                                      daemon=True)
        err_reader.start()
        try:
            self._relay(proc.stdout, feeder)
        finally:
            proc.stdout.close()
            feeder.join(timeout=30)
            proc.wait(timeout=30)
            err_reader.join(timeout=5)
            text = b"".join(errors).decode(errors="replace").strip()
            if text or proc.returncode:
                with fake.lock:
                    fake.errors.append(f"{self.command} {self.path}: rc={proc.returncode} {text}")

    def _feed(self, stdin, chunked, length):
        try:
            if chunked:
                for data in self.iter_chunked():
                    stdin.write(data)
            elif length:
                left = length
                while left:
                    data = self.rfile.read(min(left, 65536))
                    if not data:
                        break
                    stdin.write(data)
                    left -= len(data)
        except (BrokenPipeError, ConnectionError):
            self.close_connection = True
        finally:
            try:
                stdin.close()
            except BrokenPipeError:
                pass

    def _relay(self, out, feeder):
        status, headers = 200, []
        while True:
            line = out.readline()
            if not line or line in (b"\r\n", b"\n"):
                break
            k, _, v = line.decode("latin-1").rstrip("\r\n").partition(":")
            v = v.strip()
            if k.lower() == "status":
                status = int(v.split()[0])
            else:
                headers.append((k, v))
        # http-backend prints its headers before it reads the request; answer
        # only once the body is in: an SSL socket must not be read and
        # written by two threads at once.
        feeder.join()
        self.send_response(status)
        has_length = False
        for k, v in headers:
            has_length = has_length or k.lower() == "content-length"
            self.send_header(k, v)
        if not has_length:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            data = out.read1(65536)
            if not data:
                break
            if has_length:
                self.wfile.write(data)
            else:
                self.write_chunk(data)
        if not has_length:
            self.end_chunks()
        self.wfile.flush()


class GitServer(BackgroundServer):
    """Serve the bare repositories under `root` over smart HTTP (see the
    module's docstring). Attributes: root, token, user, url, host, port;
    `requests` (GitRequest per request, in order, 401s included) and
    `errors` (http-backend's stderr, per request that printed any)."""

    handler_class = _GitHandler

    def __init__(self, root, token, host="127.0.0.1", port=0, tls=None, user="x-access-token"):
        super().__init__(host=host, port=port, tls=tls)
        self.root = os.path.abspath(str(root))
        self.token = token
        self.user = user
        self.requests = []
        self.errors = []

    def repo_url(self, name, auth=False, token=None):
        """The clone URL of repository `name`; with auth=True (or a token)
        the credentials are in it (https://x-access-token:TOKEN@host:port/...)."""
        if auth or token is not None:
            return (f"{self.scheme}://{self.user}:{token if token is not None else self.token}"
                    f"@{self.host}:{self.port}/{name}")
        return f"{self.url}/{name}"

    def authorized_requests(self):
        want = "Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        return [r for r in self.requests if r.authorization == want]
