"""SPDC entanglement distribution: an EPPS station's polarisation-entangled pair source feeds two
photonic MEAS nodes; each selects its analyser (measurement basis) with an optical switch and
time-tags its detectors.

The application at the first end opens a socket to the second and requests pairs for the run's
duration; the EPPS station turns its pump on (:class:`~qnode_fw.app.photonic.EppsService`). Both
ends then step through the same schedule of analyser settings: the four CHSH settings, then the
nine Pauli settings (Z = 0°, X = 45°, Y = circular at both ends) of two-qubit tomography. Each end
gets its detections as :class:`~qnode_fw.app.events.DetectionBatch` per setting; the analysis
pairs them up by timestamp:

* the coincidence peak's delay from the cross-correlation of the two ends' detections;
* coincidences in a window at that delay, accidentals in the same window one pump period
  away (pulsed source), and their ratio (CAR);
* CHSH S from the four correlators, S = 2√2·V for visibility V;
* the density matrix by linear inversion and its fidelity to the source's Bell state,
  (1 + 3V)/4 for a Werner-like source.

Simulated optics: the source's two photons travel half the link's fibre each to the ends; each
end's switch input 1 leads to one analyser per switch output, whose two detectors sit on tagger
channels 2p−1 and 2p for output p.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from ..app import AnalyserPort, DetectionBatch, EppsService, NodeApi, PhotonicEnd, QuantumSocket
from ..bell import BellState
from ..config.node import LinkScheme, Role
from ..errors import ConfigError
from ..units import MS, NS, S
from . import analysis as an
from .base import Experiment, Params, Results, RunContext, StatusRow, experiment_kind

Angle = float | Literal["circular"]
#: The analysers of the tomography settings.
TOMOGRAPHY_BASES: dict[str, Angle] = {"Z": 0.0, "X": 45.0, "Y": "circular"}


class DetectorParams(Params):
    """Single-photon detectors behind every analyser (simulated)."""

    efficiency: float = Field(0.8, ge=0, le=1)
    dark_count_rate_hz: float = Field(100.0, ge=0)
    dead_time_ns: float = Field(20.0, ge=0)
    jitter_fwhm_ps: float = Field(50.0, ge=0)


class EndParams(Params):
    node: str
    switch: str = "switch"
    tagger: str = "tagger"
    #: Analyser on each switch output (1, 2, ...): an angle in degrees or ``circular``.
    analysers: list[Angle] = Field(min_length=1)
    #: Loss between the fibre and the switch (connectors, filters), dB.
    extra_loss_db: float = Field(0.0, ge=0)


class ChshParams(Params):
    """The analyser angles of the two CHSH settings at each end (must be among the analysers)."""

    a: tuple[float, float] = (0.0, 45.0)
    b: tuple[float, float] = (22.5, 67.5)


class SpdcDistributionParams(Params):
    station: str
    source: str = "source"
    ends: tuple[EndParams, EndParams]
    pump_current_ma: float = Field(gt=0)
    #: Crystal setpoint; None keeps the station's calibration (its node file's calibration:).
    crystal_temperature_c: float | None = None
    detectors: DetectorParams = DetectorParams()
    coincidence_window_ps: int = Field(1000, gt=0)
    #: Range of the cross-correlation that finds the coincidence delay, ns either side.
    delay_search_ns: float = Field(20.0, gt=0)
    chsh: ChshParams | None = ChshParams()
    tomography: bool = True
    #: Share of the run's duration spent on the CHSH settings (the rest on tomography).
    chsh_fraction: float = Field(0.5, ge=0, le=1)


def _same(angle: Angle, other: Angle) -> bool:
    if isinstance(angle, str) or isinstance(other, str):
        return angle == other
    return math.isclose(float(angle), float(other), abs_tol=1e-9)


def _label(angle: Angle) -> str:
    return angle if isinstance(angle, str) else f"{float(angle):g}"


def _port_of(end: EndParams, angle: Angle, what: str) -> int:
    for i, a in enumerate(end.analysers):
        if _same(a, angle):
            return i + 1
    raise ConfigError(f"{what} needs an analyser at {_label(angle)} on {end.node}",
                      field=f"params.ends[{end.node}].analysers",
                      expected=f"{_label(angle)} among {[_label(a) for a in end.analysers]}")


def node_with_role(ctx: RunContext, address: str, role: Role):
    node = ctx.testbed.nodes.get(address)
    if node is None:
        raise ConfigError(f"node {address!r} is not in testbed {ctx.testbed.config.name}",
                          field="params", expected="one of " + ", ".join(ctx.testbed.nodes))
    if node.config.role is not role:
        raise ConfigError(f"node {address} has role {node.config.role.value}", field="params",
                          expected=f"a {role.value} node")
    return node


def build_spdc_link(ctx: RunContext, station_address: str, source: str,
                    ends: tuple[EndParams, EndParams], detectors: DetectorParams):
    """The simulated optics of an EPPS link from the testbed: the station's source, half the
    link's fibre to each end, each end's switch selecting its analysers (outputs 1, 2, ...), two
    detectors per analyser on tagger channels 2p-1, 2p. Returns (station node, World link)."""
    from sim_backend.physics.detector import DetectorParams as SimDetector
    from sim_backend.physics.fibre import Fibre
    from sim_backend.spdc_link import Analyser, Arm, SpdcLink

    station = node_with_role(ctx, station_address, Role.EPPS)
    if station.config.instrument(source) is None:
        raise ConfigError(f"EPPS station {station_address} has no instrument {source!r}",
                          field="params.source", expected="the station's pair_source instrument")
    a, b = (e.node for e in ends)
    link = node_with_role(ctx, a, Role.MEAS).config.link_to(b)
    if link is None or link.scheme is not LinkScheme.MIDPOINT_SOURCE or link.station != station_address:
        raise ConfigError(f"{a} and {b} have no midpoint_source link through {station_address}",
                          field="params.ends", expected="two MEAS nodes linked through the station")
    det = SimDetector(detectors.efficiency, detectors.dark_count_rate_hz,
                      int(detectors.dead_time_ns * NS), detectors.jitter_fwhm_ps)
    arms = []
    for end in ends:
        node = node_with_role(ctx, end.node, Role.MEAS)
        for name in (end.switch, end.tagger):
            if node.config.instrument(name) is None:
                raise ConfigError(f"{end.node} has no instrument {name!r}", field="params.ends",
                                  expected=", ".join(i.name for i in node.config.instruments))
        tagger = node.qualified(end.tagger)
        analysers = {i + 1: Analyser(tagger, (2 * i + 1, 2 * i + 2), angle, det)
                     for i, angle in enumerate(end.analysers)}
        arms.append(Arm(Fibre(link.fibre_km / 2), analysers, end.extra_loss_db,
                        switch=(node.qualified(end.switch), 1)))
    world_link = ctx.testbed.world.add_spdc_link(SpdcLink(f"{station_address}:{a}-{b}",
                                                          station.qualified(source), tuple(arms)))
    return station, world_link


def pump_period_ps(source, window_ps: int) -> int:
    """The spacing of a pulsed source's pump pulses (where accidentals are counted); for a CW
    source, fifty coincidence windows."""
    state = getattr(source, "state", None)
    params = getattr(state, "params", None)
    if params is not None and getattr(params, "mode", "cw") == "pulsed":
        return int(params.period_ps)
    return 50 * window_ps


@experiment_kind
class SpdcDistribution(Experiment):
    kind = "spdc_distribution"
    params_model = SpdcDistributionParams

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        p: SpdcDistributionParams = self.params
        self.slice_ps = max(1 * MS, ctx.duration_ps // 100)
        self.settings: list[tuple[str, int, int]] = []    # (label, port at a, port at b)
        self.dwell_ps: list[int] = []
        if p.chsh is not None:
            chsh_ps = int(ctx.duration_ps * (p.chsh_fraction if p.tomography else 1.0))
            for i, a in enumerate(p.chsh.a):
                for j, b in enumerate(p.chsh.b):
                    self.settings.append((f"chsh a{i}b{j}", _port_of(p.ends[0], a, "CHSH"),
                                          _port_of(p.ends[1], b, "CHSH")))
                    self.dwell_ps.append(chsh_ps // 4)
        if p.tomography:
            tomo_ps = ctx.duration_ps - sum(self.dwell_ps)
            for pa, angle_a in TOMOGRAPHY_BASES.items():
                for pb, angle_b in TOMOGRAPHY_BASES.items():
                    self.settings.append((f"tomo {pa}{pb}", _port_of(p.ends[0], angle_a, "tomography"),
                                          _port_of(p.ends[1], angle_b, "tomography")))
                    self.dwell_ps.append(tomo_ps // 9)
        if not self.settings:
            raise ConfigError("nothing to measure: neither chsh nor tomography is enabled",
                              field="params.chsh", expected="chsh settings or tomography: true")
        self.batches: dict[str, list[DetectionBatch]] = {e.node: [] for e in p.ends}
        self.current = -1
        self.started_ps: int | None = None
        self.finished = False

    # -- wiring -----------------------------------------------------------------------------
    def setup(self) -> None:
        p: SpdcDistributionParams = self.params
        tb = self.ctx.testbed
        station, self.world_link = build_spdc_link(self.ctx, p.station, p.source, p.ends, p.detectors)
        a, b = (e.node for e in p.ends)
        self.source = station.instruments[p.source]
        if p.crystal_temperature_c is not None:
            self.source.set_crystal_temperature_c(p.crystal_temperature_c)
        elif station.config.calibration is None or p.source not in station.config.calibration.crystal_temperature_c:
            raise ConfigError(f"no crystal temperature for {p.station}/{p.source}: set "
                              "params.crystal_temperature_c or include a calibration in the "
                              "station's node file", field="params.crystal_temperature_c",
                              expected="a temperature in deg C, or a link_calibration result")
        self.epps = EppsService(station, self.source, pump_current_ma=p.pump_current_ma)
        self.apis: dict[str, NodeApi] = {}
        self.ends: dict[str, PhotonicEnd] = {}
        for end in p.ends:
            node = tb.nodes[end.node]
            api = NodeApi(node)
            ports = [AnalyserPort(i + 1, _label(angle), (2 * i + 1, 2 * i + 2))
                     for i, angle in enumerate(end.analysers)]
            record = self.ctx.record
            qualified = node.qualified(end.tagger)
            tap = (lambda batch, q=qualified: record.tags(q, batch.channels, batch.timestamps_ps)) \
                if record is not None else None
            self.ends[end.node] = PhotonicEnd(api, node.instruments[end.switch],
                                              node.instruments[end.tagger], ports, on_tags=tap)
            self.apis[end.node] = api
        self.apis[b].listen(lambda sock: setattr(sock, "on_event", lambda ev: self._event(b, ev)))
        self.socket: QuantumSocket = self.apis[a].open(b, on_event=lambda ev: self._event(a, ev))
        # The pump runs for the whole schedule plus the switching of the last setting.
        self.socket.request(duration_s=(self.ctx.duration_ps + 100 * MS) / S, rate_hz=1e3,
                            min_fidelity=0.51)
        self.ctx.log("spdc.requested", a, partner=b, station=p.station, connection=self.socket.connection)

    # -- the schedule -------------------------------------------------------------------------
    def _event(self, node: str, ev) -> None:
        if isinstance(ev, DetectionBatch):
            self.batches[node].append(ev)
            k = min(len(self.batches[node]), len(self.settings)) - 1
            self.ctx.log("spdc.batch", node, setting=self.settings[k][0], basis=ev.basis,
                         detections=len(ev))
            return
        self.ctx.log("spdc.connection", node, connection=ev.connection, established=ev.established,
                     detail=ev.detail)
        if ev.established and node == self.params.ends[0].node and self.started_ps is None:
            self.started_ps = self.ctx.now_ps()
            self._next()

    def _next(self) -> None:
        self.current += 1
        loop = self.ctx.loop
        if self.current >= len(self.settings):
            for end in self.ends.values():
                end.read()
            self.finished = True
            self.socket.close()
            return
        label, pa, pb = self.settings[self.current]
        a, b = (e.node for e in self.params.ends)
        self.ends[a].select(pa)
        self.ends[b].select(pb)
        self.ctx.log("spdc.setting", None, setting=label, port_a=pa, port_b=pb)
        loop.call_later(self.dwell_ps[self.current], self._next)

    def done(self) -> bool:
        return self.finished

    def progress(self) -> tuple[float, list[StatusRow]]:
        frac = max(self.current, 0) / len(self.settings)
        rows = [StatusRow(self.params.station, "EPPS", "pump on" if self.source.pump_is_on() else "pump off",
                          f"{self.world_link.pairs_generated} pairs generated")]
        for node, end in self.ends.items():
            basis = end.current.basis if end.current else "-"
            n = sum(len(bt) for bt in self.batches[node])
            rows.append(StatusRow(node, "MEAS", f"analyser {basis}", f"{n} detections"))
        return frac, rows

    def metrics(self) -> dict:
        a, b = (e.node for e in self.params.ends)
        return {"detections": {n: sum(len(bt) for bt in v) for n, v in self.batches.items()},
                "pairs_generated": self.world_link.pairs_generated}

    # -- analysis -----------------------------------------------------------------------------
    def finish(self) -> Results:
        p: SpdcDistributionParams = self.params
        if not self.finished:
            for end in self.ends.values():
                end.read()
            self.socket.close()
        a, b = (e.node for e in p.ends)
        pairs = list(zip(self.batches[a], self.batches[b]))
        if not pairs:
            raise ConfigError("no detections were made: the pump request was never answered",
                              field="params.station")
        # The coincidence peak: cross-correlation of every detection of both ends.
        ta = np.sort(np.concatenate([x.timestamp_ps for x, _ in pairs]))
        tb = np.sort(np.concatenate([y.timestamp_ps for _, y in pairs]))
        search = int(p.delay_search_ns * NS)
        edges, hist = an.cross_histogram(ta, tb, search, 50)
        delay = int(round(edges[int(np.argmax(hist))] + 25)) if hist.sum() else 0
        period = pump_period_ps(self.source, p.coincidence_window_ps)
        window = p.coincidence_window_ps
        rows = []
        e_by_label: dict[str, an.Estimate] = {}
        tables: dict[str, np.ndarray] = {}
        cc_total, acc_total = 0, 0.0
        for (label, pa, pb), (x, y) in zip(self.settings, pairs):
            ia, ib = an.coincidence_indices(x.timestamp_ps, y.timestamp_ps, delay, window)
            table = an.outcome_table(x.outcome[ia], y.outcome[ib])
            tables[label] = table
            e = an.correlator(table)
            e_by_label[label] = e
            cc, acc, _ = an.car(x.timestamp_ps, y.timestamp_ps, delay, window, period)
            cc_total += cc
            acc_total += acc
            rows.append((label, pa, pb, x.start_ps, x.end_ps, len(x), len(y), *table.ravel(), e.value, e.stderr))
        dtype = [("setting", "U16"), ("port_a", "i4"), ("port_b", "i4"), ("start_ps", "i8"),
                 ("end_ps", "i8"), ("detections_a", "i8"), ("detections_b", "i8"), ("n00", "i8"),
                 ("n01", "i8"), ("n10", "i8"), ("n11", "i8"), ("E", "f8"), ("E_stderr", "f8")]
        table_rows = np.array(rows, dtype=dtype)
        details: dict = {"delay_ps": delay, "window_ps": window, "pump_period_ps": period,
                         "coincidences": cc_total, "accidentals": acc_total}
        car_est = an.Estimate(cc_total / acc_total, (cc_total / acc_total) * math.sqrt(
            1 / max(cc_total, 1) + 1 / max(acc_total * 10, 1))) if acc_total > 0 else an.Estimate(math.inf, math.inf)
        details["car"] = car_est.to_dict()
        results = Results(details=details)
        measured_ps = sum(int(x.end_ps - x.start_ps) for x, _ in pairs)
        results.pairs_delivered = int(cc_total)
        results.rate_hz = cc_total / (measured_ps / S) if measured_ps else None
        if p.chsh is not None and all(f"chsh a{i}b{j}" in e_by_label for i in (0, 1) for j in (0, 1)):
            s = an.chsh(*(e_by_label[f"chsh a{i}b{j}"] for i in (0, 1) for j in (0, 1)))
            results.chsh_s, results.chsh_s_stderr = s.value, s.stderr
            details["chsh_correlators"] = {k: v.to_dict() for k, v in e_by_label.items() if k.startswith("chsh")}
        state = BellState(self._source_param("bell_state", "PHI_PLUS"))
        tomo = {k: v for k, v in tables.items() if k.startswith("tomo")}
        if len(tomo) == 9:
            corr = {(k[5], k[6]): an.correlator(t).value for k, t in tomo.items()}
            single_a: dict[str, list[float]] = {q: [] for q in "XYZ"}
            single_b: dict[str, list[float]] = {q: [] for q in "XYZ"}
            for k, t in tomo.items():
                n = t.sum()
                if n:
                    single_a[k[5]].append((t[0].sum() - t[1].sum()) / n)
                    single_b[k[6]].append((t[:, 0].sum() - t[:, 1].sum()) / n)
            rho = an.linear_inversion(corr, {q: float(np.mean(v)) for q, v in single_a.items() if v},
                                      {q: float(np.mean(v)) for q, v in single_b.items() if v})
            f = an.bell_fidelity({q: an.correlator(tomo[f"tomo {q}{q}"]) for q in "XYZ"}, state)
            results.fidelity, results.fidelity_stderr = f.value, f.stderr
            details["tomography"] = {"state": state.value, "fidelity_from_rho": an.state_fidelity_pure(rho, state),
                                     "rho_real": rho.real.round(5).tolist(), "rho_imag": rho.imag.round(5).tolist()}
            if self.ctx.record is not None:
                self.ctx.record.write_array("tomography_rho", np.stack([rho.real, rho.imag]))
        v = self._source_param("visibility", None)
        if v is not None:
            details["expected"] = {"visibility": v, "chsh_s": 2 * math.sqrt(2) * v, "fidelity": (1 + 3 * v) / 4}
        if self.ctx.record is not None:
            self.ctx.record.write_array("settings", table_rows)
            self.ctx.record.write_array("coincidence_histogram",
                                        np.stack([edges[:-1].astype(float), hist.astype(float)]))
        results.details["settings"] = len(pairs)
        return results

    def _source_param(self, name: str, default):
        params = getattr(self.source, "state", None)
        return getattr(params.params, name, default) if params is not None else default

