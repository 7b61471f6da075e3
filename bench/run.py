#!/usr/bin/python3
"""
run.py: run the scoutfs benchmarks and print their rates next to baselines measured in the
same run (see bench/README.md).

    bench/run.py [--build DIR] [--quick] [--suite NAME ...] [--json FILE] [options]

Everything happens in a fresh directory under --work-dir (default /tmp): the devices, the
mount points, the baselines.  Everything is unmounted and removed at the end, also after an
error or Ctrl-C.  Must run as root (it mounts, and drops the kernel caches).
"""
import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import targets  # noqa: E402
from suites import DEFAULT_SUITES, SUITES, Bench  # noqa: E402
from targets import BenchError, Work  # noqa: E402

SIZE_SUFFIX = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}

# name: (full run, --quick, meaning); the full run takes about 10 minutes here
DEFAULTS = {
    "rounds": (3, 1, "rounds of every suite but bigdir"),
    "files": (10000, 200, "meta: files in the directory"),
    "threads": (4, 2, "meta and stream: the several-threads variant"),
    "stream_size": ("1G", "8M", "stream: file size"),
    "io_seconds": (2.0, 0.2, "stream: seconds per random I/O workload"),
    "bigdir_files": (1000000, 1000, "bigdir: entries at the end"),
    "bigdir_steps": (10, 2, "bigdir: measurement points"),
    "bigdir_sample": (2000, 100, "bigdir: cold lookups per step"),
    "bigdir_passthrough_max": (200000, 1000, "bigdir: entries the passthrough goes to"),
    "multi_files": (5000, 100, "multi: files each process creates in its own directory"),
    "shared_files": (1000, 50, "multi: files each process creates in the shared directory"),
    "bounces": (400, 20, "multi: lock bounces"),
    "multi_timeout": (0, 10, "multi: seconds per workload (0: from the size)"),
    "timeout": (0, 60, "seconds per measurement elsewhere (0: from the size)"),
}


def size(text):
    t = str(text).strip().lower()
    mult = SIZE_SUFFIX.get(t[-1:], 1)
    return int(float(t[:-1] if t[-1:] in SIZE_SUFFIX else t) * mult)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Benchmarks of scoutfs next to the backing filesystem, a FUSE passthrough "
                    "and the data device, measured in the same run.")
    p.add_argument("--build", metavar="DIR",
                   help="a build directory to run (its mount.scoutfs, scoutfsd, scoutfs and "
                        "fsbench) instead of the installed scoutfs")
    p.add_argument("--quick", action="store_true",
                   help="every suite with tiny sizes and one round (a smoke test, not figures)")
    p.add_argument("--suite", nargs="+", choices=sorted(SUITES), metavar="NAME",
                   help=f"suites to run: {', '.join(SUITES)} (default: "
                        f"{' '.join(DEFAULT_SUITES)}; --quick: all)")
    p.add_argument("--work-dir", default=os.environ.get("SCOUTFS_BENCH_DIR", "/tmp"),
                   help="where to make the work directory (its filesystem is the backing "
                        "filesystem of every target; default /tmp)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress messages on stderr")
    p.add_argument("--keep", action="store_true",
                   help="keep the work directory and daemon logs (everything is unmounted)")
    p.add_argument("--passthrough-opts", default="timeout=86400",
                   help="-o options of passthrough_ll (default: timeout=86400, the entry and "
                        "attribute timeouts scoutfs gives the kernel)")
    p.add_argument("--meta-size", default="16G", help="scoutfs metadata device (sparse file)")
    p.add_argument("--data-size", default="16G", help="scoutfs data device (sparse file)")
    p.add_argument("--prefill", action="store_true",
                   help="write the scoutfs data device and the device baseline full of zeros "
                        "before measuring, as a block device is: the backing filesystem then "
                        "allocates nothing during the runs (scoutfs and device targets; with "
                        "a smaller --data-size, such as 4G, to keep the fill short)")
    g = p.add_argument_group("sizes (defaults: full run / --quick)")
    for name, (full, quick, meaning) in DEFAULTS.items():
        g.add_argument("--" + name.replace("_", "-"), default=None, metavar="N",
                       help=f"{meaning}: {full} / {quick}")
    args = p.parse_args(argv)
    for name, (full, quick, _) in DEFAULTS.items():
        v = getattr(args, name)
        v = (quick if args.quick else full) if v is None else v
        if name == "stream_size":
            v = size(v)
        elif isinstance(full, float):
            v = float(v)
        else:
            v = int(v)
        setattr(args, name, v)
    args.meta_size_bytes = size(args.meta_size)
    args.data_size_bytes = max(size(args.data_size), 4 * args.stream_size)
    args.data_size = str(args.data_size_bytes)
    if not args.suite:
        args.suite = list(SUITES) if args.quick else DEFAULT_SUITES
    return args


def capture(args, cwd=None):
    try:
        return subprocess.run(args, capture_output=True, text=True, cwd=cwd,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def build_info(build):
    if not build:
        return "installed scoutfs (" + (capture(["scoutfs", "--version"]) or "?") + ")"
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError):
        opts = {}
    san = opts.get("b_sanitize", "none")
    return (f"{os.path.realpath(build)} ({opts.get('buildtype', '?')}"
            + (f", sanitize={san}" if san not in ("none", "") else "") + ")")


def header(args, work):
    top = targets.TOP
    commit = capture(["git", "-C", top, "log", "-1", "--format=%h %cd", "--date=short"])
    dirty = " (uncommitted changes)" if capture(["git", "-C", top, "status", "--porcelain",
                                                  "--untracked-files=no"]) else ""
    branch = capture(["git", "-C", top, "rev-parse", "--abbrev-ref", "HEAD"])
    mem = capture(["awk", "/MemTotal/ {printf \"%.0f GiB\", $2 / 1048576}", "/proc/meminfo"])
    backing = capture(["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "-T", work.dir])
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    sizes = (f"rounds={args.rounds} files={args.files} threads={args.threads} "
             f"stream_size={args.stream_size >> 20}M io_seconds={args.io_seconds} "
             f"multi_files={args.multi_files} shared_files={args.shared_files} "
             f"bounces={args.bounces}")
    if "bigdir" in args.suite:
        sizes += (f" bigdir_files={args.bigdir_files} bigdir_steps={args.bigdir_steps} "
                  f"bigdir_sample={args.bigdir_sample} "
                  f"bigdir_passthrough_max={args.bigdir_passthrough_max}")
    return [
        f"# scoutfs benchmarks, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "# command: " + shlex.join([sys.executable] + sys.argv),
        f"# source: {top} {branch} {commit}{dirty}",
        f"# build: {build_info(args.build)}",
        f"# host: {os.cpu_count()} CPUs, {mem}, Linux {platform.release()}, "
        f"libfuse {capture(['pkg-config', '--modversion', 'fuse3'])}, load average {load}",
        f"# backing filesystem: {backing}; work directory {work.dir}",
        f"# scoutfs: mkfs -A -f -Q 0,127.0.0.1,PORT on sparse files (meta {args.meta_size}, "
        f"data {args.data_size_bytes >> 30}G" +
        (", written full before mkfs (--prefill)" if args.prefill else "") +
        "), default mount options, slot 0",
        f"# passthrough: libfuse's passthrough_ll example -o {args.passthrough_opts} "
        "(multithreaded loop), over a directory of the backing filesystem",
        f"# sizes: {sizes}",
    ]


def make_target_factory(args, work, pt_binary):
    def make(name):
        if name == "scoutfs":
            return targets.ScoutTarget(work, args.meta_size, args.data_size, args.prefill)
        if name == "backing":
            return targets.BackingTarget(work)
        if name == "passthrough":
            return targets.PassthroughTarget(work, pt_binary(), args.passthrough_opts)
        if name == "device":
            return targets.DeviceTarget(work, args.data_size_bytes, args.prefill)
        raise ValueError(name)
    return make


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench: must run as root (it mounts filesystems and drops caches)",
              file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    targets.setup_harness(args.build)
    work = Work(args.work_dir, keep=args.keep)
    results = {}
    status = 0
    started = time.time()
    try:
        fsbench = targets.fsbench_binary(work, args.build)
        pt = []

        def pt_binary():
            if not pt:
                pt.append(targets.passthrough_binary(work))
            return pt[0]

        lines = header(args, work)
        print("\n".join(lines), flush=True)
        results["env"] = lines
        bench = Bench(args, work, fsbench, make_target_factory(args, work, pt_binary))
        results["suites"] = {}
        for name in args.suite:
            print(flush=True)
            table = SUITES[name](bench)
            print("\n".join(table.lines()), flush=True)
            results["suites"][name] = table.as_json()
    except KeyboardInterrupt:
        print("\nbench: interrupted, cleaning up", flush=True)
        status = 130
    except BenchError as e:
        print(f"bench: {e}", flush=True)
        status = 1
    finally:
        if not work.cleanup():
            status = status or 1
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n# finished in {time.time() - started:.0f} s, load average {load}", flush=True)
    if args.json:
        results["status"] = status
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
