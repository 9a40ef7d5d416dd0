"""``qnode hil BENCH.yaml``: run a bench's hardware-in-the-loop checks, level by level.

Exit codes: 0 every check that ran passed, 1 a check failed, 2 a bad bench or calibration file.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "hil", help="run a bench's hardware-in-the-loop checks (identify, conformance, wiring, calibration)",
        description="Identify every instrument of BENCH.yaml, run the driver interfaces' conformance checks "
                    "and the wiring checks up to --max-level, print a report, and with --report write it "
                    "with a calibration YAML of the measured delays. Levels: 0 read only, 1 settings, "
                    "2 switching and outputs, 3 emits light, heats or moves.")
    parser.add_argument("bench", help="the bench file (configs/benches/*.yaml)")
    parser.add_argument("--max-level", type=int, choices=range(4), default=3, metavar="N",
                        help="run checks up to level N (0-3; default 3)")
    parser.add_argument("--dry-run", action="store_true",
                        help="list every call each check would make; open and send nothing")
    parser.add_argument("--report", metavar="DIR",
                        help="write report.json, report.md and calibration.yaml into DIR")
    parser.add_argument("--calibration", metavar="FILE",
                        help="apply this calibration YAML (a previous run's) instead of the bench file's")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from qnode_fw.hil.bench import load_bench
    from qnode_fw.hil.report import write_report
    from qnode_fw.hil.runner import BenchRun

    bench = load_bench(args.bench)
    with BenchRun(bench, max_level=args.max_level, dry_run=args.dry_run, calibration=args.calibration) as run:
        report = run.run_all()
    print(report.render_text())
    if args.report:
        for what, path in write_report(report, args.report).items():
            print(f"{what}: {path}")
    return 0 if report.passed else 1
