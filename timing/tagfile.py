"""Tag files: the project's own ``.npz`` format, and PTU T2 files through :mod:`timing.ptu`.

The ``.npz`` format holds two equal-length arrays, ``channels`` (int32) and ``timestamps_ps``
(int64, non-decreasing), plus optional ``overflow_ps`` (int64 times at which the tagger reported
lost tags). It is what run records and ``qnode tags`` exchange; numpy reads it everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qnode_fw.errors import ConfigError


@dataclass(frozen=True, slots=True)
class TagFile:
    channels: np.ndarray
    timestamps_ps: np.ndarray
    overflow_ps: np.ndarray
    source: str


def save_npz(path: str | Path, channels: np.ndarray, timestamps_ps: np.ndarray,
             overflow_ps: np.ndarray | None = None) -> None:
    np.savez_compressed(path, channels=np.asarray(channels, np.int32),
                        timestamps_ps=np.asarray(timestamps_ps, np.int64),
                        overflow_ps=np.asarray(overflow_ps if overflow_ps is not None else [], np.int64))


def load_tags(path: str | Path) -> TagFile:
    """Read a ``.npz`` or ``.ptu`` tag file; errors name the file and the field."""
    p = str(path)
    if not Path(p).is_file():
        raise ConfigError("no such tag file", file=p)
    if p.lower().endswith(".ptu"):
        from .ptu import PtuT2Reader

        ev = PtuT2Reader(p).read_all()
        return TagFile(ev.channels.astype(np.int32), ev.timestamps_ps.astype(np.int64),
                       np.empty(0, np.int64), "ptu")
    try:
        data = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"not a .npz or .ptu tag file ({exc})", file=p) from None
    with data:
        for key in ("channels", "timestamps_ps"):
            if key not in data.files:
                raise ConfigError(f"array {key!r} missing (has {sorted(data.files)})", file=p,
                                  field=key)
        ch = data["channels"]
        ts = data["timestamps_ps"]
        ov = data["overflow_ps"] if "overflow_ps" in data.files else np.empty(0, np.int64)
    if ch.ndim != 1 or ts.ndim != 1 or ch.shape != ts.shape:
        raise ConfigError(f"channels {ch.shape} and timestamps_ps {ts.shape} must be 1-D and "
                          "equally long", file=p, field="timestamps_ps")
    if not np.issubdtype(ch.dtype, np.integer) or not np.issubdtype(ts.dtype, np.integer):
        raise ConfigError("channels and timestamps_ps must be integer arrays", file=p,
                          field="timestamps_ps")
    if ts.size > 1 and (np.diff(ts) < 0).any():
        i = int(np.flatnonzero(np.diff(ts) < 0)[0]) + 1
        raise ConfigError(f"timestamps go backwards at index {i}", file=p,
                          field=f"timestamps_ps[{i}]", expected="non-decreasing times")
    return TagFile(ch.astype(np.int32), ts.astype(np.int64), ov.astype(np.int64), "npz")
