"""Shared fixtures for the integration tests.

The tests drive the real `build/corral` binary (path in $CORRAL) and copy
the static helper program ($HELPER, built from tests/helper/) into a
thread directory when they need probes that do not depend on the image.
"""
import json
import os
import shutil
import subprocess

import pytest

CORRAL = os.environ.get("CORRAL") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "corral"))
HELPER = os.environ.get("HELPER") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build", "tests", "sandbox-helper"))


def run(*args, timeout=60, input=None):
    """Run `corral run ARGS...`; return the CompletedProcess (text mode)."""
    return subprocess.run([CORRAL, "run", *args], capture_output=True, text=True,
                          timeout=timeout, input=input)


def run_json(*args, timeout=60, input=None):
    """Run `corral run --json ARGS...` and return the parsed result object."""
    p = run("--json", *args, timeout=timeout, input=input)
    assert p.stdout.strip(), f"no JSON on stdout; rc={p.returncode} stderr={p.stderr!r}"
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON: {p.stdout!r} stderr={p.stderr!r}")


@pytest.fixture
def thread_dir(tmp_path):
    """A fresh thread directory (created by corral on first use)."""
    return str(tmp_path / "thread")


@pytest.fixture
def helper_home(tmp_path):
    """A thread directory holding the static helper as ~/helper."""
    d = tmp_path / "home"
    d.mkdir()
    shutil.copy(HELPER, d / "helper")
    os.chmod(d / "helper", 0o755)
    # A pre-seeded thread home must belong to the sandbox user's host uid:
    # corral refuses to take over a directory of someone else's.
    give_to_sandbox(d)
    return str(d)


SANDBOX_HOST_UID = 101000


def give_to_sandbox(path):
    """chown -R a host directory to the sandbox user's host uid."""
    for root, dirs, files in os.walk(path):
        for n in [root] + [os.path.join(root, x) for x in dirs + files]:
            os.chown(n, SANDBOX_HOST_UID, SANDBOX_HOST_UID)


def helper(home, *args, extra=(), timeout=60):
    """Run the helper inside a sandbox whose home is `home`; return JSON result."""
    return run_json("--thread-dir", home, *extra, "--", "/home/baponi/helper", *args,
                    timeout=timeout)
