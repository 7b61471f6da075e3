"""
Several mounts of one filesystem see one filesystem: every change made on one mount is seen at
once by the others, through stat, read, readdir and mmap, and races between mounts have
exactly the outcomes a local filesystem allows.

The `cluster` fixture is one quorum member (mount 0, the server) and two more mounts that are
not quorum members, all on one host with their own daemons.
"""
import errno
import mmap
import os
import threading
import time

import pytest

from conftest import assert_no_sanitizer_reports
from harness import ScoutFS, run, scoutfs_cmd

# orphans are looked for this often (ms) by the mounts of the open-unlink tests
FAST_ORPHAN_SCAN = "orphan_scan_delay_ms=100"


def make_cluster(fs_dir, opts=""):
    f = ScoutFS(fs_dir)
    f.mkfs()
    for i in range(3):
        f.mount(i, opts=opts)
    return f


@pytest.fixture
def cluster(fs_dir):
    f = make_cluster(fs_dir)
    yield f
    f.cleanup()
    assert_no_sanitizer_reports(f)


@pytest.fixture
def orphan_cluster(fs_dir):
    f = make_cluster(fs_dir, FAST_ORPHAN_SCAN)
    yield f
    f.cleanup()
    assert_no_sanitizer_reports(f)


def sync_all(fs):
    """Make index walks see everything: every mount's open transaction bounds what is shown,
    so each commits one (the original's tests touch every mount's root the same way)."""
    for m in fs.mounts:
        os.utime(m.path)
    for m in fs.mounts:
        run(scoutfs_cmd("sync", "-p", m.path))


def inode_exists(fs, ino):
    """Does the inode still have its items?  (its meta_seq index item goes with them)"""
    sync_all(fs)
    out = run(scoutfs_cmd("walk-inodes", "-p", fs.mounts[0].path, "meta_seq", "0", "-1")).stdout
    return any(line.split()[3] == str(ino) for line in out.splitlines()
               if not line.startswith("#"))


def wait_deleted(fs, ino, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not inode_exists(fs, ino):
            return True
        time.sleep(0.2)
    for m in fs.mounts:
        c = run(scoutfs_cmd("counters", "-p", m.path)).stdout
        print(m.path, [line for line in c.splitlines()
                       if "orphan" in line or "inode_" in line or "fuse_" in line])
    return False


def paths(fs, name):
    return [os.path.join(m.path, name) for m in fs.mounts]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def stat_key(st):
    """What every mount must agree on (atime excluded, as the original's tests do)."""
    return (st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_size,
            st.st_mtime_ns, st.st_ctime_ns, st.st_rdev)


def test_create_and_write_seen_everywhere(cluster):
    a, b, c = paths(cluster, "f")
    write(a, b"one")
    assert read(b) == b"one" and read(c) == b"one"
    # overwrite in place on another mount: cached pages elsewhere must go
    write(b, b"two")
    assert read(a) == b"two" and read(c) == b"two"
    assert stat_key(os.stat(a)) == stat_key(os.stat(b)) == stat_key(os.stat(c))


def test_same_size_same_mtime_rewrite_is_seen(cluster):
    """Page cache coherence must not depend on the size or mtime changing."""
    a, b, _ = paths(cluster, "f")
    write(a, b"A" * 8192)
    st = os.stat(a)
    assert read(b) == b"A" * 8192
    with open(a, "r+b") as f:
        f.write(b"B" * 8192)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(b).st_mtime_ns == st.st_mtime_ns
    assert read(b) == b"B" * 8192


def test_open_file_sees_remote_writes(cluster):
    a, b, _ = paths(cluster, "f")
    write(a, b"x" * 10000)
    with open(b, "rb") as fb:
        assert fb.read() == b"x" * 10000
        with open(a, "r+b") as fa:
            fa.seek(5000)
            fa.write(b"y" * 100)
        fb.seek(0)
        assert fb.read() == b"x" * 5000 + b"y" * 100 + b"x" * 4900


def test_truncate_and_extend_seen(cluster):
    a, b, c = paths(cluster, "f")
    write(a, b"z" * 20000)
    assert read(b) == b"z" * 20000
    os.truncate(b, 6000)
    assert os.stat(a).st_size == 6000 and read(a) == b"z" * 6000
    os.truncate(c, 12000)
    assert read(a) == b"z" * 6000 + b"\0" * 6000
    with open(a, "ab") as f:
        f.write(b"e" * 10)
    assert read(b) == b"z" * 6000 + b"\0" * 6000 + b"e" * 10


def test_namespace_changes_seen(cluster):
    m = [x.path for x in cluster.mounts]
    os.mkdir(f"{m[0]}/d")
    write(f"{m[0]}/d/f", b"data")
    # every mount caches the names
    for p in m:
        assert os.listdir(f"{p}/d") == ["f"]
        assert read(f"{p}/d/f") == b"data"
    os.rename(f"{m[1]}/d/f", f"{m[1]}/d/g")
    for p in m:
        with pytest.raises(FileNotFoundError):
            os.stat(f"{p}/d/f")
        assert read(f"{p}/d/g") == b"data"
        assert os.listdir(f"{p}/d") == ["g"]
    os.link(f"{m[2]}/d/g", f"{m[2]}/h")
    for p in m:
        assert os.stat(f"{p}/d/g").st_nlink == 2
        assert os.stat(f"{p}/h").st_ino == os.stat(f"{p}/d/g").st_ino
    os.unlink(f"{m[0]}/d/g")
    for p in m:
        assert not os.path.exists(f"{p}/d/g")
        assert os.stat(f"{p}/h").st_nlink == 1
    os.symlink("h", f"{m[1]}/s")
    for p in m:
        assert os.readlink(f"{p}/s") == "h"
        assert read(f"{p}/s") == b"data"
    # a name reused for a different inode
    os.unlink(f"{m[2]}/h")
    os.mkdir(f"{m[2]}/h")
    for p in m:
        assert os.path.isdir(f"{p}/h")
    os.rmdir(f"{m[0]}/h")
    os.rename(f"{m[0]}/d", f"{m[0]}/e")
    for p in m:
        assert sorted(os.listdir(p)) == ["e", "s"]
        assert not os.path.exists(f"{p}/d")


def test_attribute_changes_seen(cluster):
    a, b, c = paths(cluster, "f")
    write(a, b"attrs")
    for p in (a, b, c):
        os.stat(p)
    os.chmod(b, 0o640)
    os.chown(c, 1234, 5678)
    os.utime(a, ns=(1_000_000_001, 2_000_000_002))
    keys = [stat_key(os.stat(p)) for p in (a, b, c)]
    assert keys[0] == keys[1] == keys[2]
    st = os.stat(a)
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid, st.st_mtime_ns) == \
        (0o640, 1234, 5678, 2_000_000_002)


def test_xattrs_seen(cluster):
    a, b, c = paths(cluster, "f")
    write(a, b"")
    os.setxattr(a, "user.k", b"v1")
    assert os.getxattr(b, "user.k") == b"v1"
    os.setxattr(c, "user.k", b"v2")
    assert os.getxattr(a, "user.k") == b"v2" and os.getxattr(b, "user.k") == b"v2"
    os.removexattr(b, "user.k")
    for p in (a, b, c):
        with pytest.raises(OSError) as e:
            os.getxattr(p, "user.k")
        assert e.value.errno == errno.ENODATA
        assert os.listxattr(p) == []


def test_shared_mappings_coherent(cluster):
    a, b, _ = paths(cluster, "f")
    write(a, b"a" * 8192)
    fa = os.open(a, os.O_RDWR)
    fb = os.open(b, os.O_RDWR)
    try:
        ma = mmap.mmap(fa, 8192, mmap.MAP_SHARED)
        ma[0:5] = b"HELLO"
        # a store through a mapping is seen by a read on another mount
        assert read(b)[:10] == b"HELLOaaaaa"
        mb = mmap.mmap(fb, 8192, mmap.MAP_SHARED)
        assert mb[0:10] == b"HELLOaaaaa"
        mb[0:5] = b"WORLD"
        assert ma[0:10] == b"WORLDaaaaa"
        assert read(a)[:10] == b"WORLDaaaaa"
        ma[5:10] = b"01234"
        assert mb[0:10] == b"WORLD01234"
        # and a write through another mount is seen by the mapping
        with open(b, "r+b") as f:
            f.seek(100)
            f.write(b"written")
        assert ma[100:107] == b"written"
        ma.close()
        mb.close()
    finally:
        os.close(fa)
        os.close(fb)
    assert read(a)[:10] == b"WORLD01234"


def test_racing_exclusive_creates_have_one_winner(cluster):
    mounts = [m.path for m in cluster.mounts]
    rounds = 30
    wins = [[0] * len(mounts) for _ in range(rounds)]
    barrier = threading.Barrier(len(mounts))

    def racer(i):
        for r in range(rounds):
            barrier.wait()
            try:
                fd = os.open(f"{mounts[i]}/race{r}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(i).encode())
                os.close(fd)
                wins[r][i] = 1
            except FileExistsError:
                pass

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(len(mounts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in range(rounds):
        assert sum(wins[r]) == 1, f"round {r}: winners {wins[r]}"
        winner = wins[r].index(1)
        for p in mounts:
            assert read(f"{p}/race{r}") == str(winner).encode()


def test_rmdir_races_create(cluster):
    m = [x.path for x in cluster.mounts]
    for r in range(20):
        os.mkdir(f"{m[0]}/d{r}")
        results = {}

        def do_rmdir():
            try:
                os.rmdir(f"{m[0]}/d{r}")
                results["rmdir"] = 0
            except OSError as e:
                results["rmdir"] = e.errno

        def do_create():
            try:
                write(f"{m[1]}/d{r}/f", b"x")
                results["create"] = 0
            except OSError as e:
                results["create"] = e.errno

        threads = [threading.Thread(target=do_rmdir), threading.Thread(target=do_create)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results in ({"rmdir": 0, "create": errno.ENOENT},
                           {"rmdir": errno.ENOTEMPTY, "create": 0}), results
        for p in m:
            exists = os.path.exists(f"{p}/d{r}/f")
            assert exists == (results["create"] == 0)
            assert os.path.isdir(f"{p}/d{r}") == (results["rmdir"] != 0)


def test_racing_renames_keep_one_name(cluster):
    """Two mounts rename the same file to different names: it ends up under exactly one."""
    m = [x.path for x in cluster.mounts]
    for r in range(20):
        write(f"{m[0]}/src{r}", b"s")
        errs = {}

        def ren(i):
            try:
                os.rename(f"{m[i]}/src{r}", f"{m[i]}/dst{r}.{i}")
                errs[i] = 0
            except OSError as e:
                errs[i] = e.errno

        threads = [threading.Thread(target=ren, args=(i,)) for i in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(errs.values()) == [0, errno.ENOENT], errs
        for p in m:
            names = sorted(n for n in os.listdir(p) if n.endswith(f"{r}") or f"{r}." in n)
            names = [n for n in names if n in (f"src{r}", f"dst{r}.1", f"dst{r}.2")]
            assert len(names) == 1 and names[0].startswith("dst"), (p, names)


def test_link_of_a_vanishing_name_never_succeeds(cluster):
    """
    One mount keeps replacing and deleting a name, another links it to itself: link(c, c)
    must fail every time (EEXIST, or ENOENT when the inode it looked up has lost its last
    name meanwhile -- never bringing that inode back).
    """
    m = [x.path for x in cluster.mounts]
    stop = threading.Event()

    def replacer():
        n = 0
        while not stop.is_set():
            tmp = f"{m[0]}/.t{n}"
            write(tmp, str(n).encode())
            os.rename(tmp, f"{m[0]}/c")
            n += 1

    def deleter():
        while not stop.is_set():
            try:
                os.unlink(f"{m[2]}/c")
            except FileNotFoundError:
                pass

    threads = [threading.Thread(target=replacer), threading.Thread(target=deleter)]
    for t in threads:
        t.start()
    succeeded = 0
    try:
        for _ in range(1500):
            try:
                os.link(f"{m[1]}/c", f"{m[1]}/c")
                succeeded += 1
            except (FileExistsError, FileNotFoundError):
                pass
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert succeeded == 0


def test_write_races_truncate(cluster):
    a, b, c = paths(cluster, "f")
    for r in range(20):
        write(a, b"o" * 65536)

        def writer():
            with open(a, "r+b") as f:
                f.seek(32768)
                f.write(b"w" * 32768)

        def truncater():
            os.truncate(b, 1000)

        threads = [threading.Thread(target=writer), threading.Thread(target=truncater)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        data = read(c)
        # either order: truncate then write, or write then truncate
        assert data in (b"o" * 1000 + b"\0" * 31768 + b"w" * 32768, b"o" * 1000), \
            (r, len(data))
        assert read(a) == data and read(b) == data


def test_many_processes_hammer_one_file(cluster):
    """Appends of fixed records from every mount: none lost, none torn, all seen."""
    m = [x.path for x in cluster.mounts]
    write(f"{m[0]}/log", b"")
    per_proc = 50
    procs = []
    for i, p in enumerate(m * 2):
        pid = os.fork()
        if pid == 0:
            try:
                for n in range(per_proc):
                    # one mount at a time holds the write lock; O_APPEND decides the offset
                    fd = os.open(f"{p}/log", os.O_WRONLY | os.O_APPEND)
                    os.write(fd, f"{i:02d}:{n:04d}\n".encode())
                    os.close(fd)
                    os.setxattr(f"{p}/log", "user.last", f"{i}:{n}".encode())
                os._exit(0)
            except BaseException:
                os._exit(1)
        procs.append(pid)
    for pid in procs:
        assert os.waitpid(pid, 0)[1] == 0
    for p in m:
        lines = read(f"{p}/log").decode().splitlines()
        assert len(lines) == len(procs) * per_proc
        assert sorted(lines) == sorted(f"{i:02d}:{n:04d}" for i in range(len(procs))
                                       for n in range(per_proc))


def test_unlinked_while_open_elsewhere_keeps_contents(orphan_cluster):
    fs = orphan_cluster
    a, b, _ = paths(fs, "f")
    data = os.urandom(300000)
    write(a, data)
    ino = os.stat(a).st_ino
    fd = os.open(b, os.O_RDWR)
    try:
        os.unlink(a)
        for p in paths(fs, "f"):
            assert not os.path.exists(p)
        # the other mount's scans and evictions must leave it alone while it is open
        time.sleep(1.0)
        assert inode_exists(fs, ino)
        assert os.pread(fd, len(data) + 10, 0) == data
        os.pwrite(fd, b"more", len(data))
        assert os.pread(fd, 10, len(data)) == b"more"
        assert os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)
    # the last close anywhere lets it go
    assert wait_deleted(fs, ino), "the inode was not deleted after its last close"


def test_remote_unlink_of_cached_inode_is_deleted(orphan_cluster):
    fs = orphan_cluster
    a, b, c = paths(fs, "f")
    write(a, b"x" * 100000)
    ino = os.stat(a).st_ino
    # every mount caches the inode, none holds it open
    assert read(b) == read(c) == b"x" * 100000
    os.unlink(c)
    assert wait_deleted(fs, ino), "an unlinked inode cached by other mounts was not deleted"


def test_batched_evictions_spare_files_open_elsewhere(orphan_cluster):
    """
    Many files of one inode group unlinked at once: the unlinking mount deletes them in
    batches that share one open map per group; the few another mount holds open must
    survive that map, the rest must go.
    """
    fs = orphan_cluster
    names = [f"b{i}" for i in range(48)]
    inos = {}
    for n in names:
        write(paths(fs, n)[0], n.encode() * 500)
        inos[n] = os.stat(paths(fs, n)[0]).st_ino
    assert len({ino >> 10 for ino in inos.values()}) == 1
    held = names[3::8]
    fds = {n: os.open(paths(fs, n)[1], os.O_RDONLY) for n in held}
    try:
        for n in names:
            os.unlink(paths(fs, n)[0])
        for n in names:
            if n not in held:
                assert wait_deleted(fs, inos[n]), f"{n} was not deleted"
        for n in held:
            assert inode_exists(fs, inos[n]), f"{n} was deleted while open on another mount"
            assert os.pread(fds[n], 100000, 0) == n.encode() * 500
    finally:
        for fd in fds.values():
            os.close(fd)
    for n in held:
        assert wait_deleted(fs, inos[n])


def test_unlinked_open_files_on_several_mounts(orphan_cluster):
    fs = orphan_cluster
    names = [f"f{i}" for i in range(6)]
    fds = []
    inos = []
    for i, n in enumerate(names):
        p = paths(fs, n)
        write(p[0], n.encode() * 1000)
        inos.append(os.stat(p[0]).st_ino)
        fds.append(os.open(p[i % 3], os.O_RDONLY))
    for i, n in enumerate(names):
        os.unlink(paths(fs, n)[(i + 1) % 3])
    time.sleep(0.5)
    for i, n in enumerate(names):
        assert os.pread(fds[i], 100000, 0) == n.encode() * 1000
        assert inode_exists(fs, inos[i])
    for fd in fds:
        os.close(fd)
    for ino in inos:
        assert wait_deleted(fs, ino)
