"""
POSIX ACLs with the acl mount option (the default) and without it (noacl): setfacl/getfacl
round trips, enforcement by the kernel, inheritance of default ACLs, and the interplay of
ACLs with the mode, each compared with a tmpfs doing the same.
"""
import os

import pytest

from posixcheck import (as_user, getfacl, mode_of, outcome, read_bytes, setfacl,
                        write_bytes)

ALICE, BOB, CAROL = 1101, 1102, 1103
STAFF = 2101


def remount(fs, opts=""):
    fs.umount(0)
    fs.mount(0, opts=opts)
    return fs.mounts[0].path


def acl_scenario(root):
    res = {}
    f = f"{root}/f"
    write_bytes(f, b"contents", os.O_CREAT | os.O_WRONLY)
    os.chown(f, ALICE, ALICE)
    os.chmod(f, 0o600)
    res["set"] = setfacl("-m", f"u:{BOB}:rw,g:{STAFF}:r", f)
    res["acl"] = getfacl(f)
    res["mode"] = oct(mode_of(f))  # the group bits show the mask
    res["bob-read"] = as_user(BOB, BOB, [], read_bytes, f)
    res["bob-write"] = as_user(BOB, BOB, [], write_bytes, f, b"bob")
    res["staff-read"] = as_user(CAROL, CAROL, [STAFF], read_bytes, f)
    res["staff-write"] = as_user(CAROL, CAROL, [STAFF], write_bytes, f, b"x")
    res["carol-read"] = as_user(CAROL, CAROL, [], read_bytes, f)
    # chmod rewrites the mask; the named entries lose their effect
    os.chmod(f, 0o640)
    res["acl-after-chmod"] = getfacl(f)
    res["bob-write-after-chmod"] = as_user(BOB, BOB, [], write_bytes, f, b"bob")
    # setting the mask changes the group bits
    res["set-mask"] = setfacl("-m", "m::rwx", f)
    res["mode-after-mask"] = oct(mode_of(f))
    # only the owner may set ACLs
    res["bob-setfacl"] = as_user(BOB, BOB, [], lambda: os.setxattr(
        f, "system.posix_acl_access", os.getxattr(f, "system.posix_acl_access")))
    res["alice-setfacl"] = as_user(ALICE, ALICE, [], lambda: os.setxattr(
        f, "system.posix_acl_access", os.getxattr(f, "system.posix_acl_access")))
    # an ACL that says no more than a mode is stored as the mode
    res["minimal"] = setfacl("--set", "u::rwx,g::r-x,o::---", f)
    res["minimal-mode"] = oct(mode_of(f))
    res["minimal-xattrs"] = sorted(x for x in os.listxattr(f) if x.startswith("system."))
    res["remove-all"] = setfacl("-b", f)
    res["acl-removed"] = getfacl(f)
    # a default ACL only on directories
    res["default-on-file"] = outcome(os.setxattr, f, "system.posix_acl_default",
                                     os.getxattr(root, "system.posix_acl_default")
                                     if "system.posix_acl_default" in os.listxattr(root)
                                     else b"\x02\0\0\0\x01\0\x07\0\xff\xff\xff\xff"
                                          b"\x04\0\x05\0\xff\xff\xff\xff"
                                          b"\x20\0\x05\0\xff\xff\xff\xff")
    res["bad-acl"] = outcome(os.setxattr, f, "system.posix_acl_access", b"\x02\0\0\0junk")
    # setting an ACL clears setgid unless the setter is in the group
    os.chown(f, ALICE, STAFF)
    os.chmod(f, 0o2770)
    res["alice-setfacl-sgid"] = as_user(ALICE, ALICE, [], lambda: os.setxattr(
        f, "system.posix_acl_access", b"\x02\0\0\0\x01\0\x07\0\xff\xff\xff\xff"
        b"\x02\0\x06\0" + BOB.to_bytes(4, "little") +
        b"\x04\0\x07\0\xff\xff\xff\xff\x10\0\x07\0\xff\xff\xff\xff\x20\0\x00\0\xff\xff\xff\xff"))
    res["mode-after-sgid-acl"] = oct(mode_of(f))
    return res


def test_acls_match_local(posix_roots):
    ref, sfs = posix_roots
    want = acl_scenario(ref)
    assert acl_scenario(sfs) == want
    assert want["bob-write"] == "ok" and want["carol-read"] == "EACCES"
    assert isinstance(want["staff-read"], bytes) and want["staff-write"] == "EACCES"
    assert want["bob-write-after-chmod"] == "EACCES" and want["bob-setfacl"] == "EPERM"
    assert want["mode"] == oct(0o660) and want["minimal-xattrs"] == []
    assert want["mode-after-sgid-acl"] == oct(0o770)


def inherit_scenario(root, umask):
    res = {}
    d = f"{root}/inherit"
    os.mkdir(d)
    os.chown(d, ALICE, STAFF)
    os.chmod(d, 0o2775)
    res["set-default"] = setfacl("-d", "-m", f"u:{BOB}:rwx,g::rwx,o::r-x", d)
    res["dir-acl"] = getfacl(d)

    def make():
        os.mkdir(f"{d}/sub", 0o750)
        os.mkdir(f"{d}/sub/deeper")
        os.close(os.open(f"{d}/file", os.O_CREAT | os.O_WRONLY, 0o666))
        os.close(os.open(f"{d}/exe", os.O_CREAT | os.O_WRONLY, 0o755))
        os.mkfifo(f"{d}/fifo", 0o640)
        os.symlink("file", f"{d}/link")
    res["make"] = as_user(ALICE, ALICE, [STAFF], make, umask=umask)
    for n in ("sub", "sub/deeper", "file", "exe", "fifo"):
        res[n] = (oct(mode_of(f"{d}/{n}")), getfacl(f"{d}/{n}"))
    res["link"] = oct(os.lstat(f"{d}/link").st_mode)
    # without a default ACL the umask applies
    plain = f"{root}/plain"
    os.mkdir(plain)
    os.chmod(plain, 0o777)
    as_user(ALICE, ALICE, [], lambda: (os.mkdir(f"{plain}/sub", 0o777),
                                       os.close(os.open(f"{plain}/f", os.O_CREAT, 0o666))),
            umask=umask)
    res["plain-sub"] = oct(mode_of(f"{plain}/sub"))
    res["plain-f"] = oct(mode_of(f"{plain}/f"))
    return res


def test_default_acl_inheritance_matches_local(posix_roots):
    ref, sfs = posix_roots
    for umask in (0o022, 0o077, 0o000):
        want = inherit_scenario(ref, umask)
        got = inherit_scenario(sfs, umask)
        assert got == want, umask
        os.system(f"rm -rf {ref}/inherit {ref}/plain {sfs}/inherit {sfs}/plain")
    assert "default:user:%d:rwx" % BOB in want["sub"][1]
    assert want["plain-f"] == oct(0o666)


def test_acls_persist_and_noacl(mounted):
    fs = mounted
    m = fs.mounts[0].path
    os.chmod(fs.dir, 0o755)
    f = f"{m}/f"
    write_bytes(f, b"x", os.O_CREAT | os.O_WRONLY)
    os.chmod(f, 0o600)
    os.mkdir(f"{m}/d")
    assert setfacl("-m", f"u:{BOB}:r", f) == "ok"
    assert setfacl("-d", "-m", f"u:{BOB}:r", f"{m}/d") == "ok"
    before = (getfacl(f), getfacl(f"{m}/d"), oct(mode_of(f)))
    assert as_user(BOB, BOB, [], read_bytes, f) == b"x"

    m = remount(fs)
    f = f"{m}/f"
    assert (getfacl(f), getfacl(f"{m}/d"), oct(mode_of(f))) == before

    m = remount(fs, "noacl")
    f = f"{m}/f"
    # the ACL xattrs are still listed but cannot be read or set, and are not enforced
    assert "system.posix_acl_access" in os.listxattr(f)
    assert outcome(os.getxattr, f, "system.posix_acl_access") == "ENOTSUP"
    assert outcome(os.setxattr, f, "system.posix_acl_access", b"\x02\0\0\0") == "ENOTSUP"
    assert outcome(os.removexattr, f, "system.posix_acl_access") == "ENOTSUP"
    assert as_user(BOB, BOB, [], read_bytes, f) == "EACCES"
    # new inodes get the umask and nothing is inherited
    os.chmod(f"{m}/d", 0o777)
    as_user(ALICE, ALICE, [], lambda: os.close(os.open(f"{m}/d/new", os.O_CREAT, 0o666)),
            umask=0o027)
    assert oct(mode_of(f"{m}/d/new")) == oct(0o640)
    assert not [x for x in os.listxattr(f"{m}/d/new") if x.startswith("system.")]

    m = remount(fs, "acl")
    assert as_user(BOB, BOB, [], read_bytes, f"{m}/f") == b"x"
    fs.umount(0)
    fs.assert_clean()


@pytest.mark.parametrize("opts", ["acl", "noacl"])
def test_acl_mount_options_accepted(fs, opts):
    fs.mount(0, opts=opts)
    m = fs.mounts[0].path
    r = outcome(os.getxattr, m, "system.posix_acl_access")
    assert r == ("ENODATA" if opts == "acl" else "ENOTSUP")


def test_acl_changes_seen_by_other_mounts(fs):
    """The kernel of every mount enforces the ACL as last changed on any mount."""
    fs.mount(0)
    fs.mount(1)
    os.chmod(fs.dir, 0o755)
    m0, m1 = fs.mounts[0].path, fs.mounts[1].path
    write_bytes(f"{m0}/f", b"shared", os.O_CREAT | os.O_WRONLY)
    os.chmod(f"{m0}/f", 0o600)
    assert as_user(BOB, BOB, [], read_bytes, f"{m1}/f") == "EACCES"
    assert setfacl("-m", f"u:{BOB}:r", f"{m0}/f") == "ok"
    assert as_user(BOB, BOB, [], read_bytes, f"{m1}/f") == b"shared"
    assert getfacl(f"{m1}/f") == getfacl(f"{m0}/f")
    assert setfacl("-x", f"u:{BOB}", f"{m1}/f") == "ok"
    assert as_user(BOB, BOB, [], read_bytes, f"{m0}/f") == "EACCES"
    # inheritance uses the default ACL another mount set
    os.mkdir(f"{m0}/d")
    assert setfacl("-d", "-m", f"u:{BOB}:rwx", f"{m1}/d") == "ok"
    os.mkdir(f"{m0}/d/sub")
    assert f"default:user:{BOB}:rwx" in getfacl(f"{m1}/d/sub")
