"""
conftest.py: fixtures for the cluster tests.

`fs` is a freshly made one-slot filesystem (not mounted); `mounted` is the same, mounted.
Each test gets its own devices in a temporary directory, and everything it mounted is
unmounted (or killed) afterwards, so a failing test never leaves mounts behind.
"""
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from harness import ScoutFS, leftovers_under, sanitizer_report


@pytest.fixture
def fs_dir():
    d = tempfile.mkdtemp(prefix="scoutfs-test-", dir=os.environ.get("SCOUTFS_TEST_DIR", "/tmp"))
    yield d
    # a test must unmount what it mounted: anything left is cleared away, and fails it
    mnts, pids = leftovers_under(d)
    for p in pids:
        os.kill(p, signal.SIGKILL)
    for m in reversed(mnts):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)
    assert not mnts and not pids, f"the test left mounts {mnts} and daemons {pids} behind"


def assert_no_sanitizer_reports(f):
    """
    A daemon that crashed, or (sanitized) hit a memory error, leak or undefined behaviour,
    fails the test.
    """
    for m in f.mounts:
        report = sanitizer_report(m.log())
        assert not report, f"mount {m.index} daemon log reports a crash or sanitizer error:\n{report}"


@pytest.fixture
def fs(fs_dir):
    f = ScoutFS(fs_dir)
    f.mkfs()
    yield f
    f.cleanup()
    assert_no_sanitizer_reports(f)


@pytest.fixture
def mounted(fs):
    fs.mount(0)
    return fs


def pytest_configure(config):
    if os.geteuid() != 0:
        pytest.exit("the cluster tests mount filesystems and must run as root", returncode=1)


@pytest.fixture
def tmpfs_ref(fs_dir):
    """A tmpfs (ACLs, user xattrs) as the local filesystem a scenario is compared with."""
    import subprocess
    d = os.path.join(fs_dir, "ref")
    os.makedirs(d)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "scoutfs-test-ref", d], check=True)
    yield d
    subprocess.run(["umount", "-l", d], check=False)


@pytest.fixture
def posix_roots(mounted, tmpfs_ref):
    """(reference dir, scoutfs dir): the same empty world-writable directory on both."""
    os.chmod(mounted.dir, 0o755)
    roots = []
    for top in (tmpfs_ref, mounted.mounts[0].path):
        d = os.path.join(top, "t")
        os.mkdir(d)
        os.chmod(d, 0o777)
        roots.append(d)
    return tuple(roots)
