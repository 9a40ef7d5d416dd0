"""Link calibration: the crystal temperature of an EPPS source and the input delays of a BSA
station's detectors, written back as calibration YAML that node files ``include:``.

**Temperature scan** (``temperature_scan:``). With the pump on and both MEAS ends on one analyser,
the crystal is stepped through ``from_c .. to_c``; at every step the scan waits ``settle_s`` for
the oven, then counts coincidences for ``dwell_s``. The coincidence peak's delay comes from the
cross-correlation of all detections; a Poisson-weighted least-squares fit of the phase-matching
curve ``A·sinc²(0.886·(T − T₀)/FWHM) + B`` gives T₀ and its stderr, which becomes the station's
``crystal_temperature_c``.

**Detector delays** (``delay_calibration:``). A memory link runs attempts (no connection: every
heralded pair is freed at once). The station's tagger sees the attempt marker on its sync channel
(the AWG marker cabled to the tagger) and the detector clicks; for every detector channel the
peak of ``click − marker`` (within half a slot) is where the clicks sit. The herald detector
expects them one detection window after the marker, so each channel's new input delay is the
delay in force minus (peak − window). A detector whose cable is so long that its clicks miss the
window loses half the heralds (every Bell-state pattern it is part of); after the calibration
the link heralds at ½·η_a·η_b again.

Every node with a result gets ``calibration/<node>.yaml`` in the run record (the calibration it
already had, with this run's measurements over it), and, with ``write_to: {node: path}``, the same
file at that path (relative to the experiment file) for its node file to include.
"""

from __future__ import annotations

import datetime as _dt
import math

import numpy as np
import yaml
from pydantic import Field

from ..config.node import CalibrationConfig, CalibrationFile, InstrumentKind
from ..config.source import load_document
from ..config.validate import parse_model
from ..errors import ConfigError
from ..records.atomic import atomic_write_text
from ..units import MS, NS, S
from . import analysis as an
from .base import Experiment, Params, Results, RunContext, StatusRow, experiment_kind
from .memory_links import LinkPhysics, MemoryLinks
from .spdc_distribution import DetectorParams, EndParams, build_spdc_link, pump_period_ps


class TemperatureScan(Params):
    station: str
    source: str = "source"
    ends: tuple[EndParams, EndParams]
    #: The switch output (analyser) both ends use during the scan.
    analyser: int = Field(1, ge=1)
    pump_current_ma: float = Field(gt=0)
    from_c: float
    to_c: float
    step_c: float = Field(gt=0)
    settle_s: float = Field(0.25, ge=0)
    dwell_s: float = Field(0.1, gt=0)
    detectors: DetectorParams = DetectorParams()
    coincidence_window_ps: int = Field(1000, gt=0)
    delay_search_ns: float = Field(20.0, gt=0)


class DelayCalibration(Params):
    #: The two end nodes of the memory link whose BSA station is calibrated.
    link: tuple[str, str]
    physics: LinkPhysics = LinkPhysics()
    #: Half-width of the window around the coarse peak whose clicks give the delay (ps).
    fit_halfwidth_ps: int = Field(300, gt=0)
    #: Attempting time (simulated s); None: the run's duration.
    duration_s: float | None = Field(None, gt=0)


class LinkCalibrationParams(Params):
    temperature_scan: TemperatureScan | None = None
    delay_calibration: DelayCalibration | None = None
    #: node -> calibration YAML to (over)write, relative to the experiment file.
    write_to: dict[str, str] = {}


@experiment_kind
class LinkCalibration(Experiment):
    kind = "link_calibration"
    params_model = LinkCalibrationParams

    def __init__(self, ctx: RunContext) -> None:
        super().__init__(ctx)
        p: LinkCalibrationParams = self.params
        if p.temperature_scan is None and p.delay_calibration is None:
            raise ConfigError("nothing to calibrate", field="params",
                              expected="temperature_scan: and/or delay_calibration:")
        self.slice_ps = 10 * MS
        self.scan_points: list[float] = []
        if p.temperature_scan is not None:
            s = p.temperature_scan
            n = int(math.floor((s.to_c - s.from_c) / s.step_c + 1e-9)) + 1
            if n < 5:
                raise ConfigError(f"a scan of {n} point(s) cannot be fitted",
                                  field="params.temperature_scan.step_c",
                                  expected="at least 5 temperatures from from_c to to_c")
            self.scan_points = [s.from_c + i * s.step_c for i in range(n)]
        self.scan_data: list[tuple[float, int, int, object, object]] = []   # (T, start, end, batch a, batch b)
        self.scan_done = p.temperature_scan is None
        self.delay_done = p.delay_calibration is None
        self.station_batches: list[object] = []
        self.measured: dict[str, CalibrationConfig] = {}

    # -- setup ----------------------------------------------------------------------------------
    def setup(self) -> None:
        p: LinkCalibrationParams = self.params
        if p.temperature_scan is not None:
            self._setup_scan(p.temperature_scan)
        if p.delay_calibration is not None:
            self._setup_delays(p.delay_calibration)

    def _setup_scan(self, s: TemperatureScan) -> None:
        station, self.spdc_link = build_spdc_link(self.ctx, s.station, s.source, s.ends, s.detectors)
        self.scan_station = station
        self.source = station.instruments[s.source]
        self.scan_ends = []
        for end in s.ends:
            node = self.ctx.testbed.nodes[end.node]
            if s.analyser > len(end.analysers):
                raise ConfigError(f"{end.node} has {len(end.analysers)} analyser(s), not "
                                  f"{s.analyser}", field="params.temperature_scan.analyser")
            switch, tagger = node.instruments[end.switch], node.instruments[end.tagger]
            switch.connect(1, s.analyser)
            channels = [2 * s.analyser - 1, 2 * s.analyser]
            tagger.start_stream(channels)
            self.scan_ends.append((node, tagger, channels))
        self.source.set_pump_current_ma(s.pump_current_ma)
        self.source.pump_on()
        self.scan_index = -1
        self.ctx.loop.call_soon(self._scan_next)

    def _scan_next(self) -> None:
        s: TemperatureScan = self.params.temperature_scan
        self.scan_index += 1
        if self.scan_index >= len(self.scan_points):
            self.source.pump_off()
            self.scan_done = True
            return
        t = self.scan_points[self.scan_index]
        self.source.set_crystal_temperature_c(t)
        self.ctx.log("calibration.temperature", self.scan_station.address, setpoint_c=t)
        self.ctx.loop.call_later(int(s.settle_s * S), self._scan_count_start, t)

    def _scan_count_start(self, t: float) -> None:
        for _node, tagger, _ch in self.scan_ends:
            tagger.read_stream()                 # what came while the oven settled
        start = self.ctx.now_ps()
        self.ctx.loop.call_later(int(self.params.temperature_scan.dwell_s * S), self._scan_count_end,
                                 t, start)

    def _scan_count_end(self, t: float, start: int) -> None:
        batches = []
        for node, tagger, _ch in self.scan_ends:
            batch = tagger.read_stream()
            batches.append(batch)
            if self.ctx.record is not None:
                self.ctx.record.tags(node.qualified(self.params.temperature_scan.ends[len(batches) - 1].tagger),
                                     batch.channels, batch.timestamps_ps)
        self.scan_data.append((t, start, self.ctx.now_ps(), batches[0], batches[1]))
        self.ctx.log("calibration.point", self.scan_station.address, setpoint_c=t,
                     crystal_c=round(self.source.crystal_temperature_c(), 4),
                     detections_a=len(batches[0]), detections_b=len(batches[1]))
        self._scan_next()

    def _setup_delays(self, d: DelayCalibration) -> None:
        a, b = d.link
        self.links = MemoryLinks(self.ctx, d.physics,
                                 on_pair_ready=lambda node, ev: self._free_pair(node, ev),
                                 on_station_tags=lambda link, batch: self.station_batches.append(batch))
        run = next((r for r in self.links.links.values() if set(r.params.nodes) == {a, b}), None)
        if run is None:
            raise ConfigError(f"no both_endpoints memory link between {a} and {b}",
                              field="params.delay_calibration.link",
                              expected="two end nodes of a memory link of the testbed")
        self.delay_run = run
        for node in run.params.nodes:
            self.links.demand(node, run.params.partner(run.params.index_of(node)), +1)
        duration = d.duration_s if d.duration_s is not None else self.ctx.duration_ps / S
        self.ctx.loop.call_later(int(duration * S), self._delays_stop)

    def _free_pair(self, node: str, ev) -> None:
        self.ctx.testbed.nodes[node].qnics[ev.qubit.qnic].init(ev.qubit.index)

    def _delays_stop(self) -> None:
        self.links.stop()
        self.ctx.loop.call_later(2 * MS, self._delays_done)

    def _delays_done(self) -> None:
        self.links.stop_stations()
        self.delay_done = True

    # -- runner hooks ---------------------------------------------------------------------------
    def done(self) -> bool:
        return self.scan_done and self.delay_done

    def progress(self) -> tuple[float, list[StatusRow]]:
        rows = []
        parts, done = 0, 0.0
        if self.params.temperature_scan is not None:
            parts += 1
            done += len(self.scan_data) / len(self.scan_points)
            rows.append(StatusRow(self.scan_station.address, "EPPS",
                                  f"crystal {self.source.crystal_temperature_c():.2f} C",
                                  f"point {len(self.scan_data)}/{len(self.scan_points)}"))
        if self.params.delay_calibration is not None:
            parts += 1
            done += 1.0 if self.delay_done else 0.0
            run = self.delay_run
            rows.append(StatusRow(run.station, "BSA", "attempting" if not self.delay_done else "done",
                                  f"{run.joint_attempts()} attempts, {run.heralds()} heralds"))
        return done / parts, rows

    # -- results --------------------------------------------------------------------------------
    def finish(self) -> Results:
        details: dict = {}
        results = Results(details=details)
        if self.params.temperature_scan is not None and self.scan_data:
            details["temperature_scan"] = self._finish_scan()
        if self.params.delay_calibration is not None:
            details["delay_calibration"] = self._finish_delays()
        details["calibration_files"] = self._write_calibrations()
        return results

    def _finish_scan(self) -> dict:
        s: TemperatureScan = self.params.temperature_scan
        channels = [ch for _n, _t, ch in self.scan_ends]

        def times(batch, chans):
            m = np.isin(batch.channels, chans)
            return batch.timestamps_ps[m]

        ta = np.sort(np.concatenate([times(x, channels[0]) for _t, _s, _e, x, _y in self.scan_data]))
        tb = np.sort(np.concatenate([times(y, channels[1]) for _t, _s, _e, _x, y in self.scan_data]))
        edges, hist = an.cross_histogram(ta, tb, int(s.delay_search_ns * NS), 50)
        delay = int(round(edges[int(np.argmax(hist))] + 25)) if hist.sum() else 0
        period = pump_period_ps(self.source, s.coincidence_window_ps)
        temps, counts, acc = [], [], []
        for t, start, end, x, y in self.scan_data:
            cc, a, _ = an.car(times(x, channels[0]), times(y, channels[1]), delay,
                              s.coincidence_window_ps, period)
            temps.append(t)
            counts.append(cc)
            acc.append(a)
        temps_a, counts_a = np.array(temps), np.array(counts, float)
        fit = an.fit_sinc2(temps_a, counts_a)
        t0 = fit["centre"]
        if not (min(temps) <= t0.value <= max(temps)) or not math.isfinite(t0.stderr):
            raise ConfigError(f"the coincidence peak is not inside the scan ({min(temps)}..{max(temps)} C): "
                              f"fit gives {t0.value:.2f} C", field="params.temperature_scan.from_c",
                              expected="a range that contains the phase-matching peak")
        dwell_s = np.array([(e - st) / S for _t, st, e, _x, _y in self.scan_data])
        if self.ctx.record is not None:
            scan = np.zeros(len(temps), [("temperature_c", "f8"), ("coincidences", "i8"),
                                         ("accidentals", "f8"), ("dwell_s", "f8")])
            scan["temperature_c"], scan["coincidences"] = temps_a, counts_a.astype(np.int64)
            scan["accidentals"], scan["dwell_s"] = acc, dwell_s
            self.ctx.record.write_array("temperature_scan", scan)
            self.ctx.record.write_array("temperature_fit", np.array(
                [fit[k].value for k in ("amplitude", "centre", "fwhm", "background")]))
        cal = self._calibration_for(self.scan_station.address)
        crystal = dict(cal.crystal_temperature_c)
        crystal[s.source] = round(t0.value, 4)
        self.measured[self.scan_station.address] = cal.model_copy(update={"crystal_temperature_c": crystal})
        best = int(np.argmax(counts_a))
        return {"station": self.scan_station.address, "source": s.source, "delay_ps": delay,
                "points": len(temps), "peak_c": t0.to_dict(), "fwhm_c": fit["fwhm"].to_dict(),
                "peak_coincidence_rate_hz": float(counts_a[best] / dwell_s[best]),
                "amplitude": fit["amplitude"].to_dict(), "background": fit["background"].to_dict()}

    def _finish_delays(self) -> dict:
        from sim_backend.memory_link import BsaChannels  # the station's channel map

        run = self.delay_run
        station = self.ctx.testbed.nodes[run.station]
        tagger_name = next(i.name for i in station.config.instruments if i.kind is InstrumentKind.TIME_TAGGER)
        cmap = BsaChannels()
        window = run.params.window_ps
        half_slot = run.params.period_ps // 2
        fit_half = self.params.delay_calibration.fit_halfwidth_ps
        if self.station_batches:
            ch = np.concatenate([b.channels for b in self.station_batches])
            ts = np.concatenate([b.timestamps_ps for b in self.station_batches])
        else:
            ch, ts = np.empty(0, np.int32), np.empty(0, np.int64)
        order = np.argsort(ts, kind="stable")
        ch, ts = ch[order], ts[order]
        sync = ts[ch == cmap.sync]
        in_force = self._delays_in_force(station, tagger_name)
        peaks, new = {}, {}
        for det in cmap.detectors:
            clicks = ts[ch == det]
            idx = np.searchsorted(sync, clicks, side="right") - 1
            ok = idx >= 0
            diffs = clicks[ok] - sync[idx[ok]]
            diffs = diffs[diffs < 2 * half_slot]
            est = an.peak_offset(diffs, half_slot, 100, fit_half) if diffs.size else an.Estimate(math.nan, math.inf)
            peaks[det] = {"offset_ps": est.value, "stderr_ps": est.stderr, "clicks": int(diffs.size)}
            if math.isfinite(est.value):
                new[det] = int(round(in_force.get(det, 0) - (est.value - window)))
        if self.ctx.record is not None:
            table = np.zeros(len(peaks), [("channel", "i4"), ("offset_ps", "f8"), ("stderr_ps", "f8"),
                                          ("clicks", "i8"), ("new_delay_ps", "i8")])
            for i, (det, pk) in enumerate(peaks.items()):
                table[i] = (det, pk["offset_ps"], pk["stderr_ps"], pk["clicks"], new.get(det, 0))
            self.ctx.record.write_array("detector_delays", table)
        cal = self._calibration_for(station.address)
        delays = {k: dict(v) for k, v in cal.input_delays_ps.items()}
        delays.setdefault(tagger_name, {}).update(new)
        self.measured[station.address] = self.measured.get(station.address, cal).model_copy(
            update={"input_delays_ps": delays})
        joint, heralds = run.joint_attempts(), run.heralds()
        return {"link": run.name, "station": station.address, "tagger": tagger_name,
                "target_offset_ps": window, "delays_in_force_ps": in_force, "peaks": peaks,
                "new_delays_ps": new, "joint_attempts": joint, "heralds": heralds,
                "success_probability": heralds / joint if joint else None,
                "success_probability_aligned": run.success_probability}

    def _delays_in_force(self, station, tagger_name: str) -> dict[int, int]:
        """The tagger's input delays now: its calibration's, else its instrument options'."""
        cfg = station.config
        out = {int(k): int(v) for k, v in
               dict(cfg.instrument(tagger_name).options.get("input_delays_ps", {})).items()}
        if cfg.calibration is not None:
            out.update({int(k): int(v) for k, v in cfg.calibration.input_delays_ps.get(tagger_name, {}).items()})
        return out

    def _calibration_for(self, address: str) -> CalibrationConfig:
        if address in self.measured:
            return self.measured[address]
        cal = self.ctx.testbed.nodes[address].config.calibration
        return cal if cal is not None else CalibrationConfig()

    def _write_calibrations(self) -> dict[str, list[str]]:
        run_name = self.ctx.record.root.name if self.ctx.record is not None else "an unrecorded run"
        when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        written: dict[str, list[str]] = {}
        for address, cal in self.measured.items():
            cal = cal.model_copy(update={"written_by": f"link_calibration {run_name}"})
            body = yaml.safe_dump({"calibration": cal.model_dump(mode="json")}, sort_keys=False)
            text = (f"# Written by the link_calibration experiment {self.ctx.experiment.config.name} "
                    f"({run_name}, {when}).\n# Include it from {address}'s node file: "
                    "include: [this file]\n" + body)
            targets = []
            if self.ctx.record is not None:
                d = self.ctx.record.root / "calibration"
                d.mkdir(exist_ok=True)
                targets.append(d / f"{address}.yaml")
            if address in self.params.write_to:
                targets.append((self.ctx.experiment.base_dir / self.params.write_to[address]).resolve())
            for path in targets:
                atomic_write_text(path, text)
                parse_model(CalibrationFile, load_document(path))   # what qnode validate checks
            written[address] = [str(t) for t in targets]
            self.ctx.log("calibration.written", address, files=[str(t) for t in targets])
        return written


__all__ = ["DelayCalibration", "LinkCalibration", "LinkCalibrationParams", "TemperatureScan"]
