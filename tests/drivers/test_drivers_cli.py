"""``qnode drivers`` lists every model; ``--json`` gives the same rows as JSON."""

from __future__ import annotations

import json

from qnode_fw.cli.main import main


def test_drivers_json_lists_every_real_model(capsys):
    assert main(["drivers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_model = {(r["kind"], r["model"]): r for r in rows}
    assert by_model[("awg", "keysight_33500b")]["transport"] == "visa"
    assert by_model[("time_tagger", "idq_id900")]["transport"] == "zmq"
    assert by_model[("optical_switch", "dicon_mems_1xn")]["interface"] == "drivers.optical_switch.OpticalSwitch"
    assert {m for k, m in by_model if k == "pair_source"} >= {"qubitekk_spdc", "thorlabs_itc4001_ted4015"}


def test_drivers_table_has_the_same_models(capsys):
    assert main(["drivers"]) == 0
    table = capsys.readouterr().out
    assert main(["drivers", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    for r in rows:
        assert r["model"] in table
    assert table.splitlines()[0].split() == ["KIND", "MODEL", "TRANSPORT", "INTERFACE"]
