"""QuISP import maps QuISP's vocabulary onto the native model exactly as docs/rulesets.md says;
bad QuISP documents name the rule and field; `qnode ruleset check` reports both formats."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from qnode_fw.cli.main import main
from qnode_fw.errors import RuleSetError
from qnode_fw.ruleset import model as m
from qnode_fw.ruleset.checks import check_connection
from qnode_fw.ruleset.quisp import import_quisp

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "rulesets"
QUISP_SET = CONFIGS / "quisp_swap_3node.json"
AMAP = {1: "A", 2: "B", 3: "C"}


def quisp_docs() -> list[dict]:
    return json.loads(QUISP_SET.read_text())


def test_swapper_maps_to_swap_rule() -> None:
    b = import_quisp(quisp_docs()[1], address_map=AMAP)
    assert b.id == "4242" and b.owner == "B"
    assert b.stages == (m.Stage("stage-0", (m.Rule(
        "swapping between 1 and 3", ("A", "C"),
        (m.EnoughResources("A", 1), m.EnoughResources("C", 1)), (m.Swap("A", "C", 0),)),)),)


def test_end_node_maps_correction_then_tomography() -> None:
    a = import_quisp(quisp_docs()[0], address_map=AMAP)
    assert [s.name for s in a.stages] == ["stage-0", "stage-1"]
    corr = a.stages[0].rules[0]
    assert corr.conditions == (m.SwapResultArrived("B", 0),)
    assert corr.actions == (m.PauliCorrection("B"), m.Promote("B", "stage-1"))
    tomo, done = a.stages[1].rules
    assert tomo.conditions == (m.EnoughResources("C", 1), m.MeasureCount(3000))
    assert tomo.actions == (m.Measure("C", m.MeasureBasis.RANDOM),)
    assert done.actions == (m.Free("C", "tomography complete"),)


def test_tomography_as_delivery_and_discard_timers() -> None:
    a = import_quisp(quisp_docs()[0], address_map=AMAP, tomography_as_delivery=True,
                     discard_after_ps=20_000_000)
    assert a.stages[1].rules[0].actions == (m.Deliver("C"),)
    assert m.Rule("expire-B", ("B",), (m.PairAgeOver("B", 40_000_000),),
                  (m.Free("B", "discard timer"),)) in a.stages[0].rules
    sets = {rs.owner: rs for rs in (import_quisp(d, address_map=AMAP, discard_after_ps=20_000_000)
                                    for d in quisp_docs())}
    checked = check_connection(sets, lambda x, y: 5_000_000, lambda n: 0)
    assert checked["A"].timing == (m.PeerTiming("B", 20_000_000, 5_000_000),)


def _purifier() -> dict:
    return {"ruleset_id": 7, "owner_address": 1, "num_rules": 2, "rules": [
        {"name": "purify", "interface": [{"partner_address": 2}], "send_tag": 3,
         "receive_tag": -1,
         "condition": {"clauses": [{"type": "enough_resource", "options": {
             "num_resource": 2, "interface": {"partner_address": 2}}}]},
         "action": {"type": "purification", "options": {
             "purification_type": "SINGLE_SELECTION_X_PURIFICATION",
             "interface": [{"partner_address": 2}], "shared_rule_tag": 3}}},
        {"name": "wait", "interface": [{"partner_address": 2}], "send_tag": -1, "receive_tag": 3,
         "condition": {"clauses": [{"type": "purification_correlation", "options": {
             "interface": {"partner_address": 2}, "shared_rule_tag": 3}}]},
         "action": {"type": "purification_correlation", "options": {
             "interface": [{"partner_address": 2}], "shared_rule_tag": 3}}},
    ]}


def test_purification_and_correlation_share_a_stage_then_deliver() -> None:
    rs = import_quisp(_purifier())
    names = [r.name for r in rs.stages[0].rules]
    assert names == ["purify", "wait:match", "wait:mismatch"]
    assert rs.stages[0].rules[0].actions == (m.Purify("2", m.PurificationMethod.SINGLE_X, 3),)
    assert rs.stages[0].rules[1].actions == (m.Promote("2", "stage-1"),)
    assert rs.stages[1].rules == (m.Rule("deliver-2", ("2",), (m.EnoughResources("2"),),
                                         (m.Deliver("2"),)),)


@pytest.mark.parametrize("mutate, rule, field, words", [
    (lambda d: d["rules"][0]["action"]["options"].update(
        purification_type="DOUBLE_SELECTION_XZ_PURIFICATION"),
     "purify", "rules[0].action.options.purification_type", "not supported"),
    (lambda d: d["rules"][0]["condition"]["clauses"][0].update(type="banana"),
     "purify", "rules[0].condition.clauses[0].type", "unknown clause type"),
    (lambda d: d["rules"][1]["condition"]["clauses"][0]["options"].update(shared_rule_tag=9),
     "wait", "rules[1].action.options.shared_rule_tag", "differs from the clause's 9"),
    (lambda d: [r["condition"]["clauses"][0]["options"].update(shared_rule_tag=9) or
                r["action"]["options"].update(shared_rule_tag=9) for r in d["rules"][1:]],
     "wait", "condition.clauses", "no earlier purification with tag 9"),
    (lambda d: d.update(num_rules=5), None, "num_rules", "5 but 2"),
    (lambda d: d["rules"][0]["condition"]["clauses"][0]["options"].update(num_resource="2"),
     "purify", "rules[0].condition.clauses[0].options.num_resource", "integer"),
])
def test_bad_quisp_documents_name_rule_and_field(mutate, rule, field, words) -> None:
    d = copy.deepcopy(_purifier())
    mutate(d)
    with pytest.raises(RuleSetError) as info:
        import_quisp(d)
    assert info.value.rule == rule and info.value.field == field
    assert words in info.value.message


def test_cli_check_quisp_set_json(capsys) -> None:
    assert main(["ruleset", "check", "--json", str(QUISP_SET)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["format"] == "quisp"
    assert [r["owner"] for r in out["rulesets"]] == ["1", "2", "3"]
    assert out["rulesets"][1]["stages"][0]["rules"][0]["actions"] == ["swap"]


def test_cli_check_native_set_text(capsys) -> None:
    assert main(["ruleset", "check", str(CONFIGS / "chain3_swap.yaml"),
                 "--latency-ps", "5000000"]) == 0
    out = capsys.readouterr().out
    assert "3 valid native RuleSet(s)" in out
    assert "rule swap [A, C]: if enough_resources, enough_resources then swap" in out


def test_cli_check_reports_rule_and_field(tmp_path, capsys) -> None:
    bad = _purifier()
    bad["rules"][0]["action"]["options"]["purification_type"] = "NOPE"
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    assert main(["ruleset", "check", "--json", str(f)]) == 2
    err = json.loads(capsys.readouterr().out)["errors"][0]
    assert err["rule"] == "purify" and err["field"] == "rules[0].action.options.purification_type"


def test_cli_check_refuses_short_discard_timer_for_high_latency(capsys) -> None:
    assert main(["ruleset", "check", str(CONFIGS / "chain3_swap.yaml"),
                 "--latency-ps", "50000000"]) == 2
    assert "fires before swapper B's discard timer" in capsys.readouterr().err
