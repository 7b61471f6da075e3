"""
Cluster locks seen from outside: mode transitions between mounts, the idle-lock limit, inode
number ranges per lock, lock waits that a signal interrupts, the commands that show a
mount's locks and counters, and unmounting while other mounts stay.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import assert_no_sanitizer_reports
from harness import Mount, ScoutFS, run, scoutfs_cmd


def counters(m):
    out = {}
    for line in run(scoutfs_cmd("counters", "-p", m.path)).stdout.splitlines():
        name, _, val = line.partition(" ")
        if val.strip().isdigit():
            out[name] = int(val)
    return out


def client_locks(m):
    return [line for line in run(scoutfs_cmd("client-locks", "-p", m.path)).stdout.splitlines()
            if line.strip()]


def lock_of(m, ino):
    """The client-locks line of the inode group lock of ino (or None)."""
    key = f"16.{ino & ~1023}.0.0.0.0"
    for line in client_locks(m):
        if line.split()[0] == key:
            return line
    return None


def lock_mode(m, ino):
    line = lock_of(m, ino)
    mode = line.split()[2] if line else "null"
    return "none" if mode == "null" else mode


@pytest.fixture
def two(fs_dir):
    f = ScoutFS(fs_dir)
    f.mkfs()
    f.mount(0)
    f.mount(1)
    yield f
    f.cleanup()
    assert_no_sanitizer_reports(f)


def test_mode_transitions_between_mounts(two):
    a, b = two.mounts
    path_a, path_b = f"{a.path}/f", f"{b.path}/f"
    with open(path_a, "w") as f:
        f.write("x")
    ino = os.stat(path_a).st_ino
    assert lock_mode(a, ino) == "write"
    # a reader elsewhere downgrades the writer to read: both read now
    os.stat(path_b)
    assert (lock_mode(a, ino), lock_mode(b, ino)) == ("read", "read")
    # a writer elsewhere takes it from both
    os.chmod(path_b, 0o600)
    assert (lock_mode(a, ino), lock_mode(b, ino)) == ("none", "write")
    # and back: reading on a downgrades b
    assert os.stat(path_a).st_mode & 0o777 == 0o600
    assert (lock_mode(a, ino), lock_mode(b, ino)) == ("read", "read")
    # an upgrade in place: b writes while a reads -> a gives it up
    os.utime(path_b, ns=(1, 1))
    assert (lock_mode(a, ino), lock_mode(b, ino)) == ("none", "write")
    # index locks are write-only for every writer: both mounts hold them at once
    with open(f"{a.path}/g", "w") as f:
        f.write("y")
    with open(f"{b.path}/h", "w") as f:
        f.write("z")
    wo_a = {line.split()[0] for line in client_locks(a) if line.split()[2] == "write_only"}
    wo_b = {line.split()[0] for line in client_locks(b) if line.split()[2] == "write_only"}
    assert wo_a & wo_b, "index locks were not shared in write_only mode"
    srv = run(scoutfs_cmd("server-locks", "-p", a.path)).stdout
    assert "write_only" in srv and "granted" in srv


def test_idle_lock_limit(fs_dir):
    fs = ScoutFS(fs_dir)
    fs.mkfs()
    try:
        # one inode per lock group: every new file needs a new lock
        m = fs.mount(0, opts="lock_idle_count=32,ino_alloc_per_lock=1")
        inos = []
        for i in range(150):
            with open(f"{m.path}/f{i}", "w"):
                pass
            inos.append(os.stat(f"{m.path}/f{i}").st_ino)
        # ino_alloc_per_lock=1: each file is in a lock group of its own
        assert len({i >> 10 for i in inos}) == len(inos)
        for i in range(150):
            os.stat(f"{m.path}/f{i}")
        nr = len(client_locks(m))
        assert nr <= 32 + 8, f"{nr} locks held with lock_idle_count=32"
        assert counters(m).get("lock_shrink_request", 0) > 0
    finally:
        fs.cleanup()
        assert_no_sanitizer_reports(fs)


def test_default_inode_allocation_fills_groups(two):
    m = two.mounts[0]
    inos = []
    for i in range(20):
        with open(f"{m.path}/f{i}", "w"):
            pass
        inos.append(os.stat(f"{m.path}/f{i}").st_ino)
    assert len({i >> 10 for i in inos}) == 1
    # mounts allocate from ranges of their own: no inode number is handed out twice
    b = two.mounts[1]
    for i in range(20):
        with open(f"{b.path}/g{i}", "w"):
            pass
        inos.append(os.stat(f"{b.path}/g{i}").st_ino)
    assert len(set(inos)) == len(inos)


def test_signal_interrupts_a_lock_wait(two):
    """A process waiting for a lock another mount can't give up can still be interrupted."""
    a, b = two.mounts
    with open(f"{b.path}/f", "w") as f:
        f.write("held")
    pid = b.daemon_pid()
    os.kill(pid, signal.SIGSTOP)  # b holds the write lock and can't answer for now
    try:
        before = counters(a).get("lock_interrupted", 0)
        reader = subprocess.Popen(
            [sys.executable, "-c",
             "import signal, sys\n"
             "def stop(*a): raise SystemExit(42)\n"
             "signal.signal(signal.SIGUSR1, stop)\n"
             f"open('{a.path}/f').read()\n"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        assert reader.poll() is None, "the read did not wait for the lock"
        start = time.time()
        reader.send_signal(signal.SIGUSR1)
        assert reader.wait(timeout=10) == 42
        assert time.time() - start < 5
        deadline = time.time() + 10
        while counters(a).get("lock_interrupted", 0) == before and time.time() < deadline:
            time.sleep(0.1)
        assert counters(a).get("lock_interrupted", 0) > before
    finally:
        os.kill(pid, signal.SIGCONT)
    with open(f"{a.path}/f") as f:
        assert f.read() == "held"


def test_counters_and_lock_listings(two):
    a, b = two.mounts
    with open(f"{a.path}/f", "w") as f:
        f.write("x")
    c = counters(a)
    assert c["lock_grant"] > 0 and "fuse_requests" in c
    assert any(line.split()[2] == "write" for line in client_locks(a))
    srv = run(scoutfs_cmd("server-locks", "-p", a.path))
    assert "granted" in srv.stdout
    # only the server's mount has the server's table
    p = run(scoutfs_cmd("server-locks", "-p", b.path), check=False)
    assert p.returncode != 0


@pytest.fixture
def quorum3(fs_dir):
    """Three quorum members (two must be up to elect a server) and one more mount."""
    f = ScoutFS(fs_dir, nr_slots=3)
    f.mkfs()
    # mounting waits for an elected server, so the members come up together
    f.mounts = [Mount(f, i, i) for i in range(3)]
    threads = [threading.Thread(target=f.mount, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(m.mounted for m in f.mounts)
    f.mount(3)
    yield f
    f.cleanup()
    assert_no_sanitizer_reports(f)


def umount_in_background(fs, index):
    result = {}

    def go():
        try:
            fs.umount(index, timeout=120)
            result["ok"] = True
        except Exception as e:  # reported by the test
            result["error"] = e

    t = threading.Thread(target=go)
    t.start()
    return t, result


def test_unmount_keeps_a_quorum_majority(quorum3):
    fs = quorum3
    for i, m in enumerate(fs.mounts):
        with open(f"{m.path}/from{i}", "w") as f:
            f.write(str(i))
    # a mount that is not a quorum member may always leave
    fs.umount(3)
    # a member may leave while a majority (2 of 3) remains
    fs.umount(1)
    for i in (0, 2):
        assert sorted(os.listdir(fs.mounts[i].path)) == ["from0", "from1", "from2", "from3"]
    # leaving now would leave one member of three: its farewell waits until every other
    # mount is gone or leaving too, so the cluster keeps a server as long as it's needed
    fs.mount(3)
    t, result = umount_in_background(fs, 2)
    time.sleep(3)
    assert t.is_alive(), "a quorum member left without a majority while others stayed"
    with open(f"{fs.mounts[3].path}/late", "w") as f:
        f.write("still served")
    fs.umount(3)
    time.sleep(2)
    assert t.is_alive(), "a quorum member left while the last other member stayed"
    # the last two members leave together
    fs.umount(0)
    t.join(timeout=60)
    assert not t.is_alive() and result.get("ok"), result
    fs.assert_clean()


def test_unmount_while_other_mounts_take_its_locks(two):
    """
    A mount that is unmounting still answers lock requests until its locks are shut down:
    the answers must not reach into the kernel-facing layer it already took down.  Both
    mounts write the same files (each in a lock of its own), then one unmounts while the
    other keeps writing them.
    """
    a, b = two.mounts
    two.umount(1)
    for rnd in range(6):
        two.mount(1, opts="ino_alloc_per_lock=1")
        names = [f"r{rnd}f{i}" for i in range(16)]
        for n in names:
            with open(f"{b.path}/{n}", "w") as f:
                f.write("from b")
        stop_a, stop_b = threading.Event(), threading.Event()
        errors = []

        def writer(m, part, stop):
            while not stop.is_set():
                for n in part:
                    try:
                        with open(f"{m.path}/{n}", "w") as f:
                            f.write(f"from {m.index}")
                    except OSError as e:
                        errors.append(e)

        threads_b = [threading.Thread(target=writer, args=(b, names[i::2], stop_b))
                     for i in range(2)]
        threads_a = [threading.Thread(target=writer, args=(a, names[i::2], stop_a))
                     for i in range(2)]
        for t in threads_a + threads_b:
            t.start()
        time.sleep(0.5)
        stop_b.set()
        for t in threads_b:
            t.join()
        try:
            two.umount(1)
        finally:
            stop_a.set()
            for t in threads_a:
                t.join()
        assert not errors
        assert "unmounted cleanly" in b.log()[b.log_start:], b.log()[b.log_start:][-3000:]
        for n in names:
            with open(f"{a.path}/{n}") as f:
                assert f.read() == "from 0"
