"""Every configuration file the project ships validates the way `qnode validate` checks it, and
each is recognised as the kind its folder says."""

from __future__ import annotations

from pathlib import Path

import pytest

from qnode_fw.cli.main import main as qnode
from qnode_fw.config import load_any

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPECTED = {"testbeds": {"testbed"}, "experiments": {"experiment"}, "benches": {"bench"},
            "nodes": {"node", "calibration"}}
FILES = sorted(p for folder in EXPECTED for p in (CONFIGS / folder).rglob("*.yaml"))


def test_there_are_shipped_configs_of_every_kind():
    kinds = {p.relative_to(CONFIGS).parts[0] for p in FILES}
    assert kinds == set(EXPECTED)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_config_is_valid(path):
    kind, _ = load_any(path)
    assert kind in EXPECTED[path.relative_to(CONFIGS).parts[0]]


def test_qnode_validate_accepts_them_all(capsys):
    assert qnode(["validate", *map(str, FILES)]) == 0
    assert capsys.readouterr().out.count(": valid ") == len(FILES)
