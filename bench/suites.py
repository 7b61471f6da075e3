"""
suites.py: the benchmark suites, each a function that fills one Table.

* meta: create, stat (warm and cold), readdir, rename and unlink of many files in one
  directory, with one thread and with several, on scoutfs, the backing filesystem and the FUSE
  passthrough;
* stream: sequential 1 MiB writes (timed through fsync) and reads (cold cache) of a large file,
  and random 4 KiB and 64 KiB reads and writes in it, also against the data device file itself;
* bigdir: a directory filled to a million entries, with the create, cold lookup and readdir
  rates measured at every tenth of the fill so that degradation shows;
* multi: creates from one, two and three mounts of one filesystem, in their own directories
  and in a shared one, and the latency of a write lock moving between two mounts, each next to
  the same work done through a single mount.

Rounds run the targets in a rotating order so that a burst of noise from the other users of
the machine does not always land on the same column.  A workload that fails or times out is
recorded in its cell and the suite moves on; a hung target is taken down and started afresh.
"""
import os
import subprocess
import sys
import time

from table import Table, si
from targets import BenchError, ScoutCluster, passthrough_fd_limit

MIB = 1 << 20


class Timeout(BenchError):
    pass


def parse(line):
    out = {}
    for field in line.split():
        k, _, v = field.partition("=")
        out[k] = v if k == "op" else float(v)
    return out


def cache_drops():
    """How many times anyone has written to /proc/sys/vm/drop_caches since boot."""
    with open("/proc/vmstat") as f:
        for line in f:
            if line.startswith("drop_slab "):
                return int(line.split()[1])
    return 0


class Bench:
    """What every suite needs: sizes, the timing helper, and the targets (started on first
    use, stopped when the run ends)."""

    def __init__(self, cfg, work, fsbench, make_target):
        self.cfg = cfg
        self.work = work
        self.fsbench_path = fsbench
        self.make_target = make_target
        self.targets = {}
        self.stragglers = []

    def progress(self, text):
        """Where a long run is (on stderr, so that stdout is only the tables)."""
        if not self.cfg.quiet:
            print(f"bench: {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)

    def target(self, name):
        if name not in self.targets:
            t = self.make_target(name)
            self.work.on_cleanup(t.stop)
            t.start()
            self.targets[name] = t
        return self.targets[name]

    def restart(self, name):
        """A target that failed: stop it (by force if it hangs) and start it afresh."""
        t = self.targets.pop(name, None)
        if t:
            self.work.cancel_cleanup(t.stop)
            try:
                t.stop()
            except BenchError as e:
                print(f"bench: {name}: {e}", flush=True)
        return self.target(name)

    def argv(self, *args):
        return [self.fsbench_path, *[str(a) for a in args]]

    def fsbench(self, *args, timeout):
        """Run one measurement; its results, with disturbed=True if another process dropped
        the kernel's caches meanwhile (other developers' tests do, often)."""
        cmd = self.argv(*args)
        drops = cache_drops()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Timeout(f"timeout ({timeout:.0f} s)")
        if p.returncode != 0:
            raise BenchError(f"{' '.join(cmd[1:3])}: {p.stderr.strip()}")
        res = parse(p.stdout.strip().splitlines()[-1])
        res["disturbed"] = cache_drops() != drops
        return res

    def together(self, runs, timeout):
        """Run fsbench commands at the same moment; their aggregate rate in ops/s."""
        start_at = time.time_ns() + 300_000_000
        procs = [subprocess.Popen(self.argv(*r, "-s", start_at), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for r in runs]
        deadline = time.time() + timeout
        outs = []
        try:
            for p in procs:
                try:
                    out, err = p.communicate(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    raise Timeout(f"timeout ({timeout:.0f} s)")
                if p.returncode != 0:
                    raise BenchError(err.strip())
                outs.append(parse(out.strip().splitlines()[-1]))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
            self.stragglers = [p for p in procs if p.poll() is None]
        ops = sum(o["ops"] for o in outs)
        span = (max(o["end_ns"] for o in outs) - min(o["start_ns"] for o in outs)) / 1e9
        return ops / span

    def reap_stragglers(self):
        """Helpers stuck in a hung mount die once its connection has been aborted."""
        for p in self.stragglers:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"bench: fsbench {p.pid} does not die", flush=True)
        self.stragglers = []

    def name_timeout(self, n):
        """Generous: a name operation slower than 100/s is a hang worth stopping."""
        return self.cfg.timeout or 60 + n / 100

    def byte_timeout(self, size):
        return self.cfg.timeout or 60 + size / (10 * MIB)


def rotated(cols, r):
    return cols[r % len(cols):] + cols[:r % len(cols)]


def rounds_label(n):
    return f"{n} round" + ("s" if n > 1 else "")


def threads_label(n):
    return f"{n} thread" + ("s" if n > 1 else "")


def run_rounds(b, table, cols, body):
    """body(target, round) for every round and target; failures go in the table."""
    for r in range(b.cfg.rounds):
        for name in rotated(cols, r):
            b.progress(f"{table.suite}: round {r + 1}/{b.cfg.rounds}, {name}")
            state = {"workload": None, "unit": None}
            try:
                body(b.target(name), r, state)
            except BenchError as e:
                msg = "timeout" if isinstance(e, Timeout) else "error"
                table.fail(state["workload"] or "(setup)", state["unit"] or "-", name, msg)
                table.note(f"{name}, round {r + 1}, {state['workload']}: {e}")
                b.restart(name)


def meta(b):
    cfg = b.cfg
    n = cfg.files
    cols = ["scoutfs", "backing", "passthrough"]
    t = Table("meta", f"{n} files in one directory, {rounds_label(cfg.rounds)}; "
              "ops/s, median (min-max)", cols)
    tmo = b.name_timeout(n)

    def body(tgt, r, state):
        def measure(workload, *args, unit="ops/s"):
            state["workload"], state["unit"] = workload, unit
            res = b.fsbench(*args, timeout=tmo)
            t.add(workload, unit, tgt.name, res["ops"] / res["secs"], res["disturbed"])
            return res

        for threads in sorted({1, cfg.threads}):
            tl = threads_label(threads)
            d = os.path.join(tgt.path, f"meta-{r}-{threads}")
            os.mkdir(d)
            measure(f"create, {tl}", "create", d, "-n", n, "-t", threads)
            measure(f"stat warm, {tl}", "stat", d, "-n", n, "-t", threads)
            tgt.cold()
            measure(f"stat cold (drop_caches), {tl}", "stat", d, "-n", n, "-t", threads)
            if threads == 1:
                res = measure("readdir", "readdir", d, unit="entries/s")
                if res["ops"] != n:
                    raise BenchError(f"readdir returned {res['ops']:.0f} of {n} entries")
                tgt.remount()
                measure("stat cold (remount)", "stat", d, "-n", n)
            measure(f"rename, {tl}", "rename", d, "-n", n, "-t", threads)
            measure(f"unlink, {tl}", "unlink", d, "-n", n, "-t", threads, "-p", "r")
            os.rmdir(d)

    run_rounds(b, t, cols, body)
    t.note("cold (drop_caches): syncfs of the target, then echo 3 > /proc/sys/vm/drop_caches "
           "(kernel caches only: the scoutfs daemon keeps its item cache)")
    t.note("cold (remount): scoutfs unmounted and mounted again, passthrough_ll restarted, then "
           "drop_caches; the backing filesystem only drops caches")
    return t


def stream(b):
    cfg = b.cfg
    size = cfg.stream_size
    secs = cfg.io_seconds
    cols = ["scoutfs", "backing", "passthrough", "device"]
    t = Table("stream", f"a {si(size / MIB)} MiB file, {rounds_label(cfg.rounds)}; "
              "median (min-max)", cols)
    tmo = b.byte_timeout(size)

    def body(tgt, r, state):
        device = tgt.name == "device"
        path = tgt.path if device else os.path.join(tgt.path, "stream")
        flags = (["-d"] if device and tgt.direct else []) + (["-k"] if device else [])

        def measure(workload, unit, *args):
            state["workload"], state["unit"] = workload, unit
            res = b.fsbench(*args, *flags, timeout=tmo + secs)
            if unit == "MiB/s":
                v = res["bytes"] / res["secs"] / MIB
            else:
                v = res["ops"] / res["secs"]
            t.add(workload, unit, tgt.name, v, res["disturbed"])

        if device:
            tgt.fresh()
        measure("write 1 MiB seq (+fsync)", "MiB/s", "seqwrite", path, "-b", size)
        tgt.cold()
        measure("read 1 MiB seq, cold", "MiB/s", "seqread", path, "-b", size)
        for bs, label in ((4096, "4 KiB"), (65536, "64 KiB")):
            tgt.cold()
            measure(f"read {label} random, cold", "IOPS", "randread", path, "-b", size,
                    "-B", bs, "-T", secs)
        if cfg.threads > 1:
            tgt.cold()
            measure(f"read 4 KiB random, cold, {threads_label(cfg.threads)}", "IOPS",
                    "randread", path, "-b", size, "-B", 4096, "-T", secs, "-t", cfg.threads)
        for bs, label in ((4096, "4 KiB"), (65536, "64 KiB")):
            measure(f"write {label} random (+fsync)", "IOPS", "randwrite", path, "-b", size,
                    "-B", bs, "-T", secs)
        if not device:
            os.unlink(path)

    run_rounds(b, t, cols, body)
    dev = b.targets.get("device")
    if dev is not None and dev.prefill:
        how = ", both it and the scoutfs data device written full before measuring (--prefill)"
    else:
        how = (", made again before each round's sequential write (scoutfs writes every "
               "round's file to blocks of its data device never written before)")
    t.note("device: a sparse file like the data device, " +
           ("O_DIRECT" if dev is None or dev.direct else "buffered (no O_DIRECT here)") +
           how + ", written from offset 0; the others are buffered files")
    t.note("cold: syncfs of the target, then echo 3 > /proc/sys/vm/drop_caches; random I/O "
           f"runs {secs} s per workload, writes are timed through a final fsync")
    return t


def bigdir(b):
    cfg = b.cfg
    total = cfg.bigdir_files
    steps = cfg.bigdir_steps
    sample = cfg.bigdir_sample
    cols = ["scoutfs", "backing", "passthrough"]
    t = Table("bigdir", f"one directory filled to {si(total)} entries in {steps} steps, one "
              f"round, {sample} random cold lookups per step; ops/s", cols)
    chunk = total // steps
    # passthrough_ll finds its inodes by walking a list of all of them (a quadratic fill) and
    # holds a descriptor for each: it goes only as far as time and the descriptor limit allow
    pt_max = min(cfg.bigdir_passthrough_max, passthrough_fd_limit() - 1000)

    for name in cols:
        tgt = b.target(name)
        d = os.path.join(tgt.path, "bigdir")
        workload, unit = None, "ops/s"
        try:
            os.mkdir(d)
            for k in range(steps):
                first, count = k * chunk, (k + 1) * chunk
                if name == "passthrough" and count > pt_max:
                    t.note(f"passthrough stopped before {si(count)} entries: it may hold "
                           f"{si(pt_max)} here, as it keeps a descriptor per inode "
                           "(RLIMIT_NOFILE) and walks a list of all of them on every lookup, "
                           "a quadratic fill (--bigdir-passthrough-max)")
                    break
                workload, unit = f"create {si(first)}..{si(count)}", "ops/s"
                b.progress(f"bigdir: {name}, {workload}")
                res = b.fsbench("create", d, "-n", chunk, "-f", first,
                                timeout=b.name_timeout(chunk))
                t.add(workload, "ops/s", name, res["ops"] / res["secs"], res["disturbed"])
                tgt.cold()
                workload = f"stat cold at {si(count)}"
                res = b.fsbench("stat", d, "-n", count, "-c", sample, "-x", k + 1,
                                timeout=b.name_timeout(sample))
                t.add(workload, "ops/s", name, res["ops"] / res["secs"], res["disturbed"])
                workload, unit = f"readdir at {si(count)}", "entries/s"
                res = b.fsbench("readdir", d, timeout=b.name_timeout(count))
                if res["ops"] != count:
                    raise BenchError(f"readdir returned {res['ops']:.0f} of {count} entries")
                t.add(workload, "entries/s", name, res["ops"] / res["secs"], res["disturbed"])
        except BenchError as e:
            t.fail(workload, unit, name, "timeout" if isinstance(e, Timeout) else "error")
            t.note(f"{name}, {workload}: {e}")
            b.restart(name)
            continue
        if name != "scoutfs":
            # the baselines' million files go now, scoutfs's with its devices at the end
            src = d if name == "backing" else os.path.join(tgt.src, "bigdir")
            subprocess.run(["nice", "rm", "-rf", src])
    t.note("readdir rate = entries listed per second of a full readdir of the directory")
    return t


def multi(b):
    cfg = b.cfg
    n = cfg.multi_files
    cols = ["scoutfs", "1 mount"]
    t = Table("multi", f"{n} creates per process in their own directories, "
              f"{cfg.shared_files} in the shared one, {cfg.bounces} lock bounces, "
              f"{rounds_label(cfg.rounds)}; median (min-max); scoutfs = across mounts, "
              "'1 mount' = the same work through mount 0 only", cols)

    def timeout(ops, rate):
        """Generous, from the slowest plausible rate: only a hang should hit it."""
        return cfg.multi_timeout or 30 + ops / rate

    def new_cluster(r, k):
        cl = ScoutCluster(b.work, f"multi-{r}-{k}", cfg.meta_size, cfg.data_size)
        for i in range(3):
            cl.mount(i)
        return cl

    def creates(cl, tag, mounts, shared):
        """One process per entry of mounts, each creating n files (in a shared directory or
        its own); their aggregate rate."""
        p = cl.paths()
        runs = []
        count = cfg.shared_files if shared else n
        for i, m in enumerate(mounts):
            d = os.path.join(p[m], tag if shared else f"{tag}-{i}")
            if not os.path.isdir(d):
                os.mkdir(d)
            runs.append(("create", d, "-n", count, "-f", i * count))
        # the directories made, every mount's earlier work committed: a mount's directory
        # may take the parent's lock from another that must commit first, and that commit
        # (of the last measurement's creates) is no part of this measurement
        cl.quiesce()
        # a create in a directory another mount writes moves its lock: a commit each time
        return b.together(runs, timeout(count, 10 if shared else 100))

    def bounce(cl, tag, mounts, op):
        p = cl.paths()
        f = os.path.join(p[0], tag)
        with open(f, "w") as fh:
            fh.write("x" * 8)
        cl.quiesce()
        res = b.fsbench("bounce", os.path.join(p[mounts[0]], tag),
                        os.path.join(p[mounts[1]], tag), "-n", cfg.bounces, "-o", op,
                        timeout=timeout(cfg.bounces, 10))
        return res["p50_us"], res["p99_us"]

    workloads = [
        ("create, own dir, 1 process", None, lambda cl, w: creates(cl, w, [0], False)),
        ("create, own dir each, 2 mounts", lambda cl, w: creates(cl, w, [0, 1], False),
         lambda cl, w: creates(cl, w, [0, 0], False)),
        ("create, own dir each, 3 mounts", lambda cl, w: creates(cl, w, [0, 1, 2], False),
         lambda cl, w: creates(cl, w, [0, 0, 0], False)),
        ("write lock bounce, pwrite 8 B", lambda cl, w: bounce(cl, w, [0, 1], "write"),
         lambda cl, w: bounce(cl, w, [0, 0], "write")),
        ("write lock bounce, setxattr", lambda cl, w: bounce(cl, w, [0, 1], "setxattr"),
         lambda cl, w: bounce(cl, w, [0, 0], "setxattr")),
        ("create, one shared dir, 2 mounts", lambda cl, w: creates(cl, w, [0, 1], True),
         lambda cl, w: creates(cl, w, [0, 0], True)),
    ]

    def fail(workload, col, what):
        if "bounce" in workload:
            t.fail(workload + ", p50", "us", col, what)
            t.fail(workload + ", p99", "us", col, what)
        else:
            t.fail(workload, "ops/s", col, what)

    hung = set()  # a hang is a bug to report once, not a figure to wait for every round
    for r in range(cfg.rounds):
        k = 0
        cl = new_cluster(r, k)
        for wi, (workload, across, single) in enumerate(workloads):
            for col, fn in (("1 mount", single), ("scoutfs", across)):
                if fn is None or (workload, col) in hung:
                    continue
                tag = f"w{wi}-{'a' if col == 'scoutfs' else 's'}"
                b.progress(f"multi: round {r + 1}/{cfg.rounds}, {workload}, {col}")
                try:
                    v = fn(cl, tag)
                except BenchError as e:
                    what = "timeout" if isinstance(e, Timeout) else "error"
                    fail(workload, col, what)
                    hung.add((workload, col))
                    t.note(f"round {r + 1}, {workload}, {col}: {e} (not run again)")
                    for line in sorted(set(cl.diagnose()))[:12]:
                        t.note(f"  {line}")
                    cl.force_down()
                    b.reap_stragglers()
                    try:
                        cl.teardown()
                    except BenchError:
                        pass
                    k += 1
                    cl = new_cluster(r, k)
                    continue
                if isinstance(v, tuple):
                    t.add(workload + ", p50", "us", col, v[0])
                    t.add(workload + ", p99", "us", col, v[1])
                else:
                    t.add(workload, "ops/s", col, v)
        cl.teardown()
    t.note("every mount commits (scoutfs sync) and 1 s passes before each measurement; processes "
           "start together; aggregate = all creates / (last end - first start)")
    t.note("bounce: one process alternates the change between a path on mount 0 and one on "
           "mount 1 (scoutfs) or two opens on mount 0 ('1 mount'); latency of each change")
    return t


SUITES = {"meta": meta, "stream": stream, "multi": multi, "bigdir": bigdir}
DEFAULT_SUITES = ["meta", "stream", "multi"]
