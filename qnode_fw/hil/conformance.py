"""The driver interfaces' conformance checks (``tests/drivers/driver_conformance.py``, the same
ones every driver passes against its emulator in the test suite) run on a bench's instruments.

The checks expect an instrument opened with their own safety limits (``LIMITS[kind]``: they test
that a value beyond them is refused). On a bench the instrument is opened with the *intersection*
of those and the bench file's limits, so nothing a conformance check sends can exceed what the
bench allows; a bench whose limits are tighter than the values the checks use gets a failure
that names the limit.

The checks live with the tests (they use ``pytest.raises``), so they need the source checkout
and pytest; without either, the conformance checks are skipped with that reason.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import drivers

from .session import CheckContext, Session, describe_assertion

CONFORMANCE_FILE = Path(drivers.__file__).resolve().parents[1] / "tests" / "drivers" / "driver_conformance.py"


def conformance_module() -> ModuleType | str:
    """The conformance module, or why it cannot be loaded."""
    loaded = sys.modules.get("driver_conformance")
    if loaded is not None and Path(getattr(loaded, "__file__", "")).resolve() == CONFORMANCE_FILE:
        return loaded
    if not CONFORMANCE_FILE.is_file():
        return f"the conformance checks are not installed ({CONFORMANCE_FILE} is part of the source checkout)"
    if importlib.util.find_spec("pytest") is None:
        return "the conformance checks need pytest (pip install qnode-fw[test])"
    spec = importlib.util.spec_from_file_location("driver_conformance", CONFORMANCE_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["driver_conformance"] = module
    spec.loader.exec_module(module)
    return module


def effective_limits(bench: dict[str, tuple[float, float]], conformance: dict[str, tuple[float, float]]):
    """Per quantity, the range both allow (a quantity only one of them limits keeps that range)."""
    out = dict(bench)
    for key, (lo, hi) in conformance.items():
        if key in out:
            blo, bhi = out[key]
            out[key] = (max(lo, blo), min(hi, bhi))
        else:
            out[key] = (lo, hi)
    return out


def run_conformance(session: Session, ctx: CheckContext, name: str) -> None:
    module = conformance_module()
    if isinstance(module, str):
        ctx.skip(module)
    import pytest

    inst = session.config.instrument(name)
    kind = inst.kind.value
    limits = effective_limits(dict(inst.limits), module.LIMITS[kind])
    empty = [k for k, (lo, hi) in limits.items() if lo > hi]
    if empty:
        ctx.fail(f"the bench's limits on {', '.join(empty)} leave no room for the conformance checks' "
                 f"{', '.join(f'{k} {list(module.LIMITS[kind][k])}' for k in empty)}")
        return
    ctx.figure("limits", ", ".join(f"{k} [{lo:g}, {hi:g}]" for k, (lo, hi) in sorted(limits.items())))
    device = session.reopen(name, limits)
    try:
        if kind == "optical_switch":
            for port in sorted(device.connections()):  # the checks start from a switch with no routes
                device.disconnect(port)
        module.CHECKS[kind](device)
    except AssertionError as exc:
        ctx.fail(f"{name}: {describe_assertion(exc)}")
    except pytest.fail.Exception as exc:  # pytest.raises saw no exception
        ctx.fail(f"{name}: {exc}")
    finally:
        session.release(name)
