"""The driver interfaces' conformance checks (:mod:`drivers.conformance`, the same ones every
driver passes against its emulator in the test suite) run on a bench's instruments.

The checks expect an instrument opened with their own safety limits (``LIMITS[kind]``: they test
that a value beyond them is refused). On a bench the instrument is opened with the *intersection*
of those and the bench file's limits, so nothing a conformance check sends can exceed what the
bench allows; a bench whose limits are tighter than the values the checks use gets a failure
that names the limit.
"""

from __future__ import annotations

from drivers import conformance

from .session import CheckContext, Session, describe_assertion


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
    module = conformance
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
    finally:
        session.release(name)
