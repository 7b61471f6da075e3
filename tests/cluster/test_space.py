"""
test_space.py: small devices, where allocator lists are short and commits must stay within
what the server hands out.
"""
import os
import random

import pytest

from harness import ScoutFS


@pytest.fixture
def small(fs_dir):
    f = ScoutFS(fs_dir, meta_size="256M", data_size="1G")
    f.mkfs()
    yield f
    f.cleanup()


def test_scattered_unlinks_commit_on_small_meta(small):
    """Random unlinks dirty a leaf each; every commit must still fit its allocator."""
    m = small.mount(0)
    d = os.path.join(m.path, "r")
    os.mkdir(d)
    nr = 15000
    for i in range(nr):
        with open(os.path.join(d, f"f{i}"), "w") as f:
            f.write("x")
    small.scoutfs("sync", "-p", m.path)
    names = list(range(nr))
    random.Random(2).shuffle(names)
    gone = set(names[:3000])
    for i in names[:3000]:
        os.unlink(os.path.join(d, f"f{i}"))
    small.scoutfs("sync", "-p", m.path, timeout=60)
    assert "No space left" not in m.log()
    assert len(os.listdir(d)) == nr - len(gone)
    small.umount(0)
    small.assert_clean()
    m = small.mount(0)
    assert sorted(os.listdir(d)) == sorted(f"f{i}" for i in range(nr) if i not in gone)
