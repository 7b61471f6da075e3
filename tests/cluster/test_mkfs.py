"""mkfs: what it creates, and the clear errors it gives instead of damaging anything."""
import os

from harness import ScoutFS, run, tool


def mkfs(fs, *args):
    return run([tool("scoutfs"), "mkfs"] + list(args), check=False)


def test_mkfs_summary_and_mount(fs_dir):
    fs = ScoutFS(fs_dir)
    p = fs.mkfs()
    assert "Created scoutfs filesystem" in p.stdout
    assert f"0: 127.0.0.1:{fs.ports[0]}" in p.stdout
    fs.mount(0)
    assert os.listdir(fs.mounts[0].path) == []
    fs.cleanup()


def test_refuses_existing_filesystem_without_force(fs):
    p = mkfs(fs, "-A", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode != 0
    assert "already holds scoutfs filesystem" in p.stderr and "-f" in p.stderr
    p = mkfs(fs, "-A", "-f", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 0


def test_refuses_small_devices_without_A(fs_dir):
    fs = ScoutFS(fs_dir)
    p = mkfs(fs, *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 1
    assert "use -A" in p.stderr
    assert "need at least" in p.stderr


def test_refuses_tiny_devices_even_with_A(fs_dir):
    fs = ScoutFS(fs_dir, meta_size="8M", data_size="8M")
    p = mkfs(fs, "-A", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 1
    assert "too small" in p.stderr


def test_bad_quorum_slots(fs_dir):
    fs = ScoutFS(fs_dir)
    bad = {
        ("-Q", "0,127.0.0.1"): "must be NR,ADDR,PORT",
        ("-Q", "15,127.0.0.1,5000"): "from 0 to 14",
        ("-Q", "0,not.an.addr,5000"): "not an IPv4 address",
        ("-Q", "0,0.0.0.0,5000"): "not a host address",
        ("-Q", "0,127.0.0.1,0"): "from 1 to 65535",
        ("-Q", "0,127.0.0.1,70000"): "from 1 to 65535",
        ("-Q", "0,127.0.0.1,5000", "-Q", "0,127.0.0.1,5001"): "more than once",
        ("-Q", "0,127.0.0.1,5000", "-Q", "1,127.0.0.1,5000"): "same address",
    }
    for args, msg in bad.items():
        p = mkfs(fs, "-A", *args, fs.meta, fs.data)
        assert p.returncode == 64, (args, p.stderr)
        assert msg in p.stderr, (args, p.stderr)
    p = mkfs(fs, "-A", fs.meta, fs.data)
    assert p.returncode == 64 and "quorum slot" in p.stderr


def test_same_device_for_meta_and_data(fs_dir):
    fs = ScoutFS(fs_dir)
    p = mkfs(fs, "-A", *fs.quorum_args(), fs.meta, fs.meta)
    assert p.returncode == 1
    assert "same device" in p.stderr
    link = os.path.join(fs_dir, "meta-link")
    os.symlink(fs.meta, link)
    p = mkfs(fs, "-A", *fs.quorum_args(), fs.meta, link)
    assert p.returncode == 1 and "same device" in p.stderr


def test_missing_device(fs_dir):
    fs = ScoutFS(fs_dir)
    p = mkfs(fs, "-A", *fs.quorum_args(), os.path.join(fs_dir, "nope"), fs.data)
    assert p.returncode == 1
    assert "cannot open metadata device" in p.stderr


def test_max_sizes(fs_dir):
    fs = ScoutFS(fs_dir)
    p = mkfs(fs, "-A", "-m", "1G", "-d", "2G", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 0, p.stderr
    assert "16384 (1024 MiB)" in p.stdout
    assert "524288 (2048 MiB)" in p.stdout


def test_format_version(fs_dir):
    fs = ScoutFS(fs_dir)
    p = mkfs(fs, "-A", "-V", "3", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 64 and "not supported" in p.stderr
    p = mkfs(fs, "-A", "-V", "1", *fs.quorum_args(), fs.meta, fs.data)
    assert p.returncode == 0 and "format version:       1" in p.stdout
    fs.mount(0)
    with open(os.path.join(fs.mounts[0].path, "f"), "w") as f:
        f.write("v1")
    fs.umount(0)
    fs.mount(0)
    with open(os.path.join(fs.mounts[0].path, "f")) as f:
        assert f.read() == "v1"
    fs.cleanup()
