"""
A randomized multi-mount checker: several processes on several mounts run random operations
on a few shared names, and every result they saw must be explainable by one sequential order
of all the operations (linearizability, checked by linearize.py).

Rounds, processes and operations per process are small by default; SCOUTFS_RANDOM_ROUNDS and
SCOUTFS_RANDOM_OPS make longer runs.  SCOUTFS_RANDOM_SEED repeats one.
"""
import ctypes
import errno
import os
import random
import struct
import time

import pytest

from conftest import assert_no_sanitizer_reports
from harness import ScoutFS
from linearize import AttrModel, NamespaceModel, NotLinearizable, Op, check

ROUNDS = int(os.environ.get("SCOUTFS_RANDOM_ROUNDS", "4"))
OPS = int(os.environ.get("SCOUTFS_RANDOM_OPS", "40"))
PROCS_PER_MOUNT = 2
NAMES = ["a", "b", "c"]


@pytest.fixture
def cluster3(fs_dir):
    f = ScoutFS(fs_dir)
    f.mkfs()
    for i in range(3):
        f.mount(i)
    yield f
    f.cleanup()
    assert_no_sanitizer_reports(f)


_libc = ctypes.CDLL(None, use_errno=True)
SYS_getdents64 = 217  # x86_64


def list_once(d):
    """
    The names one getdents64 call returns.  A whole listdir may call it repeatedly and, as
    POSIX allows, see a name twice when renames give it a new position meanwhile; one call is
    one readdir request, answered from one consistent view (the directory is small).
    """
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = ctypes.create_string_buffer(65536)
        n = _libc.syscall(SYS_getdents64, fd, buf, len(buf))
        if n < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        names = []
        off = 0
        raw = buf.raw[:n]
        while off < n:
            _ino, _doff, reclen, _typ = struct.unpack_from("<QqHB", raw, off)
            name = raw[off + 19:off + reclen].split(b"\0", 1)[0].decode()
            names.append(name)
            off += reclen
        return names
    finally:
        os.close(fd)


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def now():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def namespace_op(rng, proc, n, d):
    """Run one random namespace operation in directory d; return its Op."""
    name = rng.choice(NAMES)
    # no link(2): it looks its source up before it locks anything, so a concurrent rename can
    # make link(a, a) succeed on any Linux filesystem; test_multi.py has a link race of its own
    kind = rng.choice(["put", "put", "get", "get", "get", "del", "mv", "mv", "ls"])
    args = (name,)
    if kind == "put":
        contents = f"{proc}.{n}"
        tmp = f"{d}/.tmp.{proc}.{n}"
        with open(tmp, "w") as f:
            f.write(contents)
        args = (name, contents)
        start = now()
        os.rename(tmp, f"{d}/{name}")
        res = 0
    elif kind == "mv":
        other = rng.choice(NAMES)
        args = (name, other)
        start = now()
        try:
            os.rename(f"{d}/{name}", f"{d}/{other}")
            res = 0
        except OSError as e:
            res = errname(e)
    else:
        start = now()
        try:
            if kind == "get":
                with open(f"{d}/{name}") as f:
                    res = f.read()
            elif kind == "del":
                os.unlink(f"{d}/{name}")
                res = 0
            else:
                args = ()
                res = tuple(sorted(n for n in list_once(d) if not n.startswith(".")))
        except OSError as e:
            res = errname(e)
    return Op(proc, start, now(), kind, args, res)


def attr_op(rng, proc, n, d):
    name = rng.choice(NAMES)
    path = f"{d}/{name}"
    kind = rng.choice(["chmod", "truncate", "utime", "setx", "rmx", "stat", "stat", "getx"])
    start = now()
    args = (name,)
    res = 0
    try:
        if kind == "chmod":
            mode = rng.choice([0o600, 0o640, 0o644, 0o755])
            args = (name, mode)
            start = now()
            os.chmod(path, mode)
        elif kind == "truncate":
            size = rng.randrange(0, 100000)
            args = (name, size)
            start = now()
            os.truncate(path, size)
        elif kind == "utime":
            mtime = rng.randrange(1, 1 << 40)
            args = (name, mtime)
            start = now()
            os.utime(path, ns=(mtime, mtime))
        elif kind == "setx":
            val = f"{proc}.{n}".encode()
            args = (name, val)
            start = now()
            os.setxattr(path, "user.v", val)
        elif kind == "rmx":
            os.removexattr(path, "user.v")
        elif kind == "getx":
            res = os.getxattr(path, "user.v")
        else:
            st = os.stat(path)
            res = (st.st_mode & 0o7777, st.st_size, st.st_mtime_ns)
    except OSError as e:
        res = errname(e)
    return Op(proc, start, now(), kind, args, res)


def run_round(fs, d, op_fn, seed):
    """Fork PROCS_PER_MOUNT processes per mount; collect their histories through pipes."""
    procs = []
    for p in range(len(fs.mounts) * PROCS_PER_MOUNT):
        mnt = fs.mounts[p % len(fs.mounts)].path
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            rng = random.Random(seed * 1000 + p)
            out = []
            try:
                for n in range(OPS):
                    out.append(op_fn(rng, p, n, f"{mnt}/{d}"))
                    if rng.random() < 0.3:
                        time.sleep(rng.random() * 0.002)
                data = repr([(o.proc, o.start, o.end, o.name, o.args, o.result)
                             for o in out]).encode()
                code = 0
            except BaseException as e:
                data = repr(("error", repr(e))).encode()
                code = 1
            with os.fdopen(w, "wb") as f:
                f.write(data)
            os._exit(code)
        os.close(w)
        procs.append((pid, r))
    history = []
    errors = []
    for pid, r in procs:
        with os.fdopen(r, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        got = eval(data.decode()) if data else ("error", "no output")
        if status != 0 or (got and got[0] == "error"):
            errors.append(got)
            continue
        history += [Op(*t) for t in got]
    assert not errors, f"a worker failed: {errors}"
    return history


@pytest.mark.parametrize("kind", ["namespace", "attrs"])
def test_random_operations_are_linearizable(cluster3, kind):
    fs = cluster3
    base_seed = int(os.environ.get("SCOUTFS_RANDOM_SEED", str(int(time.time()))))
    m0 = fs.mounts[0].path
    for rnd in range(ROUNDS):
        seed = base_seed + rnd
        d = f"{kind}{rnd}"
        os.mkdir(f"{m0}/{d}")
        if kind == "attrs":
            for name in NAMES:
                with open(f"{m0}/{d}/{name}", "w"):
                    pass
                os.chmod(f"{m0}/{d}/{name}", 0o644)
                os.utime(f"{m0}/{d}/{name}", ns=(0, 0))
            model, op_fn = AttrModel(NAMES), attr_op
        else:
            model, op_fn = NamespaceModel(), namespace_op
        history = run_round(fs, d, op_fn, seed)
        try:
            check(history, model)
        except NotLinearizable as e:
            dump = os.path.join(os.environ.get("SCOUTFS_TEST_DIR", "/tmp"),
                                f"scoutfs-history-{kind}-{seed}.txt")
            with open(dump, "w") as f:
                f.write("\n".join(str(o) for o in sorted(history, key=lambda o: o.start)))
            pytest.fail(f"seed {seed} ({kind}, round {rnd}), whole history in {dump}: {e}")
