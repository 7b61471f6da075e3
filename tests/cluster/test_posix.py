"""POSIX operations through FUSE, each checked for its result and for surviving a remount."""
import errno
import os
import stat

import pytest

from harness import run, scoutfs_cmd


def manifest(root):
    """Everything visible about a tree: names, types, modes, sizes, links, targets, data, xattrs."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            entry = {
                "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "nlink": st.st_nlink,
                "size": st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                "ino": st.st_ino, "mtime": st.st_mtime_ns, "rdev": st.st_rdev,
            }
            if stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    entry["data"] = f.read()
            if not stat.S_ISLNK(st.st_mode):
                entry["xattrs"] = {x: os.getxattr(p, x) for x in sorted(os.listxattr(p))}
            out[os.path.relpath(p, root)] = entry
    return out


def remount(fs):
    fs.umount(0)
    fs.mount(0)
    return fs.mounts[0].path


def test_namespace_operations_persist(mounted):
    fs = mounted
    m = fs.mounts[0].path
    os.makedirs(f"{m}/a/b/c")
    with open(f"{m}/a/file", "w") as f:
        f.write("file contents")
    os.symlink("file", f"{m}/a/link")
    os.link(f"{m}/a/file", f"{m}/a/b/hard")
    os.mkfifo(f"{m}/a/fifo", 0o640)
    os.mknod(f"{m}/a/chr", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(f"{m}/a/blk", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    os.rename(f"{m}/a/b/c", f"{m}/c-moved")
    os.rename(f"{m}/a/file", f"{m}/a/b/file2")
    os.chmod(f"{m}/a/b", 0o711)
    os.chown(f"{m}/a/fifo", 1234, 5678)
    os.utime(f"{m}/a/chr", ns=(1_000_000_123, 2_000_000_456))
    os.setxattr(f"{m}/a/b/file2", "user.note", b"value")
    os.setxattr(f"{m}/a/b", "trusted.t", b"\x00\x01binary")

    assert os.readlink(f"{m}/a/link") == "file"
    assert os.stat(f"{m}/a/b/hard").st_nlink == 2
    assert stat.S_ISFIFO(os.stat(f"{m}/a/fifo").st_mode)
    assert os.stat(f"{m}/a/chr").st_rdev == os.makedev(1, 3)
    assert os.stat(f"{m}/a/chr").st_mtime_ns == 2_000_000_456
    assert os.stat(f"{m}/a/fifo").st_uid == 1234
    assert os.stat(f"{m}/a").st_nlink == 3  # ., b, and its entry in the root
    assert os.stat(m).st_nlink == 4  # root: ., a, c-moved

    before = manifest(m)
    m = remount(fs)
    assert manifest(m) == before


def test_readdir_lists_in_creation_order(mounted):
    m = mounted.mounts[0].path
    names = ["zeta", "alpha", "mid", "b", "aaaa"]
    for n in names:
        open(f"{m}/{n}", "w").close()
    assert os.listdir(m) == names
    os.unlink(f"{m}/mid")
    os.rename(f"{m}/zeta", f"{m}/zeta2")  # a rename moves the entry to the end
    assert os.listdir(m) == ["alpha", "b", "aaaa", "zeta2"]
    m = remount(mounted)
    assert os.listdir(m) == ["alpha", "b", "aaaa", "zeta2"]


def test_readdir_resumes_across_many_calls(mounted):
    m = mounted.mounts[0].path
    names = [f"entry-{i:05d}-" + "x" * (i % 200) for i in range(3000)]
    for n in names:
        open(f"{m}/{n}", "w").close()
    assert os.listdir(m) == names
    assert os.stat(m).st_size == sum(len(n) for n in names)
    m = remount(mounted)
    assert os.listdir(m) == names


def test_errors(mounted):
    m = mounted.mounts[0].path
    os.mkdir(f"{m}/d")
    open(f"{m}/d/f", "w").close()
    cases = [
        (lambda: os.mkdir(f"{m}/d"), errno.EEXIST),
        (lambda: os.rmdir(f"{m}/d"), errno.ENOTEMPTY),
        (lambda: os.unlink(f"{m}/d"), errno.EISDIR),
        (lambda: os.rmdir(f"{m}/d/f"), errno.ENOTDIR),
        (lambda: os.stat(f"{m}/nope"), errno.ENOENT),
        (lambda: open(f"{m}/" + "n" * 256, "w"), errno.ENAMETOOLONG),
        (lambda: os.rename(f"{m}/d", f"{m}/d/f/x"), errno.ENOTDIR),
        (lambda: os.rename(f"{m}/d", f"{m}/d/sub"), errno.EINVAL),
        (lambda: os.link(f"{m}/d", f"{m}/dlink"), errno.EPERM),
        (lambda: os.getxattr(f"{m}/d/f", "user.missing"), errno.ENODATA),
        (lambda: os.setxattr(f"{m}/d/f", "bogus.ns", b"x"), errno.EOPNOTSUPP),
        (lambda: os.setxattr(f"{m}/d/f", "user." + "x" * 251, b"x"), errno.ERANGE),
        (lambda: os.setxattr(f"{m}/d/f", "user.big", b"x" * 65536), errno.E2BIG),
        (lambda: os.setxattr(f"{m}/d/f", "scoutfs.srch.x", b""), errno.EOPNOTSUPP),
    ]
    for fn, err in cases:
        with pytest.raises(OSError) as e:
            fn()
        assert e.value.errno == err, (fn, e.value)
    os.mkdir(f"{m}/e")
    os.rename(f"{m}/e", f"{m}/d2")  # onto a new name
    os.mkdir(f"{m}/e")
    os.rename(f"{m}/e", f"{m}/d2")  # over an empty directory
    with pytest.raises(OSError) as e:
        os.rename(f"{m}/d2", f"{m}/d")
    assert e.value.errno == errno.ENOTEMPTY
    open(f"{m}/g", "w").close()
    os.rename(f"{m}/g", f"{m}/d/f")  # over a file
    assert os.listdir(f"{m}/d") == ["f"]


def test_xattrs(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/x"
    open(p, "w").close()
    vals = {f"user.k{i}": os.urandom(i * 97 % 5000) for i in range(40)}
    vals["user.empty"] = b""
    vals["user.max"] = os.urandom(65535)
    for k, v in vals.items():
        os.setxattr(p, k, v)
    os.setxattr(p, "scoutfs.hide.secret", b"hidden")
    assert sorted(os.listxattr(p)) == sorted(vals)  # hidden names are not listed
    assert os.getxattr(p, "scoutfs.hide.secret") == b"hidden"
    for k, v in vals.items():
        assert os.getxattr(p, k) == v
    os.setxattr(p, "user.k3", b"replaced", os.XATTR_REPLACE)
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.k3", b"x", os.XATTR_CREATE)
    assert e.value.errno == errno.EEXIST
    with pytest.raises(OSError) as e:
        os.setxattr(p, "user.new", b"x", os.XATTR_REPLACE)
    assert e.value.errno == errno.ENODATA
    os.removexattr(p, "user.k5")
    vals["user.k3"] = b"replaced"
    del vals["user.k5"]
    m = remount(mounted)
    p = f"{m}/x"
    assert sorted(os.listxattr(p)) == sorted(vals)
    for k, v in vals.items():
        assert os.getxattr(p, k) == v


def test_file_data(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/data"
    expect = bytearray()

    def write(off, buf):
        nonlocal expect
        with open(p, "r+b" if os.path.exists(p) else "wb") as f:
            f.seek(off)
            f.write(buf)
        if off > len(expect):
            expect += bytes(off - len(expect))
        expect[off:off + len(buf)] = buf

    write(0, os.urandom(100))
    write(5000, os.urandom(3))          # a hole, and a partial block
    write(4090, os.urandom(20))         # across a block boundary
    write(3 << 20, os.urandom(1 << 20))  # a MiB after a sparse gap
    write(123457, os.urandom(70000))    # unaligned, many blocks
    with open(p, "rb") as f:
        assert f.read() == bytes(expect)
    os.truncate(p, 6000)
    expect = expect[:6000]
    os.truncate(p, 20000)               # extending shows zeros, not old bytes
    expect += bytes(20000 - 6000)
    with open(p, "rb") as f:
        assert f.read() == bytes(expect)
    with open(p, "ab") as f:
        f.write(b"appended")
    expect += b"appended"
    st = os.stat(p)
    assert st.st_size == len(expect)
    m = remount(mounted)
    with open(f"{m}/data", "rb") as f:
        assert f.read() == bytes(expect)


def test_large_file_streams(mounted):
    m = mounted.mounts[0].path
    chunk = os.urandom(1 << 20)
    with open(f"{m}/big", "wb") as f:
        for _ in range(64):
            f.write(chunk)
        os.fsync(f.fileno())
    assert os.stat(f"{m}/big").st_size == 64 << 20
    assert os.stat(f"{m}/big").st_blocks == (64 << 20) // 512
    m = remount(mounted)
    with open(f"{m}/big", "rb") as f:
        for _ in range(64):
            assert f.read(1 << 20) == chunk


def test_unlink_frees_space(mounted):
    m = mounted.mounts[0].path
    free0 = os.statvfs(m).f_bfree
    with open(f"{m}/big", "wb") as f:
        f.write(os.urandom(32 << 20))
        os.fsync(f.fileno())
    assert os.statvfs(m).f_bfree < free0 - (30 << 20) // 4096
    os.unlink(f"{m}/big")
    run(scoutfs_cmd("sync", "-p", m))
    run(scoutfs_cmd("sync", "-p", m))  # freed blocks return after the commit that freed them
    assert os.statvfs(m).f_bfree >= free0 - 64


def test_statfs(mounted):
    m = mounted.mounts[0].path
    st = os.statvfs(m)
    assert st.f_bsize == 4096 and st.f_namemax == 255
    assert st.f_blocks == (2 << 30) // 4096 + (8 << 30) // 4096
    files0 = st.f_ffree
    for i in range(10):
        open(f"{m}/f{i}", "w").close()
    run(scoutfs_cmd("sync", "-p", m))
    assert os.statvfs(m).f_ffree == files0 - 10
