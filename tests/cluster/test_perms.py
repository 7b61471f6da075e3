"""
Permissions and ownership as the kernel enforces them for local filesystems: each scenario
runs on a tmpfs and on scoutfs as unprivileged users, and the outcomes must be identical
(and some are also checked against the values POSIX requires, so the test cannot pass by
both sides failing the same way).
"""
import os
import stat

from posixcheck import (UTIME_NOW, as_user, mode_of, outcome, owner_of, raw_xattr,
                        read_bytes, utimensat_raw, write_bytes)

OWNER, MEMBER, OTHER = 1001, 1002, 1003
GROUP, OTHER_GROUP = 2001, 2002


def user(uid):
    """(uid, gid, supplementary groups) of the scenario's users."""
    return {
        OWNER: (OWNER, OWNER, [OWNER, GROUP]),
        MEMBER: (MEMBER, MEMBER, [MEMBER, GROUP]),  # in GROUP only as a supplementary group
        OTHER: (OTHER, OTHER, [OTHER]),
    }[uid]


def run_as(uid, fn, *args, **kw):
    u, g, groups = user(uid)
    return as_user(u, g, groups, fn, *args, **kw)


def access_scenario(root):
    d = f"{root}/d"
    os.mkdir(d)
    os.chown(d, OWNER, GROUP)
    os.chmod(d, 0o750)
    f = f"{d}/f"
    write_bytes(f, b"data", os.O_WRONLY | os.O_CREAT)
    os.chown(f, OWNER, GROUP)
    os.chmod(f, 0o640)
    x = f"{root}/x"
    os.mkdir(x)
    os.chmod(x, 0o711)  # search but not read
    open(f"{x}/inside", "w").close()
    res = {}
    for uid in (OWNER, MEMBER, OTHER):
        r = {}
        r["read"] = run_as(uid, read_bytes, f)
        r["write"] = run_as(uid, write_bytes, f, b"more")
        r["trunc-open"] = run_as(uid, write_bytes, f, b"", os.O_WRONLY | os.O_TRUNC)
        r["truncate"] = run_as(uid, os.truncate, f, 2)
        r["create-in-d"] = run_as(uid, write_bytes, f"{d}/new{uid}", b"", os.O_CREAT | os.O_WRONLY)
        r["mkdir-in-d"] = run_as(uid, os.mkdir, f"{d}/sub{uid}")
        r["list-d"] = run_as(uid, lambda: sorted(os.listdir(d)))
        r["list-x"] = run_as(uid, os.listdir, x)
        r["stat-through-x"] = run_as(uid, lambda: os.stat(f"{x}/inside").st_size)
        r["chmod"] = run_as(uid, os.chmod, f, 0o660)
        r["chown-group"] = run_as(uid, os.chown, f, -1, GROUP)
        r["chown-other-group"] = run_as(uid, os.chown, f, -1, OTHER_GROUP)
        r["chown-user"] = run_as(uid, os.chown, f, OTHER, -1)
        r["utime-now"] = run_as(uid, utimensat_raw, f, UTIME_NOW, UTIME_NOW)
        r["utime-set"] = run_as(uid, os.utime, f, (1, 1))
        r["set-user-xattr"] = run_as(uid, os.setxattr, f, "user.k", b"v")
        r["get-user-xattr"] = run_as(uid, os.getxattr, f, "user.k")
        r["set-trusted"] = run_as(uid, os.setxattr, f, "trusted.k", b"v")
        r["get-trusted"] = run_as(uid, os.getxattr, f, "trusted.k")
        r["rename-in-d"] = run_as(uid, os.rename, f, f"{d}/g")
        if r["rename-in-d"] == "ok":
            os.rename(f"{d}/g", f)
        r["link-into-d"] = run_as(uid, os.link, f, f"{d}/l{uid}")
        r["unlink-from-d"] = run_as(uid, os.unlink, f"{d}/new{OWNER}")
        r["mode-after"] = oct(mode_of(f))
        r["owner-after"] = owner_of(f)
        res[uid] = r
        os.chown(f, OWNER, GROUP)
        os.chmod(f, 0o640)
        write_bytes(f, b"data", os.O_WRONLY | os.O_TRUNC)
        os.setxattr(f, "trusted.k", b"v")
    # trusted. names are listed only to CAP_SYS_ADMIN
    res["list-root"] = sorted(os.listxattr(f))
    res["list-owner"] = run_as(OWNER, lambda: sorted(os.listxattr(f)))
    return res


def test_access_checks_match_local(posix_roots):
    ref, sfs = posix_roots
    want = access_scenario(ref)
    got = access_scenario(sfs)
    assert got == want
    # a few of the values POSIX fixes, so both sides failing alike cannot pass
    assert want[OWNER]["write"] == "ok" and want[MEMBER]["write"] == "EACCES"
    assert want[MEMBER]["read"] == b"data" and want[OTHER]["read"] == "EACCES"
    assert want[OTHER]["list-d"] == "EACCES" and want[OTHER]["stat-through-x"] == 0
    assert want[OWNER]["chown-other-group"] == "EPERM" and want[OWNER]["chown-group"] == "ok"
    assert want[MEMBER]["utime-now"] == "EACCES" and want[MEMBER]["utime-set"] == "EPERM"
    assert want[OWNER]["set-trusted"] == "EPERM" and want[OWNER]["get-trusted"] == "ENODATA"
    assert "trusted.k" in want["list-root"] and "trusted.k" not in want["list-owner"]


def sticky_scenario(root):
    t = f"{root}/tmp"
    os.mkdir(t)
    os.chown(t, OWNER, OWNER)
    os.chmod(t, 0o1777)
    res = {}
    for who in (OWNER, MEMBER, OTHER):
        run_as(who, write_bytes, f"{t}/of-{who}", b"x", os.O_CREAT | os.O_WRONLY)
        run_as(who, os.mkdir, f"{t}/dir-{who}")
    for who in (MEMBER, OTHER, OWNER):
        for victim in (OWNER, MEMBER, OTHER):
            if victim == who:
                continue
            res[(who, victim, "unlink")] = run_as(who, os.unlink, f"{t}/of-{victim}")
            res[(who, victim, "rename")] = run_as(who, os.rename, f"{t}/dir-{victim}",
                                                  f"{t}/moved-{who}-{victim}")
            res[(who, victim, "replace")] = run_as(who, os.rename, f"{t}/of-{who}",
                                                   f"{t}/of-{victim}")
            if not os.path.exists(f"{t}/of-{who}"):
                run_as(who, write_bytes, f"{t}/of-{who}", b"x", os.O_CREAT | os.O_WRONLY)
            res[(who, victim, "user-xattr-on-dir")] = run_as(who, os.setxattr, t, "user.s", b"1")
    res["left"] = sorted(os.listdir(t))
    return res


def test_sticky_directories(posix_roots):
    ref, sfs = posix_roots
    want = sticky_scenario(ref)
    assert sticky_scenario(sfs) == want
    assert want[(MEMBER, OTHER, "unlink")] == "EPERM"
    assert want[(OWNER, MEMBER, "unlink")] == "ok"  # the directory's owner may


def setgid_scenario(root, umask):
    s = f"{root}/sgid"
    os.mkdir(s)
    os.chown(s, OWNER, GROUP)
    os.chmod(s, 0o2777)
    res = {}
    for who in (OWNER, OTHER):
        for kind in ("file", "dir", "fifo", "sgidfile"):
            p = f"{s}/{kind}-{who}"
            if kind == "file":
                res[p[len(root):]] = run_as(who, write_bytes, p, b"", os.O_CREAT | os.O_WRONLY,
                                            umask=umask)
            elif kind == "dir":
                res[p[len(root):]] = run_as(who, os.mkdir, p, 0o777, umask=umask)
                run_as(who, os.mkdir, f"{p}/deeper", umask=umask)
                res[p[len(root):] + "/deeper"] = (oct(mode_of(f"{p}/deeper")),
                                                  owner_of(f"{p}/deeper"))
            elif kind == "fifo":
                res[p[len(root):]] = run_as(who, os.mkfifo, p, 0o666, umask=umask)
            else:
                # creating a setgid file in a group one is not in drops the bit
                res[p[len(root):]] = run_as(
                    who, lambda p=p: os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o2775)),
                    umask=umask)
            res[p[len(root):] + " mode"] = oct(mode_of(p))
            res[p[len(root):] + " owner"] = owner_of(p)
    # chmod g+s by the owner who is not in the file's group is silently dropped
    f = f"{s}/file-{OTHER}"
    os.chown(f, OTHER, GROUP)
    res["chmod-g+s-nonmember"] = run_as(OTHER, os.chmod, f, 0o2755)
    res["mode-after-chmod"] = oct(mode_of(f))
    return res


def test_setgid_directories(posix_roots):
    ref, sfs = posix_roots
    for umask in (0o022, 0o077):
        want = setgid_scenario(ref, umask)
        assert setgid_scenario(sfs, umask) == want
        os.system(f"rm -rf {ref}/sgid {sfs}/sgid")
    assert want[f"/sgid/dir-{OTHER} mode"] == oct(0o2700)
    assert want[f"/sgid/file-{OTHER} owner"] == (OTHER, GROUP)


def setid_scenario(root):
    """Which operations clear set-id bits, by whom."""
    res = {}

    def fresh(name, mode=0o6777):
        p = f"{root}/{name}"
        write_bytes(p, b"0123456789", os.O_CREAT | os.O_WRONLY)
        os.chown(p, OWNER, GROUP)
        os.chmod(p, mode)
        return p

    cases = [
        ("owner-write", OWNER, lambda p: write_bytes(p, b"a")),
        ("other-write", OTHER, lambda p: write_bytes(p, b"a")),
        ("root-write", 0, lambda p: write_bytes(p, b"a")),
        ("other-truncate", OTHER, lambda p: os.truncate(p, 3)),
        ("other-otrunc", OTHER, lambda p: write_bytes(p, b"", os.O_WRONLY | os.O_TRUNC)),
        ("other-append", OTHER, lambda p: write_bytes(p, b"z", os.O_WRONLY | os.O_APPEND)),
        ("root-chown", 0, lambda p: os.chown(p, OTHER, -1)),
        ("root-chgrp", 0, lambda p: os.chown(p, -1, OTHER)),
        ("owner-chgrp", OWNER, lambda p: os.chown(p, -1, GROUP)),
        ("other-setxattr", OTHER, lambda p: os.setxattr(p, "user.x", b"1")),
    ]
    for name, who, op in cases:
        for mode in (0o6777, 0o6767, 0o4777, 0o2777):
            p = fresh(f"{name}-{oct(mode)}", mode)
            if who == 0:
                r = outcome(op, p)
            else:
                r = run_as(who, op, p)
            res[(name, oct(mode))] = (r, oct(mode_of(p)))
    return res


def test_setid_bits_cleared_like_local(posix_roots):
    ref, sfs = posix_roots
    want = setid_scenario(ref)
    assert setid_scenario(sfs) == want
    assert want[("other-write", oct(0o6777))] == ("ok", oct(0o777))
    assert want[("root-write", oct(0o6777))] == ("ok", oct(0o6777))
    assert want[("root-chown", oct(0o6777))][1] == oct(0o777)


def direct_write(p):
    import mmap
    buf = mmap.mmap(-1, 4096)
    buf.write(b"d" * 4096)
    fd = os.open(p, os.O_WRONLY | os.O_DIRECT)
    try:
        os.write(fd, buf)
    finally:
        os.close(fd)


def test_setid_bits_cleared_by_direct_io_writes(posix_roots):
    """
    O_DIRECT writes bypass the kernel's suid clearing on FUSE (they never call
    file_remove_privs), so the daemon clears the bits itself.
    """
    ref, sfs = posix_roots
    res = []
    for root in posix_roots:
        r = {}
        for who in (OTHER, 0):
            p = f"{root}/dio-{who}"
            write_bytes(p, b"x" * 8192, os.O_CREAT | os.O_WRONLY)
            os.chown(p, OWNER, GROUP)
            os.chmod(p, 0o6777)
            r[who] = (run_as(who, direct_write, p) if who else outcome(direct_write, p),
                      oct(mode_of(p)))
        res.append(r)
    assert res[0][OTHER][0] == "ok", "the reference must support O_DIRECT"
    assert res[1] == res[0]
    assert res[1][OTHER][1] == oct(0o777) and res[1][0][1] == oct(0o6777)


def test_supplementary_group_access(posix_roots):
    for root in posix_roots:
        p = f"{root}/grp"
        write_bytes(p, b"secret", os.O_CREAT | os.O_WRONLY)
        os.chown(p, OWNER, GROUP)
        os.chmod(p, 0o060)  # only the group may read and write
        assert as_user(MEMBER, MEMBER, [MEMBER, GROUP], read_bytes, p) == b"secret"
        assert as_user(MEMBER, MEMBER, [MEMBER], read_bytes, p) == "EACCES"
        assert as_user(OWNER, OWNER, [OWNER, GROUP], read_bytes, p) == "EACCES"  # owner bits win
        assert as_user(OTHER, GROUP, [], read_bytes, p) == b"secret"  # primary group


def test_listxattr_hides_trusted_from_unprivileged(mounted):
    m = mounted.mounts[0].path
    os.chmod(mounted.dir, 0o755)
    p = f"{m}/f"
    open(p, "w").close()
    os.chmod(p, 0o644)
    os.setxattr(p, "trusted.t", b"1")
    os.setxattr(p, "user.u", b"2")
    assert sorted(os.listxattr(p)) == ["trusted.t", "user.u"]
    assert as_user(OTHER, OTHER, [], os.listxattr, p) == ["user.u"]
    # the size query agrees with what is returned
    n = as_user(OTHER, OTHER, [], lambda: raw_xattr("list", p, None, 0)[0])
    assert n == len(b"user.u\0")
    # a root process without CAP_SYS_ADMIN is not privileged either
    from harness import run
    out = run(["setpriv", "--inh-caps=-all", "--bounding-set=-sys_admin", "--", "python3", "-c",
               f"import os; print(sorted(os.listxattr({p!r})))"]).stdout.strip()
    assert out == "['user.u']"


def test_mode_types_and_stat(posix_roots):
    for root in posix_roots:
        os.mkfifo(f"{root}/fifo", 0o640)
        assert stat.S_ISFIFO(os.stat(f"{root}/fifo").st_mode)


def file_caps_scenario(root):
    # a version 2 file capability: CAP_NET_BIND_SERVICE permitted
    caps = (0x02000000).to_bytes(4, "little") + (1 << 10).to_bytes(4, "little") + bytes(12)
    res = {}
    for who in (OTHER, 0):
        p = f"{root}/caps-{who}"
        write_bytes(p, b"x", os.O_CREAT | os.O_WRONLY)
        os.chmod(p, 0o777)
        res[(who, "set")] = outcome(os.setxattr, p, "security.capability", caps)
        op = (lambda p=p: write_bytes(p, b"y"))
        res[(who, "write")] = run_as(who, op) if who else outcome(op)
        res[(who, "after")] = sorted(os.listxattr(p))
    return res


def test_file_capabilities_dropped_on_write(posix_roots):
    """A write removes security.capability (the kernel does it through our xattr ops)."""
    ref, sfs = posix_roots
    want = file_caps_scenario(ref)
    assert file_caps_scenario(sfs) == want
    assert want[(OTHER, "set")] == "ok" and want[(OTHER, "after")] == []
