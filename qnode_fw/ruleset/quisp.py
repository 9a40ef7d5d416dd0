"""Import QuISP's RuleSet JSON into the native model (an interoperability path).

QuISP writes ``{ruleset_id, owner_address, num_rules, rules: [...]}``, each rule
``{name, interface: [{partner_address}], send_tag, receive_tag, condition: {clauses: [...]},
action: {type, options}}``, a flat list whose order gives, per partner, the chain of steps.

Mapping (see docs/rulesets.md for the table):

* Each rule becomes one native Rule (or two) in Stage ``stage-k``, where k is the first Stage after
  every earlier step of each of its partners; a rule after a ``swapping_correction`` (which renames
  the partner) goes to a later Stage than that correction. The rule that receives a purification's
  result (``purification_correlation``) joins the purification's Stage.
* clauses: ``enough_resource`` → enough_resources; ``fidelity`` → fidelity_at_least;
  ``measure_count`` → measure_count; ``purification_correlation`` → purification_result (match:
  promote, mismatch: free); ``swapping_correction`` → swap_result.
* actions: ``purification`` → purify (``SINGLE_SELECTION_{X,Z,Y}_PURIFICATION`` → SINGLE_*,
  ``DOUBLE_SELECTION_{X,Z}_PURIFICATION`` → DOUBLE_*; QuISP's combined XZ/ZX types are refused
  with an error naming the rule); ``swapping`` → swap; ``swapping_correction`` → pauli_correction
  + promote; ``tomography`` → measure in a random basis while fewer than ``num_measure``, then
  free (or deliver, with ``tomography_as_delivery``).
* ``shared_rule_tag`` → ``tag``; ``send_tag`` / ``receive_tag`` of -1 mean none.
* QuISP has no discard timers and no teardown; ``discard_after_ps`` adds a pair_age_over → free
  Rule to every Stage where pairs wait (``wait_after_ps`` where they wait for a swap result).

Node addresses (integers in QuISP) become strings, or whatever ``address_map`` says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import RuleSetError
from . import model as m

_PURIFICATION = {
    "SINGLE_SELECTION_X_PURIFICATION": m.PurificationMethod.SINGLE_X,
    "SINGLE_SELECTION_Z_PURIFICATION": m.PurificationMethod.SINGLE_Z,
    "SINGLE_SELECTION_Y_PURIFICATION": m.PurificationMethod.SINGLE_Y,
    "DOUBLE_SELECTION_X_PURIFICATION": m.PurificationMethod.DOUBLE_X,
    "DOUBLE_SELECTION_Z_PURIFICATION": m.PurificationMethod.DOUBLE_Z,
}
_UNSUPPORTED_PURIFICATION = (
    "SINGLE_SELECTION_XZ_PURIFICATION", "SINGLE_SELECTION_ZX_PURIFICATION",
    "DOUBLE_SELECTION_XZ_PURIFICATION", "DOUBLE_SELECTION_ZX_PURIFICATION",
    "DOUBLE_SELECTION_X_PURIFICATION_SINGLE_SELECTION_Z_PURIFICATION",
    "DOUBLE_SELECTION_Z_PURIFICATION_SINGLE_SELECTION_X_PURIFICATION",
)


def is_quisp(data: Any) -> bool:
    return isinstance(data, dict) and "rules" in data and "owner_address" in data


class _Importer:
    def __init__(self, data: dict, address_map: Mapping[Any, str] | None) -> None:
        self.data = data
        self.amap = dict(address_map or {})
        self.rs_id = str(data.get("ruleset_id", "?"))

    def err(self, msg: str, rule: str | None, field: str) -> RuleSetError:
        return RuleSetError(msg, ruleset=self.rs_id, rule=rule, field=field)

    def addr(self, value: Any, rule: str | None, field: str) -> str:
        if isinstance(value, dict):
            if "partner_address" not in value:
                raise self.err("missing partner_address", rule, field)
            value = value["partner_address"]
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.err(f"expected a node address, got {value!r}", rule, field)
        return self.amap.get(value, str(value))

    def int_opt(self, opts: dict, key: str, rule: str, field: str) -> int:
        v = opts.get(key)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(f"expected an integer, got {v!r}", rule, f"{field}.{key}")
        return v


def import_quisp(data: Any, *, address_map: Mapping[Any, str] | None = None,
                 discard_after_ps: int | None = None, wait_after_ps: int | None = None,
                 tomography_as_delivery: bool = False, connection: str | None = None
                 ) -> m.RuleSet:
    """Convert one QuISP RuleSet (parsed JSON) to a native :class:`RuleSet`."""
    try:
        return _import_quisp(data, address_map=address_map, discard_after_ps=discard_after_ps,
                             wait_after_ps=wait_after_ps,
                             tomography_as_delivery=tomography_as_delivery, connection=connection)
    except (AttributeError, TypeError, KeyError, ValueError, IndexError, StopIteration) as exc:
        # QuISP JSON comes from another program; a value of an unexpected shape anywhere in
        # it must come out as the typed error, not as whatever the walk over it tripped on.
        rs_id = data.get("ruleset_id") if isinstance(data, dict) else None
        raise RuleSetError(f"malformed QuISP RuleSet: {exc!r}",
                           ruleset=str(rs_id) if rs_id is not None else None,
                           field="<document>") from None


def _import_quisp(data: Any, *, address_map: Mapping[Any, str] | None,
                  discard_after_ps: int | None, wait_after_ps: int | None,
                  tomography_as_delivery: bool, connection: str | None) -> m.RuleSet:
    if not is_quisp(data):
        raise RuleSetError("not a QuISP RuleSet (needs ruleset_id, owner_address, rules)",
                           field="<document>")
    imp = _Importer(data, address_map)
    owner = imp.addr(data["owner_address"], None, "owner_address")
    rules = data["rules"]
    if not isinstance(rules, list):
        raise imp.err("expected a list", None, "rules")
    if "num_rules" in data and data["num_rules"] != len(rules):
        raise imp.err(f"num_rules is {data['num_rules']} but {len(rules)} rules follow", None,
                      "num_rules")
    parsed = [_parse_rule(imp, i, r) for i, r in enumerate(rules)]

    # Pass 1: place each step in a Stage.
    next_free: dict[str, int] = {}
    floor = 0
    stage_of: list[int] = []
    purify_stage: dict[tuple[str, int], int] = {}
    for p in parsed:
        if p["action"] == "purification_correlation":
            key = (p["partners"][0], p["tag"])
            if key not in purify_stage:
                raise imp.err(f"no earlier purification with tag {p['tag']} for partner "
                              f"{key[0]!r}", p["name"], "condition.clauses")
            stage_of.append(purify_stage[key])
            continue
        s = max([floor] + [next_free.get(x, 0) for x in p["partners"]])
        stage_of.append(s)
        for x in p["partners"]:
            next_free[x] = s + 1
        if p["action"] == "purification":
            purify_stage[(p["partners"][0], p["tag"])] = s
        if p["action"] == "swapping_correction":
            floor = s + 1
    n_stages = max(stage_of, default=-1) + 1

    def next_stage(i: int, partner: str | None) -> int:
        """Stage of the next step after rule i (for ``partner``, or any partner if None)."""
        for j in range(i + 1, len(parsed)):
            q = parsed[j]
            if q["action"] == "purification_correlation":
                continue
            if partner is None or partner in q["partners"]:
                return stage_of[j]
        return n_stages  # a final Stage is appended below

    # Pass 2: native rules.
    stages: list[list[m.Rule]] = [[] for _ in range(n_stages + 1)]
    for i, p in enumerate(parsed):
        s = stage_of[i]
        stages[s].extend(_native_rules(p, s, next_stage, i, tomography_as_delivery))
    names = [f"stage-{k}" for k in range(n_stages + 1)]
    # Promote targets were computed as indices; turn them into names.
    fixed: list[list[m.Rule]] = []
    for rules_k in stages:
        out = []
        for r in rules_k:
            acts = tuple(m.Promote(a.partner, names[int(a.stage)]) if isinstance(a, m.Promote)
                         else a for a in r.actions)
            out.append(m.Rule(r.name, r.partners, r.conditions, acts))
        fixed.append(out)
    _add_final_stage(fixed, parsed, stage_of)
    _add_discard_timers(fixed, discard_after_ps, wait_after_ps)
    while fixed and not fixed[-1]:
        fixed.pop()
    result = tuple(m.Stage(names[k], tuple(rs_k)) for k, rs_k in enumerate(fixed))
    return m.RuleSet(imp.rs_id, owner, connection or f"quisp-{imp.rs_id}", result)


def _parse_rule(imp: _Importer, i: int, r: Any) -> dict:
    if not isinstance(r, dict):
        raise imp.err("expected a mapping", None, f"rules[{i}]")
    name = str(r.get("name", f"rule{i}"))
    where = f"rules[{i}]"
    partners = [imp.addr(x, name, f"{where}.interface") for x in (r.get("interface") or [])]
    for key in ("send_tag", "receive_tag"):
        v = r.get(key, -1)
        if isinstance(v, bool) or not isinstance(v, int) or v < -1:
            raise imp.err(f"expected an integer >= -1, got {v!r}", name, f"{where}.{key}")
    clauses = (r.get("condition") or {}).get("clauses")
    if not isinstance(clauses, list):
        raise imp.err("expected a list of clauses", name, f"{where}.condition.clauses")
    action = r.get("action")
    if not isinstance(action, dict) or "type" not in action:
        raise imp.err("missing action type", name, f"{where}.action")
    conds: list = []
    tag = -1
    for ci, c in enumerate(clauses):
        cf = f"{where}.condition.clauses[{ci}]"
        ctype = c.get("type") if isinstance(c, dict) else None
        opts = c.get("options", {}) if isinstance(c, dict) else {}
        if ctype == "enough_resource":
            conds.append(m.EnoughResources(imp.addr(opts.get("interface"), name,
                                                    f"{cf}.options.interface"),
                                           imp.int_opt(opts, "num_resource", name,
                                                       f"{cf}.options")))
        elif ctype == "fidelity":
            f = opts.get("required_fidelity")
            if not isinstance(f, (int, float)) or isinstance(f, bool):
                raise imp.err(f"expected a number, got {f!r}", name,
                              f"{cf}.options.required_fidelity")
            conds.append(m.FidelityAtLeast(imp.addr(opts.get("interface"), name,
                                                    f"{cf}.options.interface"), float(f)))
        elif ctype == "measure_count":
            conds.append(m.MeasureCount(imp.int_opt(opts, "num_measure", name, f"{cf}.options")))
        elif ctype == "purification_correlation":
            tag = imp.int_opt(opts, "shared_rule_tag", name, f"{cf}.options")
            conds.append(("purification_correlation",
                          imp.addr(opts.get("interface"), name, f"{cf}.options.interface"), tag))
        elif ctype == "swapping_correction":
            tag = imp.int_opt(opts, "shared_rule_tag", name, f"{cf}.options")
            conds.append(m.SwapResultArrived(imp.addr(opts.get("interface"), name,
                                                      f"{cf}.options.interface"), tag))
        else:
            raise imp.err(f"unknown clause type {ctype!r}", name, f"{cf}.type")
    atype = action["type"]
    aopts = action.get("options") or {}
    af = f"{where}.action"
    out: dict[str, Any] = {"name": name, "partners": partners, "conds": conds, "action": atype,
                           "tag": tag}
    if atype == "purification":
        ptype = aopts.get("purification_type")
        if ptype in _UNSUPPORTED_PURIFICATION:
            raise imp.err(f"purification_type {ptype} is not supported (supported: "
                          f"{', '.join(_PURIFICATION)})", name, f"{af}.options.purification_type")
        if ptype not in _PURIFICATION:
            raise imp.err(f"unknown purification_type {ptype!r}", name,
                          f"{af}.options.purification_type")
        out["method"] = _PURIFICATION[ptype]
        out["tag"] = imp.int_opt(aopts, "shared_rule_tag", name, f"{af}.options")
    elif atype == "swapping":
        sides = [imp.addr(x, name, f"{af}.options.interface") for x in aopts.get("interface", [])]
        if len(sides) != 2:
            raise imp.err(f"swapping needs two interfaces, got {len(sides)}", name,
                          f"{af}.options.interface")
        out["sides"] = sides
        out["tag"] = imp.int_opt(aopts, "shared_rule_tag", name, f"{af}.options")
    elif atype in ("swapping_correction", "purification_correlation"):
        if "shared_rule_tag" in aopts:
            atag = imp.int_opt(aopts, "shared_rule_tag", name, f"{af}.options")
            if tag != -1 and atag != tag:
                raise imp.err(f"shared_rule_tag {atag} differs from the clause's {tag}", name,
                              f"{af}.options.shared_rule_tag")
            out["tag"] = atag
    elif atype == "tomography":
        out["num_measure"] = imp.int_opt(aopts, "num_measure", name, f"{af}.options")
    else:
        raise imp.err(f"unknown action type {atype!r}", name, f"{af}.type")
    if not partners:
        raise imp.err("a rule needs at least one interface", name, f"{where}.interface")
    return out


def _native_rules(p: dict, s: int, next_stage, i: int, as_delivery: bool) -> list[m.Rule]:
    name, partners, conds = p["name"], tuple(p["partners"]), p["conds"]
    plain = tuple(c for c in conds if not isinstance(c, tuple))
    a = p["action"]
    if a == "purification":
        partner = partners[0]
        return [m.Rule(name, partners, plain, (m.Purify(partner, p["method"], p["tag"]),))]
    if a == "purification_correlation":
        (_, partner, tag) = next(c for c in conds if isinstance(c, tuple))
        nxt = next_stage(i, partner)
        return [
            m.Rule(f"{name}:match", partners, (m.PurificationResultArrived(partner, tag),) + plain,
                   (m.Promote(partner, str(nxt)),)),
            m.Rule(f"{name}:mismatch", partners,
                   (m.PurificationResultArrived(partner, tag, m.Parity.MISMATCH),) + plain,
                   (m.Free(partner, "purification mismatch"),)),
        ]
    if a == "swapping":
        left, right = p["sides"]
        return [m.Rule(name, partners, plain, (m.Swap(left, right, p["tag"]),))]
    if a == "swapping_correction":
        swapper = next(c.partner for c in plain if isinstance(c, m.SwapResultArrived))
        return [m.Rule(name, partners, plain,
                       (m.PauliCorrection(swapper), m.Promote(swapper, str(next_stage(i, None)))))]
    # tomography
    partner = partners[0]
    has_enough = any(isinstance(c, m.EnoughResources) for c in plain)
    base = plain if has_enough else (m.EnoughResources(partner, 1),) + plain
    if as_delivery:
        return [m.Rule(name, partners, tuple(c for c in base if not isinstance(c, m.MeasureCount)),
                       (m.Deliver(partner),))]
    if not any(isinstance(c, m.MeasureCount) for c in base):
        base = base + (m.MeasureCount(p["num_measure"]),)
    done = tuple(c for c in base if not isinstance(c, m.MeasureCount))
    return [m.Rule(name, partners, base, (m.Measure(partner, m.MeasureBasis.RANDOM),)),
            m.Rule(f"{name}:done", partners, done, (m.Free(partner, "tomography complete"),))]


def _add_final_stage(stages: list[list[m.Rule]], parsed: list[dict], stage_of: list[int]) -> None:
    """Pairs promoted past the last step (a chain ending in a correction or purification) are
    delivered in the final Stage; drop that Stage if nothing promotes into it."""
    last = len(stages) - 1
    target = f"stage-{last}"
    incoming: set[str] = set()
    renamed = False
    for rules_k in stages[:last]:
        for r in rules_k:
            for a in r.actions:
                if isinstance(a, m.Promote) and a.stage == target:
                    incoming.add(a.partner)
                    renamed |= any(isinstance(c, m.SwapResultArrived) for c in r.conditions)
    if renamed:  # the new partner is only known at run time: deliver for any partner
        incoming |= {x for p in parsed for x in p["partners"]}
    stages[last] = [m.Rule(f"deliver-{x}", (x,), (m.EnoughResources(x, 1),), (m.Deliver(x),))
                    for x in sorted(incoming)] if incoming else []


def _add_discard_timers(stages: list[list[m.Rule]], discard_ps: int | None,
                        wait_ps: int | None) -> None:
    if discard_ps is None:
        return
    wait = wait_ps if wait_ps is not None else 2 * discard_ps
    for rules_k in stages:
        waiting: dict[str, int] = {}
        for r in rules_k:
            if any(isinstance(a, m.Deliver) for a in r.actions):
                continue
            for c in r.conditions:
                if isinstance(c, m.SwapResultArrived):
                    waiting[c.partner] = wait
                elif isinstance(c, m.BINDING_CONDITIONS):
                    waiting.setdefault(c.partner, discard_ps)
        for partner, limit in sorted(waiting.items()):
            rules_k.append(m.Rule(f"expire-{partner}", (partner,), (m.PairAgeOver(partner, limit),),
                                  (m.Free(partner, "discard timer"),)))
