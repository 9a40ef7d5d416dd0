"""``qnode testbed TESTBED.yaml``: run every node of a testbed.

By default all nodes run in this process on one virtual clock: the nodes start, bring up their
control links, exchange heartbeats for ``--duration`` simulated seconds, and the topology and
per-node status are printed. Exit 0 when every node started and every control link came up,
1 otherwise.
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
    p.add_argument("--duration", type=float, default=1.0, metavar="S",
                   help="simulated seconds to run (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
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
