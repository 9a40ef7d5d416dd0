"""How much a bench check may change the hardware. Every check carries one level; ``--max-level``
runs only the checks at or below it, so a first run on a new bench can stop at reading."""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    READ_ONLY = 0  # identification and queries: nothing on the bench changes
    SETTINGS = 1  # instrument settings (input delays, trigger levels, waveform memory)
    OUTPUTS = 2  # switch routes and electrical outputs (AWG channels, markers)
    EMITS = 3  # light (pump laser), heat (crystal oven) or moving parts

    @property
    def meaning(self) -> str:
        return {Level.READ_ONLY: "read only", Level.SETTINGS: "settings",
                Level.OUTPUTS: "switching and outputs",
                Level.EMITS: "emits light, heats or moves"}[self]

    @property
    def marker(self) -> str:
        """The pytest marker of this level (registered in pyproject.toml)."""
        return f"level{int(self)}"
