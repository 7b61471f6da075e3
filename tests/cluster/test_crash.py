"""
Crash consistency: a daemon killed with SIGKILL at any moment loses nothing that was
fsynced, and the filesystem checks clean; failed and torn metadata writes never corrupt it.
"""
import errno
import hashlib
import mmap
import os
import random
import socket
import subprocess
import sys
import time

import pytest

import harness
from harness import run, scoutfs_cmd

HERE = os.path.dirname(os.path.abspath(__file__))
ITERS = int(os.environ.get("SCOUTFS_CRASH_ITERS", "8"))


def verify_log(mnt, log_path):
    """Every file recorded after its fsync reads back exactly."""
    nr = 0
    if not os.path.exists(log_path):
        return 0
    with open(log_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3:
                continue  # the kill may cut the last line of the log short
            name, size, digest = parts
            with open(f"{mnt}/{name}", "rb") as g:
                data = g.read()
            assert len(data) == int(size), name
            assert hashlib.sha256(data).hexdigest() == digest, name
            nr += 1
    return nr


# a soak (SCOUTFS_CRASH_ITERS=1000) may run for hours: each kill gets its own share of time
@pytest.mark.timeout(120 + ITERS * 60)
def assert_reads(path, data):
    with open(path, "rb") as f:
        assert f.read() == data, path


def test_kill_at_random_moments(fs):
    fs.start_fenced()
    log_path = os.path.join(fs.dir, "fsynced.log")
    rng = random.Random(int(os.environ.get("SCOUTFS_CRASH_SEED", time.time())))
    verified = 0
    for it in range(ITERS):
        m = fs.mount(0)
        verified = verify_log(m.path, log_path)
        w = subprocess.Popen([sys.executable, f"{HERE}/workload.py", m.path, log_path,
                              str(rng.randrange(1 << 30))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 3.0))
        fs.kill(0)
        w.kill()
        w.wait()
        # what the crash left on the devices is consistent before any recovery
        rc, out = fs.check()
        assert rc == 0, f"after kill {it + 1}, scoutfs check found problems:\n{out}"
    m = fs.mount(0)
    verified = verify_log(m.path, log_path)
    assert verified > 0
    fs.umount(0)
    fs.assert_clean()


@pytest.mark.parametrize("fault", [
    # metadata blocks (64 KiB) fail or tear
    ("meta", "write", "fail", "64K"), ("meta", "write", "tear", "64K"),
    # any metadata write, the super and quorum blocks included; the flushes between them
    ("meta", "write", "fail", "0"), ("meta", "flush", "fail", "0"),
], ids="-".join)
def test_failed_commit_writes_are_retried(mounted, fault):
    fs = mounted
    m = fs.mounts[0].path
    dev, op, action, min_len = fault
    # a failed quorum block write stops the quorum agent for good (as in the original: the
    # mount must be remounted), so let the new server record itself before faulting them
    fs.mounts[0].wait_server_up()
    with open(f"{m}/before", "wb") as f:
        f.write(b"b" * 100000)
        os.fsync(f.fileno())
    # the next few writes (or flushes) fail or tear; the commit is retried until they
    # pass, and a transient failure is invisible to fsync
    run(scoutfs_cmd("inject-fault", "-p", m, "-c", "3", "-m", min_len, dev, op, action))
    with open(f"{m}/during", "wb") as f:
        f.write(b"d" * 100000)
        os.fsync(f.fileno())
    run(scoutfs_cmd("sync", "-p", m))
    assert_reads(f"{m}/during", b"d" * 100000)
    assert "transaction commit failed" in fs.mounts[0].log()
    fs.umount(0)
    fs.assert_clean()
    fs.mount(0)
    assert_reads(f"{m}/before", b"b" * 100000)
    assert_reads(f"{m}/during", b"d" * 100000)


@pytest.mark.parametrize("action", ["fail", "tear"])
def test_failed_data_write_is_an_error_and_leaks_nothing(mounted, action):
    """File data is queued for the data device as it is written: a failed write is EIO to
    the writer's fsync, and the blocks it had allocated are not lost or half-owned."""
    fs = mounted
    m = fs.mounts[0].path
    with open(f"{m}/old", "wb") as f:
        f.write(b"o" * 300000)
    run(scoutfs_cmd("inject-fault", "-p", m, "-c", "1", "data", "write", action))
    with pytest.raises(OSError) as e:
        with open(f"{m}/new", "wb") as f:
            f.write(b"n" * 300000)
            os.fsync(f.fileno())
    assert e.value.errno == 5
    run(scoutfs_cmd("inject-fault", "-p", m, "data", "write", "clear"))
    with open(f"{m}/after", "wb") as f:
        f.write(b"a" * 300000)
    fs.umount(0)
    fs.assert_clean()
    fs.mount(0)
    for name, byte in (("old", b"o"), ("after", b"a")):
        with open(f"{m}/{name}", "rb") as f:
            assert f.read() == byte * 300000, name


def wb_counters(m):
    out = run(scoutfs_cmd("counters", "-p", m)).stdout
    return {k: int(v) for k, v in (l.split() for l in out.splitlines()) if k.startswith("dev_wb")}


def test_torn_queued_write_leaves_zeros_not_half_a_write(mounted):
    """Data writes are queued and written behind the program's back: a torn one is reported
    by fsync, and its new blocks are zeroed, so the file reads zeros there rather than a
    prefix of the write followed by whatever the blocks held."""
    fs = mounted
    m = fs.mounts[0].path
    run(scoutfs_cmd("inject-fault", "-p", m, "-c", "1", "--min-bytes", "65536", "data", "write",
                    "tear"))
    fd = os.open(f"{m}/f", os.O_RDWR | os.O_CREAT | os.O_DIRECT)
    buf = mmap.mmap(-1, 1 << 20)
    buf.write(b"n" * (1 << 20))
    try:
        assert os.pwrite(fd, buf, 0) == 1 << 20   # queued: the write itself succeeds
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == errno.EIO
        os.fsync(fd)                              # reported once, like a failed writeback
    finally:
        os.close(fd)
    run(scoutfs_cmd("inject-fault", "-p", m, "data", "write", "clear"))
    c = wb_counters(m)
    assert c["dev_wb_errors"] == 1 and c["dev_wb_zeroed"] == 1, c
    assert_reads(f"{m}/f", b"\0" * (1 << 20))
    fs.umount(0)
    fs.assert_clean()


def test_failed_zeroing_holds_commits_until_it_succeeds(mounted):
    """When zeroing a failed write's new blocks fails too, the blocks read as EIO and no
    commit may write the metadata that maps them; once the device works again the next
    commit zeroes them and the file reads zeros."""
    fs = mounted
    m = fs.mounts[0].path
    with open(f"{m}/before", "wb") as f:
        f.write(b"b" * 100000)
    run(scoutfs_cmd("sync", "-p", m))
    run(scoutfs_cmd("inject-fault", "-p", m, "-c", "0", "data", "write", "fail"))
    fd = os.open(f"{m}/f", os.O_RDWR | os.O_CREAT | os.O_DIRECT)
    buf = mmap.mmap(-1, 1 << 20)
    buf.write(b"n" * (1 << 20))
    try:
        assert os.pwrite(fd, buf, 0) == 1 << 20
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == errno.EIO
        with pytest.raises(OSError) as e:
            os.preadv(fd, [buf], 0)
        assert e.value.errno == errno.EIO
        r = run(scoutfs_cmd("sync", "-p", m), check=False)
        assert r.returncode != 0
        run(scoutfs_cmd("inject-fault", "-p", m, "data", "write", "clear"))
        run(scoutfs_cmd("sync", "-p", m))
        assert os.preadv(fd, [buf], 0) == 1 << 20
        assert buf[:] == b"\0" * (1 << 20)
    finally:
        os.close(fd)
    assert wb_counters(m)["dev_wb_zeroed"] == 1
    fs.umount(0)
    fs.assert_clean()
    fs.mount(0)
    assert_reads(f"{m}/before", b"b" * 100000)
    assert_reads(f"{m}/f", b"\0" * (1 << 20))


def test_lasting_failure_reports_eio_then_recovers(mounted):
    fs = mounted
    m = fs.mounts[0].path
    run(scoutfs_cmd("inject-fault", "-p", m, "-c", "0", "data", "flush", "fail"))
    with open(f"{m}/f", "wb") as f:
        f.write(b"f" * 10000)
        with pytest.raises(OSError) as e:
            os.fsync(f.fileno())
        assert e.value.errno == 5
    run(scoutfs_cmd("inject-fault", "-p", m, "data", "flush", "clear"))
    run(scoutfs_cmd("sync", "-p", m))
    fs.umount(0)
    fs.assert_clean()
    fs.mount(0)
    assert_reads(f"{m}/f", b"f" * 10000)


def test_crash_while_commits_fail(mounted):
    fs = mounted
    fs.start_fenced()
    m = fs.mounts[0].path
    with open(f"{m}/safe", "wb") as f:
        f.write(b"s" * 50000)
        os.fsync(f.fileno())
    run(scoutfs_cmd("inject-fault", "-p", m, "-c", "0", "-m", "64K", "meta", "write", "tear"))
    with open(f"{m}/lost", "wb") as f:
        f.write(b"l" * 50000)
    time.sleep(0.5)
    fs.kill(0)
    fs.mount(0)
    assert_reads(f"{m}/safe", b"s" * 50000)
    fs.umount(0)
    fs.assert_clean()


def test_a_hung_daemon_does_not_stop_fencing(fs_dir, monkeypatch):
    """The fence agent asks every daemon of the host for fence requests: one that never
    answers (here a socket nobody accepts on, first in line) must not stop the others."""
    run_dir = os.path.join(fs_dir, "run")
    os.makedirs(run_dir)
    monkeypatch.setenv("SCOUTFS_RUN_DIR", run_dir)
    monkeypatch.setattr(harness, "RUN_DIR", run_dir)
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(os.path.join(run_dir, "rid-0000000000000000.sock"))
    hung.listen(8)
    fs = harness.ScoutFS(fs_dir)
    try:
        fs.mkfs()
        fs.start_fenced()
        fs.mount(0).wait_server_up()
        fs.kill(0)
        t0 = time.monotonic()
        fs.mount(0)          # the new server must fence the crashed one first
        assert time.monotonic() - t0 < 20
        assert "fence agent fenced rid" in fs.mounts[0].log()
    finally:
        fs.cleanup()
        hung.close()
    with open(os.path.join(fs_dir, "fenced.log")) as f:
        assert "rid-0000000000000000.sock did not answer" in f.read()
