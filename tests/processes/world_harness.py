"""A World server on a thread of the test process, and node-side RemoteWorlds talking to it over
real ZeroMQ sockets on loopback (each node's socket used from one thread only, as in a node
process)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import zmq

from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from sim_backend.remote import RemoteWorld, TestbedClock
from sim_backend.remote.timebase import epoch_now_ns
from sim_backend.world import World
from sim_backend.world_server import RequestClock, ServerSettings, WorldServer, warm_up

warm_up()     # numba kernels loaded before any test's clock starts, as the server process does


class ServerThread:
    """``with ServerThread(build) as srv``: a WorldServer whose World ``build(world)`` filled."""

    def __init__(self, build: Callable[[World], None] = lambda w: None, *, seed: int = 1,
                 settings: ServerSettings = ServerSettings(), curve: tuple[bytes, bytes] | None = None,
                 context: zmq.Context | None = None) -> None:
        self.context = context or zmq.Context()
        self._own_context = context is None
        self.clock = RequestClock(TestbedClock(epoch_now_ns()))
        self.loop = EventLoop(self.clock.wall)
        self.world = World(self.clock, RandomStreams(seed), None)
        build(self.world)
        self.server = WorldServer(self.world, self.clock, self.loop, bind="tcp://127.0.0.1:0",
                                  seed=seed, testbed="test", context=self.context, curve=curve,
                                  settings=settings)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.server.close()
        self.loop.close()
        if self._own_context:
            self.context.term()


@dataclass
class NodeSide:
    """One node's RemoteWorld and the wall-clock loop it is attached to."""

    name: str
    world: RemoteWorld
    loop: EventLoop

    def close(self) -> None:
        self.world.close()
        self.loop.close()


def node(endpoint: str, name: str, context: zmq.Context, **connect) -> NodeSide:
    world = RemoteWorld.connect(endpoint, name, context=context, **connect)
    loop = EventLoop(world.wall_clock)
    world.attach(loop)
    return NodeSide(name, world, loop)


class RunningLoops:
    """Each node loop on its own thread (as in its own process), running until :meth:`stop`,
    after ``start_delay_s`` (a node that is late to answer)."""

    def __init__(self, sides: Iterable[NodeSide], start_delay_s: float = 0.0) -> None:
        self._stop = threading.Event()
        self._delay = start_delay_s
        self.threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in sides]
        for t in self.threads:
            t.start()

    def _run(self, side: NodeSide) -> None:
        if self._delay:
            self._stop.wait(self._delay)
        while not self._stop.is_set():
            side.loop.run_until(side.loop.now_ps() + 5_000_000_000)

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        for t in self.threads:
            t.join(timeout_s)
            assert not t.is_alive(), "a node loop did not stop"
