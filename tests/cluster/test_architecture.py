"""
The architecture at work inside one mount, observed from outside: the quorum agent elects
itself and records its term, the client greets the server (which refuses a greeting from
another filesystem), items live under cluster locks, transactions go into the mount's own
log btree with allocators from the server and are committed by the server (the only writer
of the super), the server merges log btrees into fs_root, and farewell removes the mount's
record.  Devices are printed with `scoutfs print` while the filesystem is idle (after a
sync, with nothing left to commit) or unmounted.
"""
import os
import re
import socket
import struct
import time

from harness import recv_exact, run, scoutfs_cmd

NET_CMD_GREETING = 0
NET_FLAG_RESPONSE = 1
NET_ERR_EINVAL = 5


def scoutfs(*args):
    return run(scoutfs_cmd(*args)).stdout


def counters(mnt):
    return {k: int(v) for k, v in (l.split() for l in scoutfs("counters", "-p", mnt).splitlines())}


def statfs(mnt):
    return dict(l.split() for l in scoutfs("statfs", "-p", mnt).splitlines())


def print_dev(fs):
    return scoutfs("print", "-S", fs.meta)


def section(out, title):
    """The lines of a top-level section of `scoutfs print` (up to the next blank line)."""
    lines = out.split("\n")
    for i, l in enumerate(lines):
        if l.startswith(title):
            end = i + 1
            while end < len(lines) and lines[end] != "":
                end += 1
            return lines[i:end]
    raise AssertionError(f"no section {title!r} in:\n{out}")


def quorum_events(out, slot):
    """{event: [(rid, term)]} of a slot's quorum block."""
    ev = {}
    lines = section(out, "quorum blocks:")
    start = next(i for i, l in enumerate(lines) if l.startswith(f"  slot {slot} "))
    for l in lines[start + 1:]:
        if not l.startswith("    "):
            break
        m = re.match(r"\s+(\w+)\s+write_nr \d+ rid ([0-9a-f]+) term (\d+)", l)
        ev.setdefault(m.group(1), []).append((m.group(2), int(m.group(3))))
    return ev


def super_seq(out):
    return int(re.search(r"^  seq (\d+) next_ino", out, re.M).group(1))


def test_one_member_quorum_elects_itself_and_records_its_term(fs):
    terms = []
    for _ in range(2):
        m = fs.mount(0)
        q = dict(l.split(None, 1) for l in scoutfs("quorum-status", "-p", m.path).splitlines())
        assert q["role"] == "leader" and q["vote_bits"].startswith("0x1 (count 1)"), q
        term = int(q["term"])
        assert int(q["server_start_term"]) == term
        assert f"elected leader in term {term}" in m.log()
        rid = statfs(m.path)["rid"]
        fs.umount(0)
        ev = quorum_events(print_dev(fs), 0)
        # the election, the server's start and its clean end, all in this term
        for e in ("begin", "term", "elect", "stop", "end"):
            assert e in ev, ev
        assert ev["elect"] == [(rid, term)] and ev["term"] == [(rid, term)], ev
        assert ev["end"][0][0] == rid
        terms.append(term)
    # a new election starts from the term recorded in the quorum block
    assert terms[1] > terms[0]


def greet(port, fsid, fmt_vers):
    """Send a greeting as a new client and return the response header's fields, once the
    server has also hung up (a socket timeout fails the test if it doesn't)."""
    payload = struct.pack("<QQQQQ", fsid, fmt_vers, 0, 0x1234567887654321, 0)
    hdr = struct.pack("<QQQHBBB3x", 1, 0, 1, len(payload), NET_CMD_GREETING, 0, 0)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(hdr + payload)
        buf = recv_exact(s, 32, "the server")
        seq, recv_seq, id_, data_len, cmd, flags, error = struct.unpack("<QQQHBBB3x", buf)
        while s.recv(4096):
            pass
    return dict(id=id_, cmd=cmd, flags=flags, error=error, data_len=data_len)


def test_greetings_identify_the_filesystem(mounted):
    fs = mounted
    m = fs.mounts[0]
    c = counters(m.path)
    assert c["client_greeting_accepted"] == 1 and c["server_greeting"] >= 1
    fsid = int(statfs(m.path)["fsid"], 16)
    for bad_fsid, bad_vers, msg in ((fsid ^ 1, 2, "has fsid"), (fsid, 7, "has format version")):
        r = greet(fs.ports[0], bad_fsid, bad_vers)
        # refused: an error response to the greeting, then the server hangs up
        assert r["cmd"] == NET_CMD_GREETING and r["flags"] & NET_FLAG_RESPONSE, r
        assert r["id"] == 1 and r["error"] == NET_ERR_EINVAL and r["data_len"] == 0, r
        assert msg in m.log()
    # the refused strangers were never recorded, and the mount goes on working
    with open(os.path.join(m.path, "after"), "w") as f:
        f.write("still here")
    scoutfs("sync", "-p", m.path)
    assert "1234567887654321" not in "\n".join(section(print_dev(fs), "mounted_clients"))
    assert counters(m.path)["client_greeting_accepted"] == 1


def test_items_are_read_and_written_under_cluster_locks(mounted):
    m = mounted.mounts[0].path
    rid = statfs(m)["rid"]
    before = counters(m)
    os.mkdir(f"{m}/d")
    with open(f"{m}/d/f", "w") as f:
        f.write("x")
    os.listdir(f"{m}/d")
    after = counters(m)
    assert after["lock_lock"] > before["lock_lock"]
    # this mount holds write locks, granted by its server under its rid
    held = scoutfs("client-locks", "-p", m)
    assert re.search(r" mode write ", held), held
    granted = [l for l in scoutfs("server-locks", "-p", m).splitlines() if " granted " in l]
    assert granted and all(f"rid {rid}" in l for l in granted), granted
    assert any(" write granted " in l for l in granted), granted
    # the item cache aborts the daemon on any access outside a covering lock (tested in
    # the unit tests): a daemon that is still alive never made one
    assert "not covered by its lock" not in mounted.mounts[0].log()


def test_transactions_go_through_the_mounts_log_btree(fs):
    m = fs.mount(0)
    rid = statfs(m.path)["rid"]
    scoutfs("sync", "-p", m.path)
    seq0 = super_seq(print_dev(fs))
    c0 = counters(m.path)
    with open(os.path.join(m.path, "logged-name"), "wb") as f:
        f.write(b"d" * 100000)
    scoutfs("sync", "-p", m.path)
    c1 = counters(m.path)
    out = print_dev(fs)
    # the mount asked its server to commit, and the server wrote a newer super
    assert c1["server_commit_log_trees"] > c0["server_commit_log_trees"]
    assert c1["server_commit"] > c0["server_commit"]
    assert super_seq(out) > seq0
    # the new items are in this mount's log btree, not in fs_root
    assert "name 'logged-name'" in "\n".join(section(out, f"log tree {rid}."))
    assert "logged-name" not in "\n".join(section(out, "fs_root:"))
    # and its log trees item holds the allocators the server handed out
    logs = "\n".join(section(out, "logs_root:"))
    i = logs.index(f"log trees rid {rid}")
    lt = logs[i:i + 2000]
    meta_avail = int(re.search(r"meta_avail: total_nr (\d+)", lt).group(1))
    data_avail = int(re.search(r"data_avail: total_len (\d+)", lt).group(1))
    assert meta_avail > 0 and data_avail > 0, lt
    fs.umount(0)
    fs.assert_clean()


def test_server_merges_log_btrees_into_fs_root(fs):
    m = fs.mount(0)
    names = [f"merged-{i}" for i in range(40)]
    for n in names:
        with open(os.path.join(m.path, n), "w") as f:
            f.write(n)
    scoutfs("force-merge", "-p", m.path)
    for _ in range(300):
        if counters(m.path)["log_merge_complete"] >= 1:
            break
        time.sleep(0.1)
    assert counters(m.path)["log_merge_complete"] >= 1
    fs.umount(0)
    out = print_dev(fs)
    fs_root = "\n".join(section(out, "fs_root:"))
    for n in names:
        assert f"name '{n}'" in fs_root, n
    # what was merged left the log btrees
    assert "merged-" not in "\n".join(l for l in out.split("\n") if "name '" in l
                                      and l not in fs_root.split("\n"))
    fs.assert_clean()
    fs.mount(0)
    assert sorted(n for n in os.listdir(m.path) if n.startswith("merged-")) == sorted(names)


def test_farewell_removes_the_mounts_record(fs):
    fs.start_fenced()
    m = fs.mount(0)
    rid = statfs(m.path)["rid"]
    scoutfs("sync", "-p", m.path)
    clients = "\n".join(section(print_dev(fs), "mounted_clients"))
    assert f"mounted client rid {rid}" in clients and "(quorum)" in clients
    fs.umount(0)
    assert "said farewell" in m.log()
    clients = section(print_dev(fs), "mounted_clients")
    assert clients == ["mounted_clients: height 0, root blkno 0 seq 0000000000000000"], clients
    # a crashed mount says no farewell: its record stays until the next server reclaims it
    m = fs.mount(0)
    m.wait_server_up()
    crashed = statfs(m.path)["rid"]
    fs.kill(0)
    assert f"mounted client rid {crashed}" in "\n".join(section(print_dev(fs), "mounted_clients"))
    fs.assert_clean()
    m = fs.mount(0)
    fs.umount(0)
    assert f"rid {crashed}" not in "\n".join(section(print_dev(fs), "mounted_clients"))
    fs.assert_clean()
