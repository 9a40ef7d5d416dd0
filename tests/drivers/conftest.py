"""Fixtures of the driver tests; the rigs themselves are in emulator_rigs.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # makes the rigs beside the tests importable

from emulator_rigs import FACTORIES, Rig, thorlabs_pyvisa_sim  # noqa: E402


@pytest.fixture
def rig_factory(tmp_path):
    rigs: list[Rig] = []

    def make(kind: str, model: str, limits=None) -> Rig:
        factory = thorlabs_pyvisa_sim if model == "thorlabs_pyvisa_sim" else FACTORIES[kind][model]
        rig = factory(limits, tmp_path / "replay.ptu") if model == "ptu_replay" else factory(limits)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.instrument.close()
        for emulator in [rig.emulator, *rig.others]:
            if emulator is not None and hasattr(emulator, "stop"):
                emulator.stop()
