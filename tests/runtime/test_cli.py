"""The ``qnode`` command: --help on every subcommand, --version, meaningful exit codes, and the
default testbed run (nodes up, control links up, topology and status printed)."""

from __future__ import annotations

import json

import pytest

from qnode_fw import __version__
from qnode_fw.cli.main import build_parser, main as qnode

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_the_foundation_subcommands_exist():
    assert {"validate", "run", "testbed", "keys", "drivers"} <= set(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        qnode([command, "--help"])
    assert info.value.code == 0
    assert "usage: qnode" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        qnode(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"qnode-fw {__version__}"


def test_usage_error_exit_code(capsys):
    with pytest.raises(SystemExit) as info:
        qnode(["validate"])            # FILE is required
    assert info.value.code == 2
    assert qnode([]) == 2              # no command: help, usage exit


def test_missing_file_is_a_config_error(tmp_path, capsys):
    assert qnode(["testbed", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: file not found" in capsys.readouterr().err


def test_default_testbed_brings_every_control_link_up(capsys):
    assert qnode(["testbed", "configs/testbeds/chain-3node-sim.yaml", "--duration", "0.5",
                  "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True
    assert set(summary["nodes"]) == {"A", "bsa-AB", "B", "bsa-BC", "C"}
    for address, node in summary["nodes"].items():
        assert all(p["up"] for p in node["peers"].values()), address
        assert len(node["peers"]) == 4
    assert summary["nodes"]["B"]["qubits_total"] == 8
    assert summary["sim_time_s"] == pytest.approx(0.5, abs=0.01)


def test_default_testbed_prints_topology_and_status(capsys):
    assert qnode(["testbed", "configs/testbeds/chain-3node-sim.yaml", "--duration", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "A <-> B: 2 km via bsa-AB, both_endpoints" in out
    assert "B <-> C: 3 km via bsa-BC" in out
    assert "all control links up" in out
