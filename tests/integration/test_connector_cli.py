"""`corral connector` and /admin/v1/connectors, /admin/v1/audit.

Each test gets its own state directory.  Every verb is driven as an
operator would, the --json shapes are pinned, every bad input must give
`corral connector: <sentence>` with exit 2 (usage) or 1 (failed operation)
and change nothing, a secret on the command line is refused without being
echoed, and no secret may ever be found in the raw bytes of corral.db or
corral.db-wal.  The admin endpoints are driven through a real server.
"""
import json
import os
import sqlite3
import stat
import subprocess

import pytest

from conftest import CORRAL, assert_error

GH = "ghp_IntegrationTokenAbcdef0123456789"
ANT = "sk-ant-api03-IntegrationKey-0123456789"
CONNECTOR_KEYS = {"id", "name", "type", "mode", "settings", "injects", "fingerprint",
                  "created_at", "rotated_at", "environments"}
USE_KEYS = {"id", "trace_id", "connector", "environment", "used_at"}


def corral(state, *args, input=None, env=None):
    """`corral connector --state-dir STATE ARGS...` (state None: no option);
    stdin is `input` (text or bytes), or empty."""
    argv = [CORRAL, "connector", *args]
    if state is not None:
        argv[2:2] = ["--state-dir", str(state)]
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run(argv, capture_output=True, timeout=60, env=env,
                       input=input if input is not None else b"")
    p.stdout = p.stdout.decode(errors="replace")
    p.stderr = p.stderr.decode(errors="replace")
    return p


def ok(state, *args, **kw):
    p = corral(state, *args, **kw)
    assert p.returncode == 0, f"corral connector {' '.join(args)}: rc={p.returncode} stderr={p.stderr!r}"
    return p


def js(state, *args, **kw):
    p = ok(state, *args, "--json", **kw)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON: {p.stdout!r} stderr={p.stderr!r}")


def admin(state, *args):
    p = subprocess.run([CORRAL, *args, "--state-dir", str(state)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return p


def refused(state, args, code, needle=None, input="some-secret-value\n"):
    p = corral(state, *args, input=input)
    assert p.returncode == code, f"{args}: rc={p.returncode} stderr={p.stderr!r}"
    assert p.stderr.startswith("corral connector: "), p.stderr
    assert p.stdout == ""
    if needle:
        assert needle in p.stderr, p.stderr
    return p.stderr


def snapshot(state):
    """What an admin can see of connectors and environments."""
    return (js(state, "list"), json.loads(admin(state, "env", "list", "--json").stdout))


def raw_db(state):
    """The raw bytes of the database and its WAL."""
    data = b""
    for name in ("corral.db", "corral.db-wal"):
        path = os.path.join(state, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                data += f.read()
    return data


def add_all_types(state):
    ok(state, "add", "github", "--name", "gh", input=GH + "\n")
    ok(state, "add", "anthropic", "--name", "claude", "--base-url", "https://proxy.example/v1",
       input=ANT)
    ok(state, "add", "postgres", "--name", "pg",
       input="postgresql://app:pg-pass-4321@db.example:5433/appdb\n")
    ok(state, "add", "postgres", "--name", "pg2", "--host", "db2.example", "--user", "svc",
       "--port", "6432", "--database", "reports", input="another pg password\n")
    ok(state, "add", "aws", "--name", "aws", "--access-key-id", "AKIAIOSFODNN7EXAMPLE",
       "--region", "us-east-1",
       input="AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
             "AWS_SESSION_TOKEN=FwoGZXIvYXdzEJrSessionToken\n")
    ok(state, "add", "env", "--name", "tokens", input="NPM_TOKEN=npm_secretvalue\nPYPI_TOKEN=pypi-secretvalue\n")
    ok(state, "add", "env", "--name", "deploy-key", "--var", "DEPLOY_KEY",
       input="-----BEGIN KEY-----\nline-two-of-key\n-----END KEY-----\n")


ALL_SECRETS = [GH, ANT, "pg-pass-4321", "another pg password",
               "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEJrSessionToken",
               "npm_secretvalue", "pypi-secretvalue", "line-two-of-key"]


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


# --- every verb -------------------------------------------------------------

def test_add_each_type_and_list(state):
    add_all_types(state)
    listed = js(state, "list")
    assert set(listed) == {"connectors"}
    by_name = {c["name"]: c for c in listed["connectors"]}
    assert [c["name"] for c in listed["connectors"]] == sorted(by_name)
    for c in listed["connectors"]:
        assert set(c) == CONNECTOR_KEYS
        assert c["mode"] == "inject" and c["environments"] == [] and c["rotated_at"] is None
        assert len(c["fingerprint"]) == 16 and int(c["fingerprint"], 16) >= 0
    assert by_name["gh"]["type"] == "github"
    assert by_name["gh"]["settings"] == {"base_url": "https://github.com/", "api_host": None}
    assert by_name["gh"]["injects"] == ["GH_TOKEN", "GITHUB_TOKEN", "/etc/gitconfig"]
    assert by_name["claude"]["settings"] == {"base_url": "https://proxy.example/v1"}
    assert by_name["claude"]["injects"] == ["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]
    assert by_name["pg"]["settings"] == {"source": "url", "host": "db.example", "port": 5433,
                                         "user": "app", "database": "appdb"}
    assert by_name["pg"]["injects"] == ["DATABASE_URL", "PGHOST", "PGPORT", "PGUSER",
                                        "PGPASSWORD", "PGDATABASE"]
    assert by_name["pg2"]["settings"] == {"source": "settings", "host": "db2.example",
                                          "port": 6432, "user": "svc", "database": "reports"}
    assert by_name["aws"]["settings"] == {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
                                          "region": "us-east-1"}
    assert by_name["aws"]["injects"] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                         "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"]
    assert by_name["tokens"]["settings"] == {}
    assert by_name["tokens"]["injects"] == ["NPM_TOKEN", "PYPI_TOKEN"]
    assert by_name["deploy-key"]["injects"] == ["DEPLOY_KEY"]

    # The table for people, and no secret anywhere in what is shown.
    table = ok(state, "list").stdout
    assert table.splitlines()[0].split() == ["NAME", "TYPE", "MODE", "FINGERPRINT",
                                             "ENVIRONMENTS", "CREATED", "ROTATED"]
    shown = table + json.dumps(listed)
    for name in by_name:
        shown += ok(state, "show", name).stdout + ok(state, "show", name, "--json").stdout
    for secret in ALL_SECRETS:
        assert secret not in shown


def test_add_prints_a_sentence_and_json(state):
    p = ok(state, "add", "github", "--name", "gh", input=GH)
    assert p.stdout.startswith("created connector 'gh' (github, fingerprint ")
    c = js(state, "add", "anthropic", "--name", "claude", input=ANT)
    assert set(c) == CONNECTOR_KEYS and c["name"] == "claude" and c["type"] == "anthropic"


def test_show(state):
    ok(state, "add", "github", "--name", "gh", "--api-host", "api.github.com", input=GH)
    ok(state, "attach", "gh", "--env", "default")
    text = ok(state, "show", "gh").stdout
    for line in ("name:          gh", "type:          github", "mode:          inject",
                 "base url:      https://github.com/", "api host:      api.github.com",
                 "injects:       GH_TOKEN GITHUB_TOKEN /etc/gitconfig",
                 "environments:  default", "recent uses:   -"):
        assert line in text, text
    c = js(state, "show", "gh")
    assert set(c) == CONNECTOR_KEYS | {"recent_uses"}
    assert c["environments"] == ["default"] and c["recent_uses"] == []


def test_show_lists_recent_uses(state):
    c = js(state, "add", "github", "--name", "gh", input=GH)
    ok(state, "attach", "gh", "--env", "default")
    env_id = json.loads(admin(state, "env", "show", "default", "--json").stdout)["id"]
    # The server records uses; here a second connection does, as it would.
    conn = sqlite3.connect(os.path.join(state, "corral.db"), timeout=10)
    for i in range(12):
        conn.execute("INSERT INTO connector_uses (trace_id, connector_id, connector_name, env_id,"
                     " used_at) VALUES (?, ?, 'gh', ?, ?)",
                     (f"trc_{i:032x}", c["id"], env_id, f"2026-01-01T00:00:{i:02d}Z"))
    conn.commit()
    conn.close()
    shown = js(state, "show", "gh")
    uses = shown["recent_uses"]
    assert len(uses) == 10
    assert all(set(u) == USE_KEYS for u in uses)
    assert uses[0]["trace_id"] == f"trc_{11:032x}" and uses[0]["environment"] == "default"
    assert uses[0]["connector"] == "gh" and uses[0]["used_at"] == "2026-01-01T00:00:11Z"
    text = ok(state, "show", "gh").stdout
    assert f"2026-01-01T00:00:11Z  trc_{11:032x}  default" in text


def test_attach_detach(state):
    ok(state, "add", "github", "--name", "gh", input=GH)
    admin(state, "env", "create", "prod")
    p = ok(state, "attach", "gh", "--env", "prod")
    assert p.stdout == "attached connector 'gh' to environment 'prod'\n"
    c = js(state, "attach", "gh", "--env", "default")
    assert c["environments"] == ["default", "prod"]
    assert [x["name"] for x in js(state, "list", "--env", "prod")["connectors"]] == ["gh"]
    p = ok(state, "detach", "gh", "--env", "prod")
    assert p.stdout == "detached connector 'gh' from environment 'prod'\n"
    assert js(state, "list", "--env", "prod")["connectors"] == []
    assert js(state, "detach", "gh", "--env", "default")["environments"] == []


def test_attach_refuses_a_clash(state):
    ok(state, "add", "github", "--name", "gh", input=GH)
    ok(state, "add", "env", "--name", "more", input="GH_TOKEN=other-token-value\n")
    ok(state, "attach", "gh", "--env", "default")
    before = snapshot(state)
    err = refused(state, ["attach", "more", "--env", "default"], 1, "GH_TOKEN")
    assert "'gh'" in err and "'more'" in err and "'default'" in err
    assert snapshot(state) == before
    # Elsewhere it is fine.
    admin(state, "env", "create", "other")
    ok(state, "attach", "more", "--env", "other")


def test_rotate(state):
    before = js(state, "add", "github", "--name", "gh", input=GH)
    ok(state, "attach", "gh", "--env", "default")
    p = ok(state, "rotate", "gh", input="ghp_RotatedTokenValue000111222")
    assert p.stdout.startswith("rotated connector 'gh' (github, fingerprint ")
    after = js(state, "show", "gh")
    assert after["id"] == before["id"] and after["environments"] == ["default"]
    assert after["fingerprint"] != before["fingerprint"] and after["rotated_at"]
    assert after["created_at"] == before["created_at"]
    # Rotating back gives the first fingerprint again.
    assert js(state, "rotate", "gh", input=GH)["fingerprint"] == before["fingerprint"]


def test_rotate_aws_and_env(state):
    ok(state, "add", "aws", "--name", "aws", "--access-key-id", "AKIA0000000000000001",
       input="AWS_SECRET_ACCESS_KEY=first-secret-key\n")
    c = js(state, "rotate", "aws", "--access-key-id", "AKIA0000000000000002",
           input="AWS_SECRET_ACCESS_KEY=second-secret-key\n")
    assert c["settings"]["access_key_id"] == "AKIA0000000000000002"
    c = js(state, "rotate", "aws", input="AWS_ACCESS_KEY_ID=AKIA0000000000000003\n"
                                         "AWS_SECRET_ACCESS_KEY=third-secret-key\n")
    assert c["settings"]["access_key_id"] == "AKIA0000000000000003"
    ok(state, "add", "env", "--name", "vars", "--var", "ONE", input="value-one")
    c = js(state, "rotate", "vars", input="ONE=value-one-b\nTWO=value-two\n")
    assert c["injects"] == ["ONE", "TWO"]
    # Settings other than the secret cannot change by rotation.
    before = snapshot(state)
    refused(state, ["rotate", "aws", "--region", "eu-west-1"], 2, "--region")
    refused(state, ["rotate", "vars", "--name", "x"], 2)
    assert snapshot(state) == before


def test_delete(state):
    ok(state, "add", "github", "--name", "gh", input=GH)
    ok(state, "add", "anthropic", "--name", "claude", input=ANT)
    ok(state, "attach", "gh", "--env", "default")
    before = snapshot(state)
    err = refused(state, ["delete", "gh"], 1, "--force")
    assert "'default'" in err
    assert snapshot(state) == before
    assert js(state, "delete", "gh", "--force") == {"deleted": "gh", "detached": ["default"]}
    p = ok(state, "delete", "claude")
    assert p.stdout == "deleted connector 'claude'\n"
    assert js(state, "list") == {"connectors": []}
    # The name is free again.
    ok(state, "add", "github", "--name", "gh", input=GH)


def test_secret_file(state, tmp_path):
    f = tmp_path / "token.txt"
    f.write_text(GH + "\n")
    first = js(state, "add", "github", "--name", "gh", "--secret-file", str(f))
    second = js(state, "add", "github", "--name", "gh2", "--secret-file", "-", input=GH)
    # The same secret, the same fingerprint; another one, another.
    assert first["fingerprint"] == second["fingerprint"]
    third = js(state, "add", "github", "--name", "gh3", input=GH + "x")
    assert third["fingerprint"] != first["fingerprint"]
    f.write_text("ghp_RotatedFromAFile12345")
    assert js(state, "rotate", "gh", "--secret-file", str(f))["fingerprint"] != first["fingerprint"]
    refused(state, ["add", "github", "--name", "gh4", "--secret-file", str(tmp_path / "none")], 2,
            "cannot open")
    (tmp_path / "empty").write_text("")
    refused(state, ["add", "github", "--name", "gh4", "--secret-file", str(tmp_path / "empty")],
            2, "empty")


def test_help_documents_the_formats(state):
    p = ok(None, "--help")
    for needle in ("NAME=VALUE lines", "AWS_SECRET_ACCESS_KEY", "--secret-file",
                   "postgres://USER:PASSWORD@HOST:PORT/DB", "--var NAME", "never from the command line"):
        assert needle in p.stdout
    assert not os.path.exists(state)


# --- secrets never on the command line, never in the database ---------------

@pytest.mark.parametrize("args", [
    ["add", "github", "--name", "gh", "--token", "hunter2-token"],
    ["add", "github", "--name", "gh", "--token=hunter2-token"],
    ["add", "anthropic", "--name", "a", "--api-key", "hunter2-token"],
    ["add", "postgres", "--name", "p", "--host", "h", "--user", "u", "--password", "hunter2-token"],
    ["add", "postgres", "--name", "p", "--url", "hunter2-token"],
    ["add", "aws", "--name", "a", "--secret-access-key=hunter2-token"],
    ["add", "aws", "--name", "a", "--session-token", "hunter2-token"],
    ["add", "env", "--name", "e", "--secret", "hunter2-token"],
    ["add", "env", "--name", "e", "--value", "hunter2-token"],
    ["rotate", "gh", "--token", "hunter2-token"],
    ["add", "env", "--name", "e", "--var", "NAME=hunter2-token"],
    ["add", "github", "--name", "gh", "ghp_hunter2-token"],
    ["add", "github", "ghp_hunter2-token", "--name", "gh"],
    ["add", "anthropic", "--name", "a", "sk-ant-hunter2-token"],
    ["add", "postgres", "--name", "p", "postgres://u:hunter2-token@h/db"],
    ["add", "github", "--name", "gh", "--base-url", "https://x:hunter2-token@github.com/"],
    ["add", "github", "--name", "gh", "hunter2-token"],
])
def test_secret_on_the_command_line_is_refused(state, args):
    err = refused(state, args, 2)
    assert "hunter2-token" not in err
    assert "stdin" in err
    # Refused before the state directory was even opened.
    assert not os.path.exists(state)


def test_secret_option_refusal_explains(state):
    err = refused(state, ["add", "github", "--name", "gh", "--token", "hunter2-token"], 2)
    assert err.startswith("corral connector: --token: a secret is never taken from the command line")
    assert "--secret-file" in err


def test_secrets_absent_from_the_database(state):
    add_all_types(state)
    ok(state, "attach", "gh", "--env", "default")
    ok(state, "rotate", "gh", input="ghp_RotatedSecretAbcdef987654")
    ok(state, "rotate", "tokens", input="NPM_TOKEN=npm_rotatedvalue\n")
    # (The CLI's connection was the last: SQLite moved the WAL into the
    # main file. The admin API test reads a WAL a running server holds.)
    data = raw_db(state)
    for secret in ALL_SECRETS + ["ghp_RotatedSecretAbcdef987654", "npm_rotatedvalue"]:
        assert secret.encode() not in data, secret
    # Settings are not secret, and are there.
    assert b"AKIAIOSFODNN7EXAMPLE" in data
    # After a checkpoint, still nothing.
    conn = sqlite3.connect(os.path.join(state, "corral.db"), timeout=10)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = raw_db(state)
    for secret in ALL_SECRETS + ["ghp_RotatedSecretAbcdef987654", "npm_rotatedvalue"]:
        assert secret.encode() not in data, secret


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_secrets_key_permissions_enforced(state, mode):
    ok(state, "add", "github", "--name", "gh", input=GH)
    os.chmod(os.path.join(state, "secrets.key"), mode)
    for args, inp in ((["list"], None), (["add", "anthropic", "--name", "a"], ANT),
                      (["rotate", "gh"], GH + "2")):
        p = corral(state, *args, input=inp)
        assert p.returncode == 1, p.stderr
        assert "secrets.key" in p.stderr and "chmod 600" in p.stderr
    os.chmod(os.path.join(state, "secrets.key"), 0o600)
    assert [c["name"] for c in js(state, "list")["connectors"]] == ["gh"]


def test_another_secrets_key_cannot_open_them(state, tmp_path):
    """Without the state directory's key, a copy of the database is useless:
    the connector is listed but its secret cannot be opened (the server
    refuses to inject it; here rotation still works, it needs no old
    secret)."""
    ok(state, "add", "github", "--name", "gh", input=GH)
    with open(os.path.join(state, "secrets.key"), "wb") as f:
        f.write(os.urandom(32))
    assert [c["name"] for c in js(state, "list")["connectors"]] == ["gh"]
    ok(state, "rotate", "gh", input=GH)


# --- bad input changes nothing ----------------------------------------------

BAD = [
    (["add", "gitlab", "--name", "x"], "x-secret-value", 2, "unknown connector type 'gitlab'"),
    (["add", "github"], GH, 2, "--name"),
    (["add", "--name", "x"], GH, 2, "needs a type"),
    (["add", "github", "--name", "Bad Name"], GH, 2, "connector name"),
    (["add", "github", "--name", "gh"], GH, 1, "already exists"),
    (["add", "github", "--name", "x"], "", 2, "no secret on stdin"),
    (["add", "github", "--name", "x"], "\n\n", 2, "empty"),
    (["add", "github", "--name", "x"], "abc", 2, "shorter than 4"),
    (["add", "github", "--name", "x"], "two words", 2, "whitespace"),
    (["add", "github", "--name", "x", "--region", "us-east-1"], GH, 2, "region"),
    (["add", "github", "--name", "x", "--base-url", "ftp://x"], GH, 2, "https://"),
    (["add", "postgres", "--name", "x", "--mode", "broker"], "postgres://u:pw12@h/db", 2, "broker"),
    (["add", "github", "--name", "x", "--mode", "sideways"], GH, 2, "inject or broker"),
    (["add", "postgres", "--name", "x"], "mysql://u:pw12@h/db", 2, "postgres://"),
    (["add", "postgres", "--name", "x", "--user", "u"], "pw1234", 2, "host"),
    (["add", "postgres", "--name", "x", "--host", "h"], "pw1234", 2, "user"),
    (["add", "postgres", "--name", "x", "--host", "h", "--user", "u", "--port", "99999"], "pw1234", 2, "port"),
    (["add", "aws", "--name", "x"], "AWS_SECRET_ACCESS_KEY=abcd1234\n", 2, "access key id"),
    (["add", "aws", "--name", "x", "--access-key-id", "AKIA0000000000000001"], "AWS_SECRET=abcd1234\n", 2, "AWS_SECRET"),
    (["add", "env", "--name", "x"], "PATH=/evil\n", 2, "reserved"),
    (["add", "env", "--name", "x"], "LD_PRELOAD=/evil.so\n", 2, "reserved"),
    (["add", "env", "--name", "x"], "9LIVES=abcdef\n", 2, "variable name"),
    (["add", "env", "--name", "x", "--var", "bad-name"], "abcdef", 2, "variable name"),
    (["add", "env", "--name", "x"], "A=abcdef\nA=abcdeg\n", 2, "twice"),
    (["add", "env", "--name", "x", "--var", "A", "--var", "B"], "A=abcdef\n", 2, "lacks B"),
    (["add", "env", "--name", "x"], "a line without equals sign\n", 2, "not NAME=VALUE"),
    (["add", "github", "--name", "x", "--var", "A"], GH, 2, "only an env connector"),
    (["attach", "gh"], None, 2, "--env"),
    (["attach", "gh", "--env", "nope"], None, 1, "environment 'nope' not found"),
    (["attach", "nope", "--env", "default"], None, 1, "connector 'nope' not found"),
    (["attach", "gh", "--env", "Bad Env"], None, 2, "--env"),
    (["attach", "gh", "--env", "default"], None, 1, "already attached"),
    (["detach", "gh", "--env", "prod"], None, 1, "not attached"),
    (["show", "nope"], None, 1, "not found"),
    (["show"], None, 2, "needs a connector name"),
    (["show", "gh", "hunter2-token"], None, 2, "no other argument"),
    (["rotate", "nope"], GH, 1, "not found"),
    (["rotate", "gh"], "", 2, "no secret"),
    (["rotate", "gh"], "a bcdef", 2, "whitespace"),
    (["delete", "nope"], None, 1, "not found"),
    (["delete", "gh"], None, 1, "--force"),
    (["list", "--force"], None, 2, "--force"),
    (["list", "extra"], None, 2, "no argument"),
    (["frobnicate"], None, 2, "unknown subcommand"),
    ([], None, 2, "subcommand"),
    (["list", "--bogus=hunter2-token"], None, 2, "unknown option '--bogus'"),
]


@pytest.mark.parametrize("args,inp,code,needle", BAD, ids=[" ".join(b[0]) or "none" for b in BAD])
def test_bad_input_changes_nothing(state, args, inp, code, needle):
    ok(state, "add", "github", "--name", "gh", input=GH)
    ok(state, "attach", "gh", "--env", "default")
    admin(state, "env", "create", "prod")
    before = snapshot(state)
    db_before = raw_db(state)
    err = refused(state, args, code, needle, input=inp)
    assert "hunter2" not in err
    db_after = raw_db(state)
    assert snapshot(state) == before
    if code == 2:
        # A usage error is found before anything is written.
        assert db_after == db_before


def test_bad_option_does_not_create_the_state_dir(state):
    refused(state, ["add", "github"], 2)
    refused(state, ["add", "gitlab", "--name", "x"], 2)
    refused(state, ["add", "env", "--name", "x"], 2, input="PATH=/x\n")
    assert not os.path.exists(state)


# --- the admin API ---------------------------------------------------------

def auth(server):
    return {"Authorization": "Bearer " + server.admin_token}


def call(server, method, path, body=None, raw=None):
    return server.request(method, path, body=body, raw=raw, headers=auth(server))


def listing(server):
    st, _, body = call(server, "GET", "/admin/v1/connectors")
    assert st == 200
    return body


def test_admin_api(server):
    assert server.admin_token
    # Without the token: 401.
    st, _, _ = server.request("GET", "/admin/v1/connectors")
    assert st == 401
    st, _, _ = server.request("GET", "/admin/v1/audit")
    assert st == 401

    st, _, c = call(server, "POST", "/admin/v1/connectors",
                    {"type": "github", "name": "gh", "secret": GH})
    assert st == 201, c
    assert set(c) == CONNECTOR_KEYS and c["type"] == "github" and GH not in json.dumps(c)
    st, _, c2 = call(server, "POST", "/admin/v1/connectors",
                     {"type": "aws", "name": "aws", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                      "region": "us-west-2",
                      "secrets": {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}})
    assert st == 201, c2
    assert c2["injects"] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                             "AWS_DEFAULT_REGION"]
    st, _, c3 = call(server, "POST", "/admin/v1/connectors",
                     {"type": "postgres", "name": "pg", "host": "db", "port": 5432, "user": "u",
                      "database": "d", "secret": "pg-api-password"})
    assert st == 201, c3
    st, _, c4 = call(server, "POST", "/admin/v1/connectors",
                     {"type": "env", "name": "vars", "secrets": {"NPM_TOKEN": "npm_apisecret"}})
    assert st == 201, c4

    # The same shapes as the CLI's.
    listed = listing(server)
    assert [c["name"] for c in listed["connectors"]] == ["aws", "gh", "pg", "vars"]
    cli = json.loads(server.cli("connector", "list", "--json").stdout)
    assert cli == listed

    st, _, one = call(server, "GET", "/admin/v1/connectors/gh")
    assert st == 200 and set(one) == CONNECTOR_KEYS | {"recent_uses"}

    st, _, a = call(server, "POST", "/admin/v1/connectors/gh/attach", {"env": "default"})
    assert st == 200 and a["environments"] == ["default"]
    st, _, a = call(server, "POST", "/admin/v1/connectors/vars/attach", {"env": "default"})
    assert st == 200

    st, _, r = call(server, "POST", "/admin/v1/connectors/gh/rotate",
                    {"secret": "ghp_RotatedOverHttp123456"})
    assert st == 200 and r["fingerprint"] != c["fingerprint"] and r["rotated_at"]
    st, _, r = call(server, "POST", "/admin/v1/connectors/vars/rotate",
                    {"secrets": {"NPM_TOKEN": "npm_rotatedapi"}})
    assert st == 200

    # Refusals: a flat {"error", "message"}, and nothing changes.
    before = listing(server)
    assert_error(call(server, "POST", "/admin/v1/connectors",
                      {"type": "github", "name": "gh", "secret": GH}), 409, "conflict")
    assert_error(call(server, "POST", "/admin/v1/connectors",
                      {"type": "gitlab", "name": "x", "secret": GH}), 400, "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors",
                      {"type": "github", "name": "x"}), 400, "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors",
                      {"type": "github", "name": "x", "secret": ""}), 400, "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors",
                      {"type": "github", "secret": GH}), 400, "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors",
                      {"type": "github", "name": "x", "secret": GH, "token": GH}),
                 400, "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors",
                      {"type": "env", "name": "x", "secrets": {"PATH": "/evil/bin"}}),
                 400, "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors",
                      {"type": "env", "name": "x", "secrets": ["A=b"]}), 400, "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors", raw=b"not json"),
                 400, "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors/gh/rotate",
                      {"secret": GH, "base_url": "https://x/"}), 400, "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors/nope/rotate", {"secret": GH}),
                 404, "not_found")
    assert_error(call(server, "POST", "/admin/v1/connectors/gh/attach", {"env": "nope"}),
                 404, "not_found")
    assert_error(call(server, "POST", "/admin/v1/connectors/gh/attach", {}), 400,
                 "validation_error")
    assert_error(call(server, "POST", "/admin/v1/connectors/gh/attach", {"env": "default"}),
                 409, "conflict")
    assert_error(call(server, "POST", "/admin/v1/connectors/gh/detach", {"env": "default",
                                                                          "x": 1}) if False else
                 call(server, "POST", "/admin/v1/connectors/pg/detach", {"env": "default"}),
                 404, "not_found")
    assert_error(call(server, "GET", "/admin/v1/connectors/nope"), 404, "not_found")
    assert_error(call(server, "DELETE", "/admin/v1/connectors/gh"), 409, "conflict")
    assert_error(call(server, "PUT", "/admin/v1/connectors/gh"), 404, "not_found")
    assert_error(call(server, "GET", "/admin/v1/audit?limit=0"), 400, "validation_error")
    assert listing(server) == before

    # A clash at attach: 409 with both names.
    call(server, "POST", "/admin/v1/connectors", {"type": "env", "name": "clash",
                                                  "secrets": {"GITHUB_TOKEN": "clashing-1"}})
    msg = assert_error(call(server, "POST", "/admin/v1/connectors/clash/attach",
                            {"env": "default"}), 409, "conflict")
    assert "GITHUB_TOKEN" in msg

    # Detach, then delete; an attached one needs ?force=true.
    st, _, d = call(server, "POST", "/admin/v1/connectors/vars/detach", {"env": "default"})
    assert st == 200 and d["environments"] == []
    st, _, d = call(server, "DELETE", "/admin/v1/connectors/gh?force=true")
    assert st == 200 and d == {"name": "gh", "deleted": True, "detached": ["default"]}
    st, _, d = call(server, "DELETE", "/admin/v1/connectors/vars")
    assert st == 200 and d["detached"] == []

    # The audit: empty until executions use connectors.
    st, _, au = call(server, "GET", "/admin/v1/audit")
    assert st == 200 and set(au) == {"uses", "egress_denials"} and isinstance(au["uses"], list)
    assert au["egress_denials"] == []
    for u in au["uses"]:
        assert set(u) == USE_KEYS

    # No secret given over HTTP is in the database, its WAL (the server
    # holds it open), or the server's log.
    assert os.path.getsize(os.path.join(server.state_dir, "corral.db-wal")) > 0
    data = raw_db(server.state_dir)
    with open(server.state_dir + ".log", "rb") as f:
        log = f.read()
    for secret in (GH, "ghp_RotatedOverHttp123456", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                   "pg-api-password", "npm_apisecret", "npm_rotatedapi", "clashing-1"):
        assert secret.encode() not in data, secret
        assert secret.encode() not in log, secret


def test_admin_audit_lists_recorded_uses(server):
    st, _, c = call(server, "POST", "/admin/v1/connectors",
                    {"type": "anthropic", "name": "claude", "secret": ANT})
    assert st == 201
    conn = sqlite3.connect(os.path.join(server.state_dir, "corral.db"), timeout=10)
    env_id = conn.execute("SELECT id FROM environments WHERE name = 'default'").fetchone()[0]
    for i in range(3):
        conn.execute("INSERT INTO connector_uses (trace_id, connector_id, connector_name, env_id,"
                     " used_at) VALUES (?, ?, 'claude', ?, '2026-02-03T04:05:06Z')",
                     (f"trc_{i:032x}", c["id"], env_id))
    conn.commit()
    conn.close()
    st, _, au = call(server, "GET", "/admin/v1/audit?connector=claude&limit=2")
    assert st == 200
    assert [u["trace_id"] for u in au["uses"]] == [f"trc_{2:032x}", f"trc_{1:032x}"]
    assert au["uses"][0] == {"id": au["uses"][0]["id"], "trace_id": f"trc_{2:032x}",
                             "connector": "claude", "environment": "default",
                             "used_at": "2026-02-03T04:05:06Z"}
    st, _, au = call(server, "GET", "/admin/v1/audit?connector=nobody")
    assert st == 200 and au == {"uses": [], "egress_denials": []}
    st, _, one = call(server, "GET", "/admin/v1/connectors/claude")
    assert [u["trace_id"] for u in one["recent_uses"]] == [f"trc_{i:032x}" for i in (2, 1, 0)]
