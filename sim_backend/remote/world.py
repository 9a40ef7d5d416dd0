"""The World as a node process sees it when the World lives in the World server.

A :class:`RemoteWorld` goes where a :class:`~sim_backend.world.World` goes: into the node's
:class:`~drivers.registry.DriverContext`. The driver registry asks it to open every ``model: sim``
instrument (:meth:`RemoteWorld.open_instrument`):

* QNICs, time taggers, optical switches and pair sources open in the server, and the node gets a
  proxy implementing the same driver interface (:mod:`.proxies`);
* a simulated AWG opens here, the unchanged :class:`~sim_backend.instruments.awg.SimAWG` on this
  RemoteWorld: its marker edges drive this node's listeners (the emission hardware) at exactly
  the edge times on the :class:`~.timebase.HardwareLoop`, and the edges cabled to a time tagger
  are cast to the server, which writes them into that tagger's stream.

Like the in-process World it has a ``clock`` (the hardware clock the instruments read), a
``loop`` (the hardware loop), ``marker_listeners`` and a read-only ``registry`` for the few
questions only the simulation can answer (a pair's true fidelity, for tests and oracles).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from drivers.instrument import Instrument
from drivers.registry import DriverContext, InstrumentSpec, driver_for
from qnode_fw.errors import ConfigError
from qnode_fw.logs import event
from qnode_fw.loop import EventLoop

from .client import Welcome, WorldClient
from .protocol import REMOTE_KINDS, WORLD_HANDLE, MsgType
from .proxies import PROXIES
from .timebase import HardwareClock, HardwareLoop, TestbedClock

log = logging.getLogger(__name__)


class RemoteRegistry:
    """Read-only questions to the World's quantum registry (qubits named ``(node, qnic, index)``)."""

    def __init__(self, world: "RemoteWorld") -> None:
        self._world = world

    def bell_fidelity(self, a, b, state="PHI_PLUS", at_ps: int | None = None) -> float:
        ts = self._world.clock.now_ps() if at_ps is None else int(at_ps)
        return float(self._world.client.call(WORLD_HANDLE, "bell_fidelity",
                                             [list(a), list(b), str(getattr(state, "value", state))],
                                             ts=ts, what="world.bell_fidelity"))

    def partners(self, key) -> list[tuple[str, int, int]]:
        """The qubits ``key`` currently shares its state with (empty when it is on its own)."""
        keys = self._world.client.call(WORLD_HANDLE, "partners", [list(key)],
                                       ts=self._world.clock.now_ps(), what="world.partners")
        return [(str(n), int(q), int(i)) for n, q, i in keys]

    def density_matrix(self, keys, at_ps: int | None = None) -> np.ndarray:
        ts = self._world.clock.now_ps() if at_ps is None else int(at_ps)
        return self._world.client.call(WORLD_HANDLE, "density_matrix", [[list(k) for k in keys]],
                                       ts=ts, what="world.density_matrix")


class RemoteWorld:
    """See the module docstring. Build it with :meth:`connect`, then :meth:`attach` a node loop."""

    def __init__(self, client: WorldClient, welcome: Welcome) -> None:
        self.client = client
        self.welcome = welcome
        self.wall_clock = TestbedClock(welcome.epoch_ns)
        self.clock = HardwareClock(self.wall_clock)
        self.loop: HardwareLoop | None = None
        self.marker_listeners: list = []
        self.registry = RemoteRegistry(self)
        self.instruments: dict[str, Instrument] = {}
        client.now = self.clock.now_ps
        client.horizon = self.wall_clock.now_ps

    @classmethod
    def connect(cls, endpoint: str, node: str, *, context: zmq.Context | None = None,
                public_key: bytes | None = None, secret_key: bytes | None = None,
                server_key: bytes | None = None, timeout_s: float = 10.0) -> "RemoteWorld":
        """Say hello to the World server at ``endpoint`` (blocks until it answers)."""
        client = WorldClient(endpoint, node, context=context, public_key=public_key,
                             secret_key=secret_key, server_key=server_key, timeout_s=timeout_s)
        try:
            welcome = client.hello()
        except BaseException:
            client.socket.close(0)
            raise
        event(log, logging.INFO, "world.connected", node=node, endpoint=endpoint,
              testbed=welcome.testbed, seed=welcome.seed)
        return cls(client, welcome)

    @classmethod
    def for_testbed_node(cls, endpoint: str, testbed: Any, address: str, *,
                         context: zmq.Context, identity: Any = None) -> "RemoteWorld":
        """Connect node ``address`` of ``testbed`` (a LoadedTestbed); with the testbed's keys the
        connection is CurveZMQ: the node's own keypair, the server's public key from
        ``<keys_dir>/world.key``."""
        if identity is None:
            return cls.connect(endpoint, address, context=context)
        from qnode_fw.control import load_public_key

        from ..world_server import KEY_NAME

        keys_dir = Path(testbed.resolve(testbed.config.keys_dir))
        server_key = load_public_key(keys_dir / f"{KEY_NAME}.key")
        return cls.connect(endpoint, address, context=context, public_key=identity.public,
                           secret_key=identity.secret, server_key=server_key)

    def attach(self, loop: EventLoop) -> None:
        """Run the hardware on ``loop`` (whose clock must be :attr:`wall_clock`)."""
        if loop.clock is not self.wall_clock:
            raise ValueError("the node loop must run on the RemoteWorld's testbed clock")
        self.loop = HardwareLoop(loop, self.clock)
        self.client.horizon = self.loop.horizon_ps
        self.client.attach(loop)

    @property
    def seed(self) -> int:
        return self.welcome.seed

    # -- instruments -------------------------------------------------------------------------
    def open_instrument(self, spec: InstrumentSpec, context: DriverContext) -> Instrument:
        """Open a ``model: sim`` instrument: in the server (a proxy here) or, for an AWG, here."""
        if spec.kind == "awg":
            return driver_for("awg", "sim").cls.from_config(spec, context)
        if spec.kind not in REMOTE_KINDS:
            raise ConfigError(f"the World server has no simulated {spec.kind}", field=spec.name,
                              expected="one of awg, " + ", ".join(REMOTE_KINDS))
        body = {"spec": {"name": spec.name, "kind": spec.kind, "model": spec.model,
                         "resource": spec.resource,
                         "limits": {k: list(v) for k, v in spec.limits.items()},
                         "options": dict(spec.options)}}
        reply = self.client.request(MsgType.OPEN, body, ts=self.clock.now_ps(),
                                    what=f"open {spec.kind} {spec.name}")
        proxy = PROXIES[spec.kind](spec.name, self, int(reply.body["handle"]), reply.body["info"])
        self.instruments[spec.name] = proxy
        return proxy

    # -- what the simulated AWG calls --------------------------------------------------------------
    def marker_edges(self, awg: str, channel: int, marker: int, times_ps: np.ndarray) -> None:
        times = np.asarray(times_ps, np.int64)
        if (awg, int(channel), int(marker)) in self.welcome.marker_wires:
            self.client.cast(WORLD_HANDLE, "markers", [awg, int(channel), int(marker), times],
                             ts=self.clock.now_ps())
        if self.loop is not None and self.marker_listeners:
            for t in times.tolist():
                for listener in list(self.marker_listeners):
                    self.loop.call_at(int(t), listener, awg, int(channel), int(marker), int(t))

    def advance(self, now_ps: int | None = None) -> None:
        """Physics is generated in the server, on demand: nothing to do here."""

    def stats(self) -> dict[str, Any]:
        """The server's counters (requests, horizon waits, link attempts)."""
        return self.client.call(WORLD_HANDLE, "stats", [], ts=self.clock.now_ps(), what="world.stats")

    def close(self) -> None:
        self.client.close()


__all__ = ["RemoteRegistry", "RemoteWorld"]
