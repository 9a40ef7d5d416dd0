"""``qnode soak``: the 3-node repeater chain in processes mode under message faults for a long
stretch of wall time (``make soak``: 10 minutes, 5 % loss, 1 % duplication and reordering).

Prints pairs delivered, wrong pairs (must be 0), leaked qubits (must be 0) and the memory growth
per minute of every node process and of the World server (least-squares slope of the resident
set size after a warm-up). Exit 0 when every node ran to the end with no wrong pair and no leaked
qubit. See :mod:`qnode_fw.faults.soak`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qnode_fw.faults.soak import (DEFAULT_EXPERIMENT, DEFAULT_FAULT, DEFAULT_TESTBED, SoakSettings,
                                  run_soak, soak_lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("soak", help="long processes-mode run under message faults",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock minutes (default 10)")
    p.add_argument("--fault", default=DEFAULT_FAULT, metavar="KEY=VALUE,...",
                   help=f"message faults (default {DEFAULT_FAULT})")
    p.add_argument("--testbed", type=Path, default=DEFAULT_TESTBED, metavar="TESTBED.yaml")
    p.add_argument("--experiment", type=Path, default=DEFAULT_EXPERIMENT, metavar="EXP.yaml")
    p.add_argument("--out", type=Path, default=Path("runs"), metavar="DIR",
                   help="directory for the run record (default runs/)")
    p.add_argument("--seed", type=int, help="seed (default: the experiment's)")
    p.add_argument("--sample-every", type=float, default=5.0, metavar="S",
                   help="seconds between RSS samples (default 5)")
    p.add_argument("--warmup", type=float, default=30.0, metavar="S",
                   help="seconds of start-up left out of the memory growth (default 30)")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    settings = SoakSettings(minutes=args.minutes, fault=args.fault, sample_every_s=args.sample_every,
                            warmup_s=args.warmup, testbed=args.testbed, experiment=args.experiment,
                            out_dir=args.out, seed=args.seed)
    soak = run_soak(settings, say=(lambda _line: None) if args.json
                    else (lambda line: print(line, flush=True)))
    if args.json:
        print(json.dumps(soak.to_dict()))
    else:
        print("\n".join(soak_lines(soak)))
    return 0 if soak.ok else 1
