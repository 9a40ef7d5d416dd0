"""The RuleSet schema: every condition and action round-trips through YAML and JSON, and bad
documents fail with a RuleSetError naming the rule and field."""

from __future__ import annotations

import json

import pytest
import yaml

from qnode_fw.errors import RuleSetError
from qnode_fw.ruleset import model as m
from qnode_fw.ruleset import serialise as s

EVERY_CONDITION = (
    m.EnoughResources("A", 2, 0.8),
    m.FidelityAtLeast("A", 0.9),
    m.PurificationResultArrived("A", 3, m.Parity.MISMATCH),
    m.SwapResultArrived("A", 4),
    m.PairAgeOver("A", 5_000_000),
    m.StageTimeout("A", 7_000),
    m.TimerExpired("t1"),
    m.MeasureCount(100, m.Counter.CYCLES),
    m.VariableCompare("rounds", m.CompareOp.LT, 3.0),
)
EVERY_ACTION = (
    m.Purify("A", m.PurificationMethod.DOUBLE_X, 3),
    m.Swap("A", "C", 4),
    m.PauliCorrection("A"),
    m.Measure("A", m.MeasureBasis.RANDOM, "chsh"),
    m.QCirc("A", (m.GateOp("H", (0,)), m.GateOp("CNOT", (0, 1)))),
    m.Promote("A", "last"),
    m.Move("A", "last"),
    m.Free("A", "timeout"),
    m.Deliver("A"),
    m.SendMessage("C", "hello", 9),
    m.SetVariable("rounds", 0.0),
    m.IncrementVariable("rounds", 2.0),
    m.SetTimer("t1", 1_000),
)


def everything() -> m.RuleSet:
    rule = m.Rule("all", ("A", "C"), EVERY_CONDITION, EVERY_ACTION)
    return m.RuleSet("rs-1", "B", "A-C#1",
                     (m.Stage("first", (rule,), {"rounds": 0.0}), m.Stage("last", ())),
                     (m.PeerTiming("C", 1_000_000, 50_000),))


def test_every_variant_is_registered() -> None:
    assert {c.kind for c in EVERY_CONDITION} == set(m.CONDITION_TYPES)
    assert {a.kind for a in EVERY_ACTION} == set(m.ACTION_TYPES)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_round_trip(fmt: str) -> None:
    rs = everything()
    text = s.to_json(rs) if fmt == "json" else s.to_yaml(rs)
    back = s.from_json(text) if fmt == "json" else s.from_yaml(text)
    assert back == rs


def test_document_shape_is_the_documented_schema() -> None:
    d = s.to_dict(everything())
    assert list(d) == ["schema", "version", "id", "owner", "connection", "timing", "stages"]
    assert d["schema"] == "qnode-ruleset" and d["version"] == 1
    assert d["stages"][0]["variables"] == {"rounds": 0.0}
    assert d["stages"][0]["rules"][0]["conditions"][0] == {
        "type": "enough_resources", "partner": "A", "count": 2, "min_fidelity": 0.8}
    assert d["stages"][0]["rules"][0]["actions"][4] == {
        "type": "qcirc", "partner": "A",
        "gates": [{"gate": "H", "slots": [0]}, {"gate": "CNOT", "slots": [0, 1]}]}


def _doc() -> dict:
    return json.loads(s.to_json(everything()))


@pytest.mark.parametrize("mutate, rule, field, words", [
    (lambda d: d.update(version=2), None, "version", "unsupported"),
    (lambda d: d.update(schema="quisp"), None, "schema", "is not"),
    (lambda d: d["stages"][0]["rules"][0]["conditions"][0].update(count="two"),
     "first/all", "stages[0].rules[0].conditions[0].count", "integer"),
    (lambda d: d["stages"][0]["rules"][0]["actions"][0].update(method="TRIPLE"),
     "first/all", "stages[0].rules[0].actions[0].method", "not one of"),
    (lambda d: d["stages"][0]["rules"][0]["actions"][1].pop("right"),
     "first/all", "stages[0].rules[0].actions[1].right", "missing"),
    (lambda d: d["stages"][0]["rules"][0]["actions"].append({"type": "teleport"}),
     "first/all", "stages[0].rules[0].actions[13].type", "unknown type"),
    (lambda d: d["stages"][0]["rules"][0]["actions"][2].update(colour="red"),
     "first/all", "stages[0].rules[0].actions[2].colour", "unknown field"),
    (lambda d: d.pop("owner"), None, "owner", "missing"),
])
def test_bad_documents_name_rule_and_field(mutate, rule, field, words) -> None:
    d = _doc()
    mutate(d)
    with pytest.raises(RuleSetError) as info:
        s.from_dict(d)
    assert info.value.rule == rule
    assert info.value.field == field
    assert words in info.value.message


def test_huge_rulesets_are_refused() -> None:
    d = _doc()
    d["stages"] = [{"name": f"s{i}", "rules": []} for i in range(s.MAX_STAGES + 1)]
    with pytest.raises(RuleSetError, match="limit of 64"):
        s.from_dict(d)
    d = _doc()
    d["stages"][0]["rules"][0]["actions"][4]["gates"] = [{"gate": "H", "slots": [0]}] * 33
    with pytest.raises(RuleSetError, match="more than 32"):
        s.from_dict(d)


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(RuleSetError, match="not YAML at line"):
        s.from_yaml("schema: qnode-ruleset\nstages: [\n  - {name: \"x\"\nowner: B\n")


def test_yaml_is_plain_mapping() -> None:
    assert yaml.safe_load(s.to_yaml(everything()))["owner"] == "B"
