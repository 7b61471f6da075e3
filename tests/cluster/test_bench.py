"""
bench/run.py --quick: the benchmarks keep working.  Every suite runs with tiny sizes and must
print a well-formed table with a value in every cell, and leave nothing mounted or on disk.
Timings are never checked: they mean nothing on a shared machine and at these sizes.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

from harness import BIN

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(TOP, "bench", "run.py")

ROWS = {
    "meta": ["create, 1 thread", "stat warm, 1 thread", "stat cold (drop_caches), 1 thread",
             "readdir", "stat cold (remount)", "rename, 1 thread", "unlink, 1 thread",
             "create, 2 threads", "stat warm, 2 threads", "stat cold (drop_caches), 2 threads",
             "rename, 2 threads", "unlink, 2 threads"],
    "stream": ["write 1 MiB seq (+fsync)", "read 1 MiB seq, cold", "read 4 KiB random, cold",
               "read 64 KiB random, cold", "read 4 KiB random, cold, 2 threads",
               "write 4 KiB random (+fsync)", "write 64 KiB random (+fsync)"],
    "multi": ["create, own dir, 1 process", "create, own dir each, 2 mounts",
              "create, own dir each, 3 mounts", "write lock bounce, pwrite 8 B, p50",
              "write lock bounce, pwrite 8 B, p99", "write lock bounce, setxattr, p50",
              "write lock bounce, setxattr, p99", "create, one shared dir, 2 mounts"],
    "bigdir": ["create 0..500", "stat cold at 500", "readdir at 500", "create 500..1000",
               "stat cold at 1000", "readdir at 1000"],
}
COLUMNS = {
    "meta": ["scoutfs", "backing", "passthrough"],
    "stream": ["scoutfs", "backing", "passthrough", "device"],
    "multi": ["scoutfs", "1 mount"],
    "bigdir": ["scoutfs", "backing", "passthrough"],
}
CELL = re.compile(r"^\d+(\.\d+)?[kM]?$")


def bench_argv(work_dir, *args):
    argv = [sys.executable, RUN, "--work-dir", work_dir, *args]
    return argv + (["--build", BIN] if BIN else [])


def our_mounts(work_dir):
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(work_dir + "/")]


def check_row_printed(out, suite, row, columns):
    line = next((x for x in out.splitlines() if x.startswith(row["workload"] + "  ")), None)
    assert line, f"{suite}: no printed row for {row['workload']!r}"
    fields = re.split(r"\s{2,}", line.strip())
    # workload, unit, one cell per column, one ratio per baseline
    assert len(fields) == 2 + len(columns) + len(columns) - 1, line
    assert fields[1] == row["unit"], line
    for f in fields[2:2 + len(columns)]:
        median = f.split(" (")[0]
        assert CELL.match(median) or f == "-", line
    for f in fields[2 + len(columns):]:
        assert f == "-" or re.match(r"^\d+\.\d\d$", f), line


def test_quick_run_prints_well_formed_tables(fs_dir):
    out_json = os.path.join(fs_dir, "results.json")
    p = subprocess.run(bench_argv(fs_dir, "--quick", "--json", out_json), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "# command: " in p.stdout and "# build: " in p.stdout
    with open(out_json) as f:
        results = json.load(f)
    assert results["status"] == 0
    assert list(results["suites"]) == ["meta", "stream", "multi", "bigdir"]
    for suite, table in results["suites"].items():
        assert f"== {suite}: " in p.stdout
        assert table["columns"] == COLUMNS[suite]
        assert [r["workload"] for r in table["rows"]] == ROWS[suite]
        for row in table["rows"]:
            check_row_printed(p.stdout, suite, row, table["columns"])
            for col, cell in row["cells"].items():
                if suite == "multi" and row["workload"].startswith("create, own dir, 1") \
                        and col == "scoutfs":
                    assert cell is None  # one process on one mount is the reference only
                    continue
                assert cell and "error" not in cell, (suite, row["workload"], col, cell)
                assert cell["median"] > 0 and cell["min"] <= cell["median"] <= cell["max"]
    # everything was unmounted and removed
    assert not our_mounts(fs_dir)
    assert [n for n in os.listdir(fs_dir) if n.startswith("scoutfs-bench-")] == []


def test_interrupted_run_cleans_up(fs_dir):
    p = subprocess.Popen(bench_argv(fs_dir, "--quick", "--suite", "meta", "--files", "2000"),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while len(our_mounts(fs_dir)) < 2:  # scoutfs and the passthrough
            assert p.poll() is None and time.time() < deadline, p.stdout.read()
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, out
    assert "interrupted, cleaning up" in out
    assert not our_mounts(fs_dir)
    assert [n for n in os.listdir(fs_dir) if n.startswith("scoutfs-bench-")] == []
