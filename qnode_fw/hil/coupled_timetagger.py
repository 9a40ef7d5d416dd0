"""The Swabian ``TimeTagger`` stand-in of :mod:`sim_backend.emulators.fake_timetagger`, with its
inputs cabled to an emulated bench's physics.

The Swabian driver loads its vendor module by name (``options.module``); an emulated bench names
this one. Everything is the fake module's (calls are logged to its ``CALLS``), except that a
tagger created here pulls the tags its inputs received from the bench's physics whenever its
virtual time moves (a ``Countrate.startFor`` running out, or the bench waiting), and its time is
the bench's time.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from sim_backend.emulators import fake_timetagger as _fake
from sim_backend.emulators.fake_timetagger import *  # noqa: F401,F403 (the vendor API the driver calls)


class BenchPhysics(Protocol):
    def now_ps(self) -> int:
        """The bench's time."""

    def tags_until(self, serial: str, end_ps: int) -> tuple[np.ndarray, np.ndarray]:
        """(channels, timestamps) reaching the tagger's inputs before ``end_ps``; the bench's time
        moves to ``end_ps``."""

    def attach(self, serial: str, tagger: "CoupledTimeTagger") -> None:
        """A tagger was created for ``serial``."""


#: The bench physics behind each serial number an emulated bench registered.
PHYSICS: dict[str, BenchPhysics] = {}


class CoupledTimeTagger(_fake.TimeTagger):
    def __init__(self, serial: str, physics: BenchPhysics) -> None:
        super().__init__(serial)
        self._physics = physics
        self._now = physics.now_ps()

    def _advance_ps(self, duration_ps: int) -> None:
        start = max(self._now, self._physics.now_ps())
        end = start + int(duration_ps)
        self._now = start
        channels, times = self._physics.tags_until(self._serial, end)
        if times.size:
            self._deliver(np.asarray(channels, np.int32), np.asarray(times, np.int64), 0)
        super()._advance_ps(end - self._now)


def scanTimeTagger() -> list[str]:  # noqa: N802 (vendor spelling)
    return sorted(PHYSICS)


def createTimeTagger(serial: str = "", resolution=None) -> CoupledTimeTagger:  # noqa: N802
    _fake._log("createTimeTagger", serial)
    chosen = serial or next(iter(sorted(PHYSICS)), "")
    if chosen not in PHYSICS:
        raise RuntimeError(f"No Time Tagger with serial {serial} found")
    if chosen in _fake._TAGGERS:
        raise RuntimeError(f"Time Tagger {chosen} is already in use")
    tagger = CoupledTimeTagger(chosen, PHYSICS[chosen])
    _fake._TAGGERS[chosen] = tagger
    PHYSICS[chosen].attach(chosen, tagger)
    return tagger
