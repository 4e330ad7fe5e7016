"""The admin verbs: `corral env|key|thread|usage` on a state directory.

Each test gets its own state directory.  The verbs are driven as an
operator would, their --json shapes are pinned, every bad input must give
`corral <verb>: <sentence>` with exit 2 (usage) or 1 (failed operation)
and change nothing, and secrets must never reach the database in clear.
Rows the CLI cannot create (threads, usage: the server's job) are put in
with Python's sqlite3, as a second process would.
"""
import json
import os
import re
import sqlite3
import stat
import subprocess
import threading
import time

import pytest

from conftest import CORRAL

KEY_RE = re.compile(r"^sk-([a-z0-9-]+)-([A-Za-z0-9_-]{43})$")


def corral(state, *args, env=None, cwd=None, input=None):
    """Run `corral VERB --state-dir STATE REST...` (STATE None: no option).
    The option goes right after the verb so that a test can end the command
    line with an option that lacks its value."""
    argv = [CORRAL, *args]
    if state is not None:
        argv[2:2] = ["--state-dir", str(state)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd=cwd,
                          input=input)


def ok(state, *args, **kw):
    p = corral(state, *args, **kw)
    assert p.returncode == 0, f"corral {' '.join(args)}: rc={p.returncode} stderr={p.stderr!r}"
    return p


def js(state, *args, **kw):
    p = ok(state, *args, "--json", **kw)
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON: {p.stdout!r} stderr={p.stderr!r}")


def snapshot(state):
    """Everything an admin can see, to check that a refusal changed nothing."""
    return (js(state, "env", "list"), js(state, "key", "list"), js(state, "usage"))


def new_key(state, *args):
    p = ok(state, "key", "create", *args)
    return p.stdout.strip()


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def db(state):
    """A second connection to the database (after the CLI created it)."""
    ok(state, "env", "list")
    conn = sqlite3.connect(state / "corral.db", timeout=10, check_same_thread=False)
    yield conn
    conn.close()


def env_id(state, name):
    return js(state, "env", "show", name)["id"]


# --- the state directory -------------------------------------------------

def test_first_open_creates_the_state_dir(state):
    envs = js(state, "env", "list")
    assert envs == {"environments": [{
        "id": envs["environments"][0]["id"], "name": "default", "image": "host",
        "network": {"mode": "none", "allow": []}, "memory_mib": 512, "pids": 256, "cpus": 1.0, "tmp_mib": 256,
        "allow_nested": False, "created_at": envs["environments"][0]["created_at"]}]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        envs["environments"][0]["created_at"])
    st = os.stat(state / "secrets.key")
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_size == 32
    assert stat.S_IMODE(os.stat(state / "corral.db").st_mode) & 0o077 == 0
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert (state / "threads").is_dir()
    # The secret stays the same from one open to the next.
    before = (state / "secrets.key").read_bytes()
    ok(state, "env", "list")
    assert (state / "secrets.key").read_bytes() == before


def test_key_create_works_on_a_fresh_state_dir(state):
    key = new_key(state, "--env", "default")
    assert KEY_RE.match(key)


def test_default_state_dir_and_env_var(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_STATE_DIR"}
    ok(None, "env", "list", env=env, cwd=tmp_path)
    assert (tmp_path / "corral-data" / "corral.db").exists()
    env["CORRAL_STATE_DIR"] = str(tmp_path / "from-env")
    ok(None, "env", "create", "viaenv", env=env, cwd=tmp_path)
    assert (tmp_path / "from-env" / "corral.db").exists()
    names = [e["name"] for e in js(tmp_path / "from-env", "env", "list")["environments"]]
    assert names == ["default", "viaenv"]
    # --state-dir wins over the variable.
    ok(tmp_path / "explicit", "env", "list", env=env)
    assert (tmp_path / "explicit" / "corral.db").exists()


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640, 0o620, 0o602])
def test_secrets_key_open_to_others_is_refused(state, mode):
    key = new_key(state, "--env", "default")
    before = snapshot(state)
    os.chmod(state / "secrets.key", mode)
    for args in (["env", "list"], ["key", "create", "--env", "default"], ["key", "list"],
                 ["thread", "list", "--env", "default"], ["usage"],
                 ["env", "create", "other"]):
        p = corral(state, *args)
        assert p.returncode == 1, args
        assert p.stdout == ""
        verb = args[0]
        assert p.stderr.startswith(f"corral {verb}: ")
        assert "secrets.key" in p.stderr
        assert "readable or writable by group or others" in p.stderr
        assert "chmod 600" in p.stderr
    os.chmod(state / "secrets.key", 0o600)
    assert snapshot(state) == before
    # And the key made before still is what the store knows.
    assert [k["prefix"] for k in js(state, "key", "list")["keys"]] == [key[:17]]


def test_secrets_key_of_the_wrong_size_is_refused(state):
    ok(state, "env", "list")
    with open(state / "secrets.key", "ab") as f:
        f.write(b"x")
    p = corral(state, "env", "list")
    assert p.returncode == 1 and "not 32" in p.stderr


# --- env -------------------------------------------------------------------

def test_env_create_show_set_delete(state):
    p = ok(state, "env", "create", "team-a", "--memory", "1024", "--pids", "64", "--cpus", "0.5",
           "--tmp-size", "128", "--allow-nested")
    assert "team-a" in p.stdout
    e = js(state, "env", "show", "team-a")
    assert e["name"] == "team-a" and e["memory_mib"] == 1024 and e["pids"] == 64
    assert e["cpus"] == 0.5 and e["tmp_mib"] == 128 and e["allow_nested"] is True
    assert e["image"] == "host" and e["network"] == {"mode": "none", "allow": []}
    assert set(e) == {"id", "name", "image", "network", "memory_mib", "pids", "cpus", "tmp_mib",
                      "allow_nested", "created_at"}

    created = js(state, "env", "create", "team-b")
    assert created["name"] == "team-b" and created["memory_mib"] == 512
    assert created["id"] not in (e["id"],)

    human = ok(state, "env", "show", "team-a").stdout
    assert "team-a" in human and "1024 MiB" in human and "0.5" in human

    listed = js(state, "env", "list")["environments"]
    assert [x["name"] for x in listed] == ["default", "team-a", "team-b"]
    table = ok(state, "env", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "IMAGE", "NETWORK"]
    assert [line.split()[0] for line in table[1:]] == ["default", "team-a", "team-b"]

    s = js(state, "env", "set", "team-a", "--memory", "2048", "--no-allow-nested")
    assert s["memory_mib"] == 2048 and s["allow_nested"] is False and s["pids"] == 64
    assert js(state, "env", "show", "team-a") == s
    ok(state, "env", "set", "team-a", "--cpus", "2")
    assert js(state, "env", "show", "team-a")["cpus"] == 2.0

    d = js(state, "env", "delete", "team-b")
    assert d["deleted"] == "team-b"
    assert [x["name"] for x in js(state, "env", "list")["environments"]] == ["default", "team-a"]
    # The name is free again; the id is new.
    again = js(state, "env", "create", "team-b")
    assert again["id"] > created["id"]


def network(state, name):
    return js(state, "env", "show", name)["network"]


def test_env_network(state, db):
    """--network sets the mode, --allow replaces the entries, --no-allow
    drops them, and what is not given stays (DESIGN.md 5)."""
    e = js(state, "env", "create", "web", "--network", "allowlist", "--allow", "Example.COM.",
           "--allow", "*.x.org:443", "--allow", "[::1]:8080")
    assert e["network"] == {"mode": "allowlist", "allow": ["example.com", "*.x.org:443",
                                                           "[::1]:8080"]}
    assert js(state, "env", "show", "web") == e
    # The store keeps the normalized policy text, which is what people see.
    text = "allowlist: example.com, *.x.org:443, [::1]:8080"
    assert db.execute("SELECT network FROM environments WHERE name = 'web'").fetchall() == \
        [(text,)]
    assert f"network:       {text}\n" in ok(state, "env", "show", "web").stdout
    rows = ok(state, "env", "list").stdout.splitlines()
    assert any(line.startswith("web ") and text in line for line in rows), rows

    # Entries only: the mode stays.
    e = js(state, "env", "set", "web", "--allow", "10.0.0.5", "--allow", "10.0.0.5:5432")
    assert e["network"] == {"mode": "allowlist", "allow": ["10.0.0.5", "10.0.0.5:5432"]}
    # Mode only: the entries stay (open takes IP addresses).
    e = js(state, "env", "set", "web", "--network", "open")
    assert e["network"] == {"mode": "open", "allow": ["10.0.0.5", "10.0.0.5:5432"]}
    # Other settings leave the policy alone.
    ok(state, "env", "set", "web", "--memory", "1024")
    assert network(state, "web") == e["network"]
    assert js(state, "env", "set", "web", "--no-allow")["network"] == {"mode": "open", "allow": []}
    # An allowlist with no entries reaches nothing, and says so.
    assert js(state, "env", "set", "web", "--network", "allowlist")["network"] == \
        {"mode": "allowlist", "allow": []}
    ok(state, "env", "set", "web", "--allow", "a.example")
    assert js(state, "env", "set", "web", "--network", "none")["network"] == \
        {"mode": "none", "allow": []}
    assert db.execute("SELECT network FROM environments WHERE name = 'web'").fetchall() == \
        [("none",)]

    # Kept entries the new mode cannot take: refused, saying how to go on.
    ok(state, "env", "set", "web", "--network", "allowlist", "--allow", "a.example")
    before = snapshot(state)
    p = corral(state, "env", "set", "web", "--network", "open")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("corral env: egress entry 'a.example': mode 'open' allows every "
                               "name already"), p.stderr
    assert "--allow" in p.stderr and "--no-allow" in p.stderr
    assert snapshot(state) == before
    e = js(state, "env", "set", "web", "--network", "open", "--allow", "192.168.1.1")
    assert e["network"] == {"mode": "open", "allow": ["192.168.1.1"]}

    # --allow alone on an environment without network: refused.
    ok(state, "env", "create", "quiet")
    before = snapshot(state)
    p = corral(state, "env", "set", "quiet", "--allow", "a.example")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == ("corral env: --allow: environment 'quiet' has network none, which takes "
                        "no entries; give --network allowlist or --network open too\n")
    assert snapshot(state) == before


def test_env_network_persists(state):
    """Each verb is a new process on the same state directory: what one
    stored, the next reads back the same."""
    ok(state, "env", "create", "p", "--network", "allowlist", "--allow", "*.Example.org:443",
       "--allow", "[::ffff:10.0.0.1]")
    want = {"mode": "allowlist", "allow": ["*.example.org:443", "10.0.0.1"]}
    for _ in range(2):
        assert network(state, "p") == want
        assert next(x for x in js(state, "env", "list")["environments"]
                    if x["name"] == "p")["network"] == want


def test_env_delete_with_keys_needs_force(state):
    ok(state, "env", "create", "doomed")
    key = new_key(state, "--env", "doomed")
    before = snapshot(state)
    p = corral(state, "env", "delete", "doomed")
    assert p.returncode == 1
    assert p.stderr.startswith("corral env: ") and "1 active API key" in p.stderr
    assert "--force" in p.stderr
    assert snapshot(state) == before
    ok(state, "env", "delete", "doomed", "--force")
    keys = js(state, "key", "list")["keys"]
    assert len(keys) == 1 and keys[0]["active"] is False and keys[0]["revoked_at"]
    assert keys[0]["prefix"] == key[:17]


def test_env_delete_removes_thread_homes(state, db):
    ok(state, "env", "create", "gone")
    eid = env_id(state, "gone")
    home = state / "threads" / str(eid) / "t1"
    home.mkdir(parents=True)
    (home / "file").write_text("x")
    db.execute("INSERT INTO threads VALUES (?, 't1', '2026-01-01T00:00:00Z',"
               " '2026-01-01T00:00:00Z', 1)", (eid,))
    db.commit()
    assert js(state, "env", "delete", "gone")["homes_removed"] is True
    assert not (state / "threads" / str(eid)).exists()
    assert db.execute("SELECT count(*) FROM threads WHERE env_id = ?", (eid,)).fetchone()[0] == 0


# --- key -------------------------------------------------------------------

def test_key_create_prints_only_the_key(state):
    p = ok(state, "key", "create", "--env", "default")
    assert p.stdout.count("\n") == 1
    m = KEY_RE.match(p.stdout.strip())
    assert m and m.group(1) == "local"
    assert "shown only this once" in p.stderr
    assert p.stdout.strip() not in p.stderr

    p = ok(state, "key", "create", "--env", "default", "--plan", "pro", "--name", "ci bot",
           "--region", "eu-west-1")
    m = KEY_RE.match(p.stdout.strip())
    assert m and m.group(1) == "eu-west-1"

    j = js(state, "key", "create", "--env", "default", "--plan", "unlimited")
    assert set(j) == {"id", "prefix", "environment", "plan", "name", "created_at", "revoked_at",
                      "active", "key"}
    assert KEY_RE.match(j["key"]) and j["key"].startswith(j["prefix"])
    assert j["environment"] == "default" and j["plan"] == "unlimited" and j["name"] is None
    assert j["active"] is True and j["revoked_at"] is None

    keys = js(state, "key", "list")["keys"]
    assert [k["plan"] for k in keys] == ["free", "pro", "unlimited"]
    assert keys[1]["name"] == "ci bot"
    for k in keys:
        assert "key" not in k and re.fullmatch(r"sk-[a-z0-9-]+-[A-Za-z0-9_-]{8}", k["prefix"])
    human = ok(state, "key", "list").stdout
    assert "ci bot" in human and keys[0]["prefix"] in human
    assert j["key"] not in human


def test_key_plaintext_never_stored(state):
    keys = [new_key(state, "--env", "default") for _ in range(3)]
    # Look while nothing has checkpointed the WAL, and after.
    for when in ("live", "after"):
        if when == "after":
            ok(state, "key", "list")
        blobs = b""
        for name in os.listdir(state):
            path = state / name
            if path.is_file():
                blobs += path.read_bytes()
        for k in keys:
            assert k.encode() not in blobs
            assert k.split("-", 2)[2].encode() not in blobs
            assert KEY_RE.match(k).group(2)[8:].encode() not in blobs


def test_key_list_filter_and_revoke(state):
    ok(state, "env", "create", "other")
    k1 = new_key(state, "--env", "default")
    k2 = new_key(state, "--env", "other")
    k3 = new_key(state, "--env", "other")
    assert [k["prefix"] for k in js(state, "key", "list", "--env", "other")["keys"]] == \
        [k2[:17], k3[:17]]
    ids = {k["prefix"]: k["id"] for k in js(state, "key", "list")["keys"]}

    assert js(state, "key", "revoke", str(ids[k1[:17]]))["revoked"] == str(ids[k1[:17]])
    ok(state, "key", "revoke", k2[:12])
    p = ok(state, "key", "revoke", k3)
    assert k3 not in p.stdout        # a whole key is never echoed back
    keys = js(state, "key", "list")["keys"]
    assert all(not k["active"] for k in keys)

    before = snapshot(state)
    for what in (str(ids[k1[:17]]), k2[:17], k3):
        p = corral(state, "key", "revoke", what)
        assert p.returncode == 1 and "already revoked" in p.stderr, what
    assert snapshot(state) == before


def test_key_revoke_ambiguous_prefix(state):
    new_key(state, "--env", "default")
    new_key(state, "--env", "default")
    before = snapshot(state)
    p = corral(state, "key", "revoke", "sk-local")
    assert p.returncode == 1 and "more than one" in p.stderr
    assert snapshot(state) == before


# --- thread ----------------------------------------------------------------

def add_thread(db, state, env, tid, bytes_=0, files=True):
    eid = env_id(state, env)
    db.execute("INSERT INTO threads VALUES (?, ?, '2026-01-02T03:04:05Z',"
               " '2026-01-03T03:04:05Z', ?)", (eid, tid, bytes_))
    db.commit()
    home = state / "threads" / str(eid) / tid
    if files:
        (home / "sub").mkdir(parents=True)
        (home / "sub" / "data").write_text("hello")
    return home


def test_thread_list_show_delete(state, db, tmp_path):
    ok(state, "env", "create", "other")
    home = add_thread(db, state, "default", "t-1", 2048)
    add_thread(db, state, "default", "t-2", 0, files=False)
    other_home = add_thread(db, state, "other", "t-1", 1)

    lst = js(state, "thread", "list", "--env", "default")
    assert lst["environment"] == "default"
    assert [t["thread_id"] for t in lst["threads"]] == ["t-1", "t-2"]
    t = lst["threads"][0]
    assert t == {"thread_id": "t-1", "environment": "default",
                 "created_at": "2026-01-02T03:04:05Z", "last_used_at": "2026-01-03T03:04:05Z",
                 "bytes": 2048}
    assert "2.0 KiB" in ok(state, "thread", "list", "--env", "default").stdout

    show = js(state, "thread", "show", "t-1", "--env", "default")
    assert show["home"] == str(home) and show["bytes"] == 2048
    assert "t-1" in ok(state, "thread", "show", "t-1", "--env", "default").stdout

    # A link out of the home must not lead the removal elsewhere.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("precious")
    os.symlink(outside, home / "link")
    os.symlink(outside / "keep", home / "sub" / "link")

    d = js(state, "thread", "delete", "t-1", "--env", "default")
    assert d == {"deleted": "t-1", "environment": "default", "home_removed": True}
    assert not home.exists()
    assert (outside / "keep").read_text() == "precious"
    assert other_home.exists()                   # same id, other environment
    assert [t["thread_id"] for t in js(state, "thread", "list", "--env", "other")["threads"]] \
        == ["t-1"]
    assert [t["thread_id"] for t in js(state, "thread", "list", "--env", "default")["threads"]] \
        == ["t-2"]
    ok(state, "thread", "delete", "t-2", "--env", "default")
    assert js(state, "thread", "list", "--env", "default")["threads"] == []

    p = corral(state, "thread", "delete", "t-1", "--env", "default")
    assert p.returncode == 1 and "not found" in p.stderr
    p = corral(state, "thread", "show", "t-1", "--env", "default")
    assert p.returncode == 1 and "not found" in p.stderr


def test_thread_delete_refuses_bad_ids(state, db):
    home = add_thread(db, state, "default", "keep")
    before = snapshot(state)
    for bad in ("..", ".", "../default", "a/b", "", "x" * 129, "a b"):
        p = corral(state, "thread", "delete", bad, "--env", "default")
        assert p.returncode == 2, bad
        assert p.stderr.startswith("corral thread: ")
    assert home.exists() and (state / "threads").exists()
    assert snapshot(state) == before


# --- usage -----------------------------------------------------------------

def test_usage(state, db):
    ok(state, "env", "create", "other")
    new_key(state, "--env", "default")
    new_key(state, "--env", "other")
    keys = js(state, "key", "list")["keys"]
    month = time.strftime("%Y-%m", time.gmtime())
    db.executemany("INSERT INTO usage VALUES (?, ?, ?, ?)", [
        (keys[0]["id"], month, 10, 3), (keys[1]["id"], month, 5, 1),
        (keys[0]["id"], "2025-02", 7, 2)])
    db.commit()

    u = js(state, "usage")
    assert u["month"] == month and u["environment"] is None
    assert u["credits"] == 15 and u["executions"] == 4
    assert u["keys"] == [
        {"key_id": keys[0]["id"], "key_prefix": keys[0]["prefix"], "environment": "default",
         "month": month, "credits": 10, "executions": 3},
        {"key_id": keys[1]["id"], "key_prefix": keys[1]["prefix"], "environment": "other",
         "month": month, "credits": 5, "executions": 1}]
    u = js(state, "usage", "--env", "other")
    assert u["environment"] == "other" and u["credits"] == 5 and len(u["keys"]) == 1
    u = js(state, "usage", "--month", "2025-02")
    assert u["credits"] == 7 and u["executions"] == 2
    assert js(state, "usage", "--month", "2024-12")["keys"] == []
    human = ok(state, "usage").stdout
    assert month in human and "total" in human and keys[1]["prefix"] in human


# --- refusals ----------------------------------------------------------------

BAD = [
    # (arguments, exit code, text the message must hold)
    (["frobnicate"], 2, "unknown command"),
    (["env"], 2, "subcommand"),
    (["env", "frob"], 2, "unknown subcommand"),
    (["env", "list", "--bogus"], 2, "unknown option '--bogus'"),
    (["env", "list", "extra"], 2, "no argument"),
    (["env", "create"], 2, "needs an environment name"),
    (["env", "create", "Bad"], 2, "lowercase"),
    (["env", "create", "a/b"], 2, "may hold only"),
    (["env", "create", "x" * 64], 2, "longer than 63"),
    (["env", "create", "default"], 1, "already exists"),
    (["env", "create", "n1", "--memory"], 2, "needs a value"),
    (["env", "create", "n1", "--memory", "lots"], 2, "--memory"),
    (["env", "create", "n1", "--memory", "4"], 2, "out of range"),
    (["env", "create", "n1", "--pids", "1"], 2, "--pids"),
    (["env", "create", "n1", "--cpus", "many"], 2, "--cpus"),
    (["env", "create", "n1", "--cpus", "0.001"], 2, "minimum"),
    (["env", "create", "n1", "--tmp-size", "0"], 2, "--tmp-size"),
    (["env", "create", "n1", "--force"], 2, "--force applies only"),
    (["env", "create", "n1", "--no-allow-nested"], 2, "only to 'env set'"),
    (["env", "create", "n1", "n2"], 2, "one name"),
    (["env", "show", "nope"], 1, "not found"),
    (["env", "show"], 2, "needs an environment name"),
    (["env", "show", "default", "--memory", "64"], 2, "applies only"),
    (["env", "set", "default"], 2, "nothing to change"),
    (["env", "set", "nope", "--pids", "9"], 1, "not found"),
    (["env", "set", "default", "--pids", "-3"], 2, "--pids"),
    (["env", "delete", "nope"], 1, "not found"),
    (["env", "create", "n1", "--network"], 2, "needs a value"),
    (["env", "create", "n1", "--network", "everything"], 2,
     "--network: unknown egress mode 'everything' (expected 'none', 'allowlist' or 'open')"),
    (["env", "create", "n1", "--network", "allowlist", "--allow", "a..b"], 2,
     "--allow: egress entry 'a..b': empty label"),
    (["env", "create", "n1", "--network", "allowlist", "--allow", "ok.example", "--allow", "*."],
     2, "egress entry '*.': "),
    (["env", "create", "n1", "--network", "allowlist", "--allow", "127.1"], 2,
     "egress entry '127.1': "),
    (["env", "create", "n1", "--network", "allowlist", "--allow", ""], 2, "egress entry '': "),
    (["env", "create", "n1", "--network", "open", "--allow", "a.example"], 2,
     "egress entry 'a.example': mode 'open' allows every name already"),
    (["env", "create", "n1", "--network", "none", "--allow", "a.example"], 2,
     "--allow: --network none takes no entries"),
    (["env", "create", "n1", "--allow", "a.example"], 2,
     "--allow needs --network allowlist or --network open"),
    (["env", "create", "n1", "--network", "allowlist", "--no-allow"], 2,
     "--no-allow applies only to 'env set'"),
    (["env", "set", "default", "--network", "allowlist", "--allow", "a..b"], 2, "'a..b'"),
    (["env", "set", "default", "--allow", "a.example"], 2, "has network none"),
    (["env", "set", "default", "--allow", "a.example", "--no-allow"], 2, "contradict"),
    (["env", "set", "nope", "--network", "open"], 1, "not found"),
    (["env", "show", "default", "--network", "open"], 2, "--network applies only"),
    (["env", "delete", "default"], 1, "active API key"),
    (["env", "list", "--state-dir"], 2, "needs a value"),
    (["key"], 2, "subcommand"),
    (["key", "frob"], 2, "unknown subcommand"),
    (["key", "create"], 2, "needs --env"),
    (["key", "create", "--env"], 2, "needs a value"),
    (["key", "create", "--env", "nope"], 1, "not found"),
    (["key", "create", "--env", "Bad!"], 2, "--env"),
    (["key", "create", "--env", "default", "--plan", "gold"], 1, "plan 'gold' not found"),
    (["key", "create", "--env", "default", "--plan", ""], 2, "empty"),
    (["key", "create", "--env", "default", "--region", "US"], 2, "region"),
    (["key", "create", "--env", "default", "--region", "-x"], 2, "region"),
    (["key", "create", "--env", "default", "--name", ""], 2, "empty"),
    (["key", "create", "--env", "default", "--name", "a\nb"], 2, "control character"),
    (["key", "create", "--env", "default", "extra"], 2, "no argument"),
    (["key", "list", "--env", "nope"], 1, "not found"),
    (["key", "list", "--plan", "free"], 2, "only --env"),
    (["key", "revoke"], 2, "needs a key"),
    (["key", "revoke", "999"], 1, "not found"),
    (["key", "revoke", "sk-lo"], 2, "8 characters"),
    (["key", "revoke", "sk-local-doesnotexist"], 1, "not found"),
    (["key", "revoke", "1", "2"], 2, "one key"),
    (["key", "revoke", "1", "--env", "default"], 2, "no option"),
    (["thread"], 2, "subcommand"),
    (["thread", "frob", "--env", "default"], 2, "unknown subcommand"),
    (["thread", "list"], 2, "needs --env"),
    (["thread", "list", "--env", "nope"], 1, "not found"),
    (["thread", "list", "--env", "NOPE"], 2, "--env"),
    (["thread", "show", "--env", "default"], 2, "needs a thread id"),
    (["thread", "show", "nope", "--env", "default"], 1, "not found"),
    (["thread", "delete", "..", "--env", "default"], 2, "not allowed"),
    (["thread", "delete", "nope", "--env", "default"], 1, "not found"),
    (["thread", "delete", "a", "b", "--env", "default"], 2, "unexpected argument"),
    (["usage", "--month", "2026-13"], 2, "--month"),
    (["usage", "--month", "2026-1"], 2, "--month"),
    (["usage", "--month", "26-01"], 2, "--month"),
    (["usage", "--month", "2026-00"], 2, "--month"),
    (["usage", "--month"], 2, "needs a value"),
    (["usage", "--env", "nope"], 1, "not found"),
    (["usage", "extra"], 2, "unexpected argument"),
    (["usage", "--bogus"], 2, "unknown option"),
]


@pytest.mark.parametrize("args,code,needle", BAD, ids=[" ".join(b[0])[:60] for b in BAD])
def test_bad_input_changes_nothing(state, args, code, needle):
    new_key(state, "--env", "default")
    before = snapshot(state)
    p = corral(state, *args)
    assert p.returncode == code, f"rc={p.returncode} stderr={p.stderr!r}"
    verb = args[0] if args[0] in ("env", "key", "thread", "usage") else None
    prefix = f"corral {verb}: " if verb else "corral: "
    assert p.stderr.startswith(prefix), p.stderr
    assert needle in p.stderr, p.stderr
    assert p.stdout == ""
    assert snapshot(state) == before


@pytest.mark.parametrize("verb", ["env", "key", "thread", "usage"])
def test_help(tmp_path, verb):
    env = {k: v for k, v in os.environ.items() if k != "CORRAL_STATE_DIR"}
    for args in ([verb, "--help"], [verb, "list", "-h"]):
        p = ok(None, *args, cwd=tmp_path, env=env)
        assert p.stdout.startswith(f"usage: corral {verb}")
        assert "--state-dir" in p.stdout and "--json" in p.stdout
    assert os.listdir(tmp_path) == []           # --help touches nothing


def test_bad_option_does_not_create_the_state_dir(state):
    p = corral(state, "env", "create", "Bad")
    assert p.returncode == 2 and not state.exists()
    p = corral(state, "env", "create", "n1", "--network", "allowlist", "--allow", "a..b")
    assert p.returncode == 2 and not state.exists()


def test_env_help_names_the_network_options(tmp_path):
    out = ok(None, "env", "--help", cwd=tmp_path).stdout
    for opt in ("--network MODE", "--allow ENTRY", "--no-allow"):
        assert opt in out, opt


# --- beside a running writer --------------------------------------------------

def test_waits_for_another_writer(state, db):
    """A server holding the write lock briefly delays the CLI, not fails it."""
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO usage SELECT 0, '2000-01', 0, 0 WHERE 0")
    release = threading.Timer(1.0, db.commit)
    release.start()
    t0 = time.monotonic()
    key = new_key(state, "--env", "default")
    release.join()
    assert KEY_RE.match(key)
    assert time.monotonic() - t0 >= 0.9
