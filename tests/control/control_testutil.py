"""Helpers shared by the control-plane tests."""

from __future__ import annotations

from qnode_fw.loop import EventLoop
from qnode_fw.units import MS


def run_for(loop: EventLoop, ms: float, until=None) -> None:
    """Run a wall-clock loop for up to ``ms`` milliseconds, or until ``until()`` is true."""
    end = loop.now_ps() + int(ms * MS)
    while loop.now_ps() < end:
        loop.run_until(min(end, loop.now_ps() + 5 * MS))
        if until is not None and until():
            return
