"""``qnode testbed TESTBED.yaml``: run every node of a testbed.

By default all nodes run in this process on one virtual clock: the nodes start, bring up their
control links, exchange heartbeats for ``--duration`` simulated seconds, and the topology and
per-node status are printed. Exit 0 when every node started and every control link came up,
1 otherwise.

With ``--experiment EXP.yaml`` the testbed runs that experiment (``--duration`` then overrides the
experiment's ``duration_s``) and writes its run record under ``--out`` (default ``runs/``); at a
terminal a progress bar and a status table show the run, ``--json`` prints exactly one summary
object instead, ``--metrics-port`` serves Prometheus metrics while it runs. Exit 0 when the run
completed with no wrong pair and no leaked qubit, 1 otherwise.

``--fault drop=0.05,dup=0.01,reorder=0.01`` injects message faults into the control and herald
links (``control.drop=...`` or ``herald.dup=...`` for one plane; ``delay_us``, ``reorder_us``,
``seed``), over the experiment YAML's ``faults:`` section (docs/faults.md). What was injected is in
the run record and in summary.json under ``faults``.

With ``--processes`` every node runs as its own OS process (``qnode run``, the lab's deployment
path) over ZeroMQ on loopback on the wall clock, the simulated physics in a World server process
(:mod:`qnode_fw.testbed.processes`); ``--duration`` is then wall-clock seconds and the summary
has the same fields. ``--netns`` (as root) puts each node in its own network namespace, joined by
veth pairs on a bridge, with netem delays equal to the fibre delays (:mod:`qnode_fw.testbed.netns`).
"""

from __future__ import annotations

import argparse
import json
import time

from qnode_fw.config import load_testbed
from qnode_fw.testbed.render import status_lines, topology_lines
from qnode_fw.testbed.virtual import VirtualTestbed
from qnode_fw.units import S


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("testbed", help="run every node of a testbed (virtual clock by default)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("testbed", metavar="TESTBED.yaml")
    p.add_argument("--seed", type=int, help="seed (default: the testbed's)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="simulated seconds to run (default 1, or the experiment's duration_s)")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.add_argument("--experiment", metavar="EXP.yaml", help="run this experiment on the testbed")
    p.add_argument("--out", metavar="DIR", default="runs",
                   help="directory for the experiment's run record (default runs/)")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on 127.0.0.1:PORT while the experiment runs")
    p.add_argument("--processes", action="store_true",
                   help="one OS process per node over ZeroMQ on loopback, wall clock")
    p.add_argument("--fault", metavar="KEY=VALUE,...",
                   help="message faults, e.g. drop=0.05,dup=0.01,reorder=0.01 (over the "
                        "experiment's faults:)")
    p.add_argument("--netns", action="store_true",
                   help="with --processes, as root: each node in its own network namespace, "
                        "netem delay = fibre delay between nodes sharing fibre")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if args.processes or args.netns:
        from qnode_fw.testbed.processes import run_processes_command

        return run_processes_command(args)
    if args.experiment is not None:
        return run_experiment_command(args)
    if args.fault is not None:
        from qnode_fw.errors import ConfigError

        raise ConfigError("faults are injected into an experiment run", field="--fault",
                          expected="--experiment EXP.yaml with --fault")
    if args.duration is None:
        args.duration = 1.0
    loaded = load_testbed(args.testbed)
    wall0 = time.perf_counter()
    tb = VirtualTestbed(loaded, seed=args.seed)
    if not args.json:
        print("\n".join(topology_lines(loaded.config)), flush=True)
    tb.start()
    try:
        tb.run_for(int(args.duration * S))
        statuses = tb.status()
        ok = tb.all_peers_up()
    finally:
        tb.stop()
    wall = time.perf_counter() - wall0
    if args.json:
        print(json.dumps({"testbed": loaded.config.name, "seed": tb.seed, "ok": ok,
                          "sim_time_s": tb.now_ps() / S, "wall_time_s": round(wall, 3),
                          "events": tb.loop.events_processed,
                          "nodes": {a: s.to_dict() for a, s in statuses.items()}}))
    else:
        print(f"after {args.duration:g} s simulated ({tb.loop.events_processed} events, "
              f"{wall:.2f} s wall):")
        print("\n".join(status_lines(statuses)))
        print("all control links up" if ok else "some control links are down")
    return 0 if ok else 1


def run_experiment_command(args: argparse.Namespace) -> int:
    """``--experiment``: run it, print the summary (or the JSON object), exit 0 if clean."""
    import sys

    from qnode_fw.experiments import SUMMARY_FIELDS, RunOptions, run_experiment
    from qnode_fw.experiments.summary_text import summary_lines
    from qnode_fw.metrics import TestbedMetrics

    metrics = TestbedMetrics(args.metrics_port) if args.metrics_port is not None else None
    live = None
    if sys.stdout.isatty() and not args.json:
        from qnode_fw.experiments.live import LiveView

        live = LiveView(f"{args.experiment}")
    options = RunOptions(seed=args.seed, duration_s=args.duration, out_dir=args.out,
                         on_progress=live.update if live is not None else None,
                         on_slice=metrics.update if metrics is not None else None, argv=sys.argv,
                         fault=args.fault)
    try:
        if live is not None:
            with live:
                result = run_experiment(args.experiment, args.testbed, options)
        else:
            result = run_experiment(args.experiment, args.testbed, options)
    finally:
        if metrics is not None:
            metrics.close()
    summary = result.summary.to_dict()
    if args.json:
        print(json.dumps({k: summary[k] for k in SUMMARY_FIELDS}))
    else:
        print("\n".join(summary_lines({**summary, "kind": result.experiment.kind,
                                       "details": result.results.details})))
        if result.faults is not None:
            print("\n".join(fault_lines(result.faults)))
        if result.stop_reason is not None:
            print(f"  stopped early: {result.stop_reason}")
    clean = (not summary.get("wrong_pairs") and not summary.get("leaked_qubits")
             and result.stop_reason is None)
    return 0 if clean else 1


def fault_lines(faults: dict) -> list[str]:
    """The summary's ``faults`` section in a few lines."""
    lines = []
    for plane in ("control", "herald"):
        st = faults.get(plane) or {}
        if st.get("messages"):
            lines.append(f"  {plane} faults: {st['messages']} messages, {st['dropped']} dropped, "
                         f"{st['duplicated']} duplicated, {st['reordered']} reordered, "
                         f"{st['delayed']} delayed")
    for e in faults.get("events", []):
        lines.append(f"  fault at {e['t_ps'] / 1e9:.3f} ms: {e['kind']} {e['target']} ({e['detail']})")
    for c in faults.get("clock_faults", []):
        lines.append(f"  clock {c['kind']} seen at {c['t_ps'] / 1e9:.3f} ms by {c['node']} on {c['link']}: "
                     f"{c['size']:+.3f} +- {c['uncertainty']:.3f} {c['unit']} (station {c['station']} "
                     f"minus {c['node']}; tolerance {c['limit']:g} {c['unit']})")
    for f in faults.get("instrument_failures", []):
        back = (f"; back {f['recoveries']}x after {f['downtime_us'] / 1e3:.1f} ms down, "
                f"{f['retries']} retries" if f.get("recoveries") else "")
        lines.append(f"  instrument {f['instrument']} failed ({f['count']}x): {f['message']}{back}")
    return lines
