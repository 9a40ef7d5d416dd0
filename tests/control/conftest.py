from __future__ import annotations

import zmq
import pytest

from qnode_fw.clock import WallClock
from qnode_fw.loop import EventLoop
from qnode_fw.units import MS


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    # destroy, not term: a failed test may leave sockets open, and term() would wait for them
    # forever and hang the whole run.
    c.destroy(linger=0)


@pytest.fixture
def wall_loop():
    loop = EventLoop(WallClock())
    yield loop
    loop.close()
