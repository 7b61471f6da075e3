"""
posixcheck.py: helpers for the POSIX conformance tests.

The tests compare scoutfs with a local filesystem (a tmpfs mounted for the test) by running
the same scenario on both, so the expected behaviour is measured, not guessed.  Scenarios
run operations as unprivileged users in forked children (setgroups/setresgid/setresuid)
and record each outcome as "ok" or the errno's name.
"""
import ctypes
import errno
import os
import pickle
import stat
import subprocess

libc = ctypes.CDLL(None, use_errno=True)

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def renameat2(old, new, flags):
    """renameat2(2), which Python's os module lacks."""
    libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_uint]
    r = libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def utimensat_raw(path, atime, mtime, follow=True):
    """utimensat(2) with raw (sec, nsec) pairs so UTIME_NOW/UTIME_OMIT can be passed."""
    class timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]
    ts = (timespec * 2)(timespec(*atime), timespec(*mtime))
    r = libc.utimensat(AT_FDCWD, os.fsencode(path), ts, 0 if follow else 0x100)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)


UTIME_NOW = (0, (1 << 30) - 1)
UTIME_OMIT = (0, (1 << 30) - 2)


def raw_xattr(call, path, name, size):
    """getxattr/listxattr with a caller-chosen buffer size: (ret, bytes) or raises OSError."""
    buf = ctypes.create_string_buffer(max(size, 1))
    if call == "get":
        r = libc.getxattr(os.fsencode(path), os.fsencode(name), buf, ctypes.c_size_t(size))
    else:
        r = libc.listxattr(os.fsencode(path), buf, ctypes.c_size_t(size))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return r, buf.raw[:r] if size else b""


def outcome(fn, *args, **kw):
    """'ok' (or the function's result) if fn succeeds, else the errno's name."""
    try:
        r = fn(*args, **kw)
        return "ok" if r is None else r
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def as_user(uid, gid, groups, fn, *args, umask=None, caps=False):
    """
    Run fn(*args) in a forked child with the given ids (and no capabilities unless caps and
    uid 0); return its result, or the errno name of an OSError it raised.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            if umask is not None:
                os.umask(umask)
            res = ("ok", outcome(fn, *args))
        except BaseException as e:  # noqa: B902 -- report anything to the parent
            res = ("exc", repr(e))
        os.write(w, pickle.dumps(res))
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    kind, val = pickle.loads(data)
    if kind == "exc":
        raise AssertionError(f"scenario step failed as uid {uid}: {val}")
    return val


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode) | (os.lstat(path).st_mode & 0o7000)


def owner_of(path):
    st = os.lstat(path)
    return (st.st_uid, st.st_gid)


def getfacl(path):
    """getfacl's text without the '# file:' line (it names the path)."""
    p = subprocess.run(["getfacl", "-p", "-n", path], capture_output=True, text=True)
    if p.returncode != 0:
        return ("error", p.stderr.strip().split(":")[-1].strip())
    return "\n".join(line for line in p.stdout.splitlines() if not line.startswith("# file:"))


def setfacl(*args):
    p = subprocess.run(["setfacl", *args], capture_output=True, text=True)
    return "ok" if p.returncode == 0 else p.stderr.strip().split(":")[-1].strip()


def write_bytes(path, data, flags=os.O_WRONLY):
    fd = os.open(path, flags)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def compare(run, ref_root, fs_root):
    """Run scenario run(root) on the reference and on scoutfs; return both results."""
    return run(ref_root), run(fs_root)
