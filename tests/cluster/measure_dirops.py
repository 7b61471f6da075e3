#!/usr/bin/python3
"""
measure_dirops.py: figures for directory operations on one mount, printed as a table.

  SCOUTFS_BIN_DIR=BUILD /usr/bin/python3 measure_dirops.py [ENTRIES]

- lookups of 5000 distinct names in a directory of ENTRIES entries vs. one of 5000, with
  cold caches (right after a remount) and with the daemon's cache warm (the kernel's dentries
  dropped by a second remount is not possible, so the warm pass looks up names the kernel
  has not cached yet): similar rates mean no lookup scans the directory;
- negative lookups in one directory from 1 and 4 threads (parallel directory operations);
- create, readdir and unlink rates in the big directory.
Not a test: timings are printed, never asserted.
"""
import os
import random
import sys
import tempfile
import threading
import time

from harness import ScoutFS, run, scoutfs_cmd


SMALL = 10000


def rate(n, fn):
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def stat_names(d, names):
    for n in names:
        os.stat(f"{d}/{n}")


def main():
    global SMALL
    big = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    SMALL = min(SMALL, big)
    top = tempfile.mkdtemp(prefix="scoutfs-measure-", dir=os.environ.get("SCOUTFS_TEST_DIR", "/tmp"))
    fs = ScoutFS(top)
    fs.mkfs()
    rows = []
    try:
        m = fs.mount(0).path
        for name, n in (("small", SMALL), ("big", big)):
            os.mkdir(f"{m}/{name}")
            fd = os.open(f"{m}/{name}", os.O_RDONLY)
            r = rate(n, lambda: [os.close(os.open(f"e{i:08d}", os.O_CREAT | os.O_WRONLY,
                                                  dir_fd=fd)) for i in range(n)])
            os.close(fd)
            if name == "big":
                rows.append(("create in one dir", f"{r:,.0f}/s"))
        run(scoutfs_cmd("sync", "-p", m))
        sample = SMALL // 2
        fs.umount(0)
        m = fs.mount(0).path
        picked = {}
        for name, n in (("small", SMALL), ("big", big)):
            names = random.sample([f"e{i:08d}" for i in range(n)], 2 * sample)
            picked[name] = names[sample:]
            r = rate(sample, lambda: stat_names(f"{m}/{name}", names[:sample]))
            rows.append((f"stat, cold, dir of {n}", f"{r:,.0f}/s"))
        for name, n in (("small", SMALL), ("big", big)):
            r = rate(sample, lambda: stat_names(f"{m}/{name}", picked[name]))
            rows.append((f"stat, daemon cache warm, dir of {n}", f"{r:,.0f}/s"))
        r = rate(big, lambda: os.listdir(f"{m}/big"))
        rows.append(("readdir entries", f"{r:,.0f}/s"))
        for threads in (1, 4):
            per = 4000

            def neg(t):
                for i in range(per):
                    try:
                        os.stat(f"{m}/big/missing-{t}-{i}")
                    except FileNotFoundError:
                        pass
            ts = [threading.Thread(target=neg, args=(t,)) for t in range(threads)]
            t0 = time.perf_counter()
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            rows.append((f"negative lookups, {threads} threads, one dir",
                         f"{threads * per / (time.perf_counter() - t0):,.0f}/s"))
        fd = os.open(f"{m}/big", os.O_RDONLY)
        r = rate(big, lambda: [os.unlink(f"e{i:08d}", dir_fd=fd) for i in range(big)])
        os.close(fd)
        rows.append(("unlink in one dir", f"{r:,.0f}/s"))
    finally:
        fs.cleanup()
        os.system(f"rm -rf {top}")
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v:>12}")


if __name__ == "__main__":
    main()
