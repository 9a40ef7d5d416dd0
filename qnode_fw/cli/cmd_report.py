"""``qnode report RUN_DIR``: the summary of a run record and its plots.

Prints the summary (also of a run that was killed: the last summary it wrote, with its status),
writes the PTU export of the tag data if the run ended before writing it, and writes PNG plots
(coincidence histogram, CHSH correlations, fidelity and rate over time, temperature scan,
detector delays, per-node event timelines: each where the record has the data) into
``RUN_DIR/plots`` or ``--out``.
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
                          "ptu_exported": [str(p) for p in exported], "events": len(data.events),
                          "torn_lines": data.torn_lines}))
        return 0
    print("\n".join(summary_lines(summary)))
    if data.torn_lines:
        print(f"  (the event log's last line was cut short by the end of the run: dropped)")
    for p in exported:
        print(f"  exported         {p}")
    for p in plots:
        print(f"  plot             {p}")
    return 0
