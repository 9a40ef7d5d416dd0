"""Entanglement distribution from an EPPS station to photonic MEAS nodes.

Two services talk over the nodes' control links:

* :class:`EppsService` on the EPPS station owns the pair source. ``epps.request`` from either end
  (connection id, the two ends, optional duration) turns the pump on; ``epps.release`` (or the
  duration running out) turns it off once no request is left. Both ends hear ``epps.state``.
* :class:`PhotonicEnd` on a MEAS node owns its analyser switch and time tagger. The application's
  :meth:`~.socket.QuantumSocket.request` goes out as ``epps.request``; :meth:`PhotonicEnd.select`
  routes the photons to one analyser (switch output), :meth:`PhotonicEnd.read` turns the tagger's
  clicks on that analyser's two detectors into a :class:`~.events.DetectionBatch` for every active
  connection's socket.

Which analyser sits on which switch output, with which two tagger channels, is
:class:`AnalyserPort`; the basis is a label (an angle in degrees, or ``circular``) the
application uses to pair up settings.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from drivers.optical_switch import OpticalSwitch
from drivers.pair_source import PhotonPairSource
from drivers.time_tagger import TagBatch, TimeTagger

from ..addresses import NodeAddress
from ..connection.qos import QoS
from ..errors import ConfigError, ProtocolError
from ..logs import event
from ..units import MS
from .events import ConnectionEvent, DetectionBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AnalyserPort:
    """A polarisation analyser behind switch output ``port``: outcome 0 on ``channels[0]``,
    outcome 1 on ``channels[1]``."""

    port: int
    basis: str
    channels: tuple[int, int]


class PhotonicEnd:
    """The measurement side of a photonic MEAS node (see the module docstring)."""

    def __init__(self, api, switch: OpticalSwitch, tagger: TimeTagger, ports: list[AnalyserPort], *,
                 switch_input: int = 1,
                 on_tags: Callable[[TagBatch], None] | None = None) -> None:
        if not ports:
            raise ConfigError(f"{api.address}: a photonic MEAS node needs at least one analyser",
                              field="analysers")
        self.api = api
        self.node = api.node
        self.switch = switch
        self.tagger = tagger
        self.ports = {p.port: p for p in ports}
        self.switch_input = switch_input
        self.on_tags = on_tags
        self.active: dict[str, NodeAddress] = {}     # connection -> partner
        self.current: AnalyserPort | None = None
        self._since_ps = 0
        self._ids = itertools.count(1)
        api.photonic = self
        channels = sorted({c for p in ports for c in p.channels})
        tagger.start_stream(channels)
        self.node.control.add_handler("epps.state", self._on_state)

    def station_towards(self, remote: NodeAddress) -> NodeAddress:
        link = self.node.config.link_to(remote)
        if link is None or link.station is None:
            raise ConfigError(f"{self.node.address} has no EPPS link to {remote}",
                              field=f"{self.node.address}.links", expected="a midpoint_source link")
        return link.station

    # -- requests (from the socket) ---------------------------------------------------------------
    def request(self, remote: NodeAddress, qos: QoS) -> str:
        conn = f"{self.node.address}-{self.api.loop.now_ps()}-{next(self._ids)}"
        self.node.control.send(self.station_towards(remote), "epps.request",
                               {"conn": conn, "ends": [self.node.address, remote],
                                "duration_ps": qos.duration_ps})
        return conn

    def release(self, conn: str) -> None:
        partner = self.active.get(conn)
        if partner is not None:
            self.node.control.send(self.station_towards(partner), "epps.release", {"conn": conn})

    def _on_state(self, peer: NodeAddress, _t: str, body: dict) -> None:
        try:
            conn, on, ends = str(body["conn"]), bool(body["on"]), list(body["ends"])
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed epps.state: {exc!r}", peer=peer, msg_type="epps.state") from None
        partner = next(e for e in ends if e != self.node.address)
        if on:
            self.active[conn] = partner
        else:
            self.active.pop(conn, None)
        self.api.connection_event(conn, partner, ConnectionEvent(
            conn, on, None if on else "released", str(body.get("detail", "")), peer,
            self.api.loop.now_ps()))

    # -- measuring --------------------------------------------------------------------------------
    def select(self, port: int) -> None:
        """Route the photons to the analyser on switch output ``port`` (tags read so far belong
        to the previous analyser)."""
        if port not in self.ports:
            raise ConfigError(f"{self.node.address}: no analyser on switch output {port}",
                              field="analysers", expected=f"one of {sorted(self.ports)}")
        self.read()
        self.switch.connect(self.switch_input, port)
        self.current = self.ports[port]

    def read(self) -> DetectionBatch | None:
        """Read the tagger; hand the selected analyser's detections to every active connection."""
        now = self.api.loop.now_ps()
        batch = self.tagger.read_stream()
        start, self._since_ps = self._since_ps, now
        if self.on_tags is not None:
            self.on_tags(batch)
        if self.current is None:
            return None
        p = self.current
        mask = (batch.channels == p.channels[0]) | (batch.channels == p.channels[1])
        det = DetectionBatch(self.node.address, p.port, p.basis,
                             (batch.channels[mask] == p.channels[1]).astype(np.int8),
                             batch.timestamps_ps[mask], start, now)
        for conn, partner in list(self.active.items()):
            self.api.deliver_detections(conn, partner, det)
        return det


class EppsService:
    """The EPPS station's side: pump on while any distribution request is active.

    A request is answered once the crystal has reached its setpoint (within
    ``settle_tolerance_c``; checked every ``settle_poll_ps``), so the ends never count pairs from
    a crystal still warming up to its phase-matching temperature.
    """

    def __init__(self, node, source: PhotonPairSource, *, pump_current_ma: float,
                 settle_tolerance_c: float = 0.05, settle_poll_ps: int = 10 * MS) -> None:
        self.node = node
        self.loop = node.loop
        self.source = source
        self.pump_current_ma = float(pump_current_ma)
        self.settle_tolerance_c = settle_tolerance_c
        self.settle_poll_ps = settle_poll_ps
        self.active: dict[str, list[NodeAddress]] = {}
        self.requests = 0
        node.control.add_handler("epps.request", self._on_request)
        node.control.add_handler("epps.release", self._on_release)

    def settled(self) -> bool:
        return abs(self.source.crystal_temperature_c()
                   - self.source.crystal_temperature_setpoint_c()) <= self.settle_tolerance_c

    def _on_request(self, peer: NodeAddress, _t: str, body: dict) -> None:
        try:
            conn, ends = str(body["conn"]), [str(e) for e in body["ends"]]
            duration = body.get("duration_ps")
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"malformed epps.request: {exc!r}", peer=peer, msg_type="epps.request") from None
        if peer not in ends or len(ends) != 2:
            raise ProtocolError(f"epps.request {conn} names ends {ends}, not the sender and a partner",
                                peer=peer, msg_type="epps.request")
        self.requests += 1
        self._start(conn, ends, duration)

    def _start(self, conn: str, ends: list[NodeAddress], duration: int | None) -> None:
        if not self.settled():
            self.loop.call_later(self.settle_poll_ps, self._start, conn, ends, duration)
            return
        if not self.active:
            self.source.set_pump_current_ma(self.pump_current_ma)
            self.source.pump_on()
        self.active[conn] = ends
        event(log, logging.INFO, "epps.pump", node=self.node.address, conn=conn, on=True)
        for end in ends:
            self.node.control.send(end, "epps.state", {"conn": conn, "on": True, "ends": ends})
        if duration is not None:
            self.loop.call_later(int(duration), self._end, conn, "duration over")

    def _on_release(self, peer: NodeAddress, _t: str, body: dict) -> None:
        conn = str(body.get("conn"))
        ends = self.active.get(conn)
        if ends is None:
            return
        if peer not in ends:
            raise ProtocolError(f"{peer} released {conn}, which it is not an end of",
                                peer=peer, msg_type="epps.release")
        self._end(conn, f"released by {peer}")

    def _end(self, conn: str, detail: str) -> None:
        ends = self.active.pop(conn, None)
        if ends is None:
            return
        if not self.active:
            self.source.pump_off()
        event(log, logging.INFO, "epps.pump", node=self.node.address, conn=conn, on=False)
        for end in ends:
            self.node.control.send(end, "epps.state", {"conn": conn, "on": False, "ends": ends,
                                                       "detail": detail})
