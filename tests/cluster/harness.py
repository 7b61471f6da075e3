"""
harness.py: a scoutfs filesystem made of sparse files, mounted through the real mount
helpers, with helpers to crash, fence and check it.

Tests run as root.  By default they use the installed commands (`mount -t scoutfs` runs
/sbin/mount.scoutfs; scripts/test.sh installs the build first).  With SCOUTFS_BIN_DIR set to a
build directory they use that build's programs instead, without installing anything: its
mount.scoutfs and umount.fuse.scoutfs are run directly (as mount(8) and umount(8) would) and
its scoutfsd is the daemon, so several checkouts can be tested side by side.
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import time

BIN = os.environ.get("SCOUTFS_BIN_DIR", "")
RUN_DIR = os.environ.get("SCOUTFS_RUN_DIR", "/run/scoutfs")
LOG_DIR = os.environ.get("SCOUTFS_LOG_DIR", "/var/log/scoutfs")


def tool(name):
    """Path of a scoutfs program: from SCOUTFS_BIN_DIR if set, else the installed one."""
    if BIN:
        for sub in ("src/cli", "src/daemon", "scripts", ""):
            p = os.path.join(BIN, sub, name)
            if os.path.exists(p):
                return p
    scripts = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
    if BIN and os.path.exists(os.path.join(scripts, name)):
        return os.path.realpath(os.path.join(scripts, name))
    found = shutil.which(name, path="/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/sbin")
    if not found:
        raise RuntimeError(f"{name} is not installed (run scripts/test.sh)")
    return found


def scoutfs_cmd(*args):
    """argv of the scoutfs command with args."""
    return [tool("scoutfs")] + [str(a) for a in args]


def mount_argv(opts, data, mnt):
    """argv that mounts data at mnt with opts, as `mount -t scoutfs` would."""
    if BIN:
        return [tool("mount.scoutfs"), data, mnt, "-o", opts]
    return ["mount", "-t", "scoutfs", "-o", opts, data, mnt]


def umount_argv(mnt, *flags):
    """argv of a clean `umount mnt` (which waits for the daemon to exit)."""
    if BIN:
        return [tool("umount.fuse.scoutfs"), mnt, *flags]
    return ["umount", *flags, mnt]


def run(args, check=True, timeout=120, **kw):
    """Run a command, capturing text output; raise with the output if it fails."""
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        ok = True
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise RuntimeError("no free port")


def fingerprint(path):
    """What a write to a (sparse) device file would change: its size, modification time and
    a digest of every allocated extent with its offset (holes are skipped, so this is quick
    for the mostly empty test devices)."""
    import hashlib
    h = hashlib.sha256()
    st = os.stat(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        while off < st.st_size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:
                break
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            h.update(f"{data}-{hole}:".encode())
            pos = data
            while pos < hole:
                buf = os.pread(fd, min(1 << 20, hole - pos), pos)
                h.update(buf)
                pos += len(buf)
            off = hole
    finally:
        os.close(fd)
    return (st.st_size, st.st_mtime_ns, h.hexdigest())


class LoopDevice:
    """A loop device over a file (with an offset), detached when done; None if this host
    can't make one."""

    def __init__(self, path, offset=0):
        self.path = None
        p = run(["losetup", "-f", "--show", "-o", str(offset), path], check=False)
        if p.returncode == 0:
            self.path = p.stdout.strip()

    def close(self):
        if self.path:
            run(["losetup", "-d", self.path], check=False)
            self.path = None


def recv_exact(sock, n, what):
    """n bytes from a socket; fails the test if the peer hangs up first."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, f"{what} hung up"
        buf += chunk
    return buf


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "scoutfsd: fatal signal")


def sanitizer_report(log):
    """The first crash or sanitizer report in a daemon's log (a fatal signal; a memory
    error, leak or undefined behaviour of a sanitized build), or None."""
    for mark in SANITIZER_MARKS:
        i = log.find(mark)
        if i >= 0:
            return log[i:i + 6000]
    return None


def mountinfo(path):
    """The /proc/self/mountinfo fields of the top mount at path, or None (never stats the
    path, which would hang on a hung FUSE mount)."""
    path = os.path.realpath(path)
    found = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                found = parts
    return found


def mountinfo_fstype(path):
    parts = mountinfo(path)
    return parts[parts.index("-") + 1] if parts else None


def leftovers_under(top):
    """Mounts and live daemons a test left behind under top: (mount points, daemon pids)."""
    top = os.path.realpath(top) + "/"
    mnts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            p = line.split()[4]
            if p.startswith(top):
                mnts.append(p)
    pids = [pid for pid, mnt in live_daemons() if mnt.startswith(top)]
    return mnts, pids


def live_daemons():
    """(pid, mount point) of every running daemon, from the pid files in RUN_DIR."""
    try:
        names = os.listdir(RUN_DIR)
    except OSError:
        return
    for n in names:
        if n.startswith("rid-") and n.endswith(".pid"):
            try:
                with open(os.path.join(RUN_DIR, n)) as f:
                    pid, _start, mnt = f.read().strip().split(" ", 2)
            except (OSError, ValueError):
                continue
            if os.path.exists(f"/proc/{pid}"):
                yield int(pid), mnt


class Mount:
    def __init__(self, fs, index, slot):
        self.fs = fs
        self.index = index
        self.slot = slot
        self.path = os.path.join(fs.dir, f"mnt{index}")
        os.makedirs(self.path, exist_ok=True)
        self.mounted = False
        self.log_start = 0  # where the latest mount's part of the log begins

    def log_path(self):
        name = self.path.lstrip("/").replace("/", "-")
        return os.path.join(LOG_DIR, f"scoutfsd-{name}.log")

    def log(self):
        try:
            with open(self.log_path()) as f:
                return f.read()
        except OSError:
            return ""

    def wait_for_log(self, text, timeout=30):
        """Wait until the daemon of the latest mount says text in its log."""
        for _ in range(timeout * 10):
            if text in self.log()[self.log_start:]:
                return
            time.sleep(0.1)
        raise AssertionError(f"mount {self.index} never logged {text!r}")

    def wait_server_up(self):
        """Wait until this quorum member's server recorded itself in its quorum block
        (killed before that, it can't be fenced as a leader, only after the 30 s a crashed
        client gets to come back)."""
        self.wait_for_log(f"quorum slot {self.slot} server of term")

    def daemon_pid(self):
        """The pid of this mount's daemon, from its pid file (matched by mount point)."""
        for pid, mnt in live_daemons():
            if mnt == os.path.realpath(self.path):
                return pid
        return None


class ScoutFS:
    """A filesystem on sparse files in dir, with up to nr_slots quorum members."""

    def __init__(self, dir, nr_slots=1, meta_size="2G", data_size="8G", hb_ms=2000):
        self.dir = dir
        self.meta = os.path.join(dir, "meta")
        self.data = os.path.join(dir, "data")
        self.nr_slots = nr_slots
        self.ports = [free_port() for _ in range(nr_slots)]
        self.hb_ms = hb_ms
        self.mounts = []
        self.fenced = None
        for path, size in ((self.meta, meta_size), (self.data, data_size)):
            run(["truncate", "-s", size, path])

    def scoutfs(self, *args, check=True, timeout=120):
        return run(scoutfs_cmd(*args), check=check, timeout=timeout)

    def quorum_args(self):
        args = []
        for i, port in enumerate(self.ports):
            args += ["-Q", f"{i},127.0.0.1,{port}"]
        return args

    def mkfs(self, *extra):
        return self.scoutfs("mkfs", "-A", "-f", *self.quorum_args(), *extra, self.meta, self.data)

    def mount(self, index=0, opts="", slot="auto", check=True):
        while len(self.mounts) <= index:
            i = len(self.mounts)
            self.mounts.append(Mount(self, i, i if i < self.nr_slots else None))
        m = self.mounts[index]
        if slot != "auto":
            m.slot = slot
        o = [f"metadev_path={self.meta}", f"quorum_heartbeat_timeout_ms={self.hb_ms}"]
        if m.slot is not None:
            o.append(f"quorum_slot_nr={m.slot}")
        if opts:
            o.append(opts)
        m.log_start = len(m.log())
        p = run(mount_argv(",".join(o), self.data, m.path), check=False, timeout=180)
        if check and p.returncode != 0:
            raise AssertionError(f"mount {index} failed ({p.returncode}): {p.stderr}\n"
                                 f"daemon log:\n{m.log()[-4000:]}")
        m.mounted = p.returncode == 0
        return m if check else p

    def umount(self, index=0, timeout=120):
        m = self.mounts[index]
        run(umount_argv(m.path), timeout=timeout)
        m.mounted = False

    def kill(self, index=0):
        """Crash a mount: SIGKILL its daemon and detach the dead FUSE mount."""
        m = self.mounts[index]
        pid = m.daemon_pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            for _ in range(300):
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().split()[2] == "Z":
                            break
                except OSError:
                    break
                time.sleep(0.05)
        if mountinfo_fstype(m.path) == "fuse.scoutfs":
            run(["umount", "-l", m.path], check=False)
        m.mounted = False

    def start_fenced(self):
        """The fence agent with the local fence command, as a cluster of one host runs it."""
        if self.fenced:
            return
        log = open(os.path.join(self.dir, "fenced.log"), "a")
        self.fenced = subprocess.Popen(
            [tool("scoutfs-fenced"), "--run", tool("scoutfs-fence-local"), "--delay", "1",
             "--config", "/dev/null"], stdout=log, stderr=log)

    def stop_fenced(self):
        if self.fenced:
            self.fenced.terminate()
            self.fenced.wait(timeout=10)
            self.fenced = None

    def check(self):
        """scoutfs check on the (unmounted) devices: (exit status, output)."""
        p = self.scoutfs("check", self.meta, self.data, check=False, timeout=600)
        return p.returncode, p.stdout + p.stderr

    def assert_clean(self):
        rc, out = self.check()
        assert rc == 0, f"scoutfs check found problems:\n{out}"

    def cleanup(self):
        stuck = []
        for m in reversed(self.mounts):
            if m.mounted or mountinfo_fstype(m.path) == "fuse.scoutfs":
                try:
                    p = run(umount_argv(m.path), check=False, timeout=60)
                    failed = p.returncode != 0
                except subprocess.TimeoutExpired:
                    failed = True
                    stuck.append(m)
                if failed:
                    self.kill(m.index)
        self.stop_fenced()
        if stuck:
            logs = "\n".join(f"--- mount {m.index} daemon log (end):\n{m.log()[-3000:]}"
                             for m in self.mounts)
            raise AssertionError(f"unmounting mount(s) {[m.index for m in stuck]} took over "
                                 f"60 s (killed)\n{logs}")
