"""
The control socket as seen by users without privileges: every local user may connect, but a
command that acts on a file needs the file opened by the caller (so file permissions decide),
and the debugging and administrative commands need CAP_SYS_ADMIN, checked from the caller's
credentials (SO_PEERCRED), not from anything the caller sends.
"""
import os
import socket
import struct

from harness import recv_exact, run, scoutfs_cmd

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# root, but without CAP_SYS_ADMIN in any set
ROOT_WITHOUT_ADMIN = ["setpriv", "--inh-caps=-sys_admin", "--ambient-caps=-sys_admin",
                      "--bounding-set=-sys_admin"]

PRIVILEGED = [["client-locks"], ["server-locks"], ["quorum-status"], ["force-merge"],
              ["inject-fault", "meta", "write", "clear"]]


def as_user(prefix, *args):
    return run(prefix + scoutfs_cmd(*args), check=False)


def setup_files(fs):
    m = fs.mounts[0].path
    # the test directory is private to root by default: let others reach the mount
    os.chmod(fs.dir, 0o755)
    os.chmod(m, 0o755)
    with open(f"{m}/public", "w") as f:
        f.write("for everyone")
    os.chmod(f"{m}/public", 0o644)
    with open(f"{m}/private", "w") as f:
        f.write("root only")
    os.chmod(f"{m}/private", 0o600)
    os.mkdir(f"{m}/closed", 0o700)
    with open(f"{m}/closed/inside", "w") as f:
        f.write("unreachable")
    os.chmod(f"{m}/closed/inside", 0o644)
    run(scoutfs_cmd("sync", "-p", m))
    return m


def test_unprivileged_user_is_limited_by_file_permissions(mounted):
    m = setup_files(mounted)
    p = as_user(NOBODY, "stat", f"{m}/public")
    assert p.returncode == 0 and p.stdout.startswith("meta_seq"), p.stderr
    for path in (f"{m}/private", f"{m}/closed/inside"):
        p = as_user(NOBODY, "stat", path)
        assert p.returncode == 1, (path, p.stdout)
        assert "Permission denied" in p.stderr, (path, p.stderr)
        assert p.stdout == ""
    # what the original let anyone do: statfs, walking the indexes, counters, sync
    for args in (["statfs", "-p", m], ["walk-inodes", "-p", m, "meta_seq", "0", "-1"],
                 ["counters", "-p", m], ["sync", "-p", m]):
        p = as_user(NOBODY, *args)
        assert p.returncode == 0, (args, p.stderr)


def test_privileged_commands_need_cap_sys_admin(mounted):
    m = setup_files(mounted)
    before = int(dict(l.split() for l in run(scoutfs_cmd("counters", "-p", m)).stdout
                      .splitlines())["control_eperm"])
    refused = 0
    for prefix in (NOBODY, ROOT_WITHOUT_ADMIN):
        for args in PRIVILEGED:
            p = as_user(prefix, *args[:1], "-p", m, *args[1:])
            assert p.returncode == 1, (prefix, args, p.stdout)
            assert "Operation not permitted" in p.stderr, (prefix, args, p.stderr)
            refused += 1
        # and root without CAP_SYS_ADMIN may still read its own files
        if prefix is ROOT_WITHOUT_ADMIN:
            assert as_user(prefix, "stat", f"{m}/private").returncode == 0
    after = int(dict(l.split() for l in run(scoutfs_cmd("counters", "-p", m)).stdout
                     .splitlines())["control_eperm"])
    assert after - before == refused
    # with the capability they work
    for args in PRIVILEGED:
        run(scoutfs_cmd(*args[:1], "-p", m, *args[1:]))


def raw_call(sock_path, cmd, fd=None):
    """One request on the control socket, by hand: the final reply's status."""
    hdr = struct.pack("<IHHIIiI", 0x5c0c7a1b, 1, cmd, 0, 0, 0, 0)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock_path)
        if fd is None:
            s.sendall(hdr)
        else:
            s.sendmsg([hdr], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
        while True:
            buf = recv_exact(s, 24, "the daemon")
            magic, version, rcmd, flags, length, status, _ = struct.unpack("<IHHIIiI", buf)
            recv_exact(s, length, "the daemon")
            if not flags & 1:
                return status


def test_stat_needs_a_descriptor_of_a_file_in_the_mount(mounted):
    m = setup_files(mounted)
    st = os.stat(m)
    sock = os.path.join(os.environ.get("SCOUTFS_RUN_DIR", "/run/scoutfs"),
                        f"mnt-{os.major(st.st_dev)}:{os.minor(st.st_dev)}.sock")
    CONTROL_CMD_STAT = 32
    assert raw_call(sock, CONTROL_CMD_STAT) == -9          # EBADF: no descriptor
    fd = os.open("/etc/hostname", os.O_RDONLY)
    try:
        assert raw_call(sock, CONTROL_CMD_STAT, fd) == -18  # EXDEV: another filesystem
    finally:
        os.close(fd)
    fd = os.open(f"{m}/public", os.O_RDONLY)
    try:
        assert raw_call(sock, CONTROL_CMD_STAT, fd) == 0
    finally:
        os.close(fd)
    assert raw_call(sock, 127) == -95                      # EOPNOTSUPP: no such command
