"""``qnode run NODE.yaml --testbed TESTBED.yaml``: run one node on this PC, as in the lab.

The node joins its testbed over ZeroMQ (CurveZMQ when the testbed lists keys), on the wall clock,
until SIGINT/SIGTERM or ``--duration``. It stops its components in reverse order on the way out.
``--status-every S`` prints the node's status line every S seconds.

``--world ENDPOINT`` puts the node's simulated instruments (``model: sim``) in the World server at
ENDPOINT (``python -m sim_backend.world_server``; ``qnode testbed --processes`` starts one), shared
with the testbed's other nodes, so a memory link's photons from two node processes meet at one
BSA. ``--stop-on-peer-down`` stops the node (exit 1) when a peer that was up goes down without
saying goodbye; the shutdown reason names the peer. An experiment with ``on_peer_failure:
continue`` overrides it: the node names the dead peer in its record and runs on.

``--experiment EXP.yaml`` runs this node's part of the experiment (:mod:`qnode_fw.testbed.
node_experiment`; for a repeater chain: its memory links, and at the ends the application) and,
with ``--out DIR``, writes the node's run record to ``DIR/nodes/<address>/`` (flushed at every
status tick; a process of the same node started again in that run, after a crash, writes
``DIR/nodes/<address>.restart1/`` and so on). The node's figures are in the ``experiment`` field of ``--json``. ``--fault
drop=0.05,...`` injects this node's share of message faults over the experiment's ``faults:``
(docs/faults.md); a failed instrument stops the node (exit 1) or not, as the experiment's
``on_instrument_failure`` says. The node's herald links run clock sync with each link's station
(:mod:`qnode_fw.testbed.herald_sync`): offset and uncertainty are in the status lines and in
``clock_sync`` of ``--json``.

``--metrics-port PORT`` serves the node's Prometheus metrics on ``--metrics-addr`` (default
127.0.0.1) while it runs (:mod:`qnode_fw.metrics`), refreshed every status tick (every second
without ``--status-every``). With ``--json`` every status tick also prints one line ``status
{...}`` (the node's status as JSON), which ``qnode testbed --processes`` reads for its live view.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qnode_fw.config import load_testbed
from qnode_fw.control import LinkSettings
from qnode_fw.testbed.lab import STATUS_PREFIX, LabNode, node_address_of
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
    p.add_argument("--missed-heartbeats", type=int, default=3, metavar="N",
                   help="a peer silent for N heartbeat intervals (100 ms) is down (default 3)")
    p.add_argument("--experiment", metavar="EXP.yaml", help="run this node's part of an experiment")
    p.add_argument("--out", metavar="DIR", help="write the node's run record under DIR/nodes/<address>")
    p.add_argument("--fault", metavar="KEY=VALUE,...",
                   help="with --experiment: message faults over the experiment's faults:")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve the node's Prometheus metrics on PORT while it runs")
    p.add_argument("--metrics-addr", default="127.0.0.1", metavar="ADDR",
                   help="address the metrics server binds (default 127.0.0.1; 0.0.0.0 for a "
                        "Prometheus on another host)")
    p.set_defaults(func=handle)


def status_dict(lab) -> dict:
    """The node's status with its clock sync and its experiment role's, as ``--json`` prints it."""
    from qnode_fw.testbed.herald_sync import clock_sync_of

    st = (lab.final_status or lab.node.status()).to_dict()
    sync = clock_sync_of(lab)
    st["clock_sync"] = sync.to_dict() if sync is not None else None
    st["events"] = lab.loop.events_processed
    if lab.role is not None:
        st["role_status"] = lab.role.status()
    return st


def handle(args: argparse.Namespace) -> int:
    address = node_address_of(args.node)
    settings = LinkSettings(missed_heartbeats=args.missed_heartbeats)
    lab = LabNode(load_testbed(args.testbed), address, seed=args.seed, world=args.world,
                  settings=settings)
    role, record = None, None
    stop_on_peer_down = args.stop_on_peer_down
    if args.fault is not None and args.experiment is None:
        from qnode_fw.errors import ConfigError

        raise ConfigError("faults are injected into an experiment run", field="--fault",
                          expected="--experiment EXP.yaml with --fault")
    if args.experiment is not None:
        import qnode_fw.experiments  # noqa: F401  (registers the experiment kinds)
        from qnode_fw.config.experiment import load_experiment
        from qnode_fw.records import RunRecord
        from qnode_fw.testbed.node_experiment import next_record_dir, node_role

        experiment = load_experiment(args.experiment)
        if experiment.config.on_peer_failure == "continue":
            stop_on_peer_down = False       # the role names the dead peer and runs on
        if args.out is not None:
            record = RunRecord(next_record_dir(Path(args.out), address))
            record.write_config({"node": address, "testbed": str(Path(args.testbed).resolve()),
                                 "experiment": str(Path(args.experiment).resolve()),
                                 "seed": lab.seed, "world": args.world})
            record.write_summary({"status": "running", "node": address})
        role = lambda lab_node: node_role(lab_node, experiment, record, args.fault)   # noqa: E731

    metrics = None
    if args.metrics_port is not None:
        from qnode_fw.metrics import TestbedMetrics

        metrics = TestbedMetrics(args.metrics_port, addr=args.metrics_addr)

    def tick(node) -> None:
        if args.status_every:
            from qnode_fw.testbed.herald_sync import clock_sync_of, sync_lines

            lines = status_lines({node.address: node.status()})
            sync = clock_sync_of(lab)
            if sync is not None:
                lines += sync_lines(sync)
            if args.json:
                lines.append(STATUS_PREFIX + json.dumps(status_dict(lab)))
            print("\n".join(lines), flush=True)
        if lab.role is not None and hasattr(lab.role, "flush"):
            lab.role.flush()
        if metrics is not None:
            metrics.update_node_process(lab)

    every = args.status_every or (1.0 if metrics is not None else None)
    try:
        lab.run(args.duration, every, tick if every else None,
                stop_on_peer_down=stop_on_peer_down, role=role)
    finally:
        if metrics is not None:
            metrics.close()
        if record is not None:
            record.write_summary({"status": "stopped", "node": address,
                                  "shutdown": lab.shutdown_reason, **(lab.role_result or {}),
                                  "clock_sync": status_dict(lab)["clock_sync"]})
            record.close(export_ptu=False)
    if args.json:
        print(json.dumps({**status_dict(lab), "shutdown": lab.shutdown_reason,
                          **({"experiment": lab.role_result} if role is not None else {})}))
    else:
        print(f"node {address} stopped ({lab.shutdown_reason})")
    stopped = lab.role is not None and lab.role.stop_reason is not None
    return 0 if lab.peer_failure is None and not stopped else 1
