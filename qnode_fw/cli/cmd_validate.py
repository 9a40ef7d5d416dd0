"""``qnode validate FILE...``: check node, testbed, experiment, calibration and HIL bench files.

Each file is loaded the way the runtime loads it (includes, overrides, cross-file checks of a
testbed). Every problem is printed as ``file:line: field: message (expected ...)``. Exit 0 when
all files are valid, 2 when any is not.
"""

from __future__ import annotations

import argparse
import json
import sys

from qnode_fw.config import load_any
from qnode_fw.errors import ConfigError, ConfigErrors


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("validate", help="check node, testbed, experiment, calibration or HIL bench YAML",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    bad = 0
    for path in args.files:
        try:
            kind, _ = load_any(path)
        except ConfigError as exc:
            bad += 1
            errors = exc.errors if isinstance(exc, ConfigErrors) else [exc]
            if args.json:
                print(json.dumps({"file": path, "valid": False, "errors": [
                    {"file": e.file, "line": e.line, "field": e.field, "message": e.message,
                     "expected": e.expected} for e in errors]}))
            else:
                for e in errors:
                    print(f"error: {ConfigError.__str__(e)}", file=sys.stderr)
            continue
        if args.json:
            print(json.dumps({"file": path, "valid": True, "kind": kind}))
        else:
            print(f"{path}: valid {kind}")
    return 2 if bad else 0
