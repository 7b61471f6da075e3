"""
scoutfs check and print on filesystems written by real daemons: clean after a mixed workload
(merged and unmerged log btrees), and a damaged block is reported as exactly that.  The unit
tests (tests/unit/test_check.c) inject every other kind of damage into images they build.
"""
import os
import re

from harness import run, scoutfs_cmd


def populate(m):
    os.makedirs(f"{m}/a/b/c")
    for i in range(200):
        with open(f"{m}/a/f{i}", "wb") as f:
            f.write(os.urandom(i * 1000))
    os.link(f"{m}/a/f1", f"{m}/a/b/hard")
    os.symlink("../f2", f"{m}/a/b/sym")
    os.setxattr(f"{m}/a/f5", "user.big", b"x" * 30000)
    os.mknod(f"{m}/a/fifo", 0o600 | 0o010000)
    for i in range(0, 200, 3):
        os.unlink(f"{m}/a/f{i}")
    os.rename(f"{m}/a/f4", f"{m}/a/b/c/moved")


def test_check_and_print_a_real_filesystem(fs):
    m = fs.mount(0)
    populate(m.path)
    run(scoutfs_cmd("force-merge", "-p", m.path))
    # more changes after the merge stay in the mount's log btree
    with open(f"{m.path}/late", "w") as f:
        f.write("late")
    fs.umount(0)
    rc, out = fs.check()
    assert rc == 0, out
    assert "No problems found." in out
    # root, a, b, c; f0..f199 less every third, and late; the fifo and the symlink
    assert "140 inodes (4 directories, 134 regular files)" in out, out
    p = fs.scoutfs("print", fs.meta)
    assert "ERROR" not in p.stdout
    for what in ("symlink chunk 0: '../f2\\x00'", "name 'moved'", "name 'hard'",
                 "val_len 30000 name_len 8 name 'user.big'", "extent: file blocks",
                 "meta_seq index:", "data_seq index:", "free extent"):
        assert what in p.stdout, what
    # a hex dump is only for values whose format isn't known
    assert " bytes: " not in p.stdout


def test_a_flipped_byte_is_reported(fs):
    m = fs.mount(0)
    populate(m.path)
    fs.umount(0)
    out = fs.scoutfs("print", "-S", fs.meta).stdout
    log_tree = re.search(r"^log tree \S+ items: height \d+, root blkno (\d+)", out, re.M)
    blkno = int(log_tree.group(1))
    with open(fs.meta, "r+b") as f:
        f.seek((blkno << 16) + 30000)
        b = f.read(1)
        f.seek((blkno << 16) + 30000)
        f.write(bytes([b[0] ^ 0x40]))
    rc, out = fs.check()
    assert rc == 1
    assert re.search(rf"PROBLEM: log tree \S+ items: btree block {blkno} \(level \d+\): bad "
                     r"checksum", out), out
    assert re.search(r"\d+ problems? found\.", out)
    p = fs.scoutfs("print", fs.meta, check=False)
    assert p.returncode == 1 and f"ERROR: btree block {blkno}" in p.stdout
