"""The soak run (``make soak``, ``qnode soak``): the 3-node repeater chain in processes mode under
message faults for a long stretch of wall time, watching for what only time shows - a wrong pair,
a qubit that is never given back, memory that keeps growing.

By default: ``configs/testbeds/chain-3node-processes.yaml`` with
``configs/experiments/chain3-swap-processes.yaml``, every control and herald message dropped with
probability 5 %, duplicated with 1 % and reordered with 1 % (``drop=0.05,dup=0.01,reorder=0.01``),
for 10 minutes (``--minutes`` for a short smoke). While it runs, the resident set size of every
node process and of the World server is sampled (``/proc/<pid>/status``, ``VmRSS``) and the
pairs the initiator has logged so far are counted from its record; both are printed once a
minute and kept in the run record (``soak.sample`` events). At the end it prints the run's
pairs delivered, wrong pairs and leaked qubits, and per process the memory growth per minute:
the least-squares slope of RSS over wall time after a warm-up (the first ``warmup_s``: imports,
JIT compilation and caches filling are not growth).

Passes (exit 0) when every node ran to the end, and wrong pairs and leaked qubits are both 0.
Memory growth is reported, not judged: what is acceptable depends on how long a node must run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import load_testbed
from ..errors import ConfigError
from ..records.atomic import atomic_write_json

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TESTBED = ROOT / "configs" / "testbeds" / "chain-3node-processes.yaml"
DEFAULT_EXPERIMENT = ROOT / "configs" / "experiments" / "chain3-swap-processes.yaml"
DEFAULT_FAULT = "drop=0.05,dup=0.01,reorder=0.01"


@dataclass(frozen=True)
class SoakSettings:
    minutes: float = 10.0
    fault: str = DEFAULT_FAULT
    sample_every_s: float = 5.0
    warmup_s: float = 30.0
    testbed: Path = DEFAULT_TESTBED
    experiment: Path = DEFAULT_EXPERIMENT
    out_dir: Path = Path("runs")
    seed: int | None = None


@dataclass
class MemoryTrend:
    """RSS of one process over the run."""

    process: str
    t_s: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)

    def growth_mib_per_min(self, warmup_s: float) -> float | None:
        """Least-squares slope after the warm-up (all samples if the run was shorter)."""
        t = np.array(self.t_s)
        rss = np.array(self.rss_mib)
        keep = t >= warmup_s
        if keep.sum() >= 3:
            t, rss = t[keep], rss[keep]
        if len(t) < 3 or t[-1] - t[0] <= 0:
            return None
        slope = np.polyfit(t, rss, 1)[0]
        return float(slope * 60.0)

    def to_dict(self, warmup_s: float) -> dict[str, Any]:
        return {"first_mib": self.rss_mib[0] if self.rss_mib else None,
                "last_mib": self.rss_mib[-1] if self.rss_mib else None,
                "peak_mib": max(self.rss_mib) if self.rss_mib else None,
                "samples": len(self.rss_mib),
                "growth_mib_per_min": self.growth_mib_per_min(warmup_s)}


@dataclass
class SoakResult:
    run_dir: Path
    minutes: float
    fault: str
    summary: dict[str, Any]
    failures: list[str]
    memory: dict[str, dict[str, Any]]
    faults: dict[str, Any] | None

    @property
    def ok(self) -> bool:
        return (not self.failures and self.summary.get("wrong_pairs") == 0
                and self.summary.get("leaked_qubits") == 0)

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {"ok": self.ok, "run_dir": str(self.run_dir), "minutes": self.minutes,
                "fault": self.fault, "pairs_delivered": s.get("pairs_delivered"),
                "rate_hz": s.get("rate_hz"), "fidelity": s.get("fidelity"),
                "fidelity_stderr": s.get("fidelity_stderr"), "wrong_pairs": s.get("wrong_pairs"),
                "leaked_qubits": s.get("leaked_qubits"), "failures": self.failures,
                "memory": self.memory,
                "message_faults": {p: (self.faults or {}).get(p) for p in ("control", "herald")}}


def rss_mib(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def run_soak(settings: SoakSettings, say: Callable[[str], None] = print) -> SoakResult:
    from ..testbed.node_experiment import read_halves
    from ..testbed.processes import ProcessesTestbed

    if settings.minutes <= 0:
        raise ConfigError(f"soak length must be positive, got {settings.minutes}", field="--minutes",
                          expected="minutes > 0")
    tb = ProcessesTestbed(load_testbed(settings.testbed), out_dir=settings.out_dir, seed=settings.seed,
                          experiment=settings.experiment, fault=settings.fault)
    initiator = tb.experiment.params.initiator
    trends: dict[str, MemoryTrend] = {}
    say(f"soak: {len(tb.config.nodes)} node processes + World server, faults {settings.fault}, "
        f"{settings.minutes:g} min; record {tb.record.root}")
    try:
        tb.start()
        processes = {**{a: p.pid for a, p in tb.nodes.items()}, "world": tb.world.pid}
        trends = {name: MemoryTrend(name) for name in processes}
        t0 = time.monotonic()
        end = t0 + settings.minutes * 60.0
        next_sample = t0
        next_report = t0 + 60.0
        while time.monotonic() < end:
            if len(tb.alive()) < len(tb.nodes):
                say("soak: a node process ended early")
                break
            now = time.monotonic()
            if now >= next_sample:
                sample = {}
                for name, pid in processes.items():
                    rss = rss_mib(pid)
                    if rss is not None:
                        trends[name].t_s.append(now - t0)
                        trends[name].rss_mib.append(rss)
                        sample[name] = round(rss, 2)
                tb._event("soak.sample", t_s=round(now - t0, 2), rss_mib=sample)
                next_sample += settings.sample_every_s
            if now >= next_report:
                halves = len(read_halves(tb.record.root, initiator))
                rss = ", ".join(f"{n} {t.rss_mib[-1]:.0f}" for n, t in trends.items() if t.rss_mib)
                say(f"soak: {(now - t0) / 60:.0f} min, {halves} halves logged at {initiator}; "
                    f"RSS MiB: {rss}")
                next_report += 60.0
            time.sleep(min(0.5, max(0.05, min(next_sample, end) - time.monotonic())))
    finally:
        result = tb.stop()
    summary = result.summary or {}
    memory = {name: t.to_dict(settings.warmup_s) for name, t in trends.items()}
    soak = SoakResult(result.run_dir, settings.minutes, settings.fault, summary, result.failures,
                      memory, summary.get("faults"))
    saved = json.loads((result.run_dir / "summary.json").read_text())
    saved["soak"] = soak.to_dict()
    atomic_write_json(result.run_dir / "summary.json", saved)
    return soak


def soak_lines(soak: SoakResult) -> list[str]:
    s = soak.summary
    lines = [f"soak of {soak.minutes:g} min, faults {soak.fault}: {'PASS' if soak.ok else 'FAIL'}",
             f"  pairs delivered  {s.get('pairs_delivered')}"
             + (f" ({s['rate_hz']:.2f} /s)" if s.get("rate_hz") else ""),
             f"  wrong pairs      {s.get('wrong_pairs')}  (must be 0)",
             f"  leaked qubits    {s.get('leaked_qubits')}  (must be 0)"]
    if s.get("fidelity") is not None:
        lines.append(f"  fidelity         {s['fidelity']:.3f} +- {s['fidelity_stderr']:.3f}")
    for plane in ("control", "herald"):
        st = (soak.faults or {}).get(plane) or {}
        if st.get("messages"):
            lines.append(f"  {plane:<8} faults  {st['messages']} messages: {st['dropped']} dropped, "
                         f"{st['duplicated']} duplicated, {st['reordered']} reordered")
    lines.append("  memory (RSS)     first -> last MiB, growth per minute after the warm-up")
    for name, m in soak.memory.items():
        g = m["growth_mib_per_min"]
        lines.append(f"    {name:<8} {m['first_mib'] or 0:7.1f} -> {m['last_mib'] or 0:7.1f}   "
                     + (f"{g:+.3f} MiB/min" if g is not None else "n/a"))
    for failure in soak.failures:
        lines.append(f"  {failure}")
    lines.append(f"  run record       {soak.run_dir}")
    return lines


__all__ = ["DEFAULT_FAULT", "MemoryTrend", "SoakResult", "SoakSettings", "rss_mib", "run_soak",
           "soak_lines"]
