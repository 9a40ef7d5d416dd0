from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import pytest

# The RuleSet property tests' physical-partner oracle is reused here, not copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ruleset"))


#: Processes-mode runs bind the fixed ports of configs/ (56xxx): the ``processes_lock`` fixture
#: holds this lock for each such run, so no two of them on one machine overlap.
LOCK = "/tmp/qnode-processes.lock"


def _lock_held_by_an_ancestor(f) -> bool:
    """True when a process this one descends from holds the lock already (the whole run wrapped
    in ``flock /tmp/qnode-processes.lock pytest ...``): taking it again through another open
    file would wait for ever on our own parent."""
    inode = os.fstat(f.fileno()).st_ino
    holders = set()
    with open("/proc/locks") as locks:
        for line in locks:
            parts = line.split()       # "1: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> ..."
            if len(parts) >= 6 and parts[1] == "FLOCK" and int(parts[5].rsplit(":", 1)[1]) == inode:
                holders.add(int(parts[4]))
    pid = os.getpid()
    while pid > 1:
        if pid in holders:
            return True
        with open(f"/proc/{pid}/stat") as stat:
            pid = int(stat.read().rsplit(")", 1)[1].split()[1])
    return False


@pytest.fixture
def processes_lock():
    """Hold /tmp/qnode-processes.lock for one processes-mode run (fixed ports from configs/)."""
    with open(LOCK, "a") as f:
        if _lock_held_by_an_ancestor(f):
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
