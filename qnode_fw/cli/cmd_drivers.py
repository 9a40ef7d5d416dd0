"""``qnode drivers``: every registered driver model with its kind, transport and interface."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    parser = subparsers.add_parser("drivers", help="list instrument driver models (kind, transport, interface)")
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=handler)


def handler(args) -> int:
    from drivers.registry import all_drivers

    rows = [{"kind": d.kind, "model": d.model, "transport": d.transport, "interface": d.interface,
             "class": d.qualname, "description": d.description} for d in all_drivers()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ("kind", "model", "transport", "interface")
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in headers]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)))
    for r in rows:
        print("  ".join(r[h].ljust(w) for h, w in zip(headers, widths)))
    return 0
