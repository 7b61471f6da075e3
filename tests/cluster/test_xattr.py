"""
Extended attributes: namespaces, the original's limits and errnos, permission rules per
namespace (compared with a tmpfs), scoutfs. tags, and values across item part boundaries.
"""
import os
import stat

import pytest

from posixcheck import as_user, outcome, raw_xattr, write_bytes

PART = 896  # bytes of an xattr item: values longer than a part are split


def remount(fs):
    fs.umount(0)
    fs.mount(0)
    return fs.mounts[0].path


def test_limits_and_flags(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/f"
    open(p, "w").close()
    assert outcome(os.setxattr, p, "user." + "n" * 250, b"v") == "ok"  # 255 bytes
    assert outcome(os.setxattr, p, "user." + "n" * 251, b"v") == "ERANGE"
    assert outcome(os.getxattr, p, "user." + "n" * 251) == "ERANGE"
    assert outcome(os.setxattr, p, "user.max", b"v" * 65535) == "ok"
    assert outcome(os.setxattr, p, "user.big", b"v" * 65536) == "E2BIG"
    assert outcome(os.setxattr, p, "user.empty", b"") == "ok"
    assert os.getxattr(p, "user.empty") == b""
    assert outcome(os.setxattr, p, "user.both", b"v", os.XATTR_CREATE | os.XATTR_REPLACE) == \
        "EINVAL"
    assert outcome(os.setxattr, p, "user.max", b"x", os.XATTR_CREATE) == "EEXIST"
    assert outcome(os.setxattr, p, "user.none", b"x", os.XATTR_REPLACE) == "ENODATA"
    assert outcome(os.getxattr, p, "user.none") == "ENODATA"
    assert outcome(os.removexattr, p, "user.none") == "ENODATA"
    # a buffer too small is ERANGE, size 0 asks for the length
    assert raw_xattr("get", p, "user.max", 0)[0] == 65535
    assert outcome(raw_xattr, "get", p, "user.max", 100) == "ERANGE"
    n = raw_xattr("list", p, None, 0)[0]
    assert outcome(raw_xattr, "list", p, None, n - 1) == "ERANGE"
    assert raw_xattr("list", p, None, n)[0] == n
    assert outcome(os.setxattr, p, "", b"v") == "ERANGE"  # the VFS refuses empty names


def test_namespaces(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/f"
    open(p, "w").close()
    for name in ("user.a", "trusted.a", "security.a", "scoutfs.hide.a", "scoutfs.x"):
        assert outcome(os.setxattr, p, name, b"1") == "ok", name
        assert os.getxattr(p, name) == b"1"
    for name in ("system.other", "bogus.a", "os2.a", "usr.a"):
        assert outcome(os.setxattr, p, name, b"1") == "ENOTSUP", name
        assert outcome(os.getxattr, p, name) == "ENOTSUP", name
    # scoutfs. tags: indexing tags are not implemented and say so; malformed ones are EINVAL
    for name in ("scoutfs.srch.a", "scoutfs.totl.a.1.2.3", "scoutfs.indx.a.1.2",
                 "scoutfs.hide.srch.a"):
        assert outcome(os.setxattr, p, name, b"1") == "ENOTSUP", name
    for name in ("scoutfs.hide.hide.a", "scoutfs.totl.indx.a.1.2", "scoutfs.notatagatall"):
        assert outcome(os.setxattr, p, name, b"1") == "EINVAL", name
    # hidden names are gettable but not listed; short untagged scoutfs. names are plain
    assert sorted(os.listxattr(p)) == ["scoutfs.x", "security.a", "trusted.a", "user.a"]
    assert os.getxattr(p, "scoutfs.hide.a") == b"1"
    # tagged names need CAP_SYS_ADMIN to change; reading needs only read access
    os.chmod(mounted.dir, 0o755)
    os.chmod(p, 0o666)
    assert as_user(1301, 1301, [], os.setxattr, p, "scoutfs.hide.b", b"1") == "EPERM"
    assert as_user(1301, 1301, [], os.removexattr, p, "scoutfs.hide.a") == "EPERM"
    assert as_user(1301, 1301, [], os.setxattr, p, "scoutfs.srch.b", b"1") == "EPERM"
    assert as_user(1301, 1301, [], os.getxattr, p, "scoutfs.hide.a") == b"1"
    # security. names need CAP_SYS_ADMIN too (the kernel's capability hook says so)
    assert as_user(1301, 1301, [], os.setxattr, p, "security.b", b"1") == "EPERM"


def xattr_perm_scenario(root):
    res = {}
    os.mkdir(f"{root}/sticky")
    os.chmod(f"{root}/sticky", 0o1777)
    os.chown(f"{root}/sticky", 1401, 1401)
    write_bytes(f"{root}/f", b"", os.O_CREAT | os.O_WRONLY)
    os.chmod(f"{root}/f", 0o644)
    os.chown(f"{root}/f", 1401, 1401)
    os.mkfifo(f"{root}/fifo", 0o666)
    os.symlink("f", f"{root}/sym")
    os.mknod(f"{root}/chr", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    for who in (1401, 1402):
        for name in ("user.k", "trusted.k", "security.k"):
            res[(who, "set", name)] = as_user(who, who, [], os.setxattr, f"{root}/f", name, b"v")
            res[(who, "get", name)] = as_user(who, who, [], os.getxattr, f"{root}/f", name)
            res[(who, "rm", name)] = as_user(who, who, [], os.removexattr, f"{root}/f", name)
        res[(who, "sticky-user")] = as_user(who, who, [], os.setxattr, f"{root}/sticky",
                                            "user.s", b"v")
        for node in ("fifo", "chr"):
            res[(who, node, "set")] = as_user(who, who, [], os.setxattr, f"{root}/{node}",
                                              "user.k", b"v")
            res[(who, node, "get")] = as_user(who, who, [], os.getxattr, f"{root}/{node}",
                                              "user.k")
        res[(who, "sym-set")] = as_user(who, who, [], lambda: os.setxattr(
            f"{root}/sym", "user.k", b"v", follow_symlinks=False))
    res["root-fifo-trusted"] = outcome(os.setxattr, f"{root}/fifo", "trusted.k", b"v")
    res["root-sym-trusted"] = outcome(lambda: os.setxattr(f"{root}/sym", "trusted.k", b"v",
                                                          follow_symlinks=False))
    res["root-sym-get"] = outcome(lambda: os.getxattr(f"{root}/sym", "trusted.k",
                                                      follow_symlinks=False))
    return res


def test_permissions_match_local(posix_roots):
    ref, sfs = posix_roots
    want = xattr_perm_scenario(ref)
    assert xattr_perm_scenario(sfs) == want
    assert want[(1402, "set", "user.k")] == "EACCES"
    assert want[(1401, "set", "trusted.k")] == "EPERM"
    assert want[(1402, "sticky-user")] == "EPERM" and want[(1401, "sticky-user")] == "ok"
    assert want[(1401, "fifo", "set")] == "EPERM"


def test_values_across_parts_and_ctime(mounted):
    fs = mounted
    m = fs.mounts[0].path
    p = f"{m}/f"
    open(p, "w").close()
    name = "user.test"  # header 8 + 9 bytes of name in the first part
    first = PART - 8 - len(name)
    sizes = [0, 1, first - 1, first, first + 1, first + PART, first + PART + 1, 65535]
    vals = {}
    for i, size in enumerate(sizes):
        v = os.urandom(size)
        os.setxattr(p, f"{name}{i}", v)
        vals[f"{name}{i}"] = v
    # flipping a value across part boundaries, both ways
    for size in (first + 2 * PART, 3, first + PART, 0, 65535, first):
        c0 = os.stat(p).st_ctime_ns
        v = os.urandom(size)
        os.setxattr(p, f"{name}0", v)
        vals[f"{name}0"] = v
        assert os.getxattr(p, f"{name}0") == v
        assert os.stat(p).st_ctime_ns > c0
    c0 = os.stat(p).st_ctime_ns
    os.removexattr(p, f"{name}1")
    del vals[f"{name}1"]
    assert os.stat(p).st_ctime_ns > c0
    m = remount(fs)
    p = f"{m}/f"
    assert sorted(os.listxattr(p)) == sorted(vals)
    for k, v in vals.items():
        assert os.getxattr(p, k) == v
    fs.umount(0)
    fs.assert_clean()


@pytest.mark.parametrize("count", [300])
def test_many_xattrs_on_one_inode(mounted, count):
    m = mounted.mounts[0].path
    p = f"{m}/many"
    os.mkdir(p)
    for i in range(count):
        os.setxattr(p, f"user.k{i}", str(i).encode() * 40)
    assert len(os.listxattr(p)) == count
    for i in range(0, count, 7):
        assert os.getxattr(p, f"user.k{i}") == str(i).encode() * 40
    os.rmdir(p)
