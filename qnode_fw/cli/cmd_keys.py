"""``qnode keys generate DIR``: CurveZMQ keypairs for a testbed's nodes.

Writes ``DIR/<node>.key`` (public; goes into the testbed configuration / allowlist) and
``DIR/<node>.key_secret`` (mode 0600; stays on that node's PC) for every node named with
``--nodes A,B,C`` or found in ``--testbed FILE`` (the ``address`` of each entry under ``nodes:``).
Existing keys are kept unless ``--force``: regenerating a key silently would lock the node out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qnode_fw.config.source import load_document
from qnode_fw.control.auth import write_node_keys
from qnode_fw.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keys", help="CurveZMQ key management for the control plane")
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    g = sub.add_parser("generate", help="write a CurveZMQ keypair per node into DIR")
    g.add_argument("dir", help="directory for <node>.key and <node>.key_secret")
    g.add_argument("--nodes", help="comma-separated node addresses")
    g.add_argument("--testbed", help="testbed YAML: keys for the address of every entry in nodes:")
    g.add_argument("--force", action="store_true", help="overwrite existing keypairs")
    g.set_defaults(func=handle_generate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _testbed_nodes(path: str) -> list[str]:
    """Addresses of a testbed's nodes, inline or by file. The testbed is not fully validated
    here: its keys_dir may name the very directory being created."""
    doc = load_document(path)
    nodes = doc.data.get("nodes") if isinstance(doc.data, dict) else None
    if not isinstance(nodes, list):
        raise doc.error(("nodes",), "no nodes: list", expected="a list of node files or nodes")
    out = []
    for i, n in enumerate(nodes):
        if isinstance(n, dict) and isinstance(n.get("file"), str):
            n = load_document(Path(path).parent / n["file"]).data
        if isinstance(n, dict) and isinstance(n.get("address"), str):
            out.append(n["address"])
        else:
            raise doc.error(("nodes", i), "entry has no address", expected="address: or file:")
    return out


def handle_generate(args: argparse.Namespace) -> int:
    try:
        nodes = [n.strip() for n in (args.nodes or "").split(",") if n.strip()]
        if args.testbed:
            nodes += _testbed_nodes(args.testbed)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not nodes:
        print("error: name the nodes with --nodes or --testbed", file=sys.stderr)
        return 2
    bad = [n for n in nodes if not n or "/" in n or n.startswith(".")]
    if bad:
        print(f"error: node address {bad[0]!r} cannot be a key file name", file=sys.stderr)
        return 2
    d = Path(args.dir)
    for node in dict.fromkeys(nodes):
        existing = d / f"{node}.key_secret"
        if existing.exists() and not args.force:
            print(f"{node}: kept existing {existing}")
            continue
        pub, sec = write_node_keys(d, node)
        print(f"{node}: wrote {pub} and {sec}")
    return 0
