"""
Timestamps: which of atime/mtime/ctime each operation changes on the inodes and directories
involved (compared with a tmpfs), nanosecond resolution, utimensat with UTIME_NOW and
UTIME_OMIT and its permission rules, and crtime as `scoutfs stat` shows it.

Reads do not update atime (FUSE inodes are S_NOATIME and the daemon does not keep access
times; the original never persisted read atimes either), so reads are not compared.
"""
import os
import time

from harness import run, scoutfs_cmd
from posixcheck import (RENAME_EXCHANGE, UTIME_NOW, UTIME_OMIT, as_user, renameat2,
                        utimensat_raw, write_bytes)


def times(p):
    st = os.lstat(p)
    return (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


def changed(before, after):
    return "".join(c for c, b, a in zip("amc", before, after) if a != b) or "-"


def times_scenario(root):
    res = {}

    def step(name, watch, op):
        paths = {w: f"{root}/{w}" for w in watch}
        before = {w: times(p) for w, p in paths.items() if os.path.lexists(p)}
        time.sleep(0.02)
        op()
        res[name] = {w: changed(before[w], times(paths[w])) if os.path.lexists(paths[w])
                     else "gone" for w in before}

    os.mkdir(f"{root}/d")
    os.mkdir(f"{root}/e")
    write_bytes(f"{root}/d/f", b"0123456789", os.O_CREAT | os.O_WRONLY)
    step("create", ["d"], lambda: os.close(os.open(f"{root}/d/new", os.O_CREAT)))
    step("mkdir", ["d"], lambda: os.mkdir(f"{root}/d/sub"))
    step("symlink", ["d"], lambda: os.symlink("f", f"{root}/d/sym"))
    step("mknod", ["d"], lambda: os.mkfifo(f"{root}/d/fifo"))
    step("link", ["d", "e", "d/f"], lambda: os.link(f"{root}/d/f", f"{root}/e/l"))
    step("unlink-link", ["d", "e", "d/f"], lambda: os.unlink(f"{root}/e/l"))
    step("rename-same-dir", ["d", "d/f"], lambda: os.rename(f"{root}/d/f", f"{root}/d/g"))
    step("rename-cross-dir", ["d", "e", "d/g"], lambda: os.rename(f"{root}/d/g", f"{root}/e/g"))
    step("rename-over", ["e", "d/new", "e/g"], lambda: os.rename(f"{root}/d/new",
                                                                 f"{root}/e/g"))
    step("rename-dir-cross", ["d", "e", "d/sub"], lambda: os.rename(f"{root}/d/sub",
                                                                    f"{root}/e/sub"))
    write_bytes(f"{root}/d/x", b"x", os.O_CREAT | os.O_WRONLY)
    step("exchange", ["d", "e", "d/x", "e/sub"],
         lambda: renameat2(f"{root}/d/x", f"{root}/e/sub", RENAME_EXCHANGE))
    step("rmdir", ["e"], lambda: os.rmdir(f"{root}/d/x"))
    step("write", ["e", "e/g"], lambda: write_bytes(f"{root}/e/g", b"abc"))
    step("append", ["e/g"], lambda: write_bytes(f"{root}/e/g", b"z", os.O_WRONLY | os.O_APPEND))
    step("truncate-shrink", ["e/g"], lambda: os.truncate(f"{root}/e/g", 1))
    step("truncate-same", ["e/g"], lambda: os.truncate(f"{root}/e/g", 1))
    step("otrunc", ["e/g"], lambda: write_bytes(f"{root}/e/g", b"", os.O_WRONLY | os.O_TRUNC))
    step("chmod", ["e/g", "e"], lambda: os.chmod(f"{root}/e/g", 0o600))
    step("chown", ["e/g"], lambda: os.chown(f"{root}/e/g", 5, 5))
    step("setxattr", ["e/g"], lambda: os.setxattr(f"{root}/e/g", "user.k", b"v"))
    step("removexattr", ["e/g"], lambda: os.removexattr(f"{root}/e/g", "user.k"))
    step("utime-set", ["e/g"], lambda: os.utime(f"{root}/e/g", ns=(5, 6)))
    step("utime-now", ["e/g"], lambda: utimensat_raw(f"{root}/e/g", UTIME_NOW, UTIME_NOW))
    step("utime-omit", ["e/g"], lambda: utimensat_raw(f"{root}/e/g", UTIME_OMIT, UTIME_OMIT))
    step("utime-atime-only", ["e/g"], lambda: utimensat_raw(f"{root}/e/g", (7, 8), UTIME_OMIT))
    step("utime-symlink-nofollow", ["d/sym", "e/g"],
         lambda: os.utime(f"{root}/d/sym", ns=(9, 10), follow_symlinks=False))
    step("unlink-last", ["e", "d"], lambda: os.unlink(f"{root}/e/g"))
    step("stat", ["d"], lambda: os.stat(f"{root}/d"))
    return res


def test_times_change_like_local(posix_roots):
    ref, sfs = posix_roots
    want = times_scenario(ref)
    got = times_scenario(sfs)
    assert got == want
    assert want["create"] == {"d": "mc"} and want["chmod"] == {"e/g": "c", "e": "-"}
    assert want["write"] == {"e": "-", "e/g": "mc"} and want["link"]["d/f"] == "c"


def test_nanoseconds_and_utime_rules(posix_roots):
    ref, sfs = posix_roots
    results = []
    for root in posix_roots:
        r = {}
        p = f"{root}/f"
        write_bytes(p, b"x", os.O_CREAT | os.O_WRONLY)
        os.utime(p, ns=(1_000_000_123, 2_000_000_456))
        r["ns"] = times(p)[:2]
        utimensat_raw(p, (3, 999_999_999), UTIME_OMIT)
        r["omit-mtime"] = times(p)[:2]
        utimensat_raw(p, UTIME_OMIT, (4, 1))
        r["omit-atime"] = times(p)[:2]
        os.utime(p, ns=(-1_000_000_000, 2**40))  # before the epoch, far in the future
        r["extremes"] = times(p)[:2]
        os.chown(p, 1201, 1201)
        os.chmod(p, 0o666)
        for who in (1201, 1202):
            r[(who, "now")] = as_user(who, who, [], utimensat_raw, p, UTIME_NOW, UTIME_NOW)
            r[(who, "null")] = as_user(who, who, [], os.utime, p, None)
            r[(who, "set")] = as_user(who, who, [], os.utime, p, (1, 1))
            r[(who, "now-omit")] = as_user(who, who, [], utimensat_raw, p, UTIME_NOW, UTIME_OMIT)
            r[(who, "omit-omit")] = as_user(who, who, [], utimensat_raw, p, UTIME_OMIT,
                                            UTIME_OMIT)
        os.chmod(p, 0o644)
        r["now-without-write"] = as_user(1202, 1202, [], utimensat_raw, p, UTIME_NOW, UTIME_NOW)
        t0 = time.time_ns()
        utimensat_raw(p, UTIME_NOW, UTIME_NOW)
        a, m, c = times(p)
        r["now-is-now"] = a == m == c and abs(m - t0) < 5 * 10**9
        results.append(r)
    assert results[1] == results[0]
    want = results[0]
    assert want["ns"] == (1_000_000_123, 2_000_000_456)
    assert want[(1202, "now")] == "ok" and want[(1202, "set")] == "EPERM"
    assert want["now-without-write"] == "EACCES" and want["now-is-now"]


def scoutfs_crtime(path):
    out = run(scoutfs_cmd("stat", "-s", "crtime", path)).stdout.strip()
    sec, nsec = out.split(".")
    return int(sec) * 10**9 + int(nsec)


def test_crtime_kept(mounted):
    fs = mounted
    m = fs.mounts[0].path
    p = f"{m}/f"
    t0 = time.time_ns()
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY))
    os.mkdir(f"{m}/d")
    created = scoutfs_crtime(p)
    assert created == os.stat(p).st_mtime_ns and abs(created - t0) < 5 * 10**9
    assert scoutfs_crtime(f"{m}/d") == os.stat(f"{m}/d").st_ctime_ns
    time.sleep(0.02)
    write_bytes(p, b"more")
    os.chmod(p, 0o600)
    os.utime(p, ns=(1, 1))
    os.rename(p, f"{m}/d/g")
    assert scoutfs_crtime(f"{m}/d/g") == created
    full = run(scoutfs_cmd("stat", f"{m}/d/g")).stdout
    assert "crtime" in full and "%d.%09d" % (created // 10**9, created % 10**9) in full
    fs.umount(0)
    fs.mount(0)
    assert scoutfs_crtime(f"{m}/d/g") == created
