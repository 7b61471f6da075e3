"""mount and umount: options, bad devices, clean unmount that waits for the daemon."""
import os
import signal
import subprocess
import time

import pytest

from harness import (LOG_DIR, RUN_DIR, ScoutFS, fingerprint, live_daemons, mount_argv,
                     mountinfo_fstype, run, scoutfs_cmd, tool, umount_argv)


def try_mount(fs, opts, data=None, mnt=None):
    mnt = mnt or os.path.join(fs.dir, "mnt-try")
    os.makedirs(mnt, exist_ok=True)
    p = run(mount_argv(opts, data or fs.data, mnt), check=False, timeout=60)
    if p.returncode == 0:
        run(umount_argv(mnt))
    return p


def test_umount_waits_for_the_daemon_and_remount_works_at_once(fs):
    m = fs.mount(0)
    with open(os.path.join(m.path, "file"), "w") as f:
        f.write("hello")
    pid = m.daemon_pid()
    assert pid
    p = run(umount_argv(m.path))
    assert p.stdout == "" and p.stderr == ""
    m.mounted = False
    # umount returned only after the daemon synced, said farewell and exited
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert "unmounted cleanly" in m.log()
    assert mountinfo_fstype(m.path) is None
    fs.mount(0)
    with open(os.path.join(m.path, "file")) as f:
        assert f.read() == "hello"


def test_unknown_and_malformed_options(fs):
    base = f"metadev_path={fs.meta},quorum_slot_nr=0"
    cases = {
        "bogus": "Unknown or malformed option",
        "bogus=1": "Unknown or malformed option",
        "lock_idle_count": "Unknown or malformed option",
        "lock_idle_count=1": "lock_idle_count=1: must be a number from 32 to 100000",
        "quorum_heartbeat_timeout_ms=1000": "from 2000 to 60000",
        "quorum_heartbeat_timeout_ms=1000000": "from 2000 to 60000",
        "orphan_scan_delay_ms=50": "from 100 to 60000",
        "log_merge_wait_timeout_ms=junk": "from 100 to 60000",
        "ino_alloc_per_lock=0": "from 1 to 1024",
        "data_prealloc_contig_only=2": "from 0 to 1",
        "tcp_keepalive_timeout_ms=3000": "tcp_keepalive_timeout_ms",
        "quorum_slot_nr=1": "quorum_slot_nr may only be given once",
        "orphan_scan_delay_ms=200,orphan_scan_delay_ms=300": "may only be given once",
        "lock_idle_count=100001": "from 32 to 100000",
        "ino_alloc_per_lock=1025": "from 1 to 1024",
        "data_prealloc_blocks=0": "from 1 to 4503599627370495",
        "data_prealloc_blocks=4503599627370496": "from 1 to 4503599627370495",
        "log_merge_wait_timeout_ms=60001": "from 100 to 60000",
        "metadev_path": "Unknown or malformed option",
        "metadev_path=": "Unknown or malformed option",
        "quorum_heartbeat_timeout_ms=-1": "from 2000 to 60000",
        "ro": "not supported yet",
    }
    for opt, msg in cases.items():
        p = try_mount(fs, f"{base},{opt}")
        assert p.returncode == 32, (opt, p.stderr)
        assert msg in p.stderr, (opt, p.stderr)
    for slot in ("15", "-1", "x", ""):
        p = try_mount(fs, f"metadev_path={fs.meta},quorum_slot_nr={slot}")
        assert p.returncode == 32 and "a slot number from 0 to 14" in p.stderr, p.stderr
    # the daemon never ran: nothing was left mounted or running
    assert mountinfo_fstype(os.path.join(fs.dir, "mnt-try")) is None


def test_missing_metadev_and_unconfigured_slot(fs):
    p = try_mount(fs, "quorum_slot_nr=0")
    assert p.returncode == 32 and "metadev_path= option" in p.stderr
    p = try_mount(fs, f"metadev_path={fs.meta},quorum_slot_nr=5")
    assert p.returncode == 32
    assert "quorum_slot_nr=5 is not a configured quorum slot (configured: 0)" in p.stderr


def test_extreme_option_values_mount(fs):
    m = fs.mount(0, opts="lock_idle_count=32,ino_alloc_per_lock=1,data_prealloc_blocks=1,"
                      "data_prealloc_contig_only=0,orphan_scan_delay_ms=100,"
                      "log_merge_wait_timeout_ms=60000,tcp_keepalive_timeout_ms=3001,"
                      "noacl,nosuid,nodev,noexec,rw,relatime,_netdev,x-systemd.foo=1")
    for i in range(50):
        with open(os.path.join(m.path, f"f{i}"), "w") as f:
            f.write("x" * i)
    fs.umount(0)
    fs.assert_clean()


def test_tcp_keepalive_timeout_reaches_the_sockets(fs):
    m = fs.mount(0, opts="tcp_keepalive_timeout_ms=7000")
    log = m.log()
    assert "client connected" in log and "(tcp keepalive timeout 7000 ms)" in log
    assert "server accepted" in log
    for line in log.splitlines():
        if "client connected" in line or "server accepted" in line:
            assert line.endswith("(tcp keepalive timeout 7000 ms)"), line


def test_bad_devices_fail_clearly_and_write_nothing(fs):
    fs_dir = fs.dir
    other = os.path.join(fs_dir, "other")
    run(["truncate", "-s", "1G", other])
    meta_link = os.path.join(fs_dir, "meta-link")
    os.symlink(fs.meta, meta_link)
    devices = (fs.meta, fs.data, other)
    before = {p: fingerprint(p) for p in devices}
    cases = [
        (f"metadev_path={fs.data},quorum_slot_nr=0", fs.meta, "swapped"),
        (f"metadev_path={fs.meta},quorum_slot_nr=0", fs.meta, "same device"),
        (f"metadev_path={fs.data},quorum_slot_nr=0", fs.data, "same device"),
        (f"metadev_path={meta_link},quorum_slot_nr=0", fs.meta, "same device"),
        (f"metadev_path={fs.meta},quorum_slot_nr=0", other, "does not contain a scoutfs"),
        (f"metadev_path={other},quorum_slot_nr=0", fs.data, "does not contain a scoutfs"),
        (f"metadev_path={fs_dir}/nope,quorum_slot_nr=0", fs.data, "cannot open metadata device"),
        (f"metadev_path={fs.meta},quorum_slot_nr=0", f"{fs_dir}/nope", "cannot open data device"),
        (f"metadev_path=/dev/null,quorum_slot_nr=0", fs.data, "cannot open metadata device"),
        (f"metadev_path={fs_dir},quorum_slot_nr=0", fs.data, "cannot open metadata device"),
        (f"metadev_path={fs.meta},quorum_slot_nr=0,bogus", fs.data, "Unknown or malformed"),
    ]
    for opts, data, msg in cases:
        p = try_mount(fs, opts, data=data)
        assert p.returncode == 32, (opts, data, p.stderr)
        assert msg in p.stderr, (opts, data, p.stderr)
    after = {p: fingerprint(p) for p in devices}
    assert before == after
    # and the devices still mount
    fs.mount(0)


def test_truncated_devices_fail_clearly_and_write_nothing(fs):
    opts = f"metadev_path={fs.meta},quorum_slot_nr=0"
    cases = [
        (fs.meta, "1G", "records 32768 metadata blocks but"),
        (fs.data, "4G", "records 2097152 data blocks but"),
        (fs.meta, "64K", "too small to hold a scoutfs super block"),
        (fs.data, "0", "too small to hold a scoutfs super block"),
    ]
    for path, size, msg in cases:
        full = os.path.getsize(path)
        os.truncate(path, int(size[:-1]) << {"K": 10, "G": 30}[size[-1]] if size != "0" else 0)
        before = {p: fingerprint(p) for p in (fs.meta, fs.data)}
        p = try_mount(fs, opts)
        assert p.returncode == 32, (path, size, p.stderr)
        assert msg in p.stderr, (path, size, p.stderr)
        assert {p: fingerprint(p) for p in (fs.meta, fs.data)} == before
        os.truncate(path, full)
        if size not in ("1G", "4G"):
            fs.mkfs()                 # the super was cut off: start over
    fs.mount(0)


def test_meta_and_data_of_different_filesystems(fs_dir):
    a = ScoutFS(os.path.join(fs_dir))
    a.mkfs()
    os.makedirs(os.path.join(fs_dir, "b"))
    b = ScoutFS(os.path.join(fs_dir, "b"))
    b.mkfs()
    p = try_mount(a, f"metadev_path={a.meta},quorum_slot_nr=0", data=b.data)
    assert p.returncode == 32 and "belong to different filesystems" in p.stderr


def test_mount_point_must_be_a_directory(fs):
    p = run(mount_argv(f"metadev_path={fs.meta}", fs.data, os.path.join(fs.dir, "nope")),
            check=False)
    assert p.returncode != 0


def test_foreground_daemon_logs_to_stderr(fs):
    mnt = os.path.join(fs.dir, "fg")
    os.makedirs(mnt)
    d = subprocess.Popen([tool("scoutfsd"), "-f", "-o",
                          f"metadev_path={fs.meta},quorum_slot_nr=0", fs.data, mnt],
                         stderr=subprocess.PIPE, text=True)
    for _ in range(200):
        if mountinfo_fstype(mnt) == "fuse.scoutfs":
            break
        time.sleep(0.05)
    assert mountinfo_fstype(mnt) == "fuse.scoutfs"
    os.mkdir(os.path.join(mnt, "d"))
    run(umount_argv(mnt))
    err = d.communicate(timeout=60)[1]
    assert d.returncode == 0
    assert "mounted" in err and "unmounted cleanly" in err and "said farewell" in err
    # a foreground daemon that can't mount says why on stderr and exits 1
    d = subprocess.run([tool("scoutfsd"), "-f", "-o", f"metadev_path={fs.data}", fs.meta, mnt],
                       capture_output=True, text=True, timeout=60)
    assert d.returncode == 1 and "swapped" in d.stderr
    d = subprocess.run([tool("scoutfsd"), "--bogus"], capture_output=True, text=True)
    assert d.returncode == 64 and "Usage: scoutfsd" in d.stderr


def test_second_mount_of_a_slot_fails(fs):
    fs.mount(0)
    p = try_mount(fs, f"metadev_path={fs.meta},quorum_slot_nr=0,quorum_heartbeat_timeout_ms=2000")
    assert p.returncode == 32
    assert "slot 0" in p.stderr


def test_sigterm_unmounts_cleanly(fs):
    m = fs.mount(0)
    with open(os.path.join(m.path, "f"), "w") as f:
        f.write("x" * 100)
    pid = m.daemon_pid()
    os.kill(pid, 15)
    for _ in range(200):
        if not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z":
            break
        time.sleep(0.05)
    assert "unmounted cleanly" in m.log()
    m.mounted = False
    fs.mount(0)
    with open(os.path.join(m.path, "f")) as f:
        assert f.read() == "x" * 100


def interrupt_mount(fs, opts, wait_for):
    """Start mounting in the background, wait for the daemon to log wait_for, then ^C the
    mount helper: it must fail with "interrupted", and leave no daemon and no mount."""
    m = fs.mounts[0] if fs.mounts else None
    mnt = os.path.join(fs.dir, "mnt-intr")
    os.makedirs(mnt, exist_ok=True)
    log = os.path.join(LOG_DIR, "scoutfsd-" + mnt.lstrip("/").replace("/", "-") + ".log")
    start = os.path.getsize(log) if os.path.exists(log) else 0
    # a process group of its own, as a terminal's foreground job: ^C reaches mount(8) and
    # the mount.scoutfs it runs alike
    p = subprocess.Popen(mount_argv(opts, fs.data, mnt), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for _ in range(300):
            if os.path.exists(log):
                with open(log) as f:
                    f.seek(start)
                    if wait_for in f.read():
                        break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the daemon never logged {wait_for!r}")
        time.sleep(0.5)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    # mount(8) dies of the ^C itself; its helper (run directly with a build) exits 32
    assert p.returncode in (32, -signal.SIGINT), err
    if p.returncode == 32:
        assert "interrupted" in err, err
    assert mountinfo_fstype(mnt) is None
    with open(log) as f:
        f.seek(start)
        tail = f.read()
    assert "mount failed: interrupted" in tail, tail
    return tail


def test_interrupting_a_mount_waiting_for_a_server(fs):
    # no quorum slot: the mount waits for some member to be elected, forever
    interrupt_mount(fs, f"metadev_path={fs.meta}", "waiting for a server")
    fs.mount(0)


@pytest.mark.skipif(not os.environ.get("SCOUTFS_SLOW_TESTS"),
                    reason="about a minute of recovery timeouts (SCOUTFS_SLOW_TESTS=1 runs it)")
def test_interrupting_a_mount_waiting_for_recovery(fs):
    # a crashed mount and no fence agent: the next server can't finish recovering it and
    # grants no lock (after 15 s of trying to fence the crashed leader)
    fs.mount(0)
    fs.kill(0)
    interrupt_mount(fs, f"metadev_path={fs.meta},quorum_slot_nr=0,"
                        f"quorum_heartbeat_timeout_ms={fs.hb_ms}",
                    "waiting for the server to grant the first lock")
    fs.assert_clean()
    fs.start_fenced()
    fs.mount(0)
    fs.umount(0)
    fs.assert_clean()


def test_a_failed_clean_unmount_is_reported(fs):
    """umount fails, and says why, when the last commit can't be written; umount -f (here:
    SIGUSR1) gives up the farewell that no server will answer."""
    fs.start_fenced()
    m = fs.mount(0)
    m.wait_server_up()
    with open(os.path.join(m.path, "committed"), "w") as f:
        f.write("safe")
    run(scoutfs_cmd("sync", "-p", m.path))
    with open(os.path.join(m.path, "uncommitted"), "w") as f:
        f.write("lost")
    pid = m.daemon_pid()
    run(scoutfs_cmd("inject-fault", "-p", m.path, "-c", "0", "meta", "write", "fail"))
    p = subprocess.Popen(umount_argv(m.path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        for _ in range(300):
            if "final commit at unmount failed" in m.log():
                break
            time.sleep(0.1)
        # every metadata write fails: the server stopped, nobody will answer the farewell
        time.sleep(1)
        assert p.poll() is None
        os.kill(pid, signal.SIGUSR1)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 32, err
    assert "the clean unmount failed: the last commit failed (Input/output error)" in err
    assert "unmounted cleanly" not in m.log()
    m.mounted = False
    fs.assert_clean()
    fs.mount(0)
    assert os.listdir(m.path) == ["committed"]


def mount_options(m, *changes, prefix=(), check=True):
    p = run(list(prefix) + scoutfs_cmd("mount-options", "-p", m, *changes), check=check)
    return p if not check else dict(l.split("=", 1) if "=" in l else (l, "")
                                    for l in p.stdout.splitlines())


def test_mount_options_are_shown_and_changed_while_mounted(fs):
    m = fs.mount(0, opts="lock_idle_count=500,tcp_keepalive_timeout_ms=9000").path
    o = mount_options(m)
    assert list(o) == ["acl", "data_prealloc_blocks", "data_prealloc_contig_only",
                       "ino_alloc_per_lock", "lock_idle_count", "log_merge_wait_timeout_ms",
                       "metadev_path", "orphan_scan_delay_ms", "quorum_heartbeat_timeout_ms",
                       "quorum_slot_nr", "tcp_keepalive_timeout_ms"]
    assert o["lock_idle_count"] == "500" and o["tcp_keepalive_timeout_ms"] == "9000"
    assert o["metadev_path"] == fs.meta and o["quorum_slot_nr"] == "0"
    assert o["orphan_scan_delay_ms"] == "10000" and o["data_prealloc_blocks"] == "2048"

    # a change takes effect: with a short delay the orphan scan runs again and again
    def scans():
        c = dict(l.split() for l in run(scoutfs_cmd("counters", "-p", m)).stdout.splitlines())
        return int(c["orphan_scan"])
    before = scans()
    o = mount_options(m, "orphan_scan_delay_ms=100", "lock_idle_count=64",
                      "quorum_heartbeat_timeout_ms=3000")
    assert o["orphan_scan_delay_ms"] == "100" and o["lock_idle_count"] == "64"
    assert o["quorum_heartbeat_timeout_ms"] == "3000"
    time.sleep(1.5)
    assert scans() - before >= 5
    assert "mount options changed: orphan_scan_delay_ms=100" in fs.mounts[0].log()

    # refused changes change nothing, and say why
    for bad, why in (("lock_idle_count=1", "lock_idle_count=1: must be a number from 32"),
                     ("metadev_path=/x", "metadev_path can't be changed while mounted"),
                     ("quorum_slot_nr=1", "quorum_slot_nr can't be changed while mounted"),
                     ("tcp_keepalive_timeout_ms=5000", "can't be changed while mounted"),
                     ("acl=0", "acl can't be changed while mounted"),
                     ("bogus=1", "Unknown or malformed option: 'bogus=1'")):
        p = mount_options(m, "ino_alloc_per_lock=7", bad, check=False)
        assert p.returncode == 1 and why in p.stderr, (bad, p.stderr)
        assert p.stdout == ""
    p = mount_options(m, "noequals", check=False)
    assert p.returncode == 64 and "is not NAME=VALUE" in p.stderr
    assert mount_options(m)["ino_alloc_per_lock"] == "1024"

    # anyone may look; only CAP_SYS_ADMIN may change
    os.chmod(fs.dir, 0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    assert mount_options(m, prefix=nobody)["lock_idle_count"] == "64"
    p = mount_options(m, "lock_idle_count=100", prefix=nobody, check=False)
    assert p.returncode == 1 and "Operation not permitted" in p.stderr
    # changes last until unmount
    fs.umount(0)
    fs.mount(0)
    assert mount_options(m)["orphan_scan_delay_ms"] == "10000"


def test_a_killed_daemons_run_files_are_swept(fs):
    """A daemon killed with SIGKILL leaves its pid file and control socket; the next mount
    removes them (the fence agent would keep trying that socket), and only them."""
    fs.start_fenced()  # the next server fences the killed mount
    m = fs.mount(0)
    rid = run(scoutfs_cmd("statfs", "-p", m.path, "-s", "rid")).stdout.strip()
    rid = f"{int(rid, 16):016x}"  # statfs prints it in hex
    files = [os.path.join(RUN_DIR, f"rid-{rid}.{ext}") for ext in ("pid", "sock")]
    assert all(os.path.exists(f) for f in files), os.listdir(RUN_DIR)
    fs.kill(0)
    m = fs.mount(0)
    # swept by this mount's daemon (or by any other that started since: other tests' too)
    assert not any(os.path.exists(f) for f in files)
    assert any(pid == m.daemon_pid() for pid, _ in live_daemons())
