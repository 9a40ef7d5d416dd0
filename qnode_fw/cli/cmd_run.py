"""``qnode run NODE.yaml --testbed TESTBED.yaml``: run one node on this PC, as in the lab.

The node joins its testbed over ZeroMQ (CurveZMQ when the testbed lists keys), on the wall clock,
until SIGINT/SIGTERM or ``--duration``. It stops its components in reverse order on the way out.
``--status-every S`` prints the node's status line every S seconds.

``--world ENDPOINT`` puts the node's simulated instruments (``model: sim``) in the World server at
ENDPOINT (``python -m sim_backend.world_server``; ``qnode testbed --processes`` starts one), shared
with the testbed's other nodes, so a memory link's photons from two node processes meet at one
BSA. ``--stop-on-peer-down`` stops the node (exit 1) when a peer that was up goes down without
saying goodbye; the shutdown reason names the peer.
"""

from __future__ import annotations

import argparse
import json

from qnode_fw.config import load_testbed
from qnode_fw.testbed.lab import LabNode, node_address_of
from qnode_fw.testbed.render import status_lines


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run one node on this PC and join its testbed",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("node", metavar="NODE.yaml", help="this node's configuration")
    p.add_argument("--testbed", required=True, metavar="TESTBED.yaml",
                   help="the testbed the node belongs to (peers, endpoints, keys)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S wall-clock seconds")
    p.add_argument("--seed", type=int, help="seed of the node's random streams (simulated parts)")
    p.add_argument("--status-every", type=float, metavar="S", help="print status every S seconds")
    p.add_argument("--json", action="store_true", help="print the final status as JSON")
    p.add_argument("--world", metavar="ENDPOINT",
                   help="the World server holding the simulated instruments (processes mode)")
    p.add_argument("--stop-on-peer-down", action="store_true",
                   help="stop when a peer that was up fails (crash, kill, lost network)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    address = node_address_of(args.node)
    lab = LabNode(load_testbed(args.testbed), address, seed=args.seed, world=args.world)

    def tick(node) -> None:
        for line in status_lines({node.address: node.status()}):
            print(line, flush=True)

    lab.run(args.duration, args.status_every, tick if args.status_every else None,
            stop_on_peer_down=args.stop_on_peer_down)
    status = lab.final_status or lab.node.status()
    if args.json:
        print(json.dumps({**status.to_dict(), "shutdown": lab.shutdown_reason}))
    else:
        print(f"node {address} stopped ({lab.shutdown_reason})")
    return 0 if lab.peer_failure is None else 1
