"""`corral plan`: plans are configurable rows (DESIGN.md 2)."""
import json
import subprocess

from conftest import CORRAL


def plan(state, *args):
    return subprocess.run([CORRAL, "plan", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=30)


def test_defaults_listed(tmp_path):
    p = plan(tmp_path / "s", "list", "--json")
    assert p.returncode == 0, p.stderr
    plans = {x["name"]: x for x in json.loads(p.stdout)}
    assert plans["free"] == {"name": "free", "monthly_credits": 1000, "max_timeout_s": 60,
                             "allow_streaming": False, "allow_async": False, "max_concurrent": 2}
    assert plans["unlimited"]["monthly_credits"] is None
    assert plans["pro"]["max_timeout_s"] == 3600


def test_set_creates_and_changes(tmp_path):
    s = tmp_path / "s"
    assert plan(s, "set", "tiny", "--credits", "3", "--max-concurrent", "1").returncode == 0
    assert plan(s, "set", "free", "--max-timeout", "120", "--streaming", "on").returncode == 0
    plans = {x["name"]: x for x in json.loads(plan(s, "list", "--json").stdout)}
    assert plans["tiny"]["monthly_credits"] == 3 and plans["tiny"]["max_timeout_s"] == 60
    assert plans["free"]["max_timeout_s"] == 120 and plans["free"]["allow_streaming"] is True
    assert plan(s, "set", "tiny", "--credits", "unlimited").returncode == 0
    plans = {x["name"]: x for x in json.loads(plan(s, "list", "--json").stdout)}
    assert plans["tiny"]["monthly_credits"] is None


def test_bad_input_changes_nothing(tmp_path):
    s = tmp_path / "s"
    before = plan(s, "list", "--json").stdout
    for args, needle in [(["set", "Bad"], "lowercase"), (["set", "x", "--credits", "-1"], "--credits"),
                         (["set", "x", "--max-timeout", "0"], "--max-timeout"),
                         (["set", "x", "--streaming", "maybe"], "on or off"),
                         (["frob"], "unknown subcommand"), (["set"], "exactly one"),
                         (["set", "x", "--bogus"], "--bogus")]:
        p = plan(s, *args)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith("corral plan: ") and needle in p.stderr, (args, p.stderr)
    assert plan(s, "list", "--json").stdout == before
