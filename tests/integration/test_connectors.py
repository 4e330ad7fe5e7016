"""Connectors at run time: injection into the sandbox and scrubbing of output.

Each test starts a real `corral serve` (conftest's `server`), stores
connectors with `corral connector add` (the secret on stdin), attaches them
to an environment and runs code through POST /v1/sandbox/execute.  What is
checked (issue 4, DESIGN.md 5):

- per type, exactly the specified variables (and for github the read-only
  system gitconfig) appear inside the sandbox; the real value arrived,
  proved by a SHA-256 computed inside the sandbox against one computed here,
  while the value itself is never seen in any reply;
- whatever prints a secret (whole, in pieces across writes with sleeps in
  between, base64 standard and URL-safe at any offset of a longer blob,
  URL-encoded) comes back as `[REDACTED:<connector>]` in the inline reply,
  the stored execution (GET /v1/executions/{id}) and the NDJSON stream;
- detach and rotate take effect at the next execution and nothing is ever
  left in the thread home; a user's own ~/.gitconfig keeps working beside
  the injected one;
- no secret byte reaches corral.db, its WAL or the server's log;
- a request's env_vars cannot override an injected name (400 naming it);
- the audit: `connector show --json` and GET /admin/v1/audit list each
  execution that received a connector.

Nothing here sends traffic anywhere: the sandbox has no network, and the
only URL git is asked to reach is under the reserved .test domain.
"""
import base64
import hashlib
import json
import os
import subprocess
import urllib.parse

import pytest

from conftest import CORRAL, assert_error, assert_ok, cli_json, thread_home, wait_for

GH = "ghp_CorralRunTime0123456789abcdefABCD"
GH_ROTATED = "ghp_RotatedRunTime9876543210zyxwvUTSR"
# A token with characters that are percent-encoded in the gitconfig URL.
GHE = "ghe/Tok+en@odd:chars%41=0123456789"
ANT = "sk-ant-api03-RunTimeKey_0123456789-abcdefXYZ"
PG_URL = "postgres://app:Pg-Pass_4321xyz@db.example.test:5433/appdb"
PG_PASS = "Pg-Pass_4321xyz"
PG2_PASS = "p@ss/w:rd%41?&x=y#z"
AWS_KEY_ID = "AKIAIOSFODNN7RUNTIME"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYRUNTIMEKEY"
AWS_SESSION = "FwoGZXIvYXdzEJr//////////RunTimeSessionToken+Q=="
NPM = "npm_RunTimeSecretValue0123456789"
PYPI = "pypi-AgEIcHlwaS5vcmcRunTimeValue==x"
DEPLOY = "-----BEGIN KEY-----\nline-two-of-the-deploy-key\n-----END KEY-----"
# A value whose base64 has '+' and '/' at every offset (so the standard and
# URL-safe forms differ) and whose URL encodings all differ from it.
TOK = "Sc~rub?Me>>/p@ss w0rd&k=v#x%41+~~??end"

MARK = "[REDACTED:{}]".format


def sha(value):
    if isinstance(value, str):
        value = value.encode()
    return hashlib.sha256(value).hexdigest()


# --- driving corral ---------------------------------------------------------

def connector(server, *args, input=b""):
    """`corral connector ARGS... --state-dir` with `input` on stdin."""
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run([CORRAL, "connector", *args, "--state-dir", server.state_dir],
                       input=input, capture_output=True, timeout=30)
    assert p.returncode == 0, (f"corral connector {' '.join(args)}: rc={p.returncode} "
                               f"stderr={p.stderr.decode(errors='replace')!r}")
    return p.stdout.decode()


def add(server, type_, name, secret, *args, env="default"):
    """Store a connector (secret on stdin) and attach it to `env` (None: no)."""
    connector(server, "add", type_, "--name", name, *args, input=secret)
    if env:
        connector(server, "attach", name, "--env", env)
    return cli_json(server, "connector", "show", name)


def secret_forms(value):
    """The forms of `value` that must never come back: the value, its
    URL encodings and its base64 (standard and URL-safe, padded or not)."""
    raw = value.encode()
    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote(value),
             urllib.parse.quote_plus(value)}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        e = enc(raw).decode()
        forms |= {e, e.rstrip("=")}
    return forms


def assert_clean(text, secrets, where=""):
    for s in secrets:
        for f in secret_forms(s):
            assert f not in text, f"{where}: a form of a secret came back: {f!r} in {text!r}"


def stored(server, key, trace_id):
    st, _, body = server.request("GET", f"/v1/executions/{trace_id}", key=key)
    assert st == 200, (st, body)
    return body


def run(server, key, code, language="bash", secrets=(), status="success", **kw):
    """Execute inline; check the stored execution has the same (scrubbed)
    output and that no form of `secrets` is in either.  Returns the reply."""
    body = assert_ok(server.execute(key, code=code, language=language, **kw))
    assert body["status"] == status, body
    rec = stored(server, key, body["trace_id"])
    assert rec["status"] == status
    assert rec["stdout"] == body["stdout"], (rec["stdout"], body["stdout"])
    assert rec["stderr"] == body["stderr"], (rec["stderr"], body["stderr"])
    assert_clean(body["stdout"], secrets, "stdout (inline reply, stored execution)")
    assert_clean(body["stderr"], secrets, "stderr (inline reply, stored execution)")
    return body


def sections(stdout):
    """Split output of `echo '--- name'` separated sections into a dict."""
    out, cur = {}, None
    for line in stdout.splitlines():
        if line.startswith("--- "):
            cur = line[4:]
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return out


def env_names(server, key):
    """The names of the variables a bash execution sees."""
    return set(run(server, key, "compgen -e")["stdout"].split())


def hashes_inside(server, key, names, secrets=(), **kw):
    """{NAME: sha256 of its value} as computed inside the sandbox."""
    code = "".join(f'printf "%s " {n}; printf %s "${n}" | sha256sum | cut -d" " -f1\n'
                   for n in names)
    out = run(server, key, code, secrets=secrets, **kw)["stdout"]
    return dict(line.split() for line in out.splitlines())


def env_lines(server, key, secrets, **kw):
    """`env` inside the sandbox, one NAME=VALUE line each (values on one line)."""
    out = run(server, key, "env", secrets=secrets, **kw)["stdout"]
    return out.splitlines()


def host_files(root):
    """{relative path: bytes} of every regular file under a host directory."""
    found = {}
    for d, _, files in os.walk(root):
        for n in files:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, "rb") as f:
                    found[os.path.relpath(p, root)] = f.read()
    return found


def assert_home_clean(server, thread_id, secrets):
    """grep -r, on the host, every form of the secrets in a thread's home."""
    home = thread_home(server, thread_id)
    assert home.is_dir(), home
    for rel, data in host_files(home).items():
        for s in secrets:
            for f in secret_forms(s):
                assert f.encode() not in data, f"thread home {rel} holds {f!r}"
    return home


@pytest.fixture
def baseline(server, key):
    """Variable names of an execution before any connector is attached."""
    return env_names(server, key)


# --- per type: what the sandbox receives ------------------------------------

GIT_PROBE = r"""
mask() { sed 's/x-access-token:[^@]*@/x-access-token:***@/'; }
token_of() { sed -n 's|^https://x-access-token:\([^@]*\)@.*|\1|p'; }
echo '--- file'
stat -c '%a %U' /etc/gitconfig
( echo '[x]' >> /etc/gitconfig ) 2>/dev/null && echo writable || echo not-writable
python3 -c 'import os; print("ro" if os.statvfs("/etc/gitconfig").f_flag & os.ST_RDONLY else "rw")'
grep -cF "insteadOf = $BASE" /etc/gitconfig
echo '--- system'
git config --system --get-regexp url
echo '--- all'
git config --get-regexp url
echo '--- exact'
git config --system --get "url.$AUTH.insteadof"
echo '--- get-url'
git ls-remote --get-url "${BASE}org/repo.git"
echo '--- masked'
git ls-remote --get-url "${BASE}org/repo.git" | mask
echo '--- token'
git ls-remote --get-url "${BASE}org/repo.git" | token_of | python3 -c \
  'import sys, urllib.parse; sys.stdout.write(urllib.parse.unquote(sys.stdin.read().strip()))' \
  | sha256sum | cut -d' ' -f1
echo '--- other'
git ls-remote --get-url https://gitlab.example.test/org/repo.git
"""


def git_probe(server, key, base, secrets, **kw):
    """Run GIT_PROBE with BASE and the authenticated URL (built inside from
    $GH_TOKEN, percent-encoded as the gitconfig has it)."""
    code = ('AUTH="$(python3 -c \'import os, sys, urllib.parse; b = sys.argv[1]; '
            'print(b.replace("://", "://x-access-token:" + urllib.parse.quote(os.environ["GH_TOKEN"], '
            'safe="") + "@", 1))\' "$BASE")"\n' + GIT_PROBE)
    body = run(server, key, f"BASE='{base}'\n" + code, secrets=secrets, **kw)
    assert body["stderr"] == "", body["stderr"]
    return sections(body["stdout"])


def assert_rewrite_line(line, name, base):
    """`url.<auth url>.insteadof <base>` with the auth URL's token scrubbed
    (the scrubber may take the whole URL-with-token, or the token alone)."""
    host = urllib.parse.urlsplit(base).netloc
    assert line in (f"url.{MARK(name)}.insteadof {base}",
                    f"url.https://x-access-token:{MARK(name)}@{host}/.insteadof {base}"), line


def test_github_injects_tokens_and_a_system_gitconfig(server, key, baseline):
    c = add(server, "github", "gh", GH)
    assert c["injects"] == ["GH_TOKEN", "GITHUB_TOKEN", "/etc/gitconfig"]
    assert env_names(server, key) - baseline == {"GH_TOKEN", "GITHUB_TOKEN"}
    assert baseline - env_names(server, key) == set()

    lines = env_lines(server, key, [GH])
    assert f"GH_TOKEN={MARK('gh')}" in lines and f"GITHUB_TOKEN={MARK('gh')}" in lines
    assert hashes_inside(server, key, ["GH_TOKEN", "GITHUB_TOKEN"], [GH]) == \
        {"GH_TOKEN": sha(GH), "GITHUB_TOKEN": sha(GH)}

    s = git_probe(server, key, "https://github.com/", [GH])
    assert s["file"] == ["644 root", "not-writable", "ro", "1"], s["file"]
    assert len(s["system"]) == 1, s["system"]
    assert_rewrite_line(s["system"][0], "gh", "https://github.com/")
    assert s["all"] == s["system"]
    # The exact key git resolves: url."https://x-access-token:TOKEN@github.com/".insteadOf
    assert s["exact"] == ["https://github.com/"]
    got = s["get-url"][0]
    assert got != "https://github.com/org/repo.git" and MARK("gh") in got, got
    assert got in (f"{MARK('gh')}org/repo.git",
                   f"https://x-access-token:{MARK('gh')}@github.com/org/repo.git"), got
    assert s["masked"] == ["https://x-access-token:***@github.com/org/repo.git"]
    assert s["token"] == [sha(GH)]
    assert s["other"] == ["https://gitlab.example.test/org/repo.git"]


def test_github_base_url_rewrites_that_host(server, key, baseline):
    base = "https://git.example.test/"
    c = add(server, "github", "ghe", GHE, "--base-url", base)
    injected = env_names(server, key) - baseline
    assert {"GH_TOKEN", "GITHUB_TOKEN"} <= injected
    assert injected == {n for n in c["injects"] if not n.startswith("/")}
    assert hashes_inside(server, key, ["GH_TOKEN", "GITHUB_TOKEN"], [GHE]) == \
        {"GH_TOKEN": sha(GHE), "GITHUB_TOKEN": sha(GHE)}

    s = git_probe(server, key, base, [GHE])
    assert s["file"] == ["644 root", "not-writable", "ro", "1"], s["file"]
    assert len(s["system"]) == 2
    assert_rewrite_line(s["system"][0], "ghe", base)
    assert_rewrite_line(s["system"][1].replace("https://github.com/", base), "ghe", base)
    assert s["system"][1].endswith(" https://github.com/")
    assert s["exact"] == ["https://github.com/"]  # the last of the two
    got = s["get-url"][0]
    assert got != base + "org/repo.git" and MARK("ghe") in got, got
    assert s["masked"] == ["https://x-access-token:***@git.example.test/org/repo.git"]
    # The token sits percent-encoded in the URL and decodes to the secret.
    assert s["token"] == [sha(GHE)]

    # The base URL is the sandbox's GitHub: github.com URLs go there too.
    body = run(server, key, "git ls-remote --get-url https://github.com/org/repo.git "
               "| sed 's/x-access-token:[^@]*@/x-access-token:***@/'", secrets=[GHE])
    assert body["stdout"] == "https://x-access-token:***@git.example.test/org/repo.git\n"

    # git really uses the rewritten URL: its trace shows the authenticated
    # URL to git.example.test (masked inside), the fetch fails on DNS (no
    # network; .test is reserved), and the failure names the host.
    body = run(server, key,
               "GIT_TRACE=1 GIT_TERMINAL_PROMPT=0 timeout 20 git ls-remote "
               "https://git.example.test/org/repo.git 2>&1 "
               "| sed 's/x-access-token:[^@]*@/x-access-token:***@/'; exit ${PIPESTATUS[0]}",
               secrets=[GHE], status="failed")
    out = body["stdout"]
    assert "https://x-access-token:***@git.example.test/org/repo.git" in out, out
    assert "git.example.test" in out.splitlines()[-1], out


@pytest.mark.parametrize("base_url", [None, "https://llm-proxy.example.test/v1"])
def test_anthropic(server, key, baseline, base_url):
    add(server, "anthropic", "claude", ANT, *(["--base-url", base_url] if base_url else []))
    want = {"ANTHROPIC_API_KEY"} | ({"ANTHROPIC_BASE_URL"} if base_url else set())
    assert env_names(server, key) - baseline == want
    lines = env_lines(server, key, [ANT])
    assert f"ANTHROPIC_API_KEY={MARK('claude')}" in lines
    if base_url:
        assert f"ANTHROPIC_BASE_URL={base_url}" in lines
    assert hashes_inside(server, key, ["ANTHROPIC_API_KEY"], [ANT]) == \
        {"ANTHROPIC_API_KEY": sha(ANT)}
    # No gitconfig from a non-github connector.
    body = run(server, key, "git config --system --get-regexp url; echo rc=$?", secrets=[ANT])
    assert body["stdout"] == "rc=1\n"


PG_NAMES = {"DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"}


def test_postgres_from_a_url(server, key, baseline):
    add(server, "postgres", "pg", PG_URL + "\n")
    assert env_names(server, key) - baseline == PG_NAMES
    lines = env_lines(server, key, [PG_URL, PG_PASS])
    for want in ("PGHOST=db.example.test", "PGPORT=5433", "PGUSER=app", "PGDATABASE=appdb",
                 f"PGPASSWORD={MARK('pg')}", f"DATABASE_URL={MARK('pg')}"):
        assert want in lines, (want, lines)
    assert hashes_inside(server, key, ["DATABASE_URL", "PGPASSWORD"], [PG_URL, PG_PASS]) == \
        {"DATABASE_URL": sha(PG_URL), "PGPASSWORD": sha(PG_PASS)}


def test_postgres_from_settings(server, key, baseline):
    add(server, "postgres", "pg2", PG2_PASS, "--host", "db2.example.test", "--user", "svc",
        "--port", "6432", "--database", "reports")
    assert env_names(server, key) - baseline == PG_NAMES
    lines = env_lines(server, key, [PG2_PASS])
    for want in ("PGHOST=db2.example.test", "PGPORT=6432", "PGUSER=svc", "PGDATABASE=reports",
                 f"PGPASSWORD={MARK('pg2')}", f"DATABASE_URL={MARK('pg2')}"):
        assert want in lines, (want, lines)
    assert hashes_inside(server, key, ["PGPASSWORD"], [PG2_PASS]) == {"PGPASSWORD": sha(PG2_PASS)}
    # DATABASE_URL, parsed inside, says the same as the PG* variables.
    body = run(server, key, language="python", secrets=[PG2_PASS], code=(
        "import os, urllib.parse as u\n"
        "p = u.urlsplit(os.environ['DATABASE_URL'])\n"
        "print(p.scheme in ('postgres', 'postgresql'), p.hostname, p.port, p.username,"
        " p.path, u.unquote(p.password) == os.environ['PGPASSWORD'])\n"))
    assert body["stdout"] == "True db2.example.test 6432 svc /reports True\n"


@pytest.mark.parametrize("variant", ["options", "stdin"])
def test_aws(server, key, baseline, variant):
    if variant == "options":
        add(server, "aws", "aws", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n"
                                  f"AWS_SESSION_TOKEN={AWS_SESSION}\n",
            "--access-key-id", AWS_KEY_ID, "--region", "eu-west-3")
        want = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                "AWS_DEFAULT_REGION"}
        secrets = [AWS_SECRET, AWS_SESSION]
    else:
        add(server, "aws", "aws", f"# a comment\nAWS_ACCESS_KEY_ID={AWS_KEY_ID}\n\n"
                                  f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n")
        want = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        secrets = [AWS_SECRET]
    assert env_names(server, key) - baseline == want
    lines = env_lines(server, key, secrets)
    assert f"AWS_ACCESS_KEY_ID={AWS_KEY_ID}" in lines
    assert f"AWS_SECRET_ACCESS_KEY={MARK('aws')}" in lines
    if variant == "options":
        assert f"AWS_SESSION_TOKEN={MARK('aws')}" in lines
        assert "AWS_REGION=eu-west-3" in lines and "AWS_DEFAULT_REGION=eu-west-3" in lines
    got = hashes_inside(server, key, sorted(want - {"AWS_REGION", "AWS_DEFAULT_REGION"}), secrets)
    expect = {"AWS_ACCESS_KEY_ID": sha(AWS_KEY_ID), "AWS_SECRET_ACCESS_KEY": sha(AWS_SECRET)}
    if variant == "options":
        expect["AWS_SESSION_TOKEN"] = sha(AWS_SESSION)
    assert got == expect


def test_env(server, key, baseline):
    add(server, "env", "tokens", f"NPM_TOKEN={NPM}\nPYPI_TOKEN={PYPI}\n")
    add(server, "env", "deploy-key", DEPLOY + "\n", "--var", "DEPLOY_KEY")
    add(server, "env", "scrub", TOK, "--var", "SCRUB_ME")
    secrets = [NPM, PYPI, DEPLOY, TOK]
    assert env_names(server, key) - baseline == {"NPM_TOKEN", "PYPI_TOKEN", "DEPLOY_KEY",
                                                 "SCRUB_ME"}
    lines = env_lines(server, key, secrets)
    for want in (f"NPM_TOKEN={MARK('tokens')}", f"PYPI_TOKEN={MARK('tokens')}",
                 f"DEPLOY_KEY={MARK('deploy-key')}", f"SCRUB_ME={MARK('scrub')}"):
        assert want in lines, (want, lines)
    # The multi-line value arrives whole (one trailing newline removed).
    assert hashes_inside(server, key, ["NPM_TOKEN", "PYPI_TOKEN", "DEPLOY_KEY", "SCRUB_ME"],
                         secrets) == {"NPM_TOKEN": sha(NPM), "PYPI_TOKEN": sha(PYPI),
                                      "DEPLOY_KEY": sha(DEPLOY), "SCRUB_ME": sha(TOK)}


def test_connector_of_another_environment_is_not_injected(server, key, baseline):
    assert server.cli("env", "create", "other").returncode == 0
    add(server, "github", "gh", GH, env="other")
    add(server, "env", "tokens", f"NPM_TOKEN={NPM}\n")
    assert env_names(server, key) - baseline == {"NPM_TOKEN"}
    body = run(server, key, "git config --system --get-regexp url; echo rc=$?", secrets=[GH])
    assert body["stdout"] == "rc=1\n"
    other = server.create_key(env="other")
    assert env_names(server, other) - baseline == {"GH_TOKEN", "GITHUB_TOKEN"}


# --- scrubbing ---------------------------------------------------------------

PIECES_PY = r"""
import os, sys, time
v = os.environ["GH_TOKEN"]
for fd in (1, 2):
    os.write(fd, b"before:")
    for size in (1, 3, 7):
        for i in range(0, len(v), size):
            os.write(fd, v[i:i + size].encode())
            time.sleep(0.01)
        os.write(fd, b"|")
    os.write(fd, b":after\n")
# Half of it, then something else: the held-back bytes are not lost.
sys.stdout.write(v[:12]); sys.stdout.flush(); time.sleep(0.05)
sys.stdout.write("-not-the-token\n"); sys.stdout.flush()
# Ends with a prefix of the secret: delivered at exit.
sys.stdout.write("tail:" + v[:10]); sys.stdout.flush()
"""

PIECES_SH = r"""
t=$GH_TOKEN
for fd in 1 2; do
  { printf before:
    for size in 1 3 7; do
      for ((i = 0; i < ${#t}; i += size)); do printf %s "${t:i:size}"; sleep 0.01; done
      printf '|'
    done
    printf ':after\n'; } >&$fd
done
printf %s "${t:0:12}"; sleep 0.05; printf -- '-not-the-token\n'
printf %s "tail:${t:0:10}"
"""


@pytest.mark.parametrize("language,code", [("python", PIECES_PY), ("bash", PIECES_SH)],
                         ids=["python", "bash"])
def test_secret_printed_in_pieces(server, key, language, code):
    add(server, "github", "gh", GH)
    m = MARK("gh")
    want_out = (f"before:{m}|{m}|{m}|:after\n" + GH[:12] + "-not-the-token\n" + "tail:" + GH[:10])
    want_err = f"before:{m}|{m}|{m}|:after\n"
    body = run(server, key, code, language=language, secrets=[GH])
    assert body["stdout"] == want_out
    assert body["stderr"] == want_err

    # The same through the NDJSON stream, once the server streams (until
    # then it refuses streaming delivery with a 400 that says so).
    st, _, text = server.request("POST", "/v1/sandbox/execute", key=key,
                                 body={"code": code, "language": language},
                                 headers={"Accept": "application/x-ndjson"})
    if st == 400 and "not available on this server yet" in text.get("message", ""):
        return
    assert st == 200 and isinstance(text, str), (st, text)
    assert_clean(text, [GH], "NDJSON stream")
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert events[-1]["type"] == "result", events[-1]
    streamed = {"stdout": "", "stderr": ""}
    for e in events:
        if e["type"] in streamed:
            streamed[e["type"]] += e["data"]
    assert streamed == {"stdout": want_out, "stderr": want_err}
    assert events[-1]["stdout"] == want_out and events[-1]["stderr"] == want_err
    assert stored(server, key, events[-1]["trace_id"])["stdout"] == want_out


B64_PY = r"""
import base64, os
v = os.environ["SCRUB_ME"].encode()
for name, enc in (("std", base64.b64encode), ("url", base64.urlsafe_b64encode)):
    print(name, "alone", enc(v).decode())
    print(name, "nopad", enc(v).decode().rstrip("="))
    for p in range(3):
        for q in range(3):
            print(name, f"mid{p}{q}", enc(b"Q" * (9 + p) + v + b"Z" * (4 + q)).decode())
        print(name, f"end{p}", enc(b"Q" * (9 + p) + v).decode())
        print(name, f"start{p}", enc(v + b"Z" * (4 + p)).decode())
    print(name, "basic", enc(b"x-access-token:" + v).decode())
"""


def b64_cases(value):
    raw = value.encode()
    for name, enc in (("std", base64.b64encode), ("url", base64.urlsafe_b64encode)):
        yield name, "alone", b"", raw, b""
        for p in range(3):
            for q in range(3):
                yield name, f"mid{p}{q}", b"Q" * (9 + p), raw, b"Z" * (4 + q)
            yield name, f"end{p}", b"Q" * (9 + p), raw, b""
            yield name, f"start{p}", b"", raw, b"Z" * (4 + p)
        yield name, "basic", b"x-access-token:", raw, b""


def pure_span(pre, n, total):
    """The base64 characters of a blob that depend on the value's bytes
    alone (the value at bytes [len(pre), len(pre)+n) of `total` bytes)."""
    p, chars = len(pre), 4 * ((total + 2) // 3)
    idx = [i for i in range(chars)
           if (6 * i) // 8 >= p and min((6 * i + 5) // 8, total - 1) < p + n
           and (6 * i) // 8 < total]
    return idx[0], idx[-1] + 1


def test_base64_forms_are_scrubbed(server, key):
    add(server, "env", "scrub", TOK, "--var", "SCRUB_ME")
    m = MARK("scrub")
    body = run(server, key, B64_PY, language="python", secrets=[TOK])
    got = {tuple(line.split(" ", 2)[:2]): line.split(" ", 2)[2]
           for line in body["stdout"].splitlines()}
    # The standard and URL-safe alphabets give different blobs here.
    for p in range(3):
        blob = b"Q" * p + TOK.encode()
        assert base64.b64encode(blob) != base64.urlsafe_b64encode(blob)
    problems = []
    for name, case, pre, raw, post in b64_cases(TOK):
        enc = base64.b64encode if name == "std" else base64.urlsafe_b64encode
        e = enc(pre + raw + post).decode()
        line = got[(name, case)]
        if case in ("alone", "nopad"):
            if line != m:
                problems.append(f"{name} {case}: {line!r}, want {m!r}")
            continue
        a, b = pure_span(pre, len(raw), len(pre + raw + post))
        if line.count(m) != 1:
            problems.append(f"{name} {case}: {line!r} (blob {e!r}) not scrubbed once")
            continue
        left, right = line.split(m)
        ok = (e.startswith(left) and e.endswith(right) and len(left) <= a
              and len(e) - len(right) >= b)
        # Only the few characters next to the value may go with it.
        ok = ok and len(left) >= a - 3 and len(e) - len(right) <= b + 3 + (len(e) - len(e.rstrip("=")))
        if not ok:
            problems.append(f"{name} {case}: {line!r} from {e!r}: value-only chars [{a}:{b}]")
    assert not problems, "\n".join(problems)
    # The blobs' value-only characters never show, in the stored copy either.
    rec = stored(server, key, body["trace_id"])
    for name, case, pre, raw, post in b64_cases(TOK):
        enc = base64.b64encode if name == "std" else base64.urlsafe_b64encode
        e = enc(pre + raw + post).decode()
        a, b = pure_span(pre, len(raw), len(pre + raw + post))
        for i in range(a, b - 8):
            assert e[i:i + 8] not in rec["stdout"], (name, case, e[i:i + 8])


URL_PY = r"""
import os, re, urllib.parse as u
v = os.environ["SCRUB_ME"]
forms = [
    ("rfc3986", u.quote(v, safe="")),
    ("rfc3986-lower", re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), u.quote(v, safe=""))),
    ("quote", u.quote(v)),
    ("quote_plus", u.quote_plus(v)),
    ("urlencode", u.urlencode({"token": v})[len("token="):]),
    ("encodeURIComponent", u.quote(v, safe="!*'()~")),
    ("encodeURI", u.quote(v, safe="!*'()~;/?:@&=+$,#")),
]
for name, f in forms:
    print(name, "https://api.example.test/cb?x=1&token=" + f + "&y=2")
"""


def test_url_encoded_forms_are_scrubbed(server, key):
    add(server, "env", "scrub", TOK, "--var", "SCRUB_ME")
    body = run(server, key, URL_PY, language="python", secrets=[TOK])
    lines = body["stdout"].splitlines()
    assert len(lines) == 7, lines
    want = f"https://api.example.test/cb?x=1&token={MARK('scrub')}&y=2"
    bad = [line for line in lines if line.split(" ", 1)[1] != want]
    assert not bad, "\n".join(bad)


def test_secret_in_stderr_of_a_failed_run(server, key):
    add(server, "github", "gh", GH)
    add(server, "env", "scrub", TOK, "--var", "SCRUB_ME")
    body = run(server, key, 'echo "fatal: token $GH_TOKEN rejected" >&2\n'
                            'printf "%s and %s\\n" "$SCRUB_ME" "$GH_TOKEN"\nexit 3',
               secrets=[GH, TOK], status="failed")
    assert body["exit_code"] == 3
    assert body["stderr"] == f"fatal: token {MARK('gh')} rejected\n"
    assert body["stdout"] == f"{MARK('scrub')} and {MARK('gh')}\n"


# --- detach, rotate, the thread home ------------------------------------------

LEAVE_TRACES = r"""
git config --global user.name probe
mkdir -p ~/work && cd ~/work && git init -q . 2>/dev/null
git remote add origin https://github.com/org/repo.git
git config --get remote.origin.url
printf 'GH_TOKEN sha: '; printf %s "$GH_TOKEN" | sha256sum | cut -d' ' -f1
"""


def test_detach_takes_effect_at_the_next_execution(server, key, baseline):
    add(server, "github", "gh", GH)
    first = run(server, key, LEAVE_TRACES, secrets=[GH], thread_id="t1")
    assert f"GH_TOKEN sha: {sha(GH)}" in first["stdout"]
    run(server, key, "true", thread_id="t2")
    assert_home_clean(server, "t1", [GH])

    connector(server, "detach", "gh", "--env", "default")
    for thread in ("t1", "t2"):
        body = run(server, key, r"""
compgen -e | grep -c -E '^(GH|GITHUB)_'
git config --system --get-regexp url; echo "system rc=$?"
git ls-remote --get-url https://github.com/org/repo.git
cat /etc/gitconfig 2>/dev/null | grep -c insteadOf
ls -A ~ | sort | tr '\n' ' '; echo
""", secrets=[GH], thread_id=thread)
        lines = body["stdout"].splitlines()
        assert lines[:4] == ["0", "system rc=1", "https://github.com/org/repo.git", "0"], lines
        assert lines[4].split() == ([".gitconfig", "work"] if thread == "t1" else []), lines
        assert_home_clean(server, thread, [GH])
    assert env_names(server, key) == baseline
    # The user's own config in t1 is still there, without any token.
    home = thread_home(server, "t1")
    assert (home / ".gitconfig").read_text() == "[user]\n\tname = probe\n"
    trace = run(server, key, "true")["trace_id"]
    uses = cli_json(server, "connector", "show", "gh")["recent_uses"]
    assert trace not in [u["trace_id"] for u in uses]
    assert first["trace_id"] in [u["trace_id"] for u in uses]


def test_rotate_takes_effect_at_the_next_execution(server, key):
    add(server, "github", "gh", GH)
    add(server, "env", "vars", "value-one-first", "--var", "ONE")
    body = run(server, key, LEAVE_TRACES, secrets=[GH], thread_id="t")
    assert f"GH_TOKEN sha: {sha(GH)}" in body["stdout"]

    connector(server, "rotate", "gh", input=GH_ROTATED)
    connector(server, "rotate", "vars", input="ONE=value-one-second\nTWO=value-two-new\n")
    both = [GH, GH_ROTATED, "value-one-first", "value-one-second", "value-two-new"]
    assert hashes_inside(server, key, ["GH_TOKEN", "GITHUB_TOKEN", "ONE", "TWO"],
                         [GH_ROTATED, "value-one-second", "value-two-new"], thread_id="t") == \
        {"GH_TOKEN": sha(GH_ROTATED), "GITHUB_TOKEN": sha(GH_ROTATED),
         "ONE": sha("value-one-second"), "TWO": sha("value-two-new")}
    s = git_probe(server, key, "https://github.com/", [GH_ROTATED], thread_id="t")
    assert s["token"] == [sha(GH_ROTATED)]
    assert s["exact"] == ["https://github.com/"]
    body = run(server, key, 'echo "$GH_TOKEN $ONE $TWO"', secrets=[GH_ROTATED], thread_id="t")
    assert body["stdout"] == f"{MARK('gh')} {MARK('vars')} {MARK('vars')}\n"
    assert_home_clean(server, "t", both)
    body = run(server, key, "ls -la ~; grep -rl insteadOf ~ ; echo rc=$?", thread_id="t")
    assert "rc=1" in body["stdout"], body["stdout"]


def test_user_gitconfig_keeps_working_beside_the_injected_one(server, key):
    add(server, "github", "gh", GH)
    run(server, key, r"""
git config --global user.name "Agent Smith"
git config --global user.email agent@example.test
git config --global url.https://mirror.example.test/.insteadOf https://gitlab.example.test/
git config --global alias.who "config user.name"
""", secrets=[GH], thread_id="t")
    body = run(server, key, r"""
echo '--- origins'
git config --show-origin --get-regexp '^url\.'
echo '--- identity'
git who
git config user.email
echo '--- urls'
git ls-remote --get-url https://gitlab.example.test/org/repo.git
git ls-remote --get-url https://github.com/org/repo.git | sed 's/x-access-token:[^@]*@/x-access-token:***@/'
echo '--- global'
git config --global --get-regexp url
echo '--- commit'
cd "$(mktemp -d)" && git init -q . && echo hi > f && git add f && git commit -qm one && git log --format='%an <%ae>'
""", secrets=[GH], thread_id="t")
    assert body["stderr"] == "", body["stderr"]
    s = sections(body["stdout"])
    assert len(s["origins"]) == 2, s["origins"]
    sys_line = next(x for x in s["origins"] if x.startswith("file:/etc/gitconfig\t"))
    assert_rewrite_line(sys_line.split("\t", 1)[1], "gh", "https://github.com/")
    assert "file:/home/baponi/.gitconfig\turl.https://mirror.example.test/.insteadof " \
           "https://gitlab.example.test/" in s["origins"]
    assert s["identity"] == ["Agent Smith", "agent@example.test"]
    assert s["urls"] == ["https://mirror.example.test/org/repo.git",
                         "https://x-access-token:***@github.com/org/repo.git"]
    assert s["global"] == ["url.https://mirror.example.test/.insteadof https://gitlab.example.test/"]
    assert s["commit"] == ["Agent Smith <agent@example.test>"]
    home = assert_home_clean(server, "t", [GH])
    text = (home / ".gitconfig").read_text()
    assert "Agent Smith" in text and "x-access-token" not in text


# --- nothing in the database, WAL or log --------------------------------------

def raw_state(server):
    data = {}
    for name in ("corral.db", "corral.db-wal"):
        p = os.path.join(server.state_dir, name)
        if os.path.exists(p):
            with open(p, "rb") as f:
                data[name] = f.read()
    with open(server.state_dir + ".log", "rb") as f:
        data["log"] = f.read()
    return data


def test_no_secret_bytes_in_the_database_wal_or_log(server, key):
    add(server, "github", "gh", GH)
    add(server, "env", "scrub", TOK, "--var", "SCRUB_ME")
    add(server, "postgres", "pg", PG_URL)
    secrets = [GH, TOK, PG_URL, PG_PASS]
    traces = []
    for code, lang, status in (
            ('echo "$GH_TOKEN $SCRUB_ME $DATABASE_URL $PGPASSWORD"; env', "bash", "success"),
            (B64_PY, "python", "success"),
            (URL_PY, "python", "success"),
            (PIECES_SH, "bash", "success"),
            ('echo "$GH_TOKEN" >&2; git ls-remote --get-url https://github.com/a/b; exit 1',
             "bash", "failed")):
        body = run(server, key, code, language=lang, secrets=secrets, status=status,
                   thread_id="t")
        traces.append(body["trace_id"])
    # The outputs were stored (scrubbed), so the database did take them.
    for t in traces:
        rec = stored(server, key, t)
        assert "[REDACTED:" in rec["stdout"] + rec["stderr"], rec
    data = raw_state(server)
    assert data.get("corral.db-wal"), "expected the running server's WAL to hold the writes"
    assert b"[REDACTED:gh]" in data["corral.db"] + data["corral.db-wal"]
    for name, blob in data.items():
        for s in secrets:
            for f in secret_forms(s):
                assert f.encode() not in blob, f"{name} holds {f!r}"
    # After the server stops (its checkpoint moves the WAL into the file).
    assert server.stop() == 0
    for name, blob in raw_state(server).items():
        for s in secrets:
            for f in secret_forms(s):
                assert f.encode() not in blob, f"{name} (after stop) holds {f!r}"


# --- env_vars cannot override -------------------------------------------------

def test_env_vars_cannot_override_an_injected_name(server, key):
    add(server, "github", "gh", GH)
    add(server, "anthropic", "claude", ANT, "--base-url", "https://llm-proxy.example.test/")
    add(server, "postgres", "pg", PG_URL)
    add(server, "aws", "aws", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}\n", "--access-key-id",
        AWS_KEY_ID, "--region", "eu-west-3")
    add(server, "env", "tokens", f"NPM_TOKEN={NPM}\n")
    before = json.dumps(server.request("GET", "/admin/v1/audit",
                                       headers={"Authorization": "Bearer " + server.admin_token})[2])
    names = ["GH_TOKEN", "GITHUB_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
             "DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION",
             "NPM_TOKEN"]
    for name in names:
        reply = server.execute(key, code="echo hi", language="bash",
                               env_vars={"FINE_VAR": "ok", name: "attacker-value"})
        msg = assert_error(reply, 400, "validation_error")
        assert name in msg, (name, msg)
        assert_clean(msg, [GH, ANT, PG_URL, PG_PASS, AWS_SECRET, NPM])
    after = json.dumps(server.request("GET", "/admin/v1/audit",
                                      headers={"Authorization": "Bearer " + server.admin_token})[2])
    assert after == before, "a refused request was recorded as a use"
    # Names no connector sets still pass, beside the injected ones.
    body = run(server, key, 'echo "$FINE_VAR"; printf %s "$GH_TOKEN" | sha256sum',
               env_vars={"FINE_VAR": "ok"}, secrets=[GH])
    assert body["stdout"] == f"ok\n{sha(GH)}  -\n"
    # In an environment without connectors the same names are the caller's.
    assert server.cli("env", "create", "plain").returncode == 0
    plain = server.create_key(env="plain")
    body = run(server, plain, 'echo "$GH_TOKEN"', env_vars={"GH_TOKEN": "callers-own"})
    assert body["stdout"] == "callers-own\n"


# --- the audit -----------------------------------------------------------------

def test_audit_lists_each_execution(server, key):
    add(server, "github", "gh", GH)
    add(server, "env", "tokens", f"NPM_TOKEN={NPM}\n")
    assert server.cli("env", "create", "plain").returncode == 0
    add(server, "anthropic", "claude", ANT, env="plain")
    plain = server.create_key(env="plain")
    t1 = run(server, key, "true")["trace_id"]
    t2 = run(server, key, "exit 4", thread_id="th", status="failed")["trace_id"]
    t3 = run(server, plain, "true")["trace_id"]
    connector(server, "detach", "tokens", "--env", "default")
    t4 = run(server, key, "true")["trace_id"]

    def uses_of(name):
        return [u["trace_id"] for u in cli_json(server, "connector", "show", name)["recent_uses"]]

    wait_for(lambda: t4 in uses_of("gh"), what="the audit of the last execution")
    assert set(uses_of("gh")) == {t1, t2, t4}
    assert set(uses_of("tokens")) == {t1, t2}
    assert uses_of("claude") == [t3]
    for u in cli_json(server, "connector", "show", "gh")["recent_uses"]:
        assert u["connector"] == "gh" and u["environment"] == "default"

    auth = {"Authorization": "Bearer " + server.admin_token}
    st, _, au = server.request("GET", "/admin/v1/audit", headers=auth)
    assert st == 200, au
    pairs = {(u["trace_id"], u["connector"], u["environment"]) for u in au["uses"]}
    assert pairs == {(t1, "gh", "default"), (t1, "tokens", "default"),
                     (t2, "gh", "default"), (t2, "tokens", "default"),
                     (t3, "claude", "plain"), (t4, "gh", "default")}
    st, _, au = server.request("GET", "/admin/v1/audit?connector=tokens", headers=auth)
    assert st == 200 and sorted(u["trace_id"] for u in au["uses"]) == sorted([t1, t2])
    st, _, au = server.request("GET", "/admin/v1/audit")
    assert st == 401


def test_short_postgres_password_is_refused(server):
    """A password injected on its own (PGPASSWORD) must be long enough for the
    scrubber; a 3-character one would come back in the output unscrubbed."""
    p = subprocess.run([CORRAL, "connector", "add", "postgres", "--name", "pgshort",
                        "--state-dir", server.state_dir],
                       input="postgres://app:pw9@db.example.test/appdb", capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "password" in p.stderr, p.stderr
    assert "pw9" not in p.stderr


def test_names_from_secret_input_are_not_echoed(server):
    secretish = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY"
    p = subprocess.run([CORRAL, "connector", "add", "aws", "--name", "awsx",
                        "--access-key-id", "AKIAIOSFODNN7EXAMPLE", "--state-dir", server.state_dir],
                       input=f"{secretish}=\n", capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert secretish not in p.stderr and secretish[:8] not in p.stderr
