"""mkfs: what it creates, and the clear errors it gives instead of damaging anything."""
import os
import pty
import signal
import subprocess
import time

import pytest

from harness import LoopDevice, ScoutFS, fingerprint, run, scoutfs_cmd, tool


def mkfs(fs, *args):
    return run([tool("scoutfs"), "mkfs"] + list(args), check=False)


def test_mkfs_summary_and_mount(fs):
    p = fs.mkfs()
    assert "Created scoutfs filesystem" in p.stdout
    assert f"0: 127.0.0.1:{fs.ports[0]}" in p.stdout
    fs.mount(0)
    assert os.listdir(fs.mounts[0].path) == []


def test_refuses_existing_filesystem_without_force(fs):
    p = mkfs(fs, "-A", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode != 0
    assert "already holds scoutfs filesystem" in p.stderr and "-f" in p.stderr
    p = mkfs(fs, "-A", "-f", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 0


def test_refuses_small_devices_without_A(fs_dir):
    fs = ScoutFS(fs_dir)
    p = mkfs(fs, *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 1
    assert "use -A" in p.stderr
    assert "need at least" in p.stderr


def test_refuses_tiny_devices_even_with_A(fs_dir):
    fs = ScoutFS(fs_dir, meta_size="8M", data_size="8M")
    p = mkfs(fs, "-A", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 1
    assert "too small" in p.stderr


def test_bad_quorum_slots(fs_dir):
    fs = ScoutFS(fs_dir)
    bad = {
        ("-Q", "0,127.0.0.1"): "must be NR,ADDR,PORT",
        ("-Q", "15,127.0.0.1,5000"): "from 0 to 14",
        ("-Q", "0,not.an.addr,5000"): "not an IPv4 address",
        ("-Q", "0,0.0.0.0,5000"): "not a host address",
        ("-Q", "0,127.0.0.1,0"): "from 1 to 65535",
        ("-Q", "0,127.0.0.1,70000"): "from 1 to 65535",
        ("-Q", "0,127.0.0.1,5000", "-Q", "0,127.0.0.1,5001"): "more than once",
        ("-Q", "0,127.0.0.1,5000", "-Q", "1,127.0.0.1,5000"): "same address",
    }
    for args, msg in bad.items():
        p = mkfs(fs, "-A", *args, fs.meta, fs.data)
        assert p.returncode == 64, (args, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
    p = mkfs(fs, "-A", fs.meta, fs.data)
    assert p.returncode == 64 and "quorum slot" in p.stderr


def test_same_device_for_meta_and_data(fs_dir):
    fs = ScoutFS(fs_dir)
    p = mkfs(fs, "-A", *fs.quorum_args(), fs.meta, fs.meta)
    assert p.returncode == 1
    assert "same device" in p.stderr
    link = os.path.join(fs_dir, "meta-link")
    os.symlink(fs.meta, link)
    p = mkfs(fs, "-A", *fs.quorum_args(), fs.meta, link)
    assert p.returncode == 1 and "same device" in p.stderr


def test_missing_device(fs_dir):
    fs = ScoutFS(fs_dir)
    p = mkfs(fs, "-A", *fs.quorum_args(), os.path.join(fs_dir, "nope"), fs.data)
    assert p.returncode == 1
    assert "cannot open metadata device" in p.stderr


def test_max_sizes(fs_dir):
    fs = ScoutFS(fs_dir)
    p = mkfs(fs, "-A", "-m", "1G", "-d", "2G", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 0, p.stderr
    assert "16384 (1024 MiB)" in p.stdout
    assert "524288 (2048 MiB)" in p.stdout


def test_format_version(fs):
    p = mkfs(fs, "-A", "-f", "-V", "3", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 64 and "not supported" in p.stderr
    p = mkfs(fs, "-A", "-f", "-V", "1", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 0 and "format version:       1" in p.stdout
    fs.mount(0)
    with open(os.path.join(fs.mounts[0].path, "f"), "w") as f:
        f.write("v1")
    fs.umount(0)
    fs.mount(0)
    with open(os.path.join(fs.mounts[0].path, "f")) as f:
        assert f.read() == "v1"
    assert "fmt_vers 1 " in fs.scoutfs("print", "-S", fs.meta).stdout


def test_refusals_write_nothing(fs_dir):
    fs = ScoutFS(fs_dir)
    fs.mkfs()
    before = [fingerprint(p) for p in (fs.meta, fs.data)]
    for args in (["-A", *fs.quorum_args()],                      # existing filesystem
                 ["-f", *fs.quorum_args()],                      # below 64 GiB without -A
                 ["-A", "-f", "-Q", "0,127.0.0.1"],              # malformed slot
                 ["-A", "-f", "-Q", "0,127.0.0.1,5000", "-Q", "0,127.0.0.1,5001"],
                 ["-A", "-f", "-V", "9", *fs.quorum_args()],
                 ["-A", "-f", "-m", "1K", *fs.quorum_args()]):
        p = mkfs(fs, *args, fs.meta, fs.data)
        assert p.returncode != 0, (args, p.stdout)
        assert p.stdout == "", (args, p.stdout)
    assert [fingerprint(p) for p in (fs.meta, fs.data)] == before


def test_sizes(fs_dir):
    fs = ScoutFS(fs_dir, meta_size="3G", data_size="3G")
    for opt in ("-m", "-d"):
        for bad in ("0", "10X", "1GiB", "1.5G", "-1", "", "99999999999P"):
            p = mkfs(fs, "-A", "-f", opt, bad, *fs.quorum_args(), fs.meta, fs.data)
            assert p.returncode == 64, (opt, bad, p.stderr)
            assert "size" in p.stderr and "--help" in p.stderr, (opt, bad, p.stderr)
    # every suffix, upper or lower case; a size beyond the device uses the whole device
    for m, d, meta_blocks, data_blocks in (("1048576K", "2048m", 16384, 524288),
                                           ("2g", "1G", 32768, 262144),
                                           ("1T", "1P", 49152, 786432)):
        p = mkfs(fs, "-A", "-f", "-m", m, "-d", d, *fs.quorum_args(), fs.meta, fs.data)
        assert p.returncode == 0, p.stderr
        assert f"64KB metadata blocks: {meta_blocks} " in p.stdout, p.stdout
        assert f"4KB data blocks:      {data_blocks} " in p.stdout, p.stdout
    fs.assert_clean()


def test_same_file_through_a_hard_link(fs_dir):
    fs = ScoutFS(fs_dir)
    link = os.path.join(fs_dir, "meta-hardlink")
    os.link(fs.meta, link)
    p = mkfs(fs, "-A", *fs.quorum_args(), link, fs.meta)
    assert p.returncode == 1 and "are the same device" in p.stderr, p.stderr


def test_loop_devices_sharing_storage(fs_dir):
    fs = ScoutFS(fs_dir, meta_size="4G")
    loops = [LoopDevice(fs.meta), LoopDevice(fs.meta, offset=2 << 30), LoopDevice(fs.data)]
    try:
        if not all(l.path for l in loops):
            pytest.skip("this host can't make loop devices")
        meta_loop, meta_loop_hi, data_loop = (l.path for l in loops)
        link = os.path.join(fs_dir, "loop-link")
        os.symlink(meta_loop, link)
        before = [fingerprint(p) for p in (fs.meta, fs.data)]
        cases = [
            ((meta_loop, meta_loop), "are the same device"),
            ((link, meta_loop), "are the same device"),
            ((meta_loop, fs.meta), "share storage"),
            ((fs.meta, meta_loop_hi), "share storage"),
            ((meta_loop, meta_loop_hi), "share storage"),
        ]
        for (meta, data), msg in cases:
            p = mkfs(fs, "-A", *fs.quorum_args(), meta, data)
            assert p.returncode == 1, (meta, data, p.stdout)
            assert "must be different" in p.stderr and msg in p.stderr, (meta, data, p.stderr)
        # a block device another program holds exclusively is refused
        fd = os.open(data_loop, os.O_RDONLY | os.O_EXCL)
        try:
            p = mkfs(fs, "-A", *fs.quorum_args(), fs.meta, data_loop)
            assert p.returncode == 1 and "is in use" in p.stderr, p.stderr
        finally:
            os.close(fd)
        assert [fingerprint(p) for p in (fs.meta, fs.data)] == before
        # and the loop devices themselves make a filesystem that checks clean
        p = mkfs(fs, "-A", *fs.quorum_args(), meta_loop, data_loop)
        assert p.returncode == 0, p.stderr
        p = fs.scoutfs("check", meta_loop, data_loop, check=False)
        assert p.returncode == 0, p.stdout
    finally:
        for l in loops:
            l.close()


def test_progress_output(fs_dir):
    fs = ScoutFS(fs_dir)
    steps = ["opening and checking the devices", "writing the quorum blocks",
             "writing and flushing the super blocks"]
    # asked for: every step on stderr, stdout unchanged
    p = mkfs(fs, "-A", "--progress", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 0
    for s in steps:
        assert f"scoutfs mkfs: {s}...\n" in p.stderr
    assert p.stderr.endswith("scoutfs mkfs: done\n")
    assert "Created scoutfs filesystem" in p.stdout and "..." not in p.stdout
    # not asked for, not a terminal: nothing but the summary
    p = mkfs(fs, "-A", "-f", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 0 and p.stderr == ""


def test_progress_on_a_terminal_when_a_device_is_slow(fs):
    """A step that hangs in a slow device is shown on a terminal, and only there."""
    m = fs.mount(0)
    meta, data = os.path.join(m.path, "meta"), os.path.join(m.path, "data")
    run(["truncate", "-s", "1G", meta, data])
    pid = m.daemon_pid()
    for tty in (True, False):
        # the devices are files of a mount whose daemon is stopped: every access hangs
        os.kill(pid, signal.SIGSTOP)
        try:
            if tty:
                master, slave = pty.openpty()
                proc = subprocess.Popen(scoutfs_cmd("mkfs", "-A", "-f", *fs.quorum_args(),
                                                    meta, data),
                                        stdout=subprocess.PIPE, stderr=slave)
                os.close(slave)
            else:
                proc = subprocess.Popen(scoutfs_cmd("mkfs", "-A", "-f", *fs.quorum_args(),
                                                    meta, data),
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(2)
        finally:
            os.kill(pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
        if tty:
            err = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                err += chunk
            os.close(master)
        assert proc.returncode == 0, err
        assert b"Created scoutfs filesystem" in out
        if tty:
            assert b"scoutfs mkfs: opening and checking the devices...\r\n" in err, err
            assert err.endswith(b"scoutfs mkfs: done\r\n"), err
        else:
            assert b"scoutfs mkfs:" not in err, err


def test_help_of_every_command():
    p = run(scoutfs_cmd("--help"))
    names = [l.split()[0] for l in p.stdout.split("\n\n", 2)[2].splitlines()
             if l.startswith("  ") and not l.startswith("   ")]
    assert "mkfs" in names and "check" in names and "walk-inodes" in names
    for name in names:
        p = run(scoutfs_cmd(name, "--help"))
        assert p.stdout.startswith(f"Usage: scoutfs {name}"), name
        assert "Exit status:" in p.stdout and "  0 " in p.stdout, name
        p = run(scoutfs_cmd(name, "--no-such-option"), check=False)
        assert p.returncode == 64 and f"scoutfs {name} --help" in p.stderr, (name, p.stderr)
    p = run(scoutfs_cmd("no-such-command"), check=False)
    assert p.returncode == 64
    for helper in ("mount.scoutfs", "umount.fuse.scoutfs", "scoutfsd", "scoutfs-fenced"):
        p = run([tool(helper), "--help"])
        assert p.stdout.startswith("Usage: ") and "Exit status:" in p.stdout, helper
    p = run([tool("mount.scoutfs"), "--help"])
    for opt in ("metadev_path=", "quorum_slot_nr=", "quorum_heartbeat_timeout_ms=N (2000 to "
                "60000, default 10000)", "tcp_keepalive_timeout_ms=", "orphan_scan_delay_ms=",
                "log_merge_wait_timeout_ms=", "lock_idle_count=N (32 to 100000, default 10000)",
                "ino_alloc_per_lock=", "data_prealloc_blocks=", "data_prealloc_contig_only="):
        assert opt in p.stdout, opt
