"""``qnode ruleset check FILE [--json]``: validate a native or QuISP-format RuleSet (or a set).

Prints the Stages and Rules it understood, or the errors naming RuleSet, rule and field. A file
holding several RuleSets (one connection) is also checked as a whole (leapfrogging, discard
timers against ``--latency-ps``). Exit 0 when valid, 2 when the file is invalid.
"""

from __future__ import annotations

import argparse
import json
import sys

from qnode_fw.errors import RuleSetError
from qnode_fw.ruleset import model as m
from qnode_fw.ruleset.checks import check_connection, check_ruleset
from qnode_fw.ruleset.loader import load_file


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ruleset", help="RuleSet tools (check native or QuISP RuleSets)")
    sub = p.add_subparsers(dest="ruleset_command", metavar="ACTION")
    c = sub.add_parser("check", help="validate a native (YAML/JSON) or QuISP (JSON) RuleSet file")
    c.add_argument("file", help="RuleSet file: one RuleSet or a list (one connection)")
    c.add_argument("--json", action="store_true", help="print a machine-readable report")
    c.add_argument("--latency-ps", type=int, default=0,
                   help="worst-case one-way control latency for the connection check (ps)")
    c.add_argument("--swap-ps", type=int, default=0,
                   help="each swapper's Bell-measurement time in ps, for the discard-timer check")
    c.set_defaults(func=handle_check)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _summary(rs: m.RuleSet) -> dict:
    return {"id": rs.id, "owner": rs.owner, "connection": rs.connection,
            "stages": [{"name": s.name, "variables": dict(s.variables),
                        "rules": [{"name": r.name, "partners": list(r.partners),
                                   "conditions": [c.kind for c in r.conditions],
                                   "actions": [a.kind for a in r.actions]} for r in s.rules]}
                       for s in rs.stages]}


def _error(exc: RuleSetError) -> dict:
    return {"ruleset": exc.ruleset, "rule": exc.rule, "field": exc.field, "message": exc.message}


def handle_check(args: argparse.Namespace) -> int:
    try:
        fmt, rulesets = load_file(args.file)
        for rs in rulesets:
            check_ruleset(rs)
        if len(rulesets) > 1:
            check_connection({rs.owner: rs for rs in rulesets}, lambda a, b: args.latency_ps,
                             lambda node: args.swap_ps)
    except RuleSetError as exc:
        if args.json:
            print(json.dumps({"ok": False, "file": args.file, "errors": [_error(exc)]}, indent=2))
        else:
            print(f"{args.file}: invalid RuleSet\n  {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"ok": True, "file": args.file, "format": fmt,
                          "rulesets": [_summary(rs) for rs in rulesets]}, indent=2))
        return 0
    print(f"{args.file}: {len(rulesets)} valid {fmt} RuleSet(s)")
    for rs in rulesets:
        print(f"RuleSet {rs.id} on {rs.owner} (connection {rs.connection})")
        for s in rs.stages:
            print(f"  stage {s.name}" + (f" variables {dict(s.variables)}" if s.variables else ""))
            for r in s.rules:
                conds = ", ".join(c.kind for c in r.conditions)
                acts = ", ".join(a.kind for a in r.actions)
                print(f"    rule {r.name} [{', '.join(r.partners)}]: if {conds} then {acts}")
    return 0
