"""A run's summary as text for people (``qnode testbed --experiment`` and ``qnode report``)."""

from __future__ import annotations

from typing import Any


def _pm(value: float | None, err: float | None, digits: int = 4) -> str | None:
    if value is None:
        return None
    return f"{value:.{digits}f}" + (f" +- {err:.{digits}f}" if err is not None else "")


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The summary fields that were measured, then the experiment's headline details."""
    lines = [f"experiment {s.get('experiment')}" + (f" ({s['kind']})" if s.get("kind") else "")
             + (f": {s['status']}" if s.get("status") not in (None, "complete") else "")]
    if s.get("status") == "failed":
        lines.append(f"  error: {s.get('error')}")
    # Processes mode runs on the wall clock: its "simulated" time is wall time.
    clock = "wall clock" if s.get("mode") == "processes" else "simulated"
    rows = [
        ("pairs delivered", s.get("pairs_delivered")),
        ("rate", None if s.get("rate_hz") is None else f"{s['rate_hz']:.1f} /s ({clock})"),
        ("fidelity", _pm(s.get("fidelity"), s.get("fidelity_stderr"))),
        ("CHSH S", _pm(s.get("chsh_s"), s.get("chsh_s_stderr"))),
        ("wrong pairs", s.get("wrong_pairs")),
        ("leaked qubits", s.get("leaked_qubits")),
    ]
    for label, value in rows:
        if value is not None:
            lines.append(f"  {label:<16} {value}")
    if s.get("sim_time_s") is not None:
        lines.append(f"  {'time':<16} {s['sim_time_s']:.4g} s {'run' if clock == 'wall clock' else 'simulated'}, "
                     f"{s.get('wall_time_s', 0):.1f} s wall, "
                     f"{s.get('events', 0)} events")
    d = s.get("details") or {}
    exp = d.get("expected")
    if exp:
        lines.append("  expected         " + ", ".join(f"{k} {v:.4f}" for k, v in exp.items()))
    if "car" in d:
        lines.append(f"  {'CAR':<16} {_pm(d['car']['value'], d['car']['stderr'], 1)}")
    if "fidelity_exact_mean" in d:
        lines.append(f"  {'exact fidelity':<16} {_pm(d['fidelity_exact_mean'], d.get('fidelity_exact_sem'))}"
                     " (simulator cross-check)")
    if "plan" in d:
        p = d["plan"]
        lines.append(f"  {'plan':<16} path {'-'.join(p['path'])}, {p['purification_rounds']} purification "
                     f"round(s), F {p['fidelity']:.4f}, {p['rate']:.0f} pairs/s")
    for name, link in (d.get("links") or {}).items():
        sp = link.get("success_probability")
        closed = ("1/2 eta_a eta_b" if link.get("scheme", "both_endpoints") == "both_endpoints"
                  else f"{link['scheme']} closed form")
        lines.append(f"  link {name:<11} {link['heralds']} heralds / {link['joint_attempts']} joint attempts"
                     + (f" = {sp:.4f}" if sp is not None else "")
                     + f" ({closed} = {link['success_probability_expected']:.4f})"
                     + (f", {link['false_heralds']} false" if link.get("false_heralds") else ""))
    for node, t in (d.get("transceivers") or {}).items():
        problems = t.get("switch_log_problems")
        lines.append(f"  {'transceiver ' + node:<16} {t['policy']} over {', '.join(t['order'])}"
                     + (f", buffers {t['buffered']}" if t.get("buffered") else "")
                     + f": {t['commands']} switch commands, {t['attempt_windows']} attempts"
                     + ("" if problems is None else
                        ", switch log clean" if not problems else f", {len(problems)} switch log problem(s)"))
    scan = d.get("temperature_scan")
    if scan:
        lines.append(f"  {'crystal peak':<16} {_pm(scan['peak_c']['value'], scan['peak_c']['stderr'], 3)} C "
                     f"(FWHM {scan['fwhm_c']['value']:.2f} C, {scan['points']} points)")
    delays = d.get("delay_calibration")
    if delays:
        for ch, pk in delays["peaks"].items():
            lines.append(f"  {'tagger ch ' + str(ch):<16} clicks {pk['offset_ps']:.1f} +- {pk['stderr_ps']:.1f} ps "
                         f"after the marker -> input delay {delays['new_delays_ps'].get(int(ch), delays['new_delays_ps'].get(str(ch)))} ps")
    for node, files in (d.get("calibration_files") or {}).items():
        for f in files:
            lines.append(f"  calibration      {node}: {f}")
    if s.get("run_dir"):
        lines.append(f"  {'run record':<16} {s['run_dir']}")
    return lines
