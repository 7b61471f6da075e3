"""
targets.py: the filesystems a benchmark runs on, set up in one work directory and always torn
down again.

A target is a directory where the workloads run, plus what it takes to make its caches cold:

* `ScoutTarget`: a scoutfs filesystem on sparse files, mounted through the cluster-test harness
  (tests/cluster/harness.py), so the benchmarks mount exactly as the tests do;
* `BackingTarget`: a plain directory on the backing filesystem, next to the devices;
* `PassthroughTarget`: libfuse's passthrough_ll example, compiled at run time from the copy
  Debian's libfuse3-dev ships (never a copy of ours), mounted over a backing directory;
* `DeviceTarget`: a sparse file like the data device, read and written directly with O_DIRECT
  as the daemon's device layer does (streaming only).

`Work` owns the work directory and a stack of cleanups that run on success, failure and Ctrl-C
alike.  A FUSE mount whose daemon hangs is taken down by aborting its connection through
fusectl before the daemon is killed: a daemon thread stuck in the kernel on its own connection
(an invalidation waiting for a directory lock held by a request the daemon will never answer)
would otherwise never die, and anything touching the mount would hang with it.
"""
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
PASSTHROUGH_SRC = "/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c"
FUSECTL = "/sys/fs/fuse/connections"
CFLAGS = ["-O2", "-Wall", "-Wextra", "-Werror", "-std=gnu11", "-D_GNU_SOURCE",
          "-D_FILE_OFFSET_BITS=64"]

harness = None  # tests/cluster/harness.py, imported by setup_harness() once the build is known


def setup_harness(build_dir):
    """Import the cluster-test harness, pointed at build_dir (or the installed commands)."""
    global harness
    if build_dir:
        os.environ["SCOUTFS_BIN_DIR"] = os.path.realpath(build_dir)
    else:
        os.environ.pop("SCOUTFS_BIN_DIR", None)
    sys.path.insert(0, os.path.join(TOP, "tests", "cluster"))
    import harness as h
    harness = h
    return h


class BenchError(Exception):
    pass


def run(args, timeout=120, check=True, **kw):
    """Run a short command; raise BenchError with its output if it fails or times out."""
    try:
        p = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                           timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(map(str, args))} did not finish in {timeout} s")
    if check and p.returncode != 0:
        raise BenchError(f"{' '.join(map(str, args))} exited {p.returncode}: "
                         f"{(p.stderr or p.stdout).strip()}")
    return p


def mount_dev(path):
    """(major, minor) of the filesystem mounted at path, or None."""
    parts = harness.mountinfo(path)
    if not parts:
        return None
    major, minor = parts[2].split(":")
    return int(major), int(minor)


def mounts_under(top):
    top = os.path.realpath(top) + "/"
    with open("/proc/self/mountinfo") as f:
        return [p.split()[4] for p in f if p.split()[4].startswith(top)]


def abort_fuse(path):
    """Abort the FUSE connection of the mount at path: every request fails at once."""
    dev = mount_dev(path)
    if not dev:
        return
    if not os.path.isdir(os.path.join(FUSECTL, str(dev[1]))):
        subprocess.run(["mount", "-t", "fusectl", "none", FUSECTL], capture_output=True)
    try:
        with open(os.path.join(FUSECTL, str(dev[1]), "abort"), "w") as f:
            f.write("1")
    except OSError:
        pass


def lazy_umount(path):
    while mount_dev(path):
        if subprocess.run(["umount", "-l", path], capture_output=True).returncode != 0:
            break


def kill_and_reap(proc, timeout=10):
    """SIGKILL a child we started and wait for it (it may first need its mount aborted)."""
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


def fill_file(path, nbytes):
    """Write a file full of zeros (4 MiB O_DIRECT writes), so that its blocks are allocated
    and written, as a block device's are."""
    mib4 = 4 << 20
    run(["dd", "if=/dev/zero", f"of={path}", f"bs={mib4}", f"count={nbytes // mib4}",
         "oflag=direct", "conv=notrunc", "status=none"], timeout=600 + nbytes // (20 << 20))


def drop_caches(paths):
    """Write back what the targets hold dirty (syncfs of each, not a global sync, which would
    also wait for every other FUSE mount on this shared machine) and drop the kernel's clean
    page, dentry and inode caches."""
    for p in paths:
        run(["sync", "-f", p], timeout=300)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


class Work:
    """The work directory and everything that must be undone, in reverse order."""

    def __init__(self, parent, keep=False):
        os.makedirs(parent, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="scoutfs-bench-", dir=parent)
        self.keep = keep
        self.cleanups = []
        self.logs = {}  # daemon log -> keep it (its mount went wrong: the log tells what)
        self.keep_logs = False  # a cleanup failed: keep every log

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def on_cleanup(self, fn):
        self.cleanups.append(fn)
        return fn

    def cancel_cleanup(self, fn):
        if fn in self.cleanups:
            self.cleanups.remove(fn)

    def cleanup(self):
        """Run every cleanup (each failure is reported, none stops the others), then remove
        the work directory unless something is still mounted in it.  False if anything
        could not be cleaned up."""
        ok = True
        # a second Ctrl-C or a kill must not interrupt the unmounting halfway
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while self.cleanups:
                fn = self.cleanups.pop()
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - keep cleaning up
                    ok = False
                    self.keep_logs = True
                    print(f"bench: cleanup: {e}", flush=True)
            left = mounts_under(self.dir)
            if left:
                ok = False
                print(f"bench: still mounted, keeping {self.dir}: {' '.join(left)}", flush=True)
            elif self.keep:
                print(f"bench: kept {self.dir}", flush=True)
            else:
                subprocess.run(["nice", "rm", "-rf", "--one-file-system", self.dir])
            kept = []
            for log, keep in self.logs.items():
                if sanitizer_found(log):
                    ok = False
                    keep = True
                if keep or self.keep_logs or self.keep:
                    kept.append(log)
                    continue
                try:
                    os.unlink(log)
                except OSError:
                    pass
            if kept:
                print("bench: daemon logs: " + " ".join(kept), flush=True)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return ok


def sanitizer_found(log_path):
    """Print and say whether a sanitized daemon reported an error in its log."""
    try:
        with open(log_path, errors="replace") as f:
            report = harness.sanitizer_report(f.read())
    except OSError:
        return False
    if report:
        print(f"bench: sanitizer report in {log_path}:\n{report}", flush=True)
    return bool(report)


def compile_c(work, src, out, extra=(), werror=True):
    flags = CFLAGS if werror else [f for f in CFLAGS if f != "-Werror"]
    run(["nice", "gcc", *flags, "-o", out, src, *extra], timeout=300)
    return out


def fsbench_binary(work, build_dir):
    """The timing helper: the build's (meson builds it with the project's warnings) or one
    compiled now into the work directory."""
    if build_dir:
        built = os.path.join(build_dir, "bench", "fsbench")
        if os.access(built, os.X_OK):
            return os.path.realpath(built)
    return compile_c(work, os.path.join(HERE, "fsbench.c"), work.path("fsbench"),
                     ["-pthread"])


def passthrough_binary(work):
    if not os.path.exists(PASSTHROUGH_SRC):
        raise BenchError(f"{PASSTHROUGH_SRC} is missing: install libfuse3-dev")
    flags = run(["pkg-config", "--cflags", "--libs", "fuse3"]).stdout.split()
    # libfuse's example is not ours to fix: its warnings must not stop the benchmark
    return compile_c(work, PASSTHROUGH_SRC, work.path("passthrough_ll"), flags, werror=False)


class Target:
    """A directory to run workloads in; cold() makes caches cold, as said by cold_how."""
    name = ""
    cold_how = "sync -f, then echo 3 > /proc/sys/vm/drop_caches"

    def __init__(self, work):
        self.work = work
        self.path = None

    def start(self):
        pass

    def stop(self):
        pass

    def cold(self):
        drop_caches([self.path])

    def remount(self):
        """Start over with nothing cached in the filesystem itself (a daemon's own caches too)."""
        self.cold()


class BackingTarget(Target):
    name = "backing"

    def start(self):
        self.path = self.work.path("backing")
        os.makedirs(self.path, exist_ok=True)


def passthrough_fd_limit():
    """How many descriptors passthrough_ll may have.  It keeps one open for every inode the
    kernel knows, so that is how many files it can serve at once: as many as the system allows
    if we may raise our hard limit (CAP_SYS_RESOURCE), else the hard limit we have."""
    with open("/proc/sys/fs/nr_open") as f:
        nr_open = int(f.read())
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    try:
        resource.prlimit(os.getpid(), resource.RLIMIT_NOFILE, (hard, max(hard, nr_open)))
        return max(hard, nr_open)
    except (OSError, ValueError):
        return hard


def many_files():
    limit = passthrough_fd_limit()
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


class PassthroughTarget(Target):
    name = "passthrough"

    def __init__(self, work, binary, opts):
        super().__init__(work)
        self.binary = binary
        self.opts = opts
        self.src = work.path("passthrough-src")
        self.path = work.path("passthrough-mnt")
        self.proc = None
        self.log = work.path("passthrough.log")

    def start(self):
        os.makedirs(self.src, exist_ok=True)
        os.makedirs(self.path, exist_ok=True)
        opts = f"source={self.src}" + (f",{self.opts}" if self.opts else "")
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen([self.binary, "-f", "-o", opts, self.path],
                                         stdout=log, stderr=log, preexec_fn=many_files)
        self.work.on_cleanup(self.stop)
        deadline = time.time() + 20
        while not mount_dev(self.path):
            if self.proc.poll() is not None or time.time() > deadline:
                raise BenchError(f"passthrough_ll did not mount: see {self.log}")
            time.sleep(0.02)

    def stop(self):
        self.work.cancel_cleanup(self.stop)
        if not self.proc:
            return
        if mount_dev(self.path):
            p = subprocess.run(["fusermount3", "-u", self.path], capture_output=True)
            if p.returncode != 0:
                abort_fuse(self.path)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            abort_fuse(self.path)
            kill_and_reap(self.proc)
        lazy_umount(self.path)
        self.proc = None

    def remount(self):
        self.stop()
        self.start()
        drop_caches([self.src])


class DeviceTarget(Target):
    """A fresh sparse file the size of the data device, read and written as the daemon's
    device layer does it: O_DIRECT if the backing filesystem allows it."""
    name = "device"

    def __init__(self, work, size, prefill=False):
        super().__init__(work)
        self.size = size
        self.prefill = prefill
        self.path = work.path("device-baseline")
        self.direct = False

    def start(self):
        self.make_sparse()
        if self.prefill:
            fill_file(self.path, self.size)
        try:
            os.close(os.open(self.path, os.O_RDONLY | os.O_DIRECT))
            self.direct = True
        except OSError:
            self.direct = False

    def stop(self):
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def fresh(self):
        """Start again from a sparse file with no blocks.  scoutfs's allocator gives each
        round's file blocks of its data device that were never written (a sparse file's
        holes, which the backing filesystem must allocate as they are written), so each of
        the device's rounds writes holes too, rather than overwriting the last round's.
        Prefilled, both devices are written full once and nothing is made again."""
        if not self.prefill:
            self.make_sparse()

    def make_sparse(self):
        self.stop()
        run(["truncate", "-s", str(self.size), self.path])

    def cold(self):
        drop_caches([self.work.dir])


class ScoutCluster:
    """A scoutfs filesystem of the harness with some mounts; mount 0 is quorum slot 0 (or one
    of nr_slots members) and the others mount without a slot."""

    def __init__(self, work, name, meta_size, data_size, nr_slots=1, prefill=False):
        self.work = work
        self.dir = work.path(name)
        os.makedirs(self.dir, exist_ok=True)
        # the default heartbeat timeout: the harness always passes one
        self.fs = harness.ScoutFS(self.dir, nr_slots=nr_slots, meta_size=meta_size,
                                  data_size=data_size, hb_ms=10000)
        self.torn_down = False
        self.work.on_cleanup(self.teardown)
        if prefill:
            fill_file(self.fs.data, os.path.getsize(self.fs.data))
        self.fs.mkfs()

    def mount(self, index, opts=""):
        m = self.fs.mount(index, opts)
        self.work.logs.setdefault(m.log_path(), False)
        return m.path

    def paths(self):
        return [m.path for m in self.fs.mounts]

    def quiesce(self, settle=1.0):
        """Commit what every mount holds dirty (syncfs does not reach a FUSE daemon that
        speaks protocol 7.31, so `scoutfs sync`), then let the server's follow-up work
        settle: a measurement starts from the same state whatever ran before it."""
        for m in self.fs.mounts:
            if m.mounted:
                run(harness.scoutfs_cmd("sync", "-p", m.path), timeout=300)
        time.sleep(settle)

    def umount(self, index, timeout=120):
        self.fs.umount(index, timeout=timeout)

    def diagnose(self):
        """What the lock server and the clients hold: only the locks that are not plainly
        granted or idle, which is where a hang shows."""
        out = []
        for m in self.fs.mounts:
            if not m.mounted:
                continue
            for cmd in ("server-locks", "client-locks"):
                try:
                    p = subprocess.run(harness.scoutfs_cmd(cmd, "-p", m.path),
                                       capture_output=True, text=True, timeout=10)
                except subprocess.TimeoutExpired:
                    out.append(f"mnt{m.index} {cmd}: no answer in 10 s")
                    continue
                for line in p.stdout.splitlines():
                    if (cmd == "server-locks" and " granted " not in line) or \
                       (cmd == "client-locks" and ("waiters 0 0 0" not in line or
                                                   "invalidate 0" not in line)):
                        out.append(f"mnt{m.index} {cmd}: {line}")
        return out

    def force_down(self):
        """Take every mount down without its help: abort, kill, detach."""
        for m in self.fs.mounts:
            self.work.logs[m.log_path()] = True
        for m in self.fs.mounts:
            abort_fuse(m.path)
        for m in self.fs.mounts:
            self.fs.kill(m.index)
            lazy_umount(m.path)

    def teardown(self, timeout=120):
        """Unmount cleanly (the daemons sync and say farewell); force whatever does not."""
        self.work.cancel_cleanup(self.teardown)
        if self.torn_down:
            return
        self.torn_down = True
        failed = []
        for m in reversed(self.fs.mounts):
            if not mount_dev(m.path):
                continue
            try:
                self.fs.umount(m.index, timeout=timeout)
            except (AssertionError, subprocess.TimeoutExpired) as e:
                failed.append(f"mnt{m.index}: {str(e).strip().splitlines()[0]}")
        if failed:
            self.force_down()
            raise BenchError("unmount failed, forced: " + "; ".join(failed))
        for path in (self.fs.meta, self.fs.data):
            try:
                os.unlink(path)
            except OSError:
                pass


class ScoutTarget(Target):
    """One mount of its own filesystem."""
    name = "scoutfs"
    remount_how = "umount and mount again, then drop_caches"

    def __init__(self, work, meta_size, data_size, prefill=False):
        super().__init__(work)
        self.meta_size = meta_size
        self.data_size = data_size
        self.prefill = prefill
        self.cluster = None

    def start(self):
        self.cluster = ScoutCluster(self.work, "scoutfs", self.meta_size, self.data_size,
                                    prefill=self.prefill)
        self.path = self.cluster.mount(0)

    def stop(self):
        if self.cluster:
            self.cluster.teardown()
            self.cluster = None

    def remount(self):
        self.cluster.umount(0)
        self.cluster.mount(0)
        drop_caches([self.path])
