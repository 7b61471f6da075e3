"""
conftest.py: fixtures for the cluster tests.

`fs` is a freshly made one-slot filesystem (not mounted); `mounted` is the same, mounted.
Each test gets its own devices in a temporary directory, and everything it mounted is
unmounted (or killed) afterwards, so a failing test never leaves mounts behind.
"""
import os
import shutil
import tempfile

import pytest

from harness import ScoutFS


@pytest.fixture
def fs_dir():
    d = tempfile.mkdtemp(prefix="scoutfs-test-", dir=os.environ.get("SCOUTFS_TEST_DIR", "/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def assert_no_sanitizer_reports(f):
    """A sanitized daemon that hit a memory error, leak or undefined behaviour fails the test."""
    for m in f.mounts:
        log = m.log()
        for mark in SANITIZER_MARKS:
            i = log.find(mark)
            assert i < 0, f"mount {m.index} daemon log reports a sanitizer error:\n{log[i:i + 6000]}"


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
