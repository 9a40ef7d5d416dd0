"""Arbitrary waveform generator interface.

Channels are numbered from 1 as on the front panel. Waveform samples are floats normalised to
[-1, 1] (the instrument scales them by amplitude and offset); marker arrays are uint8 per sample
with bit 0 = marker 1, bit 1 = marker 2.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from .instrument import Instrument


class AWG(Instrument):
    kind = "awg"

    @property
    @abstractmethod
    def num_channels(self) -> int: ...

    @abstractmethod
    def upload_waveform(self, channel: int, name: str, samples: np.ndarray,
                        sample_rate_hz: float, markers: np.ndarray | None = None) -> None:
        """Store a waveform (and optional per-sample marker bits) under ``name``."""

    @abstractmethod
    def select_waveform(self, channel: int, name: str) -> None:
        """Make ``name`` the waveform the channel plays."""

    @abstractmethod
    def set_amplitude_vpp(self, channel: int, vpp: float) -> None: ...

    @abstractmethod
    def set_offset_v(self, channel: int, volts: float) -> None: ...

    @abstractmethod
    def configure_burst(self, channel: int, cycles: int, trigger_source: str = "BUS") -> None:
        """Play ``cycles`` repetitions per trigger; trigger_source is ``BUS``, ``EXT`` or ``IMM``."""

    @abstractmethod
    def trigger(self) -> None:
        """Software (bus) trigger."""

    @abstractmethod
    def set_output(self, channel: int, on: bool) -> None: ...

    @abstractmethod
    def run(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...
