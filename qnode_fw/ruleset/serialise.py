"""RuleSet ⇄ dict ⇄ YAML / JSON, schema ``qnode-ruleset`` version 1.

Document layout (keys in this order)::

    schema: qnode-ruleset
    version: 1
    id: conn-7
    owner: B
    connection: A-C#7
    timing: [{peer, discard_after_ps, one_way_latency_ps, operation_ps}]
    stages:
      - name: link
        variables: {rounds: 0}
        rules:
          - name: swap
            partners: [A, C]
            conditions: [{type: enough_resources, partner: A, count: 1}, ...]
            actions: [{type: swap, left: A, right: C, tag: 1}]

Conditions and actions are ``{type: <kind>, <field>: <value>, ...}`` with the field names of the
dataclasses in :mod:`qnode_fw.ruleset.model`. Every error is a
:class:`~qnode_fw.errors.RuleSetError` naming the rule (``stage/rule``) and the field path.
A document of another schema or a newer version, or with a key the schema does not have, is
refused, never guessed at.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from ..errors import RuleSetError
from . import model as m

#: Size limits: a RuleSet is a small program; anything larger is almost surely an error or abuse.
MAX_STAGES = 64
MAX_RULES_PER_STAGE = 64
MAX_RULES = 1024
MAX_CLAUSES_PER_RULE = 16
MAX_QCIRC_GATES = 32


def _encode_value(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, m.GateOp):
        return {"gate": value.gate, "slots": list(value.slots)}
    if isinstance(value, tuple):
        return [_encode_value(v) for v in value]
    return value


def _encode_variant(obj: Any) -> dict:
    out: dict[str, Any] = {"type": obj.kind}
    for f in dataclasses.fields(obj):
        out[f.name] = _encode_value(getattr(obj, f.name))
    return out


def to_dict(rs: m.RuleSet) -> dict:
    return {
        "schema": m.SCHEMA,
        "version": m.SCHEMA_VERSION,
        "id": rs.id,
        "owner": rs.owner,
        "connection": rs.connection,
        "timing": [dataclasses.asdict(t) for t in rs.timing],
        "stages": [
            {
                "name": s.name,
                "variables": dict(s.variables),
                "rules": [
                    {
                        "name": r.name,
                        "partners": list(r.partners),
                        "conditions": [_encode_variant(c) for c in r.conditions],
                        "actions": [_encode_variant(a) for a in r.actions],
                    }
                    for r in s.rules
                ],
            }
            for s in rs.stages
        ],
    }


def to_json(rs: m.RuleSet) -> str:
    return json.dumps(to_dict(rs), indent=2)


def to_yaml(rs: m.RuleSet) -> str:
    return yaml.safe_dump(to_dict(rs), sort_keys=False)


# -- decoding -------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, ruleset: str | None, rule: str | None = None) -> None:
        self.ruleset = ruleset
        self.rule = rule

    def error(self, message: str, field: str) -> RuleSetError:
        return RuleSetError(message, ruleset=self.ruleset, rule=self.rule, field=field)


def _require(data: Any, key: str, ctx: _Ctx, path: str) -> Any:
    if not isinstance(data, dict):
        raise ctx.error(f"expected a mapping, got {type(data).__name__}", path)
    if key not in data:
        raise ctx.error("missing", f"{path}.{key}" if path else key)
    return data[key]


def _coerce(value: Any, hint: Any, ctx: _Ctx, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], ctx, path)
    if origin is tuple:
        if not isinstance(value, list):
            raise ctx.error(f"expected a list, got {value!r}", path)
        inner = typing.get_args(hint)[0]
        return tuple(_coerce(v, inner, ctx, f"{path}[{i}]") for i, v in enumerate(value))
    if hint is m.GateOp:
        gate = _coerce(_require(value, "gate", ctx, path), str, ctx, f"{path}.gate")
        slots = _coerce(_require(value, "slots", ctx, path), tuple[int, ...], ctx, f"{path}.slots")
        return m.GateOp(gate, slots)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(str(e.value) for e in hint)
            raise ctx.error(f"{value!r} is not one of {allowed}", path) from None
    if hint is bool:
        if not isinstance(value, bool):
            raise ctx.error(f"expected true/false, got {value!r}", path)
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ctx.error(f"expected an integer, got {value!r}", path)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ctx.error(f"expected a number, got {value!r}", path)
        return float(value)
    if hint is str:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ctx.error(f"expected a string, got {value!r}", path)
        return str(value)
    raise ctx.error(f"unsupported field type {hint!r}", path)  # a model bug, not input


def _decode_variant(data: Any, table: dict[str, type], ctx: _Ctx, path: str) -> Any:
    kind = _require(data, "type", ctx, path)
    cls = table.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ctx.error(f"unknown type {kind!r} (known: {', '.join(sorted(table))})", f"{path}.type")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key != "type" and key not in known:
            raise ctx.error(f"unknown field for {kind}", f"{path}.{key}")
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], ctx, f"{path}.{f.name}")
        elif f.default is dataclasses.MISSING:
            raise ctx.error(f"missing (required by {kind})", f"{path}.{f.name}")
    return cls(**kwargs)


def _known_keys(data: dict, allowed: tuple[str, ...], ctx: _Ctx, path: str) -> None:
    # An unknown key is refused, never ignored: a payload cannot smuggle in settings (instrument
    # limits, say) that this schema does not have, and a misspelt key is not silently dropped.
    for key in data:
        if key not in allowed:
            raise ctx.error(f"unknown key {key!r} (known: {', '.join(allowed)})",
                            f"{path}.{key}" if path else str(key))


_TOP_KEYS = ("schema", "version", "id", "owner", "connection", "timing", "stages")
_TIMING_KEYS = ("peer", "discard_after_ps", "one_way_latency_ps", "operation_ps")
_STAGE_KEYS = ("name", "variables", "rules")
_RULE_KEYS = ("name", "partners", "conditions", "actions")


def _as_list(value: Any, ctx: _Ctx, path: str, limit: int) -> list:
    if not isinstance(value, list):
        raise ctx.error(f"expected a list, got {type(value).__name__}", path)
    if len(value) > limit:
        raise ctx.error(f"{len(value)} entries, more than the limit of {limit}", path)
    return value


def from_dict(data: Any) -> m.RuleSet:
    top = _Ctx(None)
    if not isinstance(data, dict):
        raise top.error("a RuleSet document must be a mapping", "<document>")
    rs_id = data.get("id")
    ctx = _Ctx(str(rs_id) if rs_id is not None else None)
    schema = data.get("schema")
    if schema != m.SCHEMA:
        raise ctx.error(f"schema {schema!r} is not {m.SCHEMA!r}", "schema")
    version = data.get("version")
    if version != m.SCHEMA_VERSION:
        raise ctx.error(f"schema version {version!r} unsupported (this build reads "
                        f"{m.SCHEMA_VERSION})", "version")
    _known_keys(data, _TOP_KEYS, ctx, "")
    ident = _coerce(_require(data, "id", ctx, ""), str, ctx, "id")
    owner = _coerce(_require(data, "owner", ctx, ""), str, ctx, "owner")
    connection = _coerce(_require(data, "connection", ctx, ""), str, ctx, "connection")
    timing = []
    for i, t in enumerate(_as_list(data.get("timing", []), ctx, "timing", 256)):
        p = f"timing[{i}]"
        _require(t, "peer", ctx, p)
        _known_keys(t, _TIMING_KEYS, ctx, p)
        timing.append(m.PeerTiming(
            peer=_coerce(_require(t, "peer", ctx, p), str, ctx, f"{p}.peer"),
            discard_after_ps=_coerce(_require(t, "discard_after_ps", ctx, p), int, ctx,
                                     f"{p}.discard_after_ps"),
            one_way_latency_ps=_coerce(_require(t, "one_way_latency_ps", ctx, p), int, ctx,
                                       f"{p}.one_way_latency_ps"),
            operation_ps=_coerce(t.get("operation_ps", 0), int, ctx, f"{p}.operation_ps")))
    stages = []
    total_rules = 0
    for si, sd in enumerate(_as_list(_require(data, "stages", ctx, ""), ctx, "stages", MAX_STAGES)):
        sp = f"stages[{si}]"
        sname = _coerce(_require(sd, "name", ctx, sp), str, ctx, f"{sp}.name")
        _known_keys(sd, _STAGE_KEYS, ctx, sp)
        variables_raw = sd.get("variables", {}) or {}
        if not isinstance(variables_raw, dict):
            raise ctx.error("expected a mapping of name: number", f"{sp}.variables")
        variables = {str(k): _coerce(v, float, ctx, f"{sp}.variables.{k}")
                     for k, v in variables_raw.items()}
        rules = []
        for ri, rd in enumerate(_as_list(_require(sd, "rules", ctx, sp), ctx, f"{sp}.rules",
                                         MAX_RULES_PER_STAGE)):
            rp = f"{sp}.rules[{ri}]"
            rname = _coerce(_require(rd, "name", ctx, rp), str, ctx, f"{rp}.name")
            rctx = _Ctx(ctx.ruleset, f"{sname}/{rname}")
            _known_keys(rd, _RULE_KEYS, rctx, rp)
            partners = _coerce(rd.get("partners", []), tuple[str, ...], rctx, f"{rp}.partners")
            conds = tuple(
                _decode_variant(c, m.CONDITION_TYPES, rctx, f"{rp}.conditions[{ci}]")
                for ci, c in enumerate(_as_list(_require(rd, "conditions", rctx, rp), rctx,
                                                f"{rp}.conditions", MAX_CLAUSES_PER_RULE)))
            acts = tuple(
                _decode_variant(a, m.ACTION_TYPES, rctx, f"{rp}.actions[{ai}]")
                for ai, a in enumerate(_as_list(_require(rd, "actions", rctx, rp), rctx,
                                                f"{rp}.actions", MAX_CLAUSES_PER_RULE)))
            for ai, a in enumerate(acts):
                if isinstance(a, m.QCirc) and len(a.gates) > MAX_QCIRC_GATES:
                    raise rctx.error(f"{len(a.gates)} gates, more than {MAX_QCIRC_GATES}",
                                     f"{rp}.actions[{ai}].gates")
            rules.append(m.Rule(rname, partners, conds, acts))
        total_rules += len(rules)
        if total_rules > MAX_RULES:
            raise ctx.error(f"more than {MAX_RULES} rules in total", f"{sp}.rules")
        stages.append(m.Stage(sname, tuple(rules), variables))
    return m.RuleSet(ident, owner, connection, tuple(stages), tuple(timing))


def from_json(text: str) -> m.RuleSet:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleSetError(f"not JSON: {exc.msg} at line {exc.lineno}", field="<document>") from None
    return from_dict(data)


def from_yaml(text: str) -> m.RuleSet:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RuleSetError(f"not YAML{where}: {exc}", field="<document>") from None
    return from_dict(data)


def load(path: str | Path) -> m.RuleSet:
    """Read a native RuleSet from a ``.json`` / ``.yaml`` / ``.yml`` file."""
    p = Path(path)
    text = p.read_text()
    try:
        return from_json(text) if p.suffix == ".json" else from_yaml(text)
    except RuleSetError as exc:
        raise RuleSetError(f"{p}: {exc.message}", ruleset=exc.ruleset, rule=exc.rule,
                           field=exc.field) from None
