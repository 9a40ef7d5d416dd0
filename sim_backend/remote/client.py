"""The node side of the World protocol: one DEALER socket to the World server.

:class:`WorldClient` sends requests and waits for their replies. While it waits for a reply it
still answers the server's horizon queries, so two nodes blocked on each other's time cannot
hang the World. Once attached to the node loop it answers queries and records failed casts from
the loop as well.

A request that gets no reply within ``timeout_s`` raises :class:`~qnode_fw.errors.ProtocolError`
naming the World endpoint and the request (``qnic.measure``): the node's simulated hardware is
gone, and the node must stop rather than compute with a World that no longer answers.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zmq

from qnode_fw.errors import ProtocolError
from qnode_fw.logs import event
from qnode_fw.loop import EventLoop

from .protocol import Message, MsgType, decode, decode_error

log = logging.getLogger(__name__)


@dataclass
class ClientStats:
    calls: int = 0
    casts: int = 0
    call_wait_ns: int = 0          # total time spent waiting for replies
    queries_answered: int = 0
    failed_casts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Welcome:
    epoch_ns: int
    seed: int
    testbed: str
    marker_wires: frozenset[tuple[str, int, int]]


class WorldClient:
    def __init__(self, endpoint: str, node: str, *, context: zmq.Context | None = None,
                 public_key: bytes | None = None, secret_key: bytes | None = None,
                 server_key: bytes | None = None, timeout_s: float = 10.0) -> None:
        self.endpoint = endpoint
        self.node = node
        self.context = context or zmq.Context.instance()
        self.timeout_s = float(timeout_s)
        self.stats = ClientStats()
        self.horizon: Callable[[], int] = lambda: 0
        self.now: Callable[[], int] = lambda: 0
        self._ids = itertools.count(1)
        self._loop: EventLoop | None = None
        self._query_timer = None
        sock = self.context.socket(zmq.DEALER)
        sock.linger = 0
        if server_key is None:
            # Without CURVE the server knows the node by its routing id (as the control link).
            sock.routing_id = f"{node}#{os.getpid()}".encode()
        else:
            sock.curve_serverkey = server_key
            sock.curve_publickey = public_key
            sock.curve_secretkey = secret_key
        sock.connect(endpoint)
        self.socket = sock

    # -- sending ----------------------------------------------------------------------------
    def _send(self, msg: Message) -> None:
        msg.h = self.horizon()
        self.socket.send_multipart(msg.frames(), copy=False)

    def hello(self) -> Welcome:
        reply = self.request(MsgType.HELLO, {"node": self.node, "pid": os.getpid()}, ts=0, what="hello")
        wires = frozenset((str(a), int(c), int(m)) for a, c, m in reply.body.get("marker_wires", []))
        return Welcome(int(reply.body["epoch_ns"]), int(reply.body["seed"]),
                       str(reply.body["testbed"]), wires)

    def request(self, kind: MsgType, body: dict[str, Any], *, ts: int, what: str) -> Message:
        """Send a request and wait for its reply (RESULT, OPENED or WELCOME)."""
        msg = Message(kind, next(self._ids), int(ts), 0, body)
        self._send(msg)
        self.stats.calls += 1
        t0 = time.monotonic_ns()
        deadline = t0 + int(self.timeout_s * 1e9)
        try:
            while True:
                remaining_ms = (deadline - time.monotonic_ns()) // 1_000_000
                if remaining_ms <= 0 or not self.socket.poll(remaining_ms, zmq.POLLIN):
                    raise ProtocolError(f"no reply from the World server within {self.timeout_s:g} s",
                                        peer=self.endpoint, msg_type=what)
                reply = self._receive_one(what)
                if reply is None or reply.id != msg.id:
                    continue
                if reply.type is MsgType.ERROR:
                    raise decode_error(reply.body, self.endpoint, what)
                return reply
        finally:
            self.stats.call_wait_ns += time.monotonic_ns() - t0

    def call(self, handle: int, method: str, args: list[Any], *, ts: int, what: str) -> Any:
        reply = self.request(MsgType.CALL, {"handle": handle, "method": method, "args": args},
                             ts=ts, what=what)
        return reply.body.get("value")

    def cast(self, handle: int, method: str, args: list[Any], *, ts: int) -> None:
        self._send(Message(MsgType.CAST, next(self._ids), int(ts), 0,
                           {"handle": handle, "method": method, "args": args}))
        self.stats.casts += 1

    def send_horizon(self, live: bool = False) -> None:
        self._send(Message(MsgType.HORIZON, 0, self.now(), 0, {"live": True} if live else {}))

    def bye(self) -> None:
        try:
            self._send(Message(MsgType.BYE, 0, self.now(), 0, {}))
        except zmq.ZMQError:
            pass

    # -- receiving --------------------------------------------------------------------------
    def _receive_one(self, what: str) -> Message | None:
        """Read one message; queries and cast failures are handled here, replies returned."""
        frames = self.socket.recv_multipart()
        msg = decode(frames, self.endpoint)
        if msg.type is MsgType.QUERY:
            self._on_query(int(msg.body.get("until", 0)))
            return None
        if msg.type is MsgType.ERROR and msg.id and msg.body.get("cast"):
            failure = str(decode_error(msg.body, self.endpoint, str(msg.body.get("cast"))))
            self.stats.failed_casts.append(failure)
            event(log, logging.ERROR, "world.cast-failed", node=self.node, error=failure)
            return None
        if msg.type not in (MsgType.RESULT, MsgType.ERROR, MsgType.OPENED, MsgType.WELCOME):
            raise ProtocolError(f"unexpected {msg.type.value} from the World server",
                                peer=self.endpoint, msg_type=msg.type.value)
        return msg

    def _on_query(self, until_ps: int) -> None:
        self.stats.queries_answered += 1
        if self.horizon() >= until_ps or self._loop is None:
            self.send_horizon()
            return
        # Our horizon is held back by hardware timers not yet run: answer once the loop has run
        # everything due before ``until_ps`` (timers run in time order on the node loop).
        if self._query_timer is not None:
            self._query_timer.cancel()
        self._query_timer = self._loop.call_at(until_ps, self._answer_late)

    def _answer_late(self) -> None:
        self._query_timer = None
        self.send_horizon()

    def attach(self, loop: EventLoop) -> None:
        """Serve queries and cast failures from ``loop`` (the node's loop)."""
        self._loop = loop
        loop.add_reader(self.socket, self._drain)
        # From the loop's first turn on this node answers queries: the World may wait for it.
        loop.call_soon(self.send_horizon, True)

    def _drain(self) -> None:
        while not self.socket.closed and self.socket.poll(0, zmq.POLLIN):
            msg = self._receive_one("world")
            if msg is not None:
                event(log, logging.WARNING, "world.stray-reply", node=self.node, id=msg.id)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.socket)
            self._loop = None
        if not self.socket.closed:
            self.bye()
            self.socket.close(linger=200)   # let the goodbye out; a dead server costs 0.2 s


__all__ = ["ClientStats", "Welcome", "WorldClient"]
