"""
File data on one mount: sparse files, the largest file size, truncate, every fallocate mode,
SEEK_DATA/SEEK_HOLE, O_APPEND, O_DIRECT, O_SYNC, shared mmap, O_TMPFILE, preallocation,
large requests, statfs, ENOSPC, and the randomized checker (tests/tools/fsx.c).
"""
import ctypes
import errno
import mmap
import os
import random
import subprocess
import sys
import time

import pytest

from harness import BIN, ScoutFS, mount_argv, run, scoutfs_cmd, umount_argv

BLK = 4096
MAX_FILE = (1 << 63) - 1  # LLONG_MAX: the kernel's largest file offset (MAX_LFS_FILESIZE)
HERE = os.path.dirname(os.path.abspath(__file__))

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_NO_HIDE_STALE = 0x04
FALLOC_FL_COLLAPSE_RANGE = 0x08
FALLOC_FL_ZERO_RANGE = 0x10
FALLOC_FL_INSERT_RANGE = 0x20
FALLOC_FL_UNSHARE_RANGE = 0x40

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def fallocate(fd, mode, off, length):
    if _libc.fallocate(fd, mode, off, length) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def errno_of(fn):
    with pytest.raises(OSError) as e:
        fn()
    return e.value.errno


def scoutfs(*args):
    return run(scoutfs_cmd(*args)).stdout


def stat_fields(path):
    out = {}
    for line in scoutfs("stat", path).splitlines():
        k, v = line.split()
        out[k] = int(v) if k != "crtime" else v
    return out


def fiemap(path):
    """[(logical, length, flags)] from `scoutfs get-fiemap -L`."""
    exts = []
    lines = scoutfs("get-fiemap", "-L", path).splitlines()
    assert lines[-1] == f"extents: {len(lines) - 1}"
    for line in lines[:-1]:
        # N: offset: L length: N flags: OUL
        p = line.split()
        exts.append((int(p[2]), int(p[4]), p[6]))
    return exts


def counters(mnt):
    c = {}
    for line in scoutfs("counters", mnt).splitlines():
        k, v = line.split()[:2]
        c[k] = int(v)
    return c


def drop_caches():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def remount(fs, opts=""):
    fs.umount(0)
    return fs.mount(0, opts=opts).path


def sync(mnt):
    run(scoutfs_cmd("sync", "-p", mnt))


def pattern(seed, n):
    return bytes((seed * 131 + i * 7) & 0xFF for i in range(n))


# ---- sparse files and sizes ----


def test_sparse_files_read_zeros_and_count_blocks(mounted):
    fs = mounted
    m = fs.mounts[0].path
    p = f"{m}/sparse"
    five_g = 5 << 30
    with open(p, "wb") as f:
        f.seek(3 * BLK + 100)
        f.write(b"a" * 10)              # one block
        f.seek(100 * BLK)
        f.write(b"b" * (2 * BLK))       # two whole blocks
        f.seek(five_g + 1)
        f.write(b"c" * BLK)             # straddles two blocks past 4 GiB
    st = os.stat(p)
    assert st.st_size == five_g + 1 + BLK
    assert st.st_blocks == 5 * 8        # 512-byte units of the written blocks only
    assert stat_fields(p)["online_blocks"] == 5
    with open(p, "rb") as f:
        assert f.read(3 * BLK + 100) == bytes(3 * BLK + 100)
        assert f.read(10) == b"a" * 10
        f.seek(50 * BLK)
        assert f.read(50 * BLK) == bytes(50 * BLK)
        f.seek(four_g := 4 << 30)
        assert f.read(1 << 20) == bytes(1 << 20)
        f.seek(five_g)
        assert f.read() == b"\0" + b"c" * BLK
    m = remount(fs)
    st = os.stat(f"{m}/sparse")
    assert (st.st_size, st.st_blocks) == (five_g + 1 + BLK, 40)
    with open(f"{m}/sparse", "rb") as f:
        f.seek(100 * BLK - 1)
        assert f.read(2 * BLK + 2) == b"\0" + b"b" * (2 * BLK) + b"\0"
        f.seek(four_g)
        assert f.read(BLK) == bytes(BLK)


EDGES = """
import errno, os, resource, signal, sys
BLK, MAX = 4096, (1 << 63) - 1
libc = __import__("ctypes").CDLL(None, use_errno=True)
libc.fallocate.argtypes = [__import__("ctypes").c_int] * 2 + [__import__("ctypes").c_int64] * 2
out = []
def rec(fn):
    try:
        out.append(fn())
    except OSError as e:
        out.append(errno.errorcode[e.errno])
def falloc(fd, mode, off, n):
    if libc.fallocate(fd, mode, off, n):
        raise OSError(__import__("ctypes").get_errno(), "fallocate")
    return 0
fd = os.open(sys.argv[1] + "/huge", os.O_CREAT | os.O_RDWR, 0o644)
rec(lambda: os.pwrite(fd, b"0123456789", MAX - 4))     # crosses the largest offset
rec(lambda: os.pwrite(fd, b"0123", MAX - 4))           # ends exactly at it
rec(lambda: os.fstat(fd).st_size)
rec(lambda: os.pread(fd, 10, MAX - 4))                 # reads may not cross it either
rec(lambda: os.pread(fd, 4, MAX - 4))
rec(lambda: os.pwrite(fd, b"x", MAX))
rec(lambda: falloc(fd, 1, MAX - BLK, 2 * BLK))
rec(lambda: falloc(fd, 1, MAX - 3 * BLK, 2 * BLK))
rec(lambda: os.ftruncate(fd, 1 << 40))
rec(lambda: os.fstat(fd).st_size)
rec(lambda: os.ftruncate(fd, MAX))
rec(lambda: os.pread(fd, 4, MAX - 4))
rec(lambda: os.ftruncate(fd, -1))
os.close(fd)
# RLIMIT_FSIZE: EFBIG (SIGXFSZ ignored)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
fd = os.open(sys.argv[1] + "/limited", os.O_CREAT | os.O_RDWR, 0o644)
rec(lambda: os.pwrite(fd, b"y" * 20, (1 << 20) - 10))
rec(lambda: os.pwrite(fd, b"y", 1 << 20))
rec(lambda: os.ftruncate(fd, 2 << 20))
rec(lambda: falloc(fd, 0, 0, 2 << 20))
os.close(fd)
print(repr(out))
"""


def test_largest_file_offset(mounted):
    """Files reach LLONG_MAX (the kernel's MAX_LFS_FILESIZE, the original's s_maxbytes), and
    the errors at and past it are the ones a local filesystem with that limit gives: the same
    operations on tmpfs give the same results."""
    m = mounted.mounts[0].path
    got = {}
    for name, d in (("scoutfs", m), ("tmpfs", "/dev/shm")):
        d = os.path.join(d, f"edges-{os.getpid()}")
        os.mkdir(d)
        try:
            got[name] = run([sys.executable, "-c", EDGES, d]).stdout.strip()
        finally:
            for n in os.listdir(d):
                os.unlink(os.path.join(d, n))
            os.rmdir(d)
    assert got["scoutfs"] == got["tmpfs"]
    assert eval(got["scoutfs"]) == [
        "EINVAL", 4, MAX_FILE, "EINVAL", b"0123", "EINVAL", "EFBIG", 0, None, 1 << 40, None,
        bytes(4), "EINVAL", 10, "EFBIG", "EFBIG", "EFBIG"]


# ---- truncate ----


def test_truncate_zeroes_partial_block_and_frees(mounted):
    fs = mounted
    m = fs.mounts[0].path
    p = f"{m}/t"
    with open(p, "wb") as f:
        f.write(b"a" * 8192)
    os.truncate(p, 6144)
    os.truncate(p, 12288)
    drop_caches()
    with open(p, "rb") as f:
        assert f.read() == b"a" * 6144 + bytes(6144)
    assert os.stat(p).st_blocks == 16   # block 1 is kept (it holds bytes 4096..6143)

    # truncating frees blocks: statfs shows them free again after the commit
    big = f"{m}/big"
    sync(m)
    free0 = os.statvfs(m).f_bfree
    with open(big, "wb") as f:
        f.write(os.urandom(16 << 20))
    sync(m)
    assert os.statvfs(m).f_bfree <= free0 - (16 << 20) // BLK
    os.truncate(big, 1 << 20)
    assert os.stat(big).st_blocks == (1 << 20) // 512
    sync(m)
    sync(m)
    assert os.statvfs(m).f_bfree >= free0 - (1 << 20) // BLK - 64

    m = remount(fs)
    with open(f"{m}/t", "rb") as f:
        assert f.read() == b"a" * 6144 + bytes(6144)
    assert os.stat(f"{m}/big").st_size == 1 << 20


def test_truncate_versions_and_times(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/v"
    with open(p, "wb") as f:
        f.write(b"x" * 5000)
    s0, st0 = stat_fields(p), os.stat(p)
    time.sleep(0.01)
    os.truncate(p, 5000)                # same size: data_version unchanged, times move
    s1, st1 = stat_fields(p), os.stat(p)
    assert s1["data_version"] == s0["data_version"]
    assert st1.st_mtime_ns > st0.st_mtime_ns    # as tmpfs does (test_times.py)
    os.truncate(p, 100)
    s2, st2 = stat_fields(p), os.stat(p)
    assert s2["data_version"] == s0["data_version"] + 1
    assert st2.st_mtime_ns > st0.st_mtime_ns and st2.st_ctime_ns >= st2.st_mtime_ns


def test_open_truncate(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/o"
    with open(p, "wb") as f:
        f.write(b"hello world\n")
    with open(p, "wb") as f:          # O_TRUNC
        f.write(b"hi\n")
    with open(p, "rb") as f:
        assert f.read() == b"hi\n"
    assert os.stat(p).st_size == 3


# ---- fallocate ----


def test_fallocate_modes(mounted):
    fs = mounted
    m = fs.mounts[0].path
    p = f"{m}/fa"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fallocate(fd, 0, 0, 64 * BLK)
        st = os.fstat(fd)
        assert st.st_size == 64 * BLK
        assert st.st_blocks == 0                 # unwritten blocks are not counted (original)
        assert os.pread(fd, 64 * BLK, 0) == bytes(64 * BLK)
        assert fiemap(p) == [(0, 64, ".UL")]

        # a write into the middle converts only what it writes
        os.pwrite(fd, b"w" * (2 * BLK), 10 * BLK)
        assert fiemap(p) == [(0, 10, ".U."), (10, 2, "..."), (12, 52, ".UL")]
        assert os.fstat(fd).st_blocks == 16
        os.pwrite(fd, b"v" * 100, 30 * BLK + 50)  # a partial block: the rest reads zeros
        assert os.pread(fd, BLK, 30 * BLK) == bytes(50) + b"v" * 100 + bytes(BLK - 150)

        # KEEP_SIZE past EOF: allocated, size unchanged
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 100 * BLK, 8 * BLK)
        assert os.fstat(fd).st_size == 64 * BLK
        assert fiemap(p)[-1] == (100, 8, ".UL")

        # PUNCH_HOLE (with KEEP_SIZE): zeros, blocks freed, partial blocks zeroed in place
        os.pwrite(fd, b"d" * (8 * BLK), 40 * BLK)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 41 * BLK + 10, 3 * BLK)
        assert os.pread(fd, 8 * BLK, 40 * BLK) == \
            b"d" * (BLK + 10) + bytes(3 * BLK) + b"d" * (4 * BLK - 10)
        exts = [e for e in fiemap(p) if 40 <= e[0] < 48]
        assert exts == [(40, 2, "..."), (44, 4, "...")]
        assert os.fstat(fd).st_size == 64 * BLK
        # punching past EOF frees preallocation there too
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100 * BLK, 8 * BLK)
        assert all(e[0] < 64 for e in fiemap(p))

        # ZERO_RANGE: zeros; written blocks become unwritten; grows the file without KEEP_SIZE
        fallocate(fd, FALLOC_FL_ZERO_RANGE, 44 * BLK + 1, 2 * BLK)
        assert os.pread(fd, 4 * BLK, 44 * BLK) == bytes(2 * BLK + 1) + b"d" * (2 * BLK - 1)
        assert [e for e in fiemap(p) if 44 <= e[0] < 48] == \
            [(44, 1, "..."), (45, 1, ".U."), (46, 2, "...")]
        fallocate(fd, FALLOC_FL_ZERO_RANGE, 70 * BLK, 10)
        assert os.fstat(fd).st_size == 70 * BLK + 10
        fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 80 * BLK, 4 * BLK)
        assert os.fstat(fd).st_size == 70 * BLK + 10

        # the modes we do not have, and bad arguments
        for mode in (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE,
                     FALLOC_FL_UNSHARE_RANGE, FALLOC_FL_PUNCH_HOLE,
                     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                     FALLOC_FL_NO_HIDE_STALE):
            assert errno_of(lambda: fallocate(fd, mode, 0, BLK)) == errno.EOPNOTSUPP, mode
        assert errno_of(lambda: fallocate(fd, 0, 0, 0)) == errno.EINVAL
        assert errno_of(lambda: fallocate(fd, 0, -1, BLK)) == errno.EINVAL
        assert errno_of(lambda: fallocate(fd, 0, MAX_FILE, 1)) == errno.EFBIG
        rfd = os.open(p, os.O_RDONLY)
        try:
            assert errno_of(lambda: fallocate(rfd, 0, 0, BLK)) == errno.EBADF
        finally:
            os.close(rfd)
        before = os.pread(fd, 84 * BLK, 0)
    finally:
        os.close(fd)
    m = remount(fs)
    with open(f"{m}/fa", "rb") as f:
        assert f.read() == before[:70 * BLK + 10]


def test_fallocate_versions_and_times(mounted):
    """The original's data_version rules; mtime/ctime as ext4 (the original changed neither)."""
    m = mounted.mounts[0].path
    p = f"{m}/fv"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        sync(m)
        s0, st0 = stat_fields(p), os.fstat(fd)
        time.sleep(0.01)
        fallocate(fd, 0, 0, 16 * BLK)               # grows: data_version, mtime, ctime
        s1, st1 = stat_fields(p), os.fstat(fd)
        assert s1["data_version"] == s0["data_version"] + 1
        assert st1.st_mtime_ns > st0.st_mtime_ns and st1.st_ctime_ns > st0.st_ctime_ns
        time.sleep(0.01)
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 16 * BLK, 16 * BLK)  # allocates: ctime only
        s2, st2 = stat_fields(p), os.fstat(fd)
        assert s2["data_version"] == s1["data_version"]
        assert st2.st_mtime_ns == st1.st_mtime_ns and st2.st_ctime_ns > st1.st_ctime_ns
        time.sleep(0.01)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, BLK)  # contents change
        s3, st3 = stat_fields(p), os.fstat(fd)
        assert s3["data_version"] == s2["data_version"] + 1
        assert st3.st_mtime_ns > st2.st_mtime_ns
        sync(m)
        s4 = stat_fields(p)
        fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, BLK)
        sync(m)
        s5 = stat_fields(p)
        assert s5["data_version"] == s4["data_version"] + 1
        assert s5["data_seq"] > s4["data_seq"]      # archive agents see the change
    finally:
        os.close(fd)


# ---- SEEK_DATA / SEEK_HOLE ----


def test_seek_data_hole(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/seek"
    fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        # hole [0,4) data [4,6) unwritten [6,10) data [10,11) hole to EOF at 20 blocks
        os.pwrite(fd, b"a" * (2 * BLK), 4 * BLK)
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 6 * BLK, 4 * BLK)
        os.pwrite(fd, b"b" * 10, 10 * BLK)
        os.ftruncate(fd, 20 * BLK)
        cases = [
            (0, os.SEEK_DATA, 4 * BLK), (0, os.SEEK_HOLE, 0),
            (4 * BLK + 5, os.SEEK_DATA, 4 * BLK + 5), (4 * BLK + 5, os.SEEK_HOLE, 6 * BLK),
            # unwritten blocks read as zeros: holes, as ext4 and XFS report them
            (6 * BLK, os.SEEK_DATA, 10 * BLK), (7 * BLK, os.SEEK_HOLE, 7 * BLK),
            (10 * BLK, os.SEEK_HOLE, 11 * BLK), (11 * BLK, os.SEEK_DATA, None),
            (19 * BLK, os.SEEK_HOLE, 19 * BLK),
            (20 * BLK, os.SEEK_DATA, None), (20 * BLK, os.SEEK_HOLE, None),
            (1 << 40, os.SEEK_HOLE, None),
        ]
        for off, whence, want in cases:
            if want is None:
                assert errno_of(lambda: os.lseek(fd, off, whence)) == errno.ENXIO, (off, whence)
            else:
                assert os.lseek(fd, off, whence) == want, (off, whence)
        # data to EOF: the only hole is EOF
        os.ftruncate(fd, 10 * BLK + 10)
        assert os.lseek(fd, 10 * BLK, os.SEEK_HOLE) == 10 * BLK + 10
    finally:
        os.close(fd)


# ---- O_APPEND, O_DIRECT, O_SYNC, mmap, O_TMPFILE ----

APPENDER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
me = int(sys.argv[2])
for i in range(int(sys.argv[3])):
    rec = (f"{me:02d}:{i:05d}:" + chr(65 + me) * (10 + (i * 7 + me) % 90) + "\\n").encode()
    assert os.write(fd, rec) == len(rec)
"""


def test_concurrent_appenders(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/log"
    open(p, "w").close()
    nr_procs, nr_recs = 4, 400
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, p, str(i), str(nr_recs)])
             for i in range(nr_procs)]
    for pr in procs:
        assert pr.wait() == 0
    with open(p, "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b""
    seen = {}
    for line in lines[:-1]:
        me, i, body = line.split(b":")
        me, i = int(me), int(i)
        assert body == bytes([65 + me]) * (10 + (i * 7 + me) % 90), line
        assert seen.get(me, -1) == i - 1     # each writer's records in order, none lost
        seen[me] = i
    assert seen == {i: nr_recs - 1 for i in range(nr_procs)}


def test_direct_io_is_coherent_with_buffered_and_mmap(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/dio"
    with open(p, "wb") as f:
        f.write(b"b" * (64 * BLK))
    buf = mmap.mmap(-1, 16 * BLK)           # page-aligned memory for O_DIRECT
    dfd = os.open(p, os.O_RDWR | os.O_DIRECT)
    fd = os.open(p, os.O_RDWR)
    try:
        # buffered read caches the pages; an aligned direct write must replace them
        assert os.pread(fd, 4 * BLK, 0) == b"b" * (4 * BLK)
        buf[:4 * BLK] = b"D" * (4 * BLK)
        assert os.pwritev(dfd, [memoryview(buf)[:4 * BLK]], 0) == 4 * BLK
        assert os.pread(fd, 4 * BLK, 0) == b"D" * (4 * BLK)
        # a buffered write is seen by a direct read
        os.pwrite(fd, b"B" * BLK, 8 * BLK)
        assert os.preadv(dfd, [memoryview(buf)[:BLK]], 8 * BLK) == BLK
        assert buf[:BLK] == b"B" * BLK
        # dirty shared mmap pages are written back before a direct read
        mp = mmap.mmap(fd, 64 * BLK)
        mp[16 * BLK:17 * BLK] = b"M" * BLK
        assert os.preadv(dfd, [memoryview(buf)[:BLK]], 16 * BLK) == BLK
        assert buf[:BLK] == b"M" * BLK
        # an O_DIRECT descriptor can be mapped shared (no direct_io reply)
        dmp = mmap.mmap(dfd, BLK)
        assert dmp[:4] == b"DDDD"
        dmp.close()
        mp.close()
        # unaligned direct I/O works as buffered I/O would (the original fell back too)
        assert os.pwrite(dfd, b"u" * 100, 20 * BLK + 7) == 100
        assert os.pread(dfd, 200, 20 * BLK) == b"b" * 7 + b"u" * 100 + b"b" * 93
        assert os.pread(fd, 200, 20 * BLK) == b"b" * 7 + b"u" * 100 + b"b" * 93
        # direct reads at EOF are short
        assert os.preadv(dfd, [memoryview(buf)[:8 * BLK]], 60 * BLK) == 4 * BLK
    finally:
        os.close(fd)
        os.close(dfd)
        buf.close()


def test_sync_writes_survive_a_crash(fs):
    """A write with O_SYNC/O_DSYNC returns once durable (the original ignored them).  O_DSYNC
    (fdatasync) overwrites of allocated blocks only flush the data device; anything that
    maps new blocks or changes the size commits."""
    fs.start_fenced()
    m = fs.mount(0).path
    want = {}
    for flag in ("O_SYNC", "O_DSYNC"):
        p = f"{m}/{flag}"
        data = bytearray(os.urandom(3 * BLK + 123))
        c0 = counters(m)
        fd = os.open(p, os.O_CREAT | os.O_WRONLY | getattr(os, flag), 0o644)
        assert os.write(fd, data) == len(data)
        c1 = counters(m)
        assert c1["trans_commit"] > c0["trans_commit"]  # new blocks: committed at once
        data[10:20] = b"overwrite!"
        assert os.pwrite(fd, data[10:20], 10) == 10
        c2 = counters(m)
        if flag == "O_DSYNC":
            assert c2["trans_commit"] == c1["trans_commit"]
            assert c2["data_fdatasync_flush"] == c1["data_fdatasync_flush"] + 1
        else:
            assert c2["trans_commit"] > c1["trans_commit"]
        os.close(fd)
        want[flag] = bytes(data)
    fs.kill(0)
    m = fs.mount(0).path
    for flag, data in want.items():
        with open(f"{m}/{flag}", "rb") as f:
            assert f.read() == data, flag
    fs.umount(0)
    fs.assert_clean()


def test_shared_mmap_writes_persist(mounted):
    fs = mounted
    m = fs.mounts[0].path
    p = f"{m}/mm"
    with open(p, "wb") as f:
        f.truncate(10 * BLK + 100)       # sparse: only what the mapping writes is stored
    with open(p, "r+b") as f:
        mp = mmap.mmap(f.fileno(), 0)
        mp[5:10] = b"hello"
        mp[9 * BLK:10 * BLK + 100] = b"z" * (BLK + 100)
        mp.flush()
        pv = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE)
        pv[0:5] = b"xxxxx"                 # private: never reaches the file
        assert mp[0:5] == bytes(5)
        pv.close()
        mp.close()
    assert stat_fields(p)["online_blocks"] == 3    # blocks 0, 9 and 10
    with open(p, "rb") as f:
        assert f.read(10) == bytes(5) + b"hello"
    m = remount(fs)
    with open(f"{m}/mm", "rb") as f:
        d = f.read()
    assert len(d) == 10 * BLK + 100
    assert d[:10] == bytes(5) + b"hello" and d[9 * BLK:] == b"z" * (BLK + 100)


def test_o_tmpfile_is_not_supported(mounted):
    """libfuse 3.14 has no tmpfile op: the kernel answers EOPNOTSUPP (DESIGN.md 6)."""
    m = mounted.mounts[0].path
    assert errno_of(lambda: os.open(m, os.O_TMPFILE | os.O_RDWR, 0o600)) == errno.EOPNOTSUPP


WRITER = """
import mmap, os, sys
path, me, nr_writers, nr_blocks, rounds = sys.argv[1], *map(int, sys.argv[2:])
how = ("direct", "buffered", "mmap", "direct")[me % 4]
fd = os.open(path, os.O_RDWR | (os.O_DIRECT if how == "direct" else 0))
buf = mmap.mmap(-1, 4096)
mp = mmap.mmap(fd, nr_blocks * 4096) if how == "mmap" else None
for r in range(rounds):
    for blk in range(me, nr_blocks, nr_writers):
        data = bytes([(me * 31 + blk * 7 + r) & 0xff]) * 4096
        if mp is not None:
            mp[blk * 4096:(blk + 1) * 4096] = data
        else:
            buf[:] = data
            assert os.pwritev(fd, [buf], blk * 4096) == 4096
    if mp is not None:
        mp.flush()
"""


def test_concurrent_writers_one_file(mounted):
    """Direct, buffered and mmap writers (whose writeback the kernel does not serialize with
    the others) fill one file's blocks at once: every block ends with its last write, and
    the block counts the inode keeps match its extents (scoutfs check)."""
    fs = mounted
    m = fs.mounts[0].path
    p = f"{m}/shared"
    nr_writers, nr_blocks, rounds = 4, 2048, 3
    with open(p, "wb") as f:
        f.truncate(nr_blocks * BLK)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, p, str(i), str(nr_writers),
                               str(nr_blocks), str(rounds)]) for i in range(nr_writers)]
    for pr in procs:
        assert pr.wait() == 0
    drop_caches()
    with open(p, "rb") as f:
        for blk in range(nr_blocks):
            me = blk % nr_writers
            want = bytes([(me * 31 + blk * 7 + rounds - 1) & 0xff]) * BLK
            assert f.read(BLK) == want, blk
    assert stat_fields(p)["online_blocks"] == nr_blocks
    assert os.stat(p).st_blocks == nr_blocks * 8
    fs.umount(0)
    fs.assert_clean()


CONVERTER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
for blk in range(int(sys.argv[2]), int(sys.argv[3])):
    os.pwrite(fd, b"n" * 4096, blk * 4096)   # converts a preallocated block: extents merge
"""


def test_reads_never_see_extents_change(mounted):
    """Writes that convert preallocated blocks merge extents under the data lock: direct
    reads of the blocks before them, racing, always see their data."""
    m = mounted.mounts[0].path
    p = f"{m}/race"
    first, nr = 64, 3000
    with open(p, "wb") as f:
        f.write(b"d" * (first * BLK))
    fd = os.open(p, os.O_RDWR)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, first * BLK, nr * BLK)
    os.close(fd)
    w = subprocess.Popen([sys.executable, "-c", CONVERTER, p, str(first), str(first + nr)])
    buf = mmap.mmap(-1, first * BLK)
    dfd = os.open(p, os.O_RDONLY | os.O_DIRECT)
    reads = 0
    try:
        while w.poll() is None or reads < 50:
            assert os.preadv(dfd, [buf], 0) == first * BLK
            assert buf[:] == b"d" * (first * BLK), f"read {reads} saw a change"
            reads += 1
    finally:
        os.close(dfd)
        w.wait()
    assert w.returncode == 0
    assert fiemap(p)[0] == (0, first + nr, "..L")


def test_queued_writes_are_read_back_at_once(mounted):
    """Data writes are queued for the device (write-behind): a read that arrives while they
    are queued -- the partial blocks an unaligned write must merge with, direct reads right
    after the write, overwrites of queued blocks -- sees the newest data."""
    m = mounted.mounts[0].path
    p = f"{m}/queued"
    rng = random.Random(7)
    model = bytearray()
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_DIRECT)
    c0 = counters(m)
    try:
        for i in range(600):
            # unaligned writes that mostly continue the file and sometimes go back over it
            off = len(model) if rng.random() < 0.8 else rng.randrange(max(len(model), 1))
            data = bytes([rng.randrange(256)]) * rng.randrange(1, 70000)
            assert os.pwrite(fd, data, off) == len(data)
            if off > len(model):
                model.extend(bytes(off - len(model)))
            model[off:off + len(data)] = data
            if i % 50 == 0:
                lo = rng.randrange(len(model))
                hi = min(len(model), lo + 300000)
                assert os.pread(fd, hi - lo, lo) == bytes(model[lo:hi]), i
    finally:
        os.close(fd)
    c1 = counters(m)
    assert c1["dev_wb_read_copies"] > c0["dev_wb_read_copies"]
    with open(p, "rb") as f:
        assert f.read() == bytes(model)
    drop_caches()
    with open(p, "rb") as f:
        assert f.read() == bytes(model)


# ---- preallocation ----


def write_forwards(paths, nr, start=0):
    fds = [os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644) for p in paths]
    for blk in range(start, start + nr):
        for fd in fds:
            os.pwrite(fd, bytes(BLK), blk * BLK)
    for fd in fds:
        os.close(fd)


def write_backwards(paths, nr):
    fds = [os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644) for p in paths]
    for blk in reversed(range(nr)):
        for fd in fds:
            os.pwrite(fd, bytes(BLK), blk * BLK)
    for fd in fds:
        os.close(fd)


def nr_extents(path):
    return len(fiemap(path))


def test_preallocation_layouts(fs):
    """The original's data-prealloc cases: two files written a block at a time, interleaved,
    so that their allocations never merge by accident.  Same extent counts as its golden."""
    def case(opts, write, nr, want):
        m = fs.mount(0, opts=opts).path
        files = [f"{m}/file-1", f"{m}/file-2"]
        write(files, nr)
        got = [nr_extents(f) for f in files]
        fs.umount(0)
        assert got == [want, want], (opts, write.__name__, nr)

    contig = "data_prealloc_contig_only=1"
    region = "data_prealloc_contig_only=0"
    # small files ramp up to the prealloc size: 1 1 2 4 8 16 32
    case(f"data_prealloc_blocks=32,{contig}", write_forwards, 64, 7)
    case(f"data_prealloc_blocks=32,{contig}", write_forwards, 128, 9)
    # not streaming: a block each
    case(f"data_prealloc_blocks=32,{contig}", write_backwards, 32, 32)
    # regions fill whichever way they're written
    case(f"data_prealloc_blocks=16,{region}", write_forwards, 64, 4)
    case(f"data_prealloc_blocks=16,{region}", write_backwards, 64, 4)
    # odd sizes: the last allocation's preallocated tail past EOF is its own extent
    case(f"data_prealloc_blocks=7,{contig}", write_forwards, 14, 6)
    case(f"data_prealloc_blocks=13,{region}", write_forwards, 53, 6)
    case(f"data_prealloc_blocks=1,{region}", write_forwards, 3, 3)
    # the options' ranges (scoutfs.5): blocks 1..2^52-1, contig_only 0 or 1
    for bad in ("data_prealloc_blocks=0", f"data_prealloc_blocks={1 << 52}",
                "data_prealloc_contig_only=2", "data_prealloc_blocks=x"):
        assert fs.mount(0, opts=bad, check=False).returncode != 0, bad


def test_streaming_prealloc_tail_and_truncate(mounted):
    """A stream preallocates as much as it has written (up to data_prealloc_blocks, 2048);
    the unwritten tail past EOF goes with a truncate to the same size."""
    fs = mounted
    m = fs.mounts[0].path
    p = f"{m}/stream"
    write_forwards([p], 9)                 # 0 1 [2 3] [4..7] [8..15]: 9..15 unwritten
    assert fiemap(p) == [(0, 9, "..."), (9, 7, ".UL")]
    assert os.stat(p).st_blocks == 9 * 8
    os.truncate(p, 9 * BLK)
    assert fiemap(p) == [(0, 9, "..L")]
    # a 4 MiB file written in 1 MiB requests is one extent, perhaps with preallocation
    with open(p, "wb") as f:
        for _ in range(4):
            f.write(bytes(1 << 20))
    exts = fiemap(p)
    assert exts[0][:2] == (0, 1024) and all(e[2][:2] == ".U" for e in exts[1:]), exts
    assert os.stat(p).st_blocks == 1024 * 8


# ---- requests, statfs, ENOSPC ----


def test_large_requests_and_readahead(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/req"
    dev = os.stat(m).st_dev
    with open(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb") as f:
        assert int(f.read()) == 4096
    c0 = counters(m)
    run(["dd", "if=/dev/zero", f"of={p}", "bs=1M", "count=32", "status=none"])
    c1 = counters(m)
    writes = c1["data_write_calls"] - c0["data_write_calls"]
    assert writes == 32, writes            # one request per 1 MiB write
    drop_caches()
    run(["dd", f"if={p}", "of=/dev/null", "bs=1M", "status=none"])
    c2 = counters(m)
    reads = c2["data_read_calls"] - c1["data_read_calls"]
    assert (c2["data_read_bytes"] - c1["data_read_bytes"]) >= 32 << 20
    assert reads <= 40, reads              # readahead sends 1 MiB requests, not 128 KiB


def test_statfs_totals(mounted):
    m = mounted.mounts[0].path
    st = os.statvfs(m)
    total_meta, total_data = (2 << 30) >> 16, (8 << 30) >> 12
    assert st.f_blocks == total_meta * 16 + total_data
    assert st.f_bfree == st.f_bavail and st.f_bfree <= st.f_blocks
    assert st.f_frsize == BLK
    sync(m)
    free0 = os.statvfs(m).f_bfree
    with open(f"{m}/s", "wb") as f:
        f.write(os.urandom(8 << 20))
    # this mount's use shows before its transaction commits
    assert free0 - os.statvfs(m).f_bfree >= (8 << 20) // BLK
    sync(m)
    used = free0 - os.statvfs(m).f_bfree
    assert (8 << 20) // BLK <= used <= (8 << 20) // BLK + 256   # data plus some metadata
    fd = os.open(f"{m}/s", os.O_RDWR)
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4 << 20)
    os.close(fd)
    assert os.statvfs(m).f_bfree >= free0 - (4 << 20) // BLK - 256   # freed at once
    sync(m)
    sync(m)
    assert os.statvfs(m).f_bfree >= free0 - (4 << 20) // BLK - 256


@pytest.fixture
def small_data(fs_dir):
    f = ScoutFS(fs_dir, meta_size="1G", data_size="96M")
    f.mkfs()
    yield f
    f.cleanup()


def test_enospc_and_recovery(small_data):
    """A full data device: ENOSPC, what was written stays intact, deleting works, the space
    comes back at once, and the filesystem checks clean."""
    fs = small_data
    m = fs.mount(0).path
    chunk = os.urandom(1 << 20)
    written = []
    full = None
    for i in range(200):
        p = f"{m}/f{i}"
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
        n = 0
        try:
            for _ in range(8):
                n += os.write(fd, chunk)
        except OSError as e:
            full = e.errno
        os.close(fd)
        written.append((p, n))
        if full is not None:
            break
    assert full == errno.ENOSPC
    # fallocate fails too, and nothing is left allocated by the failed attempts
    fd = os.open(f"{m}/g", os.O_CREAT | os.O_RDWR, 0o644)
    assert errno_of(lambda: fallocate(fd, 0, 0, 16 << 20)) == errno.ENOSPC
    os.close(fd)
    for p, n in written:
        with open(p, "rb") as f:
            assert f.read() == (chunk * 8)[:n], p
    # deleting works when full, and the space comes back at once
    for p, n in written[:3]:
        os.unlink(p)
    with open(f"{m}/after", "wb") as f:
        f.write(chunk * 4)
    with open(f"{m}/after", "rb") as f:
        assert f.read() == chunk * 4
    fs.umount(0)
    fs.assert_clean()
    m = fs.mount(0).path
    with open(f"{m}/after", "rb") as f:
        assert f.read() == chunk * 4
    for p, n in written[3:]:
        with open(p, "rb") as f:
            assert f.read() == (chunk * 8)[:n], p


# ---- the randomized checker ----


def fsx_path():
    top = os.path.realpath(os.path.join(HERE, "..", ".."))
    for d in ([BIN] if BIN else []) + [os.path.join(top, "build")]:
        p = os.path.join(d, "tests", "tools", "fsx")
        if os.path.exists(p):
            return p
    raise RuntimeError("tests/tools/fsx is not built (scripts/build.sh)")


def test_fsx(mounted):
    """Random writes, reads, truncates, fallocates, mmap and O_DIRECT I/O, seeks, reopens and
    remounts, every byte checked against a model.  SCOUTFS_FSX_OPS runs more operations,
    SCOUTFS_FSX_SEED replays a run."""
    fs = mounted
    m = fs.mounts[0]
    ops = int(os.environ.get("SCOUTFS_FSX_OPS", "3000"))
    seed = os.environ.get("SCOUTFS_FSX_SEED", str(int(time.time() * 1000) % (1 << 31)))
    opts = [f"metadev_path={fs.meta}", f"quorum_heartbeat_timeout_ms={fs.hb_ms}",
            f"quorum_slot_nr={m.slot}"]
    script = os.path.join(fs.dir, "remount.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nset -e\n")
        f.write(" ".join(f"'{a}'" for a in umount_argv(m.path)) + "\n")
        f.write(" ".join(f"'{a}'" for a in mount_argv(",".join(opts), fs.data, m.path)) + "\n")
    os.chmod(script, 0o755)
    d = os.path.join(m.path, "fsx")
    os.mkdir(d)
    p = subprocess.run([fsx_path(), "-n", str(ops), "-s", seed, "-D", "-R",
                        str(max(ops // 3, 200)), "-r", script, d],
                       capture_output=True, text=True, timeout=3600)
    assert p.returncode == 0, f"fsx failed (seed {seed}):\n{p.stdout}\n{p.stderr[-20000:]}"
    fs.umount(0)
    fs.assert_clean()
