"""The escape battery: one test per attack, each asserting that it fails.

Every test runs the static helper (tests/helper/sandbox-helper.c) inside a
real `corral run` sandbox.  An attempt prints "NAME: errno=N ENAME" and
exits 0 when the kernel refused it, "NAME: ok ..." and exits 1 when it
worked.  Each test names the protection it checks (docs/SECURITY.md, layers
1-8) and is written so that it fails if that protection goes missing: where
another layer would refuse the same call anyway, the test pins the errno
only the intended layer produces (EROFS for a read-only mount, EPERM from
seccomp where the kernel alone would say ENOSYS, ENOKEY or ENOTTY, ESRCH
for a pid the namespace hides), or targets a host object the sandbox's host
uid could otherwise reach (a process, socket or IPC object of its own).
"""
import ctypes
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import CORRAL, helper, run_json

# The sandbox user (uid 1000 inside) as the host sees it with the default
# --uid-base of 100000.
SANDBOX_HOST_UID = 101000
HOME = "/home/baponi"


def refusal(res, name):
    """Return the errno name attempt NAME was refused with; fail loudly if
    it worked."""
    out = res["stdout"]
    assert not re.search(rf"^{re.escape(name)}: ok", out, re.M) and res["exit_code"] != 1, \
        f"ESCAPE: '{name}' worked inside the sandbox: {out.strip()!r}"
    assert res["exit_code"] == 0, f"helper did not run as expected: {res!r}"
    m = re.search(rf"^{re.escape(name)}: errno=\d+ (\w+)", out, re.M)
    assert m, f"no verdict for '{name}' in {out!r} (stderr {res['stderr']!r})"
    return m.group(1)


def assert_refused(res, name, *errnos):
    """Attempt NAME was refused, with one of ERRNOS when given."""
    got = refusal(res, name)
    if errnos:
        assert got in errnos, f"'{name}' refused with {got}, expected {' or '.join(errnos)}"


def probe(res, name):
    """The output of an information probe, which must have worked."""
    assert res["exit_code"] == 0, f"probe '{name}' failed: {res!r}"
    return res["stdout"]


def probe_line(res, name):
    """The value after 'NAME: ' of a one-line probe."""
    m = re.search(rf"^{re.escape(name)}:(.*)$", probe(res, name), re.M)
    assert m, f"no '{name}' line in {res['stdout']!r}"
    return m.group(1).strip()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def host_sleeper():
    """A host process running as the sandbox user's host uid, so that only
    the pid namespace (not permissions) keeps the sandbox from it."""
    p = subprocess.Popen(["sleep", "60"], user=SANDBOX_HOST_UID, group=SANDBOX_HOST_UID,
                         extra_groups=[], stdin=subprocess.DEVNULL)
    yield p
    p.kill()
    p.wait()


# --- 1. namespaces: processes -----------------------------------------


def test_kill_of_host_process_fails(helper_home, host_sleeper):
    res = helper(helper_home, "kill", str(host_sleeper.pid))
    assert_refused(res, "kill", "ESRCH")
    assert host_sleeper.poll() is None, "the host process died"


def test_kill_all_spares_host_processes(helper_home, host_sleeper):
    # kill(-1) reaches every process the caller may signal: same host uid.
    res = helper(helper_home, "kill", "-1", str(int(signal.SIGKILL)))
    assert res["exit_code"] in (0, 1), res
    assert host_sleeper.poll() is None and alive(host_sleeper.pid), "kill(-1) reached the host"


def test_ptrace_of_host_process_fails(helper_home, host_sleeper):
    assert_refused(helper(helper_home, "ptrace", str(host_sleeper.pid)), "ptrace", "ESRCH")


def test_host_processes_invisible(helper_home, host_sleeper):
    entries = probe_line(helper(helper_home, "ls", "/proc"), "ls").split()
    pids = sorted(int(e) for e in entries if e.isdigit())
    assert str(host_sleeper.pid) not in entries
    # The sandbox's init (pid 1) and the helper: nothing else exists.
    assert len(pids) == 2 and pids[0] == 1, f"unexpected processes in the sandbox: {pids}"


def test_ptrace_of_sandbox_init_fails(helper_home):
    # pid 1's memory is a copy of the supervisor's: it must be non-dumpable.
    # (Its switch to uid 1000 already makes it so unless the host sets
    # fs.suid_dumpable=1; init's own PR_SET_DUMPABLE covers that case.)
    assert_refused(helper(helper_home, "ptrace", "1"), "ptrace", "EPERM")


def test_process_vm_read_of_sandbox_init_fails(helper_home):
    assert_refused(helper(helper_home, "process-vm-read", "1"), "process-vm-read", "EPERM")


def test_sandbox_init_memory_unreadable(helper_home):
    for f in ("environ", "mem"):
        assert_refused(helper(helper_home, "read", f"/proc/1/{f}"), "read", "EACCES")


def test_host_environment_invisible(helper_home, monkeypatch):
    # The secret is in corral's own environment; the sandbox's init is a
    # copy of corral, so /proc/1/environ would show it if init were
    # readable, and a leaky env builder would pass it to the program.
    secret = "corral-test-secret-" + secrets.token_hex(16)
    monkeypatch.setenv("CORRAL_TEST_SECRET", secret)
    res = helper(helper_home, "find-secret", secret.encode().hex())
    out = res["stdout"]
    assert "found in" not in out, f"ESCAPE: host environment visible: {out!r}"
    assert res["exit_code"] == 0 and "not found" in out, res
    assert secret not in out and secret not in res["stderr"]


# --- 1. namespaces: hostname, network, ipc, cgroups -------------------


def test_sethostname_does_not_reach_host(helper_home):
    before = socket.gethostname()
    assert_refused(helper(helper_home, "sethostname", "corral-escaped"), "sethostname", "EPERM")
    assert socket.gethostname() == before
    assert probe_line(helper(helper_home, "hostname"), "hostname") == "corral"


def test_host_loopback_unreachable(helper_home):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = helper(helper_home, "connect-tcp", "127.0.0.1", str(port))
    assert_refused(res, "connect-tcp", "ECONNREFUSED")


def test_host_abstract_unix_socket_unreachable(helper_home):
    name = "corral-escape-" + secrets.token_hex(8)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind("\0" + name)
        s.listen(1)
        res = helper(helper_home, "connect-unix", "@" + name)
    assert_refused(res, "connect-unix", "ECONNREFUSED")


def test_only_loopback_interface(helper_home):
    text = probe(helper(helper_home, "cat", "/proc/net/dev"), "cat")
    ifaces = [line.split(":")[0].strip() for line in text.splitlines()[2:] if ":" in line]
    assert ifaces == ["lo"]


def test_host_sysv_shm_invisible(helper_home):
    libc = ctypes.CDLL(None, use_errno=True)
    IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0
    shmid = libc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o644)
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    try:
        res = helper(helper_home, "shm-stat", str(shmid))
    finally:
        libc.shmctl(shmid, IPC_RMID, None)
    assert_refused(res, "shm-stat", "EINVAL")


def test_cgroup_path_hidden(helper_home):
    lines = probe(helper(helper_home, "cat", "/proc/self/cgroup"), "cat").split()
    assert lines and all(line.endswith(":/") for line in lines), lines


# --- 2. id maps ---------------------------------------------------------


def test_ids_are_unprivileged(helper_home):
    out = probe(helper(helper_home, "ids"), "ids")
    assert "ids: uid=1000 euid=1000 suid=1000 gid=1000 egid=1000 sgid=1000 groups=\n" in out
    for kind in ("uid_map", "gid_map"):
        maps = [tuple(map(int, m)) for m in re.findall(rf"^{kind}: (\d+) (\d+) (\d+)$", out, re.M)]
        assert maps == [(0, 100000, 65536)], f"{kind}: {maps}"


def test_files_land_as_unprivileged_host_uid(helper_home):
    res = helper(helper_home, "write", f"{HOME}/owned", "x")
    assert res["exit_code"] == 1, res  # "ok": writing the home is allowed
    st = os.stat(os.path.join(helper_home, "owned"))
    assert (st.st_uid, st.st_gid) == (SANDBOX_HOST_UID, SANDBOX_HOST_UID)


# --- 3. mounts ------------------------------------------------------------


def test_mount_tmpfs_fails(helper_home):
    assert_refused(helper(helper_home, "mount", "/tmp"), "mount", "EPERM")


def test_bind_mount_fails(helper_home):
    assert_refused(helper(helper_home, "bind-mount", "/usr", "/tmp"), "bind-mount", "EPERM")


def test_remount_of_image_fails(helper_home):
    assert_refused(helper(helper_home, "remount", "/usr"), "remount", "EPERM")


def test_umount_of_proc_mask_fails(helper_home):
    assert_refused(helper(helper_home, "umount", "/proc/kallsyms"), "umount", "EPERM")


# The sandbox lacks CAP_SYS_ADMIN, so the kernel refuses the attempts
# above with EPERM even without the filter.  These pass arguments the
# kernel rejects first (EINVAL/ENOENT) unless the filter answers EPERM
# before it looks: they keep the mount-family rules themselves tested.
@pytest.mark.parametrize("cmd", ["mount-filtered", "umount-filtered", "open-tree-filtered",
                                 "chroot-filtered"])
def test_mount_family_filtered(helper_home, cmd):
    assert_refused(helper(helper_home, cmd), cmd, "EPERM")


def test_fsopen_fails(helper_home):
    assert_refused(helper(helper_home, "fsopen"), "fsopen", "EPERM")


def test_open_tree_clone_fails(helper_home):
    assert_refused(helper(helper_home, "open-tree", "/usr"), "open-tree", "EPERM")


def test_pivot_root_fails(helper_home):
    assert_refused(helper(helper_home, "pivot-root", "/tmp", "/tmp"), "pivot-root", "EPERM")


def test_chroot_fails(helper_home):
    assert_refused(helper(helper_home, "chroot", "/tmp"), "chroot", "EPERM")


def test_mknod_char_device_fails(helper_home):
    assert_refused(helper(helper_home, "mknod", "/tmp/mem", "c", "1", "1"), "mknod", "EPERM")


def test_mknod_host_disk_fails(helper_home):
    dev = os.stat("/").st_dev
    res = helper(helper_home, "mknod", "/tmp/disk", "b", str(os.major(dev)), str(os.minor(dev)))
    assert_refused(res, "mknod", "EPERM")


# EROFS, not EACCES: the mount itself is read-only, whoever asks.
@pytest.mark.parametrize("path", [
    "/usr/corral-escape", "/usr/bin/corral-escape", "/corral-escape", "/etc/corral-escape",
    "/etc/passwd", "/etc/ssl/corral-escape", "/dev/corral-escape",
])
def test_write_to_read_only_tree_fails(helper_home, path):
    assert_refused(helper(helper_home, "write", path, "escaped"), "write", "EROFS")


@pytest.mark.parametrize("path", [
    "/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches", "/proc/sys/kernel/core_pattern",
    "/proc/sys/net/ipv4/ip_forward",
])
def test_write_to_proc_sys_fails(helper_home, path):
    assert_refused(helper(helper_home, "write", path, "3"), "write", "EROFS")


def test_sysrq_trigger_not_writable(helper_home):
    if not os.path.exists("/proc/sysrq-trigger"):
        pytest.skip("this kernel has no /proc/sysrq-trigger")
    assert_refused(helper(helper_home, "write", "/proc/sysrq-trigger", "h"), "write", "EROFS")


def test_oom_score_adj_cannot_be_lowered(helper_home):
    res = helper(helper_home, "write", "/proc/self/oom_score_adj", "-1000")
    assert_refused(res, "write", "EACCES", "EPERM")


# Masked files read as empty (/dev/null) or not at all.  kallsyms is
# world-readable on any host, so the mask is what keeps it empty here.
@pytest.mark.parametrize("name", ["kallsyms", "kcore", "keys", "key-users", "timer_list",
                                  "sched_debug", "kpageflags", "pagetypeinfo"])
def test_proc_sensitive_files_masked(helper_home, name):
    res = helper(helper_home, "read", f"/proc/{name}")
    if res["exit_code"] == 1:
        assert "read: ok bytes=0" in res["stdout"], f"/proc/{name} leaks: {res['stdout']!r}"
    else:
        refusal(res, "read")


def test_proc_kcore_unreadable(helper_home):
    res = helper(helper_home, "read", "/proc/kcore")
    if res["exit_code"] == 1:
        assert "read: ok bytes=0" in res["stdout"], res["stdout"]
    else:
        assert_refused(res, "read", "ENOENT", "EACCES", "EPERM")


@pytest.mark.parametrize("path", ["/root", "/work", "/var/lib", "/var/log", "/etc/shadow",
                                  "/etc/sudoers", "/etc/ssh", "/boot"])
def test_host_path_invisible(helper_home, path):
    assert_refused(helper(helper_home, "stat", path), "stat", "ENOENT")


def test_host_home_contents_invisible(helper_home):
    assert probe_line(helper(helper_home, "ls", "/home"), "ls").split() == ["baponi"]
    for name in os.listdir("/home"):
        if name != "baponi":
            assert_refused(helper(helper_home, "stat", f"/home/{name}"), "stat", "ENOENT")


def test_corral_build_dir_invisible(helper_home):
    build = os.path.dirname(os.path.realpath(CORRAL))
    assert_refused(helper(helper_home, "stat", build), "stat", "ENOENT")


def test_thread_dir_host_path_invisible(helper_home):
    # The home is bound from here; its host path must not resolve inside.
    assert_refused(helper(helper_home, "stat", os.path.dirname(helper_home)), "stat", "ENOENT")


def test_host_run_invisible(helper_home):
    # No host sockets (systemd, docker, dbus) under /run or /var/run.
    inside = set(probe_line(helper(helper_home, "ls", "/run"), "ls").split())
    assert not inside & set(os.listdir("/run")), inside & set(os.listdir("/run"))
    for sock in ("/var/run/docker.sock", "/run/systemd/private", "/run/dbus/system_bus_socket"):
        assert_refused(helper(helper_home, "stat", sock), "stat", "ENOENT")


def test_sys_not_mounted(helper_home):
    assert_refused(helper(helper_home, "stat", "/sys"), "stat", "ENOENT")
    assert_refused(helper(helper_home, "stat", "/sys/fs/cgroup"), "stat", "ENOENT")


def test_dev_is_minimal(helper_home):
    names = probe_line(helper(helper_home, "ls", "/dev"), "ls").split()
    assert sorted(names) == sorted(["null", "zero", "full", "random", "urandom", "tty", "pts",
                                    "ptmx", "shm", "fd", "stdin", "stdout", "stderr"])
    # A new devpts instance: none of the host's terminals.
    assert probe_line(helper(helper_home, "ls", "/dev/pts"), "ls").split() == ["ptmx"]


def test_setuid_file_in_home_gains_nothing(helper_home):
    # Owned by the sandbox's root (host 100000), so without nosuid and
    # no_new_privs exec would really switch to uid 0 inside.
    suid = os.path.join(helper_home, "helper-suid")
    shutil.copy(os.path.join(helper_home, "helper"), suid)
    os.chown(suid, 100000, 100000)
    os.chmod(suid, 0o6755)
    res = run_json("--thread-dir", helper_home, "--", f"{HOME}/helper-suid", "ids")
    assert probe_line(res, "ids").startswith("uid=1000 euid=1000 suid=1000 gid=1000 egid=1000 "), res


def test_no_inherited_file_descriptors(helper_home):
    fds = dict(f.split("=", 1) for f in probe_line(helper(helper_home, "fds"), "fds").split())
    assert sorted(fds) == ["0", "1", "2"], f"leaked descriptors: {fds}"
    assert fds["0"] == "/dev/null"


# --- 6. privileges ------------------------------------------------------


def test_capabilities_all_empty(helper_home):
    text = probe(helper(helper_home, "caps"), "caps")
    status = dict(re.findall(r"^(\w+):\s+(\S+)$", text, re.M))
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[cap], 16) == 0, f"{cap} = {status[cap]}"
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"


def test_setuid_root_fails(helper_home):
    assert_refused(helper(helper_home, "setuid", "0"), "setuid", "EPERM")


# --- 7. seccomp: namespaces -------------------------------------------


def test_unshare_user_namespace_fails(helper_home):
    # The one that matters: unprivileged users may create user namespaces
    # on this kernel, so only the filter stops it (see the --allow-nested
    # test below, which shows it working without the rule).
    assert_refused(helper(helper_home, "unshare-user"), "unshare-user", "EPERM")


def test_unshare_mount_namespace_fails(helper_home):
    assert_refused(helper(helper_home, "unshare-mount"), "unshare-mount", "EPERM")


def test_unshare_net_namespace_fails(helper_home):
    assert_refused(helper(helper_home, "unshare-net"), "unshare-net", "EPERM")


@pytest.mark.parametrize("kind", ["pid", "ipc", "uts", "cgroup", "time"])
def test_unshare_other_namespace_fails(helper_home, kind):
    assert_refused(helper(helper_home, f"unshare-{kind}"), f"unshare-{kind}", "EPERM")


def test_unshare_user_with_others_fails(helper_home):
    res = helper(helper_home, "unshare", "user", "mount", "net", "pid")
    assert_refused(res, "unshare", "EPERM")


def test_clone_newuser_fails(helper_home):
    assert_refused(helper(helper_home, "clone-newuser"), "clone-newuser", "EPERM")


def test_clone3_returns_enosys(helper_home):
    # ENOSYS (not EPERM) so that libc falls back to clone, whose flags
    # the filter can see.
    assert_refused(helper(helper_home, "clone3"), "clone3", "ENOSYS")
    assert_refused(helper(helper_home, "clone3", "user"), "clone3", "ENOSYS")


@pytest.mark.parametrize("ns", ["net", "mnt", "user", "uts", "ipc", "pid", "cgroup"])
def test_setns_into_own_namespace_fails(helper_home, ns):
    assert_refused(helper(helper_home, "setns", f"/proc/self/ns/{ns}"), "setns", "EPERM")


@pytest.mark.parametrize("ns", ["net", "mnt", "user"])
def test_setns_into_init_namespace_fails(helper_home, ns):
    # pid 1 is the sandbox's own init (the host's is invisible); its
    # namespace files are closed to the program because init is
    # non-dumpable.
    assert_refused(helper(helper_home, "setns", f"/proc/1/ns/{ns}"), "setns", "EACCES", "EPERM")


def test_allow_nested_permits_setns_into_own_namespaces(helper_home):
    # With the opt-in, a nested sandbox may join namespaces it created
    # itself (bubblewrap does); without it, setns is refused (tests above).
    res = helper(helper_home, "setns-child", extra=("--allow-nested",))
    assert res["exit_code"] == 1 and "setns-child: ok" in res["stdout"], res


def test_allow_nested_runs_bubblewrap(helper_home):
    # DESIGN.md 4.6: an agent's own bubblewrap works when the operator opts
    # in, and is refused otherwise.
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bubblewrap is not installed on this host")
    argv = ["--", "bwrap", "--unshare-all", "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--dev", "/dev", "--tmpfs", "/tmp",
            "sh", "-c", "echo nested $(id -u)"]
    res = run_json("--allow-nested", *argv)
    assert res["status"] == "success" and res["stdout"] == "nested 1000\n", res
    res = run_json(*argv)
    assert res["status"] == "failed" and "nested" not in res["stdout"], res


def test_allow_nested_permits_user_namespace(helper_home):
    # The opt-in really lifts the rule: the tests above can fail.
    for cmd in ("unshare-user", "clone-newuser"):
        res = helper(helper_home, cmd, extra=("--allow-nested",))
        assert res["exit_code"] == 1 and f"{cmd}: ok" in res["stdout"], res


# --- 7. seccomp: kernel attack surface ----------------------------------


def test_keyctl_fails(helper_home):
    assert_refused(helper(helper_home, "keyctl"), "keyctl", "EPERM")


def test_add_key_fails(helper_home):
    assert_refused(helper(helper_home, "add-key"), "add-key", "EPERM")


def test_request_key_fails(helper_home):
    # Unfiltered, the kernel answers ENOKEY.
    assert_refused(helper(helper_home, "request-key"), "request-key", "EPERM")


def test_bpf_fails(helper_home):
    assert_refused(helper(helper_home, "bpf"), "bpf", "EPERM")


def test_perf_event_open_fails(helper_home):
    assert_refused(helper(helper_home, "perf"), "perf", "EPERM")


def test_userfaultfd_fails(helper_home):
    assert_refused(helper(helper_home, "userfaultfd"), "userfaultfd", "EPERM")


def test_io_uring_setup_fails(helper_home):
    assert_refused(helper(helper_home, "io-uring"), "io-uring", "EPERM")


def test_vsock_socket_fails(helper_home):
    assert_refused(helper(helper_home, "vsock"), "vsock", "EAFNOSUPPORT")


def test_vsock_socket_with_high_bits_fails(helper_home):
    assert_refused(helper(helper_home, "vsock-highbits"), "vsock-highbits", "EAFNOSUPPORT")


def test_open_by_handle_at_fails(helper_home):
    assert_refused(helper(helper_home, "open-by-handle", "/usr"), "open-by-handle", "EPERM")


def test_name_to_handle_at_fails(helper_home):
    assert_refused(helper(helper_home, "name-to-handle", "/usr"), "name-to-handle", "EPERM")


def test_init_module_fails(helper_home):
    # Unfiltered: EPERM for lack of CAP_SYS_MODULE, or ENOSYS on kernels
    # without modules.
    assert_refused(helper(helper_home, "init-module"), "init-module", "EPERM")


def test_finit_module_fails(helper_home):
    assert_refused(helper(helper_home, "finit-module"), "finit-module", "EPERM")


def test_delete_module_fails(helper_home):
    assert_refused(helper(helper_home, "delete-module"), "delete-module", "EPERM")


def test_kexec_load_fails(helper_home):
    assert_refused(helper(helper_home, "kexec"), "kexec", "EPERM")


def test_reboot_fails(helper_home):
    assert_refused(helper(helper_home, "reboot"), "reboot", "EPERM")


def test_clock_settime_fails(helper_home):
    # An invalid time, which the kernel checks (EINVAL) before the
    # capability: EPERM comes from the filter.
    assert_refused(helper(helper_home, "settime"), "settime", "EPERM")


def test_tiocsti_fails(helper_home):
    # On a pty that is our controlling terminal: unfiltered, this works.
    assert_refused(helper(helper_home, "tiocsti"), "tiocsti", "EPERM")


def test_tiocsti_with_high_bits_fails(helper_home):
    assert_refused(helper(helper_home, "tiocsti-highbits"), "tiocsti-highbits", "EPERM")


def test_tioclinux_fails(helper_home):
    # Unfiltered, a pty answers ENOTTY.
    assert_refused(helper(helper_home, "tioclinux"), "tioclinux", "EPERM")


@pytest.mark.parametrize("abi", ["int80", "x32"])
def test_foreign_syscall_abi_kills_process(helper_home, abi):
    res = helper(helper_home, abi)
    assert f"{abi}: ok" not in res["stdout"], f"ESCAPE: {abi} syscall returned: {res['stdout']!r}"
    assert f"{abi}: trying" in res["stdout"], res
    assert res["signal"] == signal.SIGSYS and res["status"] == "failed", res


# --- the caller's terminal and the supervisor's memory ----------------------

def test_no_controlling_terminal():
    # The sandbox runs in a session of its own: /dev/tty reaches no terminal
    # (bubblewrap's CVE-2017-5226 was a sandbox typing into its caller's).
    import pty
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(CORRAL, [CORRAL, "run", "--json", "--", "sh", "-c",
                          "echo x > /dev/tty && echo TTY-OPEN; ps -o tty= -p $$"])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    start = text.index("{")
    res = __import__("json").loads(text[start:text.rindex("}") + 1])
    assert "TTY-OPEN" not in res["stdout"], res
    assert res["stdout"].strip() == "?", res


def test_init_command_line_shows_nothing_of_the_supervisor():
    marker = "corral-argv-marker-" + secrets.token_hex(4)
    res = run_json("--env", f"X={marker}", "--", "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline")
    assert marker not in res["stdout"] and "run" not in res["stdout"], res
