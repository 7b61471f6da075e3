"""meta_seq, data_seq, data_version, and the inode indexes archive agents walk."""
import os

from harness import run, scoutfs_cmd


def scoutfs(*args):
    return run(scoutfs_cmd(*args)).stdout


def stat_fields(path):
    out = {}
    for line in scoutfs("stat", path).splitlines():
        k, v = line.split()
        out[k] = v
    return out


def walk(mnt, index, first="0", last="-1"):
    """(seq, ino) pairs of an index, from `scoutfs walk-inodes` output."""
    rows = []
    for line in scoutfs("walk-inodes", "-p", mnt, index, first, last).splitlines():
        if line.startswith("#"):
            continue
        parts = line.split()
        rows.append((int(parts[1]), int(parts[3])))
    return rows


def test_quick_start(mounted):
    """touch one; sync; walk-inodes shows it at its new seq, and touching again moves it."""
    m = mounted.mounts[0].path
    p = f"{m}/one"
    open(p, "w").close()
    run(["sync"])
    ino = os.stat(p).st_ino
    rows = walk(m, "meta_seq")
    mine = [s for s, i in rows if i == ino]
    assert len(mine) == 1
    first_seq = mine[0]
    assert int(stat_fields(p)["meta_seq"]) == first_seq
    os.utime(p)
    run(["sync"])
    rows = walk(m, "meta_seq")
    mine = [s for s, i in rows if i == ino]
    assert len(mine) == 1, rows      # moved, not in two places
    assert mine[0] > first_seq
    assert rows == sorted(rows)
    # the root directory is indexed too, and directories never in data_seq
    assert any(i == 1 for s, i in rows)
    os.mkdir(f"{m}/dir")
    d_ino = os.stat(f"{m}/dir").st_ino
    assert all(i != d_ino for s, i in walk(m, "data_seq"))
    assert any(i == d_ino for s, i in walk(m, "meta_seq"))


def test_seq_rules(mounted):
    m = mounted.mounts[0].path
    p = f"{m}/f"
    with open(p, "w") as f:
        f.write("x" * 4096)
    run(scoutfs_cmd("sync", "-p", m))
    s0 = stat_fields(p)
    assert s0["data_version"] == "1"
    assert int(s0["data_seq"]) == int(s0["meta_seq"])
    assert s0["online_blocks"] == "1" and s0["offline_blocks"] == "0"

    # metadata only: meta_seq moves, data_seq and data_version don't
    os.chmod(p, 0o600)
    os.setxattr(p, "user.a", b"1")
    run(scoutfs_cmd("sync", "-p", m))
    s1 = stat_fields(p)
    assert int(s1["meta_seq"]) > int(s0["meta_seq"])
    assert s1["data_seq"] == s0["data_seq"] and s1["data_version"] == s0["data_version"]

    # a write moves everything
    with open(p, "r+") as f:
        f.write("y")
    run(scoutfs_cmd("sync", "-p", m))
    s2 = stat_fields(p)
    assert int(s2["data_seq"]) > int(s1["data_seq"])
    assert int(s2["meta_seq"]) == int(s2["data_seq"])
    assert s2["data_version"] == "2"

    # truncating to the same size: data_seq moves but data_version doesn't
    os.truncate(p, 4096)
    run(scoutfs_cmd("sync", "-p", m))
    s3 = stat_fields(p)
    assert int(s3["data_seq"]) > int(s2["data_seq"]) and s3["data_version"] == "2"
    os.truncate(p, 100)
    run(scoutfs_cmd("sync", "-p", m))
    assert stat_fields(p)["data_version"] == "3"

    # the indexes agree with the inode, each inode exactly once
    ino = os.stat(p).st_ino
    s4 = stat_fields(p)
    assert [s for s, i in walk(m, "meta_seq") if i == ino] == [int(s4["meta_seq"])]
    assert [s for s, i in walk(m, "data_seq") if i == ino] == [int(s4["data_seq"])]

    # deleted inodes leave the indexes
    os.unlink(p)
    run(scoutfs_cmd("sync", "-p", m))
    assert all(i != ino for s, i in walk(m, "meta_seq"))
    assert all(i != ino for s, i in walk(m, "data_seq"))


def test_walk_ranges_and_continuation(mounted):
    m = mounted.mounts[0].path
    for i in range(300):
        open(f"{m}/f{i}", "w").close()
        if i % 50 == 0:
            run(scoutfs_cmd("sync", "-p", m))
    run(scoutfs_cmd("sync", "-p", m))
    rows = walk(m, "meta_seq")
    assert len(rows) == 301 and rows == sorted(rows)
    seqs = sorted({s for s, i in rows})
    lo, hi = seqs[1], seqs[-2]
    # a bare LAST is the position (LAST, 0, 0): entries at seq LAST come after it
    sub = walk(m, "meta_seq", str(lo), str(hi))
    assert sub == [r for r in rows if lo <= r[0] < hi]
    sub = walk(m, "meta_seq", str(lo), f"{hi}.0.{2**64 - 1}")
    assert sub == [r for r in rows if lo <= r[0] <= hi]
    # continuing from just past an entry
    s, i = rows[100]
    assert walk(m, "meta_seq", f"{s}.0.{i + 1}") == rows[101:]
    assert walk(m, "meta_seq", str(hi), str(lo)) == []


def test_walk_is_clamped_to_committed_seq(mounted):
    m = mounted.mounts[0].path
    committed = int(scoutfs("statfs", "-p", m, "-s", "committed_seq"))
    assert all(s <= committed for s, i in walk(m, "meta_seq"))


def test_stat_and_statfs_output(mounted):
    m = mounted.mounts[0].path
    open(f"{m}/f", "w").close()
    lines = scoutfs("stat", f"{m}/f").splitlines()
    assert [l.split()[0] for l in lines] == [
        "meta_seq", "data_seq", "data_version", "online_blocks", "offline_blocks", "crtime"]
    assert scoutfs("stat", "-s", "data_version", f"{m}/f").strip() == "0"
    out = scoutfs("statfs", "-p", m)
    fields = dict(l.split() for l in out.splitlines())
    assert len(fields["fsid"]) == 16 and len(fields["rid"]) == 16
    assert int(fields["total_meta_blocks"]) == (2 << 30) >> 16
    assert int(fields["total_data_blocks"]) == (8 << 30) >> 12
    p = run(scoutfs_cmd("stat", "/etc/hostname"), check=False)
    assert p.returncode != 0 and "not in a scoutfs filesystem" in p.stderr


def test_seqs_persist(mounted):
    m = mounted.mounts[0].path
    with open(f"{m}/f", "w") as f:
        f.write("z")
    run(scoutfs_cmd("sync", "-p", m))
    before = stat_fields(f"{m}/f")
    rows = walk(m, "meta_seq")
    mounted.umount(0)
    mounted.mount(0)
    assert stat_fields(f"{m}/f") == before
    assert walk(m, "meta_seq") == rows
