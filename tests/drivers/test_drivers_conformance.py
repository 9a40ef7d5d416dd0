"""Every real driver passes its interface's conformance checks against its protocol emulator."""

from __future__ import annotations

import pytest

from emulator_rigs import FACTORIES
from drivers.conformance import CHECKS, LIMITS
from drivers.registry import all_drivers

CASES = [(kind, model) for kind, models in FACTORIES.items() for model in models]


def test_every_registered_real_driver_is_covered():
    real = {(d.kind, d.model) for d in all_drivers() if d.model != "sim" and d.kind != "qnic"}
    assert real == set(CASES)


@pytest.mark.parametrize("kind, model", CASES, ids=[m for _, m in CASES])
def test_conformance(rig_factory, kind, model):
    rig = rig_factory(kind, model, LIMITS[kind])
    if model == "swabian":
        rig.instrument.tagger.setTestSignal([1, 2], True)
    CHECKS[kind](rig.instrument)
