"""Writing files so that a reader never sees half of one: write a temporary file beside the
target, flush it to the disk, then rename it over the target (a rename is atomic on POSIX file
systems). A process killed at any moment leaves either the old file or the new one."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | Path, value: Any, *, fsync: bool = True) -> None:
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=False, default=_jsonable) + "\n",
                      fsync=fsync)


def atomic_write_npy(path: str | Path, array: np.ndarray, *, fsync: bool = True) -> None:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue(), fsync=fsync)


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, paths and enums as plain JSON."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "value") and isinstance(getattr(value, "value"), (str, int, float)):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def jsonable(value: Any) -> Any:
    """``value`` turned into plain JSON types (for event fields)."""
    return json.loads(json.dumps(value, default=_jsonable))
