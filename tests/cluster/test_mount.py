"""mount and umount: options, bad devices, clean unmount that waits for the daemon."""
import hashlib
import os
import subprocess
import time

from harness import ScoutFS, mount_argv, mountinfo_fstype, run, tool, umount_argv


def digest(path, length=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(length))
    return h.hexdigest()


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
    fs.umount(0)
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
        "ro": "not supported yet",
    }
    for opt, msg in cases.items():
        p = try_mount(fs, f"{base},{opt}")
        assert p.returncode == 32, (opt, p.stderr)
        assert msg in p.stderr, (opt, p.stderr)
    # the daemon never ran: nothing was left mounted or running
    assert mountinfo_fstype(os.path.join(fs.dir, "mnt-try")) is None


def test_missing_metadev_and_unconfigured_slot(fs):
    p = try_mount(fs, "quorum_slot_nr=0")
    assert p.returncode == 32 and "metadev_path= option" in p.stderr
    p = try_mount(fs, f"metadev_path={fs.meta},quorum_slot_nr=5")
    assert p.returncode == 32
    assert "quorum_slot_nr=5 is not a configured quorum slot (configured: 0)" in p.stderr


def test_bad_devices_fail_clearly_and_write_nothing(fs_dir):
    fs = ScoutFS(fs_dir)
    fs.mkfs()
    other = os.path.join(fs_dir, "other")
    run(["truncate", "-s", "1G", other])
    before = {p: digest(p) for p in (fs.meta, fs.data, other)}
    cases = [
        (f"metadev_path={fs.data},quorum_slot_nr=0", fs.meta, "swapped"),
        (f"metadev_path={fs.meta},quorum_slot_nr=0", fs.meta, "same device"),
        (f"metadev_path={fs.data},quorum_slot_nr=0", fs.data, "same device"),
        (f"metadev_path={fs.meta},quorum_slot_nr=0", other, "does not contain a scoutfs"),
        (f"metadev_path={other},quorum_slot_nr=0", fs.data, "does not contain a scoutfs"),
        (f"metadev_path={fs_dir}/nope,quorum_slot_nr=0", fs.data, "cannot open metadata device"),
    ]
    for opts, data, msg in cases:
        p = try_mount(fs, opts, data=data)
        assert p.returncode == 32, (opts, data, p.stderr)
        assert msg in p.stderr, (opts, data, p.stderr)
    after = {p: digest(p) for p in (fs.meta, fs.data, other)}
    assert before == after


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
    d = subprocess.Popen([tool("scoutfsd"), "-o", f"metadev_path={fs.meta},quorum_slot_nr=0",
                          fs.data, mnt], stderr=subprocess.PIPE, text=True)
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
