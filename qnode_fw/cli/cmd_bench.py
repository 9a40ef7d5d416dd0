"""``qnode bench [NAME...] [--json] [--quick]``: run the benchmarks in bench/ and print every
figure beside its same-run baseline, the ratio, its fixed references and its target."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bench", help="run benchmarks (bench/bench_*.py); figures with same-run baselines",
        description="Run each benchmark in its own process and print its figures with the "
                    "baseline measured in the same run and their ratio. NAME is the part after "
                    "bench_ (tags, herald, ...); none means all.")
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (schema qnode-bench/1) to stdout")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a smoke test of every path, not a measurement")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--bench-dir", help="folder with bench_*.py (default: the checkout's bench/)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds one benchmark may take before it is stopped (default 300)")
    parser.add_argument("--profile", metavar="DIR",
                        help="run each benchmark under pyinstrument, write DIR/NAME.txt")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON document to FILE")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the figures as Markdown tables to FILE (for docs/performance.md)")
    parser.set_defaults(func=handler)


def handler(args) -> int:
    from qnode_fw.benchmarks import harness, report

    available = harness.discover(harness.find_bench_dir(args.bench_dir))
    selected = harness.select(available, args.names)
    if args.list:
        for name, path in selected.items():
            print(f"{name:12s} {path}")
        return 0

    def progress(run: harness.BenchRun) -> None:
        if args.json:
            print(f"bench {run.name}: {run.status} in {run.wall_s:.1f} s", file=sys.stderr)
        else:
            for line in report.format_bench(run.to_json(relative_to=run.module.parent.parent)):
                print(line, flush=True)

    if not args.json:
        print("\n".join(report.format_header({"machine": harness.machine_info(), "quick": args.quick,
                                              "profiled": args.profile is not None})), flush=True)
    doc = harness.run_all(selected, quick=args.quick, timeout_s=args.timeout,
                          profile_dir=Path(args.profile) if args.profile else None, on_done=progress)
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(report.format_markdown(doc)) + "\n")
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(report.format_summary(doc)))
    return 0 if all(r["status"] == "ok" for r in doc["benches"]) else 1
