"""PNG plots of a run record for people (``qnode report RUN_DIR``).

Each plot is made only when the record holds its data:

* ``coincidence_histogram.png`` – t_b − t_a of the two MEAS ends' detections (SPDC runs), the
  coincidence window marked, the pump's side peaks giving the accidentals;
* ``chsh_correlations.png`` – the four CHSH correlators with their errors against V·cos 2(a−b),
  and the nine tomography correlators;
* ``fidelity_rate.png`` – end-to-end pairs per simulated second and their fidelity over time
  (exact per pair from the simulator, tomography of the sacrificed pairs with its error band);
* ``temperature_scan.png`` – coincidences per crystal temperature with the fitted sinc² curve;
* ``detector_delays.png`` – each BSA detector's click offset from the attempt marker;
* ``timeline.png`` – every node's events on one time axis.

A processes-mode run (``qnode testbed --processes``: node records under ``nodes/<address>/``,
stamped in testbed time, the wall clock of one host) gets its own ``fidelity_rate.png`` (pairs
matched by name from the two ends' ``halves``, the tomography estimate growing with the sacrificed
pairs; no exact fidelity: the processes cannot look at both halves at once), ``link_pairs.png``
(heralded pairs bound at each end of each link per second, from the nodes' ``link.pair`` events)
and a ``timeline.png`` of every node's events with the runner's process events on the same axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file backend)
import numpy as np  # noqa: E402

from .reader import RunData  # noqa: E402

_DPI = 110


def write_plots(data: RunData, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    makers = (_coincidence_histogram, _chsh, _fidelity_rate, _temperature_scan, _detector_delays,
              _timeline)
    if _is_processes_run(data):
        makers = (_processes_fidelity_rate, _processes_link_pairs, _processes_timeline)
    for maker in makers:
        path = maker(data, out_dir)
        if path is not None:
            written.append(path)
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return path


def _details(data: RunData) -> dict:
    return (data.summary or {}).get("details") or {}


def _coincidence_histogram(data: RunData, out: Path) -> Path | None:
    h = data.arrays.get("coincidence_histogram")
    if h is None or h.size == 0:
        return None
    left_ns, counts = h[0] / 1000.0, h[1]
    d = _details(data)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = (left_ns[1] - left_ns[0]) if left_ns.size > 1 else 0.05
    shown = np.where(counts > 0, counts, np.nan)     # empty bins stay empty on the log axis
    ax.step(left_ns + width, shown, where="pre", color="tab:blue", lw=1)
    ax.set_ylim(bottom=0.5)
    ax.set_yscale("log")
    if "delay_ps" in d and "window_ps" in d:
        lo = (d["delay_ps"] - d["window_ps"] / 2) / 1000
        ax.axvspan(lo, lo + d["window_ps"] / 1000, color="tab:orange", alpha=0.3,
                   label=f"coincidence window ({d['window_ps']} ps)")
        if d.get("pump_period_ps"):
            for k in (-1, 1):
                ax.axvline((d["delay_ps"] + k * d["pump_period_ps"]) / 1000, color="gray", ls=":", lw=1,
                           label="± one pump period (accidentals)" if k == 1 else None)
        ax.legend(loc="upper right")
    car = d.get("car")
    title = "Coincidence histogram (all settings)"
    if car:
        title += f": CAR {car['value']:.0f} ± {car['stderr']:.0f}"
    ax.set_title(title)
    ax.set_xlabel("t_b − t_a (ns)")
    ax.set_ylabel("detection pairs per 50 ps bin")
    return _save(fig, out / "coincidence_histogram.png")


def _chsh(data: RunData, out: Path) -> Path | None:
    s = data.arrays.get("settings")
    if s is None or s.size == 0:
        return None
    labels = [str(x) for x in s["setting"]]
    chsh = [i for i, lab in enumerate(labels) if lab.startswith("chsh")]
    tomo = [i for i, lab in enumerate(labels) if lab.startswith("tomo")]
    fig, axes = plt.subplots(1, 2 if tomo else 1, figsize=(11 if tomo else 6, 4.5), squeeze=False)
    ax = axes[0][0]
    summary = data.summary or {}
    if chsh:
        e = s["E"][chsh]
        err = s["E_stderr"][chsh]
        ax.bar(range(len(chsh)), e, yerr=err, capsize=4, color=["tab:blue", "tab:red", "tab:blue", "tab:blue"][:len(chsh)])
        exp = _details(data).get("expected", {})
        if "visibility" in exp:
            v = exp["visibility"]
            for sign in (1, -1):
                ax.axhline(sign * v / math.sqrt(2), color="gray", ls="--", lw=1)
            ax.text(-0.45, -v / math.sqrt(2) - 0.09, f"±V/√2 (V = {v:g})", ha="left", color="gray")
        ax.set_xticks(range(len(chsh)), [labels[i].removeprefix("chsh ") for i in chsh])
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_ylabel("correlator E")
        title = "CHSH correlators"
        if summary.get("chsh_s") is not None:
            title += f": S = {summary['chsh_s']:.3f} ± {summary['chsh_s_stderr']:.3f}"
            if "chsh_s" in exp:
                title += f" (2√2·V = {exp['chsh_s']:.3f})"
        ax.set_title(title)
    if tomo:
        ax2 = axes[0][1]
        grid = np.zeros((3, 3))
        order = "XYZ"
        for i in tomo:
            pa, pb = labels[i][5], labels[i][6]
            grid[order.index(pa), order.index(pb)] = s["E"][i]
        im = ax2.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
        for a in range(3):
            for b in range(3):
                ax2.text(b, a, f"{grid[a, b]:+.2f}", ha="center", va="center")
        ax2.set_xticks(range(3), [f"{p} (b)" for p in order])
        ax2.set_yticks(range(3), [f"{p} (a)" for p in order])
        title = "Tomography: Pauli correlators <σa σb>"
        if summary.get("fidelity") is not None:
            title += f"\nBell fidelity {summary['fidelity']:.4f} ± {summary['fidelity_stderr']:.4f}"
        ax2.set_title(title)
        fig.colorbar(im, ax=ax2, fraction=0.046)
    return _save(fig, out / "chsh_correlations.png")


def _fidelity_rate(data: RunData, out: Path) -> Path | None:
    p = data.arrays.get("pairs")
    if p is None or p.size < 2:
        return None
    t_ms = p["t_ps"] / 1e9
    span = max(t_ms.max() - t_ms.min(), 1e-6)
    nbins = int(min(20, max(4, p.size // 10)))
    edges = np.linspace(t_ms.min(), t_ms.max() + span * 1e-9, nbins + 1)
    idx = np.clip(np.digitize(t_ms, edges) - 1, 0, nbins - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    width_s = (edges[1] - edges[0]) / 1000
    counts = np.bincount(idx, minlength=nbins)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.bar(centres, counts / width_s, width=edges[1] - edges[0], color="tab:green", alpha=0.8)
    ax1.set_ylabel("end-to-end pairs / s")
    summary = data.summary or {}
    if summary.get("rate_hz") is not None:
        ax1.axhline(summary["rate_hz"], color="black", ls="--", lw=1, label=f"mean {summary['rate_hz']:.0f} /s")
        ax1.legend(loc="lower right")
    ax1.set_title("End-to-end pairs over time")
    f = p["fidelity_exact"]
    ax2.plot(t_ms, f, ".", ms=3, color="tab:gray", alpha=0.6, label="exact, per pair (simulator)")
    mean_f = np.array([f[idx == k].mean() if np.any(idx == k) else np.nan for k in range(nbins)])
    ax2.plot(centres, mean_f, "-o", color="tab:blue", ms=4, label="exact, mean per bin")
    if summary.get("fidelity") is not None:
        fv, fe = summary["fidelity"], summary["fidelity_stderr"]
        ax2.axhspan(fv - fe, fv + fe, color="tab:orange", alpha=0.3,
                    label=f"tomography of sacrificed pairs: {fv:.3f} ± {fe:.3f}")
    ax2.set_ylim(max(0.0, min(0.5, np.nanmin(f) - 0.05)), 1.0)
    ax2.set_xlabel("simulated time (ms)")
    ax2.set_ylabel("fidelity to Φ+")
    ax2.legend(loc="lower left", fontsize=8)
    return _save(fig, out / "fidelity_rate.png")


def _temperature_scan(data: RunData, out: Path) -> Path | None:
    scan = data.arrays.get("temperature_scan")
    if scan is None or scan.size == 0:
        return None
    t, c = scan["temperature_c"], scan["coincidences"].astype(float)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.errorbar(t, c, yerr=np.sqrt(np.maximum(c, 1)), fmt="o", color="tab:blue", label="coincidences")
    fit = data.arrays.get("temperature_fit")
    d = _details(data).get("temperature_scan", {})
    if fit is not None and fit.size == 4:
        fine = np.linspace(t.min(), t.max(), 400)
        a, centre, fwhm, bg = fit
        ax.plot(fine, a * np.sinc(0.885893 * (fine - centre) / fwhm) ** 2 + bg, color="tab:red",
                label="fit A·sinc²(0.886 (T−T₀)/FWHM) + B")
        label = f"T₀ = {centre:.3f} °C"
        if "peak_c" in d:
            label = f"T₀ = {d['peak_c']['value']:.3f} ± {d['peak_c']['stderr']:.3f} °C"
        ax.axvline(centre, color="tab:red", ls="--", lw=1, label=label)
    ax.set_xlabel("crystal setpoint (°C)")
    ax.set_ylabel(f"coincidences per point ({scan['dwell_s'][0] * 1000:.0f} ms)")
    ax.set_title("Crystal temperature scan (phase matching)")
    ax.legend()
    return _save(fig, out / "temperature_scan.png")


def _detector_delays(data: RunData, out: Path) -> Path | None:
    table = data.arrays.get("detector_delays")
    if table is None or table.size == 0:
        return None
    d = _details(data).get("delay_calibration", {})
    target = d.get("target_offset_ps")
    fig, ax = plt.subplots(figsize=(7, 4))
    ref = target if target is not None else 0
    ax.errorbar(table["channel"], table["offset_ps"] - ref, yerr=table["stderr_ps"], fmt="s",
                color="tab:blue", capsize=4, label="click − marker peak")
    ax.axhline(0, color="tab:green", ls="--",
               label=f"where the herald window expects them ({ref / 1000:g} ns after the marker)")
    for ch, off, new in zip(table["channel"], table["offset_ps"], table["new_delay_ps"]):
        ax.annotate(f"input delay {new} ps", (ch, off - ref), textcoords="offset points", xytext=(8, 6))
    ax.set_ylabel("click offset − expected (ps)")
    ax.set_xticks(table["channel"])
    ax.set_xlabel("BSA tagger channel")
    ax.set_title(f"Detector delays on {d.get('station', 'the station')}")
    ax.legend(fontsize=8)
    return _save(fig, out / "detector_delays.png")


def _timeline(data: RunData, out: Path) -> Path | None:
    events = [e for e in data.events if "node" in e]
    if not events:
        return None
    nodes = sorted({e["node"] for e in events})
    kinds = sorted({e["event"] for e in events})
    colours = plt.cm.tab10(np.linspace(0, 1, max(len(kinds), 2)))
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.6 * len(nodes)))
    t_all = np.array([e["t_ps"] for e in events], float)
    scale, unit = (1e9, "ms") if t_all.max() - t_all.min() < 5e12 else (1e12, "s")
    for k, kind in enumerate(kinds):
        for n, node in enumerate(nodes):
            ts = [e["t_ps"] / scale for e in events if e["event"] == kind and e["node"] == node]
            if ts:
                ax.plot(ts, np.full(len(ts), n + (k - len(kinds) / 2) * 0.08), "|", ms=9,
                        color=colours[k], label=kind if n == 0 or not any(
                            e["event"] == kind and e["node"] in nodes[:n] for e in events) else None)
    ax.set_yticks(range(len(nodes)), nodes)
    ax.set_xlabel(f"simulated time ({unit})")
    ax.set_title("Events per node")
    handles, labels = ax.get_legend_handles_labels()
    seen = {}
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    ax.legend(seen.values(), seen.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out / "timeline.png")


# -- processes mode ----------------------------------------------------------------------------------
def _is_processes_run(data: RunData) -> bool:
    return bool(data.nodes) and (data.config.get("run") or {}).get("mode") == "processes"


def _chain_ends(data: RunData) -> tuple[str, str] | None:
    params = ((data.config.get("experiment") or {}).get("params")) or {}
    ends = params.get("initiator"), params.get("responder")
    return ends if all(ends) else None   # type: ignore[return-value]


def _request_ps(data: RunData, initiator: str) -> int | None:
    node = data.nodes.get(initiator)
    requested = node.events_of("chain.requested") if node is not None else []
    return int(requested[0]["t_ps"]) if requested else None


def _processes_fidelity_rate(data: RunData, out: Path) -> Path | None:
    """End-to-end pairs per second and the tomography estimate as sacrificed pairs accumulate."""
    from ..experiments import analysis as an
    from ..bell import BellState

    ends = _chain_ends(data)
    if ends is None:
        return None
    halves = [data.nodes[n].arrays.get("halves") if n in data.nodes else None for n in ends]
    if any(h is None or h.size == 0 for h in halves):
        return None
    a, c = halves
    by_name = {(str(r["origin"]), int(r["name_ps"])): r for r in c}
    rows = []
    for r in a:
        other = by_name.get((str(r["origin"]), int(r["name_ps"])))
        if other is not None:
            rows.append((max(int(r["t_ps"]), int(other["t_ps"])), str(r["basis"]), int(r["outcome"]),
                         str(other["basis"]), int(other["outcome"])))
    if len(rows) < 2:
        return None
    rows.sort()
    zero = _request_ps(data, ends[0])
    zero = rows[0][0] if zero is None else zero
    t_s = np.array([(r[0] - zero) / 1e12 for r in rows])
    span = max(t_s.max() - t_s.min(), 1e-6)
    nbins = int(min(20, max(4, len(rows) // 5)))
    edges = np.linspace(t_s.min(), t_s.max() + span * 1e-9, nbins + 1)
    idx = np.clip(np.digitize(t_s, edges) - 1, 0, nbins - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    counts = np.bincount(idx, minlength=nbins)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.bar(centres, counts / (edges[1] - edges[0]), width=edges[1] - edges[0], color="tab:green", alpha=0.8)
    summary = data.summary or {}
    if summary.get("rate_hz") is not None:
        ax1.axhline(summary["rate_hz"], color="black", ls="--", lw=1,
                    label=f"mean {summary['rate_hz']:.1f} /s (since the connection was set up)")
        ax1.legend(loc="lower right", fontsize=8)
    ax1.set_ylabel("end-to-end pairs / s")
    ax1.set_title(f"End-to-end pairs {ends[0]}–{ends[1]} over time ({len(rows)} delivered at both ends)")
    # Tomography over the pairs so far: both ends measured the same basis (the name decides it).
    tally = {b: np.zeros((2, 2), np.int64) for b in "XYZ"}
    at, est, err = [], [], []
    for k in range(nbins):
        for _t, ba, oa, bc, oc in (r for r, i in zip(rows, idx) if i == k):
            if ba and ba == bc and oa >= 0 and oc >= 0:
                tally[ba][oa, oc] += 1
        if all(t.sum() for t in tally.values()):
            f = an.bell_fidelity({b: an.correlator(t) for b, t in tally.items()}, BellState.PHI_PLUS)
            at.append(edges[k + 1])
            est.append(f.value)
            err.append(f.stderr)
    if at:
        ax2.errorbar(at, est, yerr=err, fmt="o-", color="tab:blue", ms=4, capsize=3,
                     label="tomography of the sacrificed pairs so far (±1σ)")
    if summary.get("fidelity") is not None:
        fv, fe = summary["fidelity"], summary["fidelity_stderr"]
        ax2.axhspan(fv - fe, fv + fe, color="tab:orange", alpha=0.3,
                    label=f"whole run: {fv:.3f} ± {fe:.3f}")
    ax2.axhline(0.5, color="gray", ls=":", lw=1, label="0.5: no entanglement certified below")
    ax2.set_ylim(0.0, 1.05)
    ax2.set_xlabel("testbed time since the pair request (s, wall clock)")
    ax2.set_ylabel("fidelity to Φ+")
    ax2.legend(loc="lower left", fontsize=8)
    return _save(fig, out / "fidelity_rate.png")


def _processes_link_pairs(data: RunData, out: Path) -> Path | None:
    """Heralded pairs bound at each end of each link over time (cumulative), from the nodes'
    link.pair events: both ends of a link bind the same heralds, so their curves should lie on
    top of each other (the second end drawn thin over the first)."""
    series: dict[tuple[str, str], list[int]] = {}
    for address, node in data.nodes.items():
        for e in node.events_of("link.pair"):
            series.setdefault((str(e.get("link")), address), []).append(int(e["t_ps"]))
    if not series:
        return None
    ends = _chain_ends(data)
    zero = _request_ps(data, ends[0]) if ends else None
    zero = min(min(v) for v in series.values()) if zero is None else zero
    fig, ax = plt.subplots(figsize=(9, 4.5))
    colours = plt.cm.tab10(np.linspace(0, 1, 10))
    links = sorted({link for link, _ in series})
    for (link, address), times in sorted(series.items()):
        t = np.sort((np.array(times, float) - zero) / 1e12)
        side = sorted(a for lk, a in series if lk == link).index(address)
        span = t[-1] - t[0]
        rate = f", {(t.size - 1) / span:.1f} /s" if t.size > 1 and span > 0 else ""
        ax.step(t, np.arange(1, t.size + 1), where="post", color=colours[links.index(link) % 10],
                lw=4.0 if side == 0 else 1.2, alpha=0.35 if side == 0 else 1.0,
                label=f"link {link}, bound at {address}: {t.size} pairs{rate}")
    ax.set_xlabel("testbed time since the pair request (s, wall clock)")
    ax.set_ylabel("heralded pairs bound so far")
    ax.set_ylim(bottom=0)
    ax.set_title("Heralded link pairs at each link end")
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, out / "link_pairs.png")


def _processes_timeline(data: RunData, out: Path) -> Path | None:
    """Every node's events (testbed time) and the runner's process events moved onto that axis."""
    events = [e for node in data.nodes.values() for e in node.events if "node" in e]
    world = data.events_of("process.started")
    offset = next((e.get("testbed_offset_ps") for e in world if e.get("node") == "world"), None)
    if offset is not None:
        events += [{**e, "t_ps": e["t_ps"] + offset} for e in data.events
                   if e.get("event", "").startswith("process.") and "node" in e]
    if not events:
        return None
    ends = _chain_ends(data)
    zero = _request_ps(data, ends[0]) if ends else None
    zero = min(e["t_ps"] for e in events) if zero is None else zero
    nodes = sorted({e["node"] for e in events})
    kinds = sorted({e["event"] for e in events})
    cmap = plt.cm.tab10 if len(kinds) <= 10 else plt.cm.tab20
    colours = cmap(np.arange(len(kinds)) % cmap.N)
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.8 * len(nodes)))
    spread = 0.7 / max(len(kinds), 1)          # each kind on its own sub-row of the node's row
    for k, kind in enumerate(kinds):
        for n, node in enumerate(nodes):
            ts = [(e["t_ps"] - zero) / 1e12 for e in events if e["event"] == kind and e["node"] == node]
            if ts:
                ax.plot(ts, np.full(len(ts), n + (k - (len(kinds) - 1) / 2) * spread), "|", ms=7,
                        color=colours[k], label=kind)
    ax.set_yticks(range(len(nodes)), nodes)
    ax.axvline(0, color="gray", ls=":", lw=1)
    ax.set_xlabel("testbed time since the pair request (s, wall clock)")
    ax.set_title("Events per node process (and the runner's process events)")
    handles, labels = ax.get_legend_handles_labels()
    seen: dict[str, object] = {}
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    ax.legend(seen.values(), seen.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out / "timeline.png")
