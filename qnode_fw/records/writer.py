"""A run record on disk: everything one experiment run produced, written as it happens.

Layout of ``<out>/<UTC time>-<experiment name>/``::

    config.yaml          the fully resolved configuration (experiment, params, testbed, every node)
    events.jsonl         one JSON object per line: {"t_ps", "event", "node", ...fields}
    arrays/<name>/NNNNNN.npy   result tables appended in chunks (structured numpy arrays)
    arrays/<name>.npy    result arrays written whole
    tags/<instrument>/NNNNNN.npy   time-tag batches (channel int32, timestamp_ps int64)
    tags/<instrument>.ptu          PicoQuant T2 export of the same tags, written when the run ends
    summary.json         the run's summary; ``status`` is ``running`` until the run ends

Durability: the event log is appended and flushed to the operating system at every
:meth:`RunRecord.flush` (the runner calls it between slices of simulated time); every other file
is written whole to a temporary name and renamed into place, so a reader sees the old or the new
file, never a torn one. A process killed with SIGKILL therefore leaves a record that
:func:`qnode_fw.records.reader.load_run` reads up to the last flush (at most the last event line
can be cut short; the reader drops it).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .atomic import _jsonable, atomic_write_json, atomic_write_npy, atomic_write_text

#: numpy dtype of one time tag in a record.
TAG_DTYPE = np.dtype([("channel", "<i4"), ("timestamp_ps", "<i8")])

CONFIG_FILE = "config.yaml"
EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
ARRAYS_DIR = "arrays"
TAGS_DIR = "tags"


def safe_name(name: str) -> str:
    """A file-name part for an instrument or array name (``bsa-AB/tagger`` -> ``bsa-AB.tagger``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", ".", name)


def run_dir_name(name: str, when: _dt.datetime | None = None) -> str:
    when = when or _dt.datetime.now(_dt.timezone.utc)
    return f"{when.strftime('%Y%m%dT%H%M%SZ')}-{safe_name(name)}"


class RunRecord:
    """The writer of one run's record (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=False)
        (self.root / ARRAYS_DIR).mkdir()
        (self.root / TAGS_DIR).mkdir()
        self._events = open(self.root / EVENTS_FILE, "a", encoding="utf-8", buffering=1 << 16)
        self._chunks: dict[Path, int] = {}
        self._tag_instruments: list[str] = []
        self._tag_buffer: dict[str, list[np.ndarray]] = {}
        self.events_written = 0
        self.closed = False

    @classmethod
    def create(cls, out_dir: str | Path, name: str, when: _dt.datetime | None = None) -> "RunRecord":
        """A new record under ``out_dir``; a second run in the same second gets ``-2``, ``-3``..."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        base = run_dir_name(name, when)
        candidate, n = out / base, 1
        while candidate.exists():
            n += 1
            candidate = out / f"{base}-{n}"
        return cls(candidate)

    # -- configuration and summary ------------------------------------------------------------
    def write_config(self, resolved: dict[str, Any]) -> None:
        plain = json.loads(json.dumps(resolved, default=_jsonable))
        atomic_write_text(self.root / CONFIG_FILE,
                          "# The fully resolved configuration of this run (includes and overrides "
                          "applied).\n" + yaml.safe_dump(plain, sort_keys=False))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.root / SUMMARY_FILE, summary)

    # -- event log ------------------------------------------------------------------------------
    def event(self, t_ps: int, event: str, node: str | None = None, **fields: Any) -> None:
        """Append one event (flushed to the OS at the next :meth:`flush`)."""
        entry = {"t_ps": int(t_ps), "event": event}
        if node is not None:
            entry["node"] = node
        entry.update(fields)
        self._events.write(json.dumps(entry, default=_jsonable) + "\n")
        self.events_written += 1

    # -- arrays ---------------------------------------------------------------------------------
    def append_rows(self, name: str, rows: np.ndarray) -> None:
        """Append a chunk to the table ``arrays/<name>/`` (one atomic .npy file per chunk)."""
        self._chunk(self.root / ARRAYS_DIR / safe_name(name), rows)

    def write_array(self, name: str, array: np.ndarray) -> None:
        """Write (or replace) the whole array ``arrays/<name>.npy``."""
        atomic_write_npy(self.root / ARRAYS_DIR / f"{safe_name(name)}.npy", array, fsync=False)

    def tags(self, instrument: str, channels: np.ndarray, timestamps_ps: np.ndarray) -> None:
        """Append one time-tag batch of ``instrument`` (its testbed-wide name); batches collect
        in memory and go to disk as one chunk per instrument at the next :meth:`flush`."""
        if len(channels) == 0:
            return
        rows = np.empty(len(channels), TAG_DTYPE)
        rows["channel"] = channels
        rows["timestamp_ps"] = timestamps_ps
        if instrument not in self._tag_instruments:
            self._tag_instruments.append(instrument)
        self._tag_buffer.setdefault(instrument, []).append(rows)

    def _chunk(self, directory: Path, rows: np.ndarray) -> None:
        n = self._chunks.get(directory)
        if n is None:
            directory.mkdir(exist_ok=True)
            n = 0
        n += 1
        self._chunks[directory] = n
        atomic_write_npy(directory / f"{n:06d}.npy", rows, fsync=False)

    # -- durability -----------------------------------------------------------------------------
    def flush(self, *, fsync: bool = False) -> None:
        """Hand everything written so far to the operating system (``fsync``: to the disk)."""
        if self.closed:
            return
        for instrument, parts in self._tag_buffer.items():
            if parts:
                self._chunk(self.root / TAGS_DIR / safe_name(instrument), np.concatenate(parts))
        self._tag_buffer = {}
        self._events.flush()
        if fsync:
            os.fsync(self._events.fileno())

    def export_ptu(self) -> list[Path]:
        """Write ``tags/<instrument>.ptu`` (PicoQuant T2) for every instrument with tags."""
        from timing.ptu import write_ptu_t2

        from .reader import read_chunks

        written = []
        for instrument in self._tag_instruments:
            rows = read_chunks(self.root / TAGS_DIR / safe_name(instrument))
            if rows.size == 0:
                continue
            order = np.argsort(rows["timestamp_ps"], kind="stable")
            path = self.root / TAGS_DIR / f"{safe_name(instrument)}.ptu"
            tmp = path.with_name(f".{path.name}.tmp")
            write_ptu_t2(tmp, rows["channel"][order], rows["timestamp_ps"][order],
                         comment=f"qnode-fw run {self.root.name}, instrument {instrument}")
            os.replace(tmp, path)
            written.append(path)
        return written

    def close(self, *, export_ptu: bool = True) -> None:
        if self.closed:
            return
        self.flush(fsync=True)
        self._events.close()
        self.closed = True
        if export_ptu:
            self.export_ptu()
