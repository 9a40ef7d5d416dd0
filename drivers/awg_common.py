"""Checks shared by the AWG drivers, applied before anything is sent."""

from __future__ import annotations

import re

import numpy as np

from qnode_fw.errors import InstrumentError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")


def checked_samples(samples: np.ndarray, *, resource: str, command: str) -> np.ndarray:
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise InstrumentError("waveform must be a non-empty 1-D array; nothing was sent",
                              resource=resource, command=command)
    if not np.all(np.isfinite(data)) or np.any(np.abs(data) > 1.0):
        raise InstrumentError("waveform samples must be finite and within [-1, 1]; nothing was sent",
                              resource=resource, command=command)
    return data.astype("<f4")


def checked_name(name: str, *, resource: str, command: str, max_len: int = 32) -> str:
    if not _NAME.match(name) or len(name) > max_len:
        raise InstrumentError(f"waveform name {name!r} must be a letter then up to {max_len - 1} "
                              "letters, digits or _; nothing was sent", resource=resource, command=command)
    return name


def checked_channel(channel: int, count: int, *, resource: str, command: str) -> int:
    if not 1 <= int(channel) <= count:
        raise InstrumentError(f"channel {channel} does not exist (1..{count}); nothing was sent",
                              resource=resource, command=command)
    return int(channel)
