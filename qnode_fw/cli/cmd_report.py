"""``qnode report RUN_DIR``: the summary of a run record and its plots.

Prints the summary (also of a run that was killed: the last summary it wrote, with its status),
writes the PTU export of the tag data if the run ended before writing it, and writes PNG plots
(coincidence histogram, CHSH correlations, fidelity and rate over time, temperature scan,
detector delays, per-node event timelines: each where the record has the data) into
``RUN_DIR/plots`` or ``--out``. A processes-mode run (``qnode testbed --processes``) reads every
node process's record under ``nodes/<address>/`` too: how each ended and its herald-link clock
sync are printed, its tag data exported to PTU, and its plots are pairs and tomography over time,
link pairs per end and the timeline of every node's events (:mod:`qnode_fw.records.plots`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="summary and plots of a run record",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a runs/<time>-<name> directory")
    p.add_argument("--out", metavar="DIR", help="where the PNG plots go (default RUN_DIR/plots)")
    p.add_argument("--json", action="store_true", help="print the summary and plot paths as JSON")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from qnode_fw.experiments.summary_text import summary_lines
    from qnode_fw.records import export_missing_ptu, load_run
    from qnode_fw.records.plots import write_plots

    data = load_run(args.run_dir)
    exported = export_missing_ptu(data)
    plots = write_plots(data, Path(args.out) if args.out else data.root / "plots")
    summary = data.summary or {"experiment": data.config.get("experiment", {}).get("name"),
                               "status": "no summary written"}
    if args.json:
        print(json.dumps({"summary": summary, "plots": [str(p) for p in plots],
                          "nodes": {a: n.summary for a, n in data.nodes.items()},
                          "ptu_exported": [str(p) for p in exported], "events": len(data.events),
                          "torn_lines": data.torn_lines}))
        return 0
    print("\n".join(summary_lines(summary)))
    print("\n".join(node_record_lines(data)))
    if data.torn_lines:
        print(f"  (the event log's last line was cut short by the end of the run: dropped)")
    for p in exported:
        print(f"  exported         {p}")
    for p in plots:
        print(f"  plot             {p}")
    return 0


def node_record_lines(data) -> list[str]:
    """Processes mode: how each node process ended and its clock sync, from its own record."""
    lines = []
    for address, node in data.nodes.items():
        st = node.summary or {}
        what = [str(st.get("status", "no summary"))]
        if st.get("shutdown"):
            what.append(f"({st['shutdown']})")
        if st.get("halves"):
            what.append(f"{st['halves']} halves")
        lines.append(f"  node {address:<11} " + " ".join(what))
        for link, s in ((st.get("clock_sync") or {}).get("links") or {}).items():
            if s.get("offset_us") is not None:
                lines.append(f"    clock sync {link} to {s['station']}: offset {s['offset_us']:+.1f} "
                             f"+- {s['uncertainty_us']:.1f} us, one-way {s['delay_us']:.1f} us, "
                             f"{s['exchanges']} exchanges, {len(s.get('faults') or [])} clock fault(s)")
    return lines
