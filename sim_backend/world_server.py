"""The World server: one process owning a testbed's simulated World, on the wall clock, for nodes
that each run in their own process (``qnode testbed --processes``, or ``qnode run --world``).

Physics spans nodes: the photons of a memory link's two ends meet at the BSA's tagger, and the two
halves of a Bell pair live in one density matrix. So the World (quantum registry, memory and SPDC
links, tag streams, switches, sources) stays in one place, and each node's simulated instruments
are proxies of instruments that live here (:mod:`sim_backend.remote`). The protocol is in
:mod:`sim_backend.remote.protocol`: a ROUTER here, a DEALER per node, CurveZMQ with the testbed's
keys when it has them (the server's own keypair is ``<keys_dir>/world.key_secret``; the ZAP
handler admits only the testbed's node keys and names the node each belongs to).

**Time.** Every request carries the time the node's hardware did it (testbed time, ps since the
server's epoch) and the node's *horizon*, its promise that nothing it sends later happens earlier.
Most requests run at once, at their own time (a qubit's noise is applied up to it). A request
that lets the World's time pass a point (a tagger read, a switch or pump change: everything that
generates physics up to "now") waits until every other node's horizon has reached its time, so a
photon emitted before the read, still on its way over ZeroMQ, is in the read - conservative
parallel discrete-event simulation, with the server asking lagging nodes for their horizon. A node
that does not answer within ``horizon_timeout_s`` is passed over (counted in ``horizon_timeouts``)
and, silent for ``client_timeout_s``, left out of the horizon until it speaks again (``stale``): a
killed node cannot stop the others' physics, and one that was only busy (a first numba compile)
comes back by itself. A hello from a new process of a node the server already knew (a crash and
restart: another pid) forgets the old process's connection and re-initialises that node's QNIC
qubits (``restarts`` in the counters); its instruments stay and are handed to the new process.

Run: ``python -m sim_backend.world_server TESTBED.yaml --bind tcp://127.0.0.1:0``. It prints one
JSON line when ready (endpoint, epoch, pid) and one with its counters when it stops (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import zmq

from drivers.qnic import Gate
from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.clock import Clock
from qnode_fw.errors import ConfigError, ProtocolError, QnodeError
from qnode_fw.logs import event
from qnode_fw.loop import EventLoop, TimerHandle
from qnode_fw.rng import RandomStreams

from .quantum.registry import QubitKey
from .remote.protocol import (METHODS, REMOTE_KINDS, WORLD_HANDLE, Message, Mode, MsgType, decode,
                              encode_error)
from .remote.timebase import TestbedClock, epoch_now_ns
from .world import World

log = logging.getLogger(__name__)

#: ZAP domain of the World server's CURVE socket.
ZAP_DOMAIN = "world"
#: File stem of the World server's keypair in the testbed's keys_dir.
KEY_NAME = "world"


@dataclass(frozen=True)
class ServerSettings:
    #: How often waiting requests are looked at for timeouts and silent nodes (progress itself
    #: comes with the nodes' answers). Coarse on purpose: the event loop polls with millisecond
    #: resolution and spins through the last millisecond before a timer.
    query_interval_s: float = 0.05
    #: A waiting request runs anyway after this long: a node whose loop is held up longer (a
    #: starved CPU) loses exactness rather than stall every station, whose loop - and control
    #: link heartbeats - wait with the read.
    horizon_timeout_s: float = 0.5
    client_timeout_s: float = 3.0       # a node silent this long while asked is left out


class RequestClock(Clock):
    """The World's clock: the time of the request being served (testbed time otherwise)."""

    def __init__(self, wall: Clock) -> None:
        self.wall = wall
        self.request_ps: int | None = None

    @property
    def is_virtual(self) -> bool:
        return False

    def now_ps(self) -> int:
        return self.request_ps if self.request_ps is not None else self.wall.now_ps()


@dataclass
class ServerStats:
    clients: int = 0
    requests: int = 0
    casts: int = 0
    errors: int = 0
    refused: int = 0
    horizon_waits: int = 0
    horizon_wait_ns: int = 0
    horizon_timeouts: int = 0
    queries: int = 0
    stale_clients: list[str] = field(default_factory=list)   # left out of the horizon, in order
    restarts: list[str] = field(default_factory=list)        # nodes whose process started again


@dataclass
class _Client:
    rid: bytes
    node: str
    h: int
    last_heard_ns: int
    queue: deque = field(default_factory=deque)
    handles: dict[int, tuple[str, Any]] = field(default_factory=dict)
    queried_until: int = -1
    waiting_since_ns: int | None = None
    forced: bool = False
    stale: bool = False                 # silent when asked: not waited for until it speaks
    #: Its event loop runs (it can answer queries). Before that nothing it sends is triggered by
    #: hardware timers, so it stamps wall time and cannot hold the World back.
    live: bool = False


class WorldServer:
    """Serve ``world`` to node processes over ZeroMQ (see the module docstring)."""

    def __init__(self, world: World, clock: RequestClock, loop: EventLoop, *, bind: str,
                 seed: int, testbed: str, context: zmq.Context | None = None,
                 curve: tuple[bytes, bytes] | None = None, settings: ServerSettings = ServerSettings(),
                 marker_wires: list[tuple[str, int, int]] | None = None) -> None:
        self.world = world
        self.clock = clock
        self.loop = loop
        self.epoch_ns = clock.wall.epoch_ns     # type: ignore[attr-defined]
        self.seed = seed
        self.testbed = testbed
        self.settings = settings
        self.context = context or zmq.Context.instance()
        self.curve = curve
        self.stats = ServerStats()
        self.clients: dict[bytes, _Client] = {}
        self.instruments: dict[str, tuple[str, Any]] = {}
        self._pids: dict[str, Any] = {}        # node -> pid of its process's hello
        self.marker_wires = sorted(marker_wires if marker_wires is not None else world.marker_wires)
        self._handles = iter(range(1, 1 << 62))
        self._tick_timer: TimerHandle | None = None
        sock = self.context.socket(zmq.ROUTER)
        sock.linger = 0
        sock.router_mandatory = True
        if curve is not None:
            sock.curve_server = True
            sock.curve_publickey, sock.curve_secretkey = curve
            sock.zap_domain = ZAP_DOMAIN.encode()
        sock.bind(bind)
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.socket = sock
        loop.add_reader(sock, self._drain)

    # -- receiving --------------------------------------------------------------------------------
    def _drain(self) -> None:
        while not self.socket.closed:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            rid = frames[0].bytes
            user = frames[-1].get("User-Id") if self.curve is not None else None
            known = self.clients.get(rid)
            peer = known.node if known else (user or rid.decode(errors="replace"))
            try:
                msg = decode([f.bytes for f in frames[1:]], peer)
            except ProtocolError as exc:
                self.stats.refused += 1
                event(log, logging.WARNING, "world.refused", peer=peer, error=str(exc))
                self._reply(rid, Message(MsgType.ERROR, 0, 0, 0, encode_error(exc)))
                continue
            self._on_message(rid, user, msg)
        self._pump_all()

    def _on_message(self, rid: bytes, user: str | None, msg: Message) -> None:
        now_ns = self.clock.wall.now_ps() // 1000
        if msg.type is MsgType.HELLO:
            self._hello(rid, user, msg, now_ns)
            return
        client = self.clients.get(rid)
        if client is None:
            self.stats.refused += 1
            self._reply(rid, Message(MsgType.ERROR, msg.id, 0, 0, encode_error(ProtocolError(
                "say hello first", peer=user or rid.decode(errors="replace"), msg_type=msg.type.value))))
            return
        client.h = max(client.h, msg.h)
        client.last_heard_ns = now_ns
        client.stale = False
        if msg.type is MsgType.BYE:
            self.clients.pop(client.rid, None)
            event(log, logging.INFO, "world.bye", node=client.node)
        elif msg.type in (MsgType.OPEN, MsgType.CALL, MsgType.CAST, MsgType.CLOSE):
            client.queue.append(msg)
        elif msg.type is MsgType.HORIZON:
            if msg.body.get("live"):
                client.live = True
        else:
            self._error(client, msg, ProtocolError(f"a node does not send {msg.type.value}",
                                                   peer=client.node, msg_type=msg.type.value))

    def _hello(self, rid: bytes, user: str | None, msg: Message, now_ns: int) -> None:
        node = msg.body.get("node")
        claimed = user if self.curve is not None else rid.decode(errors="replace").split("#")[0]
        if not isinstance(node, str) or node != claimed:
            self.stats.refused += 1
            exc = ProtocolError(f"hello names node {node!r} but the connection belongs to "
                                f"{claimed!r}", peer=claimed, msg_type="hello")
            self._reply(rid, Message(MsgType.ERROR, msg.id, 0, 0, encode_error(exc)))
            return
        pid = msg.body.get("pid")
        if node in self._pids and self._pids[node] != pid:
            self._restarted(node)
        self._pids[node] = pid
        self.clients[rid] = _Client(rid, node, msg.h, now_ns)
        self.stats.clients += 1
        event(log, logging.INFO, "world.hello", node=node, pid=msg.body.get("pid"))
        self._reply(rid, Message(MsgType.WELCOME, msg.id, 0, 0, {
            "epoch_ns": self.epoch_ns, "seed": self.seed, "testbed": self.testbed,
            "marker_wires": [list(w) for w in self.marker_wires]}))

    def _restarted(self, node: str) -> None:
        """A new process of ``node`` said hello: the old one died (a crash and restart). Its
        connection is forgotten (nothing it queued runs, the horizon no longer waits for it) and
        its quantum memory is re-initialised, as a rebooted node PC finds its QNIC: the
        instruments themselves live on here and are handed to the new process when it opens
        them."""
        for old in [c for c in self.clients.values() if c.node == node]:
            self.clients.pop(old.rid, None)
        for name, (kind, instrument) in self.instruments.items():
            if kind == "qnic" and name.startswith(node + "/"):
                for index in range(instrument.num_qubits):
                    instrument.init(index)
        self.stats.restarts.append(node)
        event(log, logging.WARNING, "world.node-restarted", node=node)

    # -- the horizon --------------------------------------------------------------------------------
    def _needs_horizon(self, client: _Client, msg: Message) -> bool:
        if msg.type is not MsgType.CALL:
            return False
        kind = self._kind_of(client, msg.body.get("handle"))
        return METHODS.get(kind or "", {}).get(str(msg.body.get("method"))) is Mode.HORIZON

    @staticmethod
    def _horizon_of(client: _Client) -> int:
        """What the World may rely on: a request still queued (its photons not yet in the World)
        holds the node's horizon at the one it was sent with, whatever arrived after it."""
        return client.queue[0].h if client.queue else client.h

    def _lagging(self, until_ps: int, requester: _Client) -> list[_Client]:
        return [c for c in self.clients.values()
                if c is not requester and c.live and not c.stale and self._horizon_of(c) < until_ps]

    def _pump_all(self) -> None:
        # Running one node's requests can release another's waiting read: go round until quiet.
        while any([self._pump(client) for client in list(self.clients.values())]):
            pass

    def _pump(self, client: _Client) -> bool:
        """Run what can run of ``client``'s queue; True if anything ran."""
        ran = False
        while client.queue and client.rid in self.clients:
            msg = client.queue[0]
            if self._needs_horizon(client, msg) and not client.forced:
                lagging = self._lagging(msg.ts, client)
                if lagging:
                    self._wait(client, msg, lagging)
                    return ran
            if client.waiting_since_ns is not None:
                self.stats.horizon_wait_ns += self.clock.wall.now_ps() // 1000 - client.waiting_since_ns
                client.waiting_since_ns = None
            client.forced = False
            client.queue.popleft()
            self._execute(client, msg)
            ran = True
        return ran

    def _wait(self, client: _Client, msg: Message, lagging: list[_Client]) -> None:
        if client.waiting_since_ns is None:
            client.waiting_since_ns = self.clock.wall.now_ps() // 1000
            self.stats.horizon_waits += 1
        for other in lagging:
            if other.queried_until < msg.ts:
                other.queried_until = msg.ts
                self.stats.queries += 1
                self._reply(other.rid, Message(MsgType.QUERY, 0, 0, 0, {"until": msg.ts}))
        if self._tick_timer is None:
            self._tick_timer = self.loop.call_later(int(self.settings.query_interval_s * 1e12), self._tick)

    def _tick(self) -> None:
        """Run requests that waited too long; drop nodes that stay silent when asked."""
        self._tick_timer = None
        now_ns = self.clock.wall.now_ps() // 1000
        waiting = [c for c in self.clients.values() if c.waiting_since_ns is not None and c.queue]
        for client in waiting:
            msg = client.queue[0]
            lagging = self._lagging(msg.ts, client)
            # A node asked once answers once its horizon passes (ZeroMQ does not lose the
            # question); one that stays silent is gone.
            for other in lagging:
                if now_ns - other.last_heard_ns > self.settings.client_timeout_s * 1e9:
                    other.stale = True
                    self.stats.stale_clients.append(other.node)
                    event(log, logging.WARNING, "world.node-stale", node=other.node,
                          silent_s=round((now_ns - other.last_heard_ns) / 1e9, 2))
            if now_ns - client.waiting_since_ns > self.settings.horizon_timeout_s * 1e9:
                client.forced = True
                self.stats.horizon_timeouts += 1
                event(log, logging.WARNING, "world.horizon-timeout", node=client.node,
                      until_ps=msg.ts, lagging=",".join(c.node for c in self._lagging(msg.ts, client)))
        self._pump_all()
        if any(c.waiting_since_ns is not None for c in self.clients.values()) and self._tick_timer is None:
            self._tick_timer = self.loop.call_later(int(self.settings.query_interval_s * 1e12), self._tick)

    # -- running requests ---------------------------------------------------------------------------
    def _kind_of(self, client: _Client, handle: Any) -> str | None:
        if handle == WORLD_HANDLE:
            return "world"
        entry = client.handles.get(handle) if isinstance(handle, int) else None
        return entry[0] if entry else None

    def _execute(self, client: _Client, msg: Message) -> None:
        self.clock.request_ps = msg.ts
        try:
            if msg.type is MsgType.OPEN:
                handle, info = self._open(client, msg.body.get("spec"))
                self._reply(client.rid, Message(MsgType.OPENED, msg.id, 0, 0,
                                                 {"handle": handle, "info": info}))
            elif msg.type is MsgType.CLOSE:
                client.handles.pop(msg.body.get("handle"), None)
            else:
                value = self._invoke(client, msg)
                if msg.type is MsgType.CALL:
                    self._reply(client.rid, Message(MsgType.RESULT, msg.id, 0, 0, {"value": value}))
        except QnodeError as exc:
            self._error(client, msg, exc)
        except Exception as exc:   # a bug in the simulation: tell the node, keep serving the others
            log.exception("world request failed: %s", msg.body)
            self._error(client, msg, exc)
        finally:
            self.clock.request_ps = None

    def _invoke(self, client: _Client, msg: Message) -> Any:
        handle, method = msg.body.get("handle"), str(msg.body.get("method"))
        args = msg.body.get("args", [])
        kind = self._kind_of(client, handle)
        what = f"{kind or 'handle ' + str(handle)}.{method}"
        if kind is None:
            raise ProtocolError(f"no instrument with handle {handle!r} is open for this node",
                                peer=client.node, msg_type=what)
        mode = METHODS[kind].get(method)
        if mode is None or (mode is Mode.CAST) != (msg.type is MsgType.CAST) or not isinstance(args, list):
            raise ProtocolError(f"{method!r} is not a {msg.type.value} of a {kind}",
                                peer=client.node, msg_type=what)
        if msg.type is MsgType.CAST:
            self.stats.casts += 1
        else:
            self.stats.requests += 1
        if kind == "world":
            return self._world_method(method, args)
        return getattr(client.handles[handle][1], method)(*args)

    def _world_method(self, method: str, args: list) -> Any:
        reg = self.world.registry
        if method == "markers":
            awg, channel, marker, times = args
            self.world.marker_edges(str(awg), int(channel), int(marker), times)
            return None
        if method == "bell_fidelity":
            a, b, state = args
            return reg.bell_fidelity(QubitKey(*a), QubitKey(*b), state)
        if method == "density_matrix":
            return reg.density_matrix([QubitKey(*k) for k in args[0]])
        if method == "partners":
            key = QubitKey(*args[0])
            return [list(k) for k in reg.group_of(key).keys if k != key]
        return self.snapshot()

    def _open(self, client: _Client, spec: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(spec, dict):
            raise ProtocolError("open needs a spec object", peer=client.node, msg_type="open")
        name, kind, model = str(spec.get("name")), str(spec.get("kind")), str(spec.get("model"))
        if kind not in REMOTE_KINDS or model != "sim":
            raise ProtocolError(f"the World serves simulated {', '.join(REMOTE_KINDS)} only, not "
                                f"{model} {kind}", peer=client.node, msg_type=f"open {name}")
        # A node opens only its own instruments: names are qualified with the node address.
        if not name.startswith(client.node + "/"):
            raise ProtocolError(f"instrument {name!r} does not belong to node {client.node}",
                                peer=client.node, msg_type=f"open {name}")
        existing = self.instruments.get(name)
        if existing is not None and existing[0] == kind:
            instrument = existing[1]        # the node restarted: its instrument kept running
        else:
            limits = {k: tuple(v) for k, v in dict(spec.get("limits") or {}).items()}
            inst_spec = InstrumentSpec(name, kind, model, str(spec.get("resource", "sim")), limits,
                                       dict(spec.get("options") or {}))
            context = DriverContext(clock=self.clock, loop=None, streams=self.world.streams,
                                    world=self.world)
            instrument = open_instrument(inst_spec, context)
            self.instruments[name] = (kind, instrument)
        handle = next(self._handles)
        client.handles[handle] = (kind, instrument)
        event(log, logging.INFO, "world.opened", node=client.node, instrument=name, kind=kind)
        return handle, _info(kind, instrument)

    # -- replies ------------------------------------------------------------------------------------
    def _reply(self, rid: bytes, msg: Message) -> None:
        try:
            self.socket.send_multipart([rid, *msg.frames()], zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as exc:   # the node is gone (unroutable) or not reading
            event(log, logging.WARNING, "world.reply-lost", error=str(exc), type=msg.type.value)

    def _error(self, client: _Client, msg: Message, exc: BaseException) -> None:
        self.stats.errors += 1
        body = encode_error(exc)
        if msg.type is MsgType.CAST:
            body["cast"] = f"{self._kind_of(client, msg.body.get('handle'))}.{msg.body.get('method')}"
        self._reply(client.rid, Message(MsgType.ERROR, msg.id, 0, 0, body))

    # -- counters -----------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Server counters and what the World did (attempts per memory link, lost emissions)."""
        out = asdict(self.stats)
        out["nodes"] = sorted(c.node for c in self.clients.values() if not c.stale)
        out["curve"] = self.curve is not None
        out["memory_links"] = {n: {"attempts": l.attempts, "joint_attempts": l.joint_attempts,
                                   "interfered": l.interfered, "outcomes": dict(l.outcomes)}
                               for n, l in self.world.memory_links.items()}
        out["lost_emissions"] = len(self.world.lost_emissions)
        out["events"] = self.loop.events_processed
        return out

    def close(self) -> None:
        if self._tick_timer is not None:
            self._tick_timer.cancel()
        self.loop.remove_reader(self.socket)
        self.socket.close(0)


def _info(kind: str, instrument: Any) -> dict[str, Any]:
    """What a proxy answers locally: everything about the instrument that never changes."""
    info: dict[str, Any] = {"resource": instrument.resource, "identify": instrument.identify()}
    if kind == "qnic":
        ops = ["init", "measure", "emit", "absorb", "move", *Gate.__members__,
               *instrument.params.durations_ps]
        durations = {}
        for op in ops:
            try:
                durations[op] = instrument.duration_ps(op)
            except QnodeError:
                continue
        info.update(node=instrument.node, qnic_address=instrument.qnic_address,
                    num_qubits=instrument.num_qubits, durations_ps=durations,
                    communication=sorted(i for i in range(instrument.num_qubits)
                                         if instrument.role(i).value == "communication"))
    elif kind == "time_tagger":
        info["channels"] = list(instrument.channels)
    elif kind == "optical_switch":
        info.update(num_inputs=instrument.num_inputs, num_outputs=instrument.num_outputs)
    return info


# -- the process ------------------------------------------------------------------------------------
def warm_up() -> None:
    """Run one memory-link attempt and one tagger read on a scratch World, so numba loads its
    compiled kernels now and not during the first read a node waits for (about a second)."""
    from qnode_fw.clock import VirtualClock

    from .memory_link import LinkEnd, MemoryLink
    from .physics.fibre import Fibre
    from .qnic import SimQNIC

    clock = VirtualClock()
    world = World(clock, RandomStreams(0), None)
    world.add_tagger("t")
    world.taggers["t"].enabled = {1, 2, 3, 4, 5}
    world.add_memory_link(MemoryLink("w", (LinkEnd("a", 0, Fibre(0.0), 1.0),
                                           LinkEnd("b", 0, Fibre(0.0), 1.0)), "t"))
    for end in ("a", "b"):
        qnic = SimQNIC(end, end, 0, 1, world.registry, clock, world.streams.get(end))
        world.add_qnic(qnic)
        qnic.emit(0, 0)
    clock.advance_to(1_000_000)
    world.advance()
    world.taggers["t"].read(clock.now_ps())


def build_world(testbed: Any, clock: Clock, seed: int, experiment: Any = None) -> World:
    """The testbed's World on the server's request clock; with a repeater-chain ``experiment``
    (a LoadedExperiment) the photonics of every memory link, planned as each node process plans
    its end of them (:mod:`qnode_fw.testbed.node_links`)."""
    world = World(clock, RandomStreams(seed), None)
    physics = getattr(experiment.params, "physics", None) if experiment is not None else None
    if physics is not None:
        from qnode_fw.testbed.node_links import build_world_links, plan_links

        build_world_links(world, plan_links(testbed.config, physics), physics)
    return world


def server_keys(testbed: Any) -> tuple[tuple[bytes, bytes] | None, dict[str, bytes] | None]:
    """(server keypair, node allowlist) from the testbed's keys_dir, or (None, None) without."""
    from qnode_fw.control import load_allowlist, load_identity

    if testbed.config.keys_dir is None:
        return None, None
    keys_dir = Path(testbed.resolve(testbed.config.keys_dir))
    secret = keys_dir / f"{KEY_NAME}.key_secret"
    if not secret.exists():
        raise ConfigError(f"the World server's keypair {secret} is missing",
                          file=testbed.document.file, field="keys_dir",
                          expected=f"{KEY_NAME}.key and {KEY_NAME}.key_secret in the keys "
                                   f"directory (qnode testbed --processes writes them)")
    identity = load_identity(secret)
    return (identity.public, identity.secret), load_allowlist(keys_dir, testbed.config.addresses)


def main(argv: list[str] | None = None) -> int:
    from qnode_fw.component import install_signal_handlers
    from qnode_fw.config import load_testbed
    from qnode_fw.control import NodeAuthenticator
    from qnode_fw.logs import configure_logging

    parser = argparse.ArgumentParser(prog="python -m sim_backend.world_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("testbed", metavar="TESTBED.yaml")
    parser.add_argument("--bind", default="tcp://127.0.0.1:0", help="ZeroMQ endpoint to bind")
    parser.add_argument("--seed", type=int, help="seed (default: the testbed's)")
    parser.add_argument("--experiment", metavar="EXP.yaml",
                        help="build the physics this experiment's nodes will use (memory links)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    testbed = load_testbed(args.testbed)
    experiment = None
    if args.experiment is not None:
        import qnode_fw.experiments  # noqa: F401  (registers the experiment kinds)
        from qnode_fw.config.experiment import load_experiment

        experiment = load_experiment(args.experiment)
    seed = testbed.config.seed if args.seed is None else args.seed
    curve, allowlist = server_keys(testbed)
    warm_up()
    clock = RequestClock(TestbedClock(epoch_now_ns()))
    loop = EventLoop(clock.wall)
    world = build_world(testbed, clock, seed, experiment)
    context = zmq.Context()
    auth = None
    if curve is not None:
        auth = NodeAuthenticator(context, allowlist or {}, domains=(ZAP_DOMAIN,))
        auth.start()
    server = WorldServer(world, clock, loop, bind=args.bind, seed=seed, testbed=testbed.config.name,
                         context=context, curve=curve)
    stop_reason: list[str] = []
    restore = install_signal_handlers(lambda reason: (stop_reason.append(reason),
                                                      loop.call_soon_threadsafe(loop.stop)))
    print(json.dumps({"world": "ready", "endpoint": server.endpoint, "epoch_ns": server.epoch_ns,
                      "pid": os.getpid(), "curve": curve is not None}), flush=True)
    try:
        loop.run_forever()
    finally:
        print(json.dumps({"world": "stopped", "reason": stop_reason[0] if stop_reason else "loop ended",
                          **server.snapshot()}), flush=True)
        server.close()
        if auth is not None:
            auth.stop()
        loop.close()
        context.term()
        restore()
    return 0


if __name__ == "__main__":
    sys.exit(main())
