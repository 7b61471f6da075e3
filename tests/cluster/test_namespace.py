"""
The namespace: every file type, names and paths at their limits, hard links, rename in all
its forms (renameat2 NOREPLACE and EXCHANGE included), large directories, readdir while the
directory changes, and parallel lookups.  Errnos are compared with a tmpfs where the
original defines no other behaviour.
"""
import os
import stat
import threading

import pytest

from harness import ScoutFS, run, scoutfs_cmd
from posixcheck import RENAME_EXCHANGE, RENAME_NOREPLACE, outcome, renameat2


def remount(fs):
    fs.umount(0)
    fs.mount(0)
    return fs.mounts[0].path


def counters(path):
    out = run(scoutfs_cmd("counters", "-p", path)).stdout
    return {ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines() if len(ln.split()) == 2}


def test_every_file_type(mounted):
    fs = mounted
    m = fs.mounts[0].path
    devs = [os.makedev(1, 3), os.makedev(259, 70000), os.makedev(4095, 1048575)]
    os.mkdir(f"{m}/dir", 0o750)
    open(f"{m}/reg", "w").close()
    os.symlink("reg", f"{m}/lnk")
    os.mkfifo(f"{m}/fifo", 0o600)
    os.mknod(f"{m}/sock", 0o644 | stat.S_IFSOCK)
    for i, d in enumerate(devs):
        os.mknod(f"{m}/chr{i}", 0o600 | stat.S_IFCHR, d)
        os.mknod(f"{m}/blk{i}", 0o600 | stat.S_IFBLK, d)
    want = {}
    for e in os.scandir(m):
        st = e.stat(follow_symlinks=False)
        want[e.name] = (stat.S_IFMT(st.st_mode), st.st_rdev, e.is_dir(follow_symlinks=False),
                        e.is_symlink(), e.inode())
    assert want["chr1"][1] == devs[1] and want["blk2"][1] == devs[2]
    assert want["sock"][0] == stat.S_IFSOCK and want["fifo"][0] == stat.S_IFIFO
    # the device node opens the device itself (/dev/null here)
    with open(f"{m}/chr0", "wb") as f:
        f.write(b"gone")
    with open(f"{m}/chr0", "rb") as f:
        assert f.read() == b""
    m = remount(fs)
    got = {}
    for e in os.scandir(m):
        st = e.stat(follow_symlinks=False)
        got[e.name] = (stat.S_IFMT(st.st_mode), st.st_rdev, e.is_dir(follow_symlinks=False),
                       e.is_symlink(), e.inode())
    assert got == want


def test_symlink_targets(mounted):
    m = mounted.mounts[0].path
    for n in (1, 895, 896, 897, 2000, 4095):
        t = ("t" * (n - 1)) + "x"
        os.symlink(t, f"{m}/l{n}")
        assert os.readlink(f"{m}/l{n}") == t
        assert os.lstat(f"{m}/l{n}").st_size == n
    assert outcome(os.symlink, "x" * 4096, f"{m}/too-long") == "ENAMETOOLONG"
    assert outcome(os.symlink, "", f"{m}/empty") == "ENOENT"
    m = remount(mounted)
    assert os.readlink(f"{m}/l4095") == "t" * 4094 + "x"


def name_limit_scenario(root):
    ok = "n" * 255
    long = "n" * 256
    res = {}
    res["create-255"] = outcome(lambda: os.close(os.open(f"{root}/{ok}", os.O_CREAT)))
    res["create-256"] = outcome(lambda: os.close(os.open(f"{root}/{long}", os.O_CREAT)))
    res["mkdir-256"] = outcome(os.mkdir, f"{root}/{long}")
    res["symlink-256"] = outcome(os.symlink, "x", f"{root}/{long}")
    res["link-256"] = outcome(os.link, f"{root}/{ok}", f"{root}/{long}")
    res["rename-256"] = outcome(os.rename, f"{root}/{ok}", f"{root}/{long}")
    res["stat-256"] = outcome(os.stat, f"{root}/{long}")
    res["mknod-256"] = outcome(os.mkfifo, f"{root}/{long}")
    res["listed"] = os.listdir(root)
    res["binary"] = outcome(lambda: os.close(os.open(f"{root}/\x01\xff\x7fé".encode(),
                                                     os.O_CREAT)))
    res["binary-listed"] = sorted(os.listdir(root.encode()))
    return res


def test_name_limits_match_local(posix_roots):
    ref, sfs = posix_roots
    want = name_limit_scenario(ref)
    assert name_limit_scenario(sfs) == want
    assert want["create-255"] == "ok" and want["create-256"] == "ENAMETOOLONG"


def test_long_paths(mounted):
    """A tree deeper than PATH_MAX, walked with relative paths."""
    m = mounted.mounts[0].path
    comp = "d" * 250
    fd = os.open(m, os.O_RDONLY)
    depth = 40  # about 10 KB of path
    for _ in range(depth):
        os.mkdir(comp, dir_fd=fd)
        nfd = os.open(comp, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    leaf = os.open("leaf", os.O_CREAT | os.O_WRONLY, dir_fd=fd)
    os.write(leaf, b"deep")
    os.close(leaf)
    os.close(fd)
    full = m + ("/" + comp) * depth + "/leaf"
    assert len(full) > 4096
    assert outcome(os.stat, full) == "ENAMETOOLONG"
    cwd = os.getcwd()
    try:
        os.chdir(m)
        for _ in range(depth):
            os.chdir(comp)
        with open("leaf", "rb") as f:
            assert f.read() == b"deep"
    finally:
        os.chdir(cwd)


def link_scenario(root):
    res = {}
    open(f"{root}/f", "w").close()
    os.mkdir(f"{root}/d")
    os.mkdir(f"{root}/e")
    res["link"] = outcome(os.link, f"{root}/f", f"{root}/d/f2")
    res["link-again"] = outcome(os.link, f"{root}/f", f"{root}/e/f3")
    res["nlink"] = os.stat(f"{root}/f").st_nlink
    res["same-ino"] = os.stat(f"{root}/f").st_ino == os.stat(f"{root}/e/f3").st_ino
    res["link-exists"] = outcome(os.link, f"{root}/f", f"{root}/d/f2")
    res["link-dir"] = outcome(os.link, f"{root}/d", f"{root}/d-link")
    res["link-missing"] = outcome(os.link, f"{root}/nope", f"{root}/x")
    res["link-into-file"] = outcome(os.link, f"{root}/f", f"{root}/f/x")
    os.symlink("f", f"{root}/sym")
    res["link-symlink"] = outcome(os.link, f"{root}/sym", f"{root}/sym2")
    res["sym2-is-link"] = os.path.islink(f"{root}/sym2")
    res["unlink"] = outcome(os.unlink, f"{root}/f")
    res["nlink-after"] = os.stat(f"{root}/d/f2").st_nlink
    res["dir-nlinks"] = (os.stat(root).st_nlink, os.stat(f"{root}/d").st_nlink)
    return res


def test_hard_links_match_local(posix_roots):
    ref, sfs = posix_roots
    want = link_scenario(ref)
    assert link_scenario(sfs) == want
    assert want["nlink"] == 3 and want["link-dir"] == "EPERM" and want["nlink-after"] == 2


def rename_scenario(root):
    res = {}

    def setup():
        os.system(f"rm -rf {root}/r")
        os.makedirs(f"{root}/r/a/sub/subsub")
        os.makedirs(f"{root}/r/b")
        os.mkdir(f"{root}/r/empty")
        os.mkdir(f"{root}/r/full")
        open(f"{root}/r/full/x", "w").close()
        for n in ("f1", "f2", "a/af"):
            with open(f"{root}/r/{n}", "w") as f:
                f.write(n)
        os.link(f"{root}/r/f1", f"{root}/r/f1-link")
        return f"{root}/r"

    def nlinks(r):
        return {n: os.stat(f"{r}/{n}").st_nlink for n in ("", "a", "b", "empty", "full")
                if os.path.exists(f"{r}/{n}")}

    cases = [
        ("file-over-file", "f1", "f2", 0),
        ("dir-over-empty-dir", "a", "empty", 0),
        ("dir-over-full-dir", "a", "full", 0),
        ("file-over-dir", "f1", "empty", 0),
        ("dir-over-file", "a", "f1", 0),
        ("dir-into-itself", "a", "a/sub/new", 0),
        ("dir-onto-own-child", "a", "a/sub", 0),
        ("parent-onto-child-ex", "a", "a/sub", RENAME_EXCHANGE),
        ("child-onto-parent-ex", "a/sub", "a", RENAME_EXCHANGE),
        ("to-self", "f1", "f1", 0),
        ("hard-links", "f1", "f1-link", 0),
        ("missing", "nope", "x", 0),
        ("into-missing-dir", "f1", "nodir/x", 0),
        ("through-file", "f1", "f2/x", 0),
        ("cross-dir-dir", "a", "b/a2", 0),
        ("cross-dir-file", "a/af", "b/af", 0),
        ("noreplace-exists", "f1", "f2", RENAME_NOREPLACE),
        ("noreplace-new", "f1", "f3", RENAME_NOREPLACE),
        ("exchange-files", "f1", "f2", RENAME_EXCHANGE),
        ("exchange-missing", "f1", "nope", RENAME_EXCHANGE),
        ("exchange-file-dir", "f1", "a", RENAME_EXCHANGE),
        ("exchange-across", "a/af", "b", RENAME_EXCHANGE),
        ("exchange-dirs-across", "a/sub", "b", RENAME_EXCHANGE),
        ("exchange-dir-file-across", "a/sub", "f2", RENAME_EXCHANGE),
        ("exchange-full-dir", "full", "f1", RENAME_EXCHANGE),
        ("exchange-noreplace", "f1", "f2", RENAME_EXCHANGE | RENAME_NOREPLACE),
        ("dot", "a/.", "b/x", 0),
        ("dotdot-target", "f1", "a/..", 0),
    ]
    for name, old, new, flags in cases:
        r = setup()
        before = {p: os.lstat(f"{r}/{p}").st_ino for p in (old, new) if os.path.lexists(f"{r}/{p}")}
        res[name] = outcome(renameat2, f"{r}/{old}", f"{r}/{new}", flags)
        after = {p: os.lstat(f"{r}/{p}").st_ino for p in (old, new) if os.path.lexists(f"{r}/{p}")}
        # which names now hold which of the inodes that were there
        res[name + " names"] = sorted((p, sorted(q for q, i in before.items() if i == ino))
                                      for p, ino in after.items())
        res[name + " nlinks"] = nlinks(r)
        res[name + " listing"] = sorted(os.listdir(r))
    return res


def test_rename_matches_local(posix_roots):
    ref, sfs = posix_roots
    want = rename_scenario(ref)
    got = rename_scenario(sfs)
    assert got == want
    assert want["dir-over-full-dir"] == "ENOTEMPTY" and want["file-over-dir"] == "EISDIR"
    assert want["dir-over-file"] == "ENOTDIR" and want["dir-into-itself"] == "EINVAL"
    assert want["noreplace-exists"] == "EEXIST" and want["exchange-file-dir"] == "ok"
    assert want["exchange-dir-file-across nlinks"]["a"] == 2  # sub left a for the root


def test_exchange_survives_remount_and_check(mounted):
    fs = mounted
    m = fs.mounts[0].path
    os.makedirs(f"{m}/p/d/inner")
    os.makedirs(f"{m}/q")
    with open(f"{m}/q/f", "w") as f:
        f.write("file")
    renameat2(f"{m}/p/d", f"{m}/q/f", RENAME_EXCHANGE)
    assert os.path.isdir(f"{m}/q/f/inner") and open(f"{m}/p/d").read() == "file"
    assert os.stat(f"{m}/p").st_nlink == 2 and os.stat(f"{m}/q").st_nlink == 3
    m = remount(fs)
    assert os.path.isdir(f"{m}/q/f/inner") and open(f"{m}/p/d").read() == "file"
    assert os.stat(f"{m}/p").st_nlink == 2 and os.stat(f"{m}/q").st_nlink == 3
    assert os.stat(f"{m}/q/f/inner/..").st_ino == os.stat(f"{m}/q/f").st_ino
    fs.umount(0)
    fs.assert_clean()


BIG = int(os.environ.get("SCOUTFS_TEST_BIG_DIR", "50000"))


def test_big_directory(mounted):
    """Create, look up, list and remove in a directory of many entries."""
    m = mounted.mounts[0].path
    d = f"{m}/big"
    os.mkdir(d)
    fd = os.open(d, os.O_RDONLY)
    names = [f"entry-{i:07d}" for i in range(BIG)]
    for n in names:
        os.close(os.open(n, os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    assert outcome(lambda: os.close(os.open(names[BIG // 2], os.O_CREAT | os.O_EXCL,
                                            dir_fd=fd))) == "EEXIST"
    for n in names[::997]:
        assert os.stat(n, dir_fd=fd).st_nlink == 1
    assert outcome(os.stat, "entry-x", dir_fd=fd) == "ENOENT"
    assert os.listdir(d) == names
    assert os.stat(d).st_size == sum(len(n) for n in names)
    for n in names[::2]:
        os.unlink(n, dir_fd=fd)
    os.close(fd)
    assert os.listdir(d) == names[1::2]


def test_readdir_while_directory_changes(mounted):
    """
    Entries that stay are returned exactly once, entries removed before readdir reaches them
    are not returned, and nothing is returned twice, whatever happens between getdents calls.
    """
    m = mounted.mounts[0].path
    d = f"{m}/churn"
    os.mkdir(d)
    names = [f"n{i:05d}-" + "x" * 40 for i in range(4000)]
    for n in names:
        open(f"{d}/{n}", "w").close()
    seen = []
    removed_unread = set()
    it = os.scandir(d)
    for i, e in enumerate(it):
        seen.append(e.name)
        if i == 500:
            # remove some already read and some not yet read, add new ones
            for n in names[100:200] + names[3000:3100]:
                os.unlink(f"{d}/{n}")
            removed_unread = set(names[3000:3100])
            for j in range(300):
                open(f"{d}/new{j:04d}", "w").close()
            # a rename of an unread entry moves it to the end
            os.rename(f"{d}/{names[2000]}", f"{d}/renamed")
    it.close()
    assert len(seen) == len(set(seen)), "an entry was returned twice"
    unchanged = set(names) - set(names[100:200]) - removed_unread - {names[2000]}
    assert unchanged <= set(seen), sorted(unchanged - set(seen))[:5]
    assert not (removed_unread & set(seen))
    assert "renamed" in seen  # created after the cursor: seen at the end


def test_parallel_lookups_in_one_directory(mounted):
    """
    With PARALLEL_DIROPS patched into the INIT reply the kernel sends several LOOKUPs for one
    directory at once; libfuse 3.14 alone serializes them, and then no lookup ever overlaps.
    """
    m = mounted.mounts[0].path
    os.mkdir(f"{m}/par")
    before = counters(m)["fuse_lookup_overlap"]

    def stat_many(t):
        for i in range(3000):
            try:
                os.stat(f"{m}/par/missing-{t}-{i}")
            except FileNotFoundError:
                pass
    threads = [threading.Thread(target=stat_many, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counters(m)["fuse_lookup_overlap"] > before


def test_statfs_fields(mounted):
    st = os.statvfs(mounted.mounts[0].path)
    assert st.f_namemax == 255 and st.f_bsize == 4096 and st.f_frsize == 4096
    assert 0 < st.f_bfree <= st.f_blocks and st.f_bavail == st.f_bfree
    assert 0 < st.f_ffree <= st.f_files


@pytest.mark.parametrize("mode", [0o755, 0o700])
def test_mkdir_modes_and_nlink(mounted, mode):
    m = mounted.mounts[0].path
    os.mkdir(f"{m}/d", mode)
    for i in range(5):
        os.mkdir(f"{m}/d/s{i}")
    assert os.stat(f"{m}/d").st_nlink == 7
    os.rmdir(f"{m}/d/s0")
    assert os.stat(f"{m}/d").st_nlink == 6
    assert stat.S_IMODE(os.stat(f"{m}/d").st_mode) == mode & ~0o022


def test_unlinked_inodes_deleted_once(fs_dir):
    """
    The evict thread and a frequent orphan scan both delete unlinked inodes; they must not
    delete the same inode at once (that left index items of deleted inodes behind).  A small
    metadata device makes commits, and so the race, frequent.
    """
    fs = ScoutFS(fs_dir, meta_size="256M", data_size="1G")
    fs.mkfs()
    try:
        _unlink_churn(fs)
    finally:
        fs.cleanup()


def _unlink_churn(fs):
    m = fs.mount(0, opts="orphan_scan_delay_ms=100").path
    d = f"{m}/r"
    os.mkdir(d)
    for _ in range(3):
        for i in range(3000):
            with open(f"{d}/f{i}", "w") as f:
                f.write("x")
        run(scoutfs_cmd("sync", "-p", m))
        for i in range(3000):
            os.unlink(f"{d}/f{i}")
        run(scoutfs_cmd("sync", "-p", m))
    fs.umount(0)
    fs.assert_clean()


def test_telldir_offsets_stay_valid(mounted):
    """
    A telldir() offset taken before the directory changed still resumes right after the
    entry it was taken at: removed entries are skipped, nothing is repeated.
    """
    import ctypes

    class Dirent(ctypes.Structure):
        _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                    ("d_reclen", ctypes.c_uint16), ("d_type", ctypes.c_uint8),
                    ("d_name", ctypes.c_char * 256)]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype = ctypes.c_void_p
    libc.readdir64.restype = ctypes.POINTER(Dirent)
    libc.readdir64.argtypes = [ctypes.c_void_p]
    libc.telldir.restype = ctypes.c_long
    libc.telldir.argtypes = [ctypes.c_void_p]
    libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
    libc.closedir.argtypes = [ctypes.c_void_p]

    m = mounted.mounts[0].path
    d = f"{m}/seek"
    os.mkdir(d)
    names = [f"e{i:04d}" for i in range(1000)]
    for n in names:
        open(f"{d}/{n}", "w").close()
    dirp = libc.opendir(os.fsencode(d))
    assert dirp
    offsets = {}
    order = []
    while True:
        e = libc.readdir64(dirp)
        if not e:
            break
        name = e.contents.d_name.decode()
        order.append(name)
        offsets[name] = libc.telldir(dirp)  # resumes after this entry
    assert order[:2] == [".", ".."] and order[2:] == names
    # remove the entries right after e0499, and some later ones; add new ones
    for n in names[500:510] + names[700:800:2]:
        os.unlink(f"{d}/{n}")
    for i in range(5):
        open(f"{d}/late{i}", "w").close()
    libc.seekdir(dirp, offsets["e0499"])
    rest = []
    while True:
        e = libc.readdir64(dirp)
        if not e:
            break
        rest.append(e.contents.d_name.decode())
    libc.closedir(dirp)
    gone = set(names[500:510] + names[700:800:2])
    assert rest == [n for n in names[500:] if n not in gone] + [f"late{i}" for i in range(5)]
