"""Reading a run record back, also one whose writer was killed mid-run.

What a killed writer can leave behind, and how it is read:

* the last line of ``events.jsonl`` cut short: dropped (counted in ``RunData.torn_lines``);
* ``summary.json`` with ``status: running``: the last summary written before the kill;
* temporary files (``.name.tmp-PID``) of a write that never finished: ignored;
* no ``.ptu`` export (it is written when the run ends): :func:`export_missing_ptu` writes it
  from the tag chunks.

A processes-mode run (``qnode testbed --processes``) holds the runner's record with one node
record per node process under ``nodes/<address>/`` (a killed node's up to its last flush);
:func:`load_run` reads them into ``RunData.nodes``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import ConfigError
from .writer import ARRAYS_DIR, CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE, TAG_DTYPE, TAGS_DIR

#: Where a processes-mode run keeps each node process's record.
NODES_DIR = "nodes"


@dataclass
class RunData:
    root: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None
    events: list[dict[str, Any]]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    tags: dict[str, np.ndarray] = field(default_factory=dict)   # file-name instrument -> TAG_DTYPE rows
    torn_lines: int = 0
    #: Processes mode: each node process's own record, by node address.
    nodes: dict[str, "RunData"] = field(default_factory=dict)

    def events_of(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]


def read_chunks(directory: Path) -> np.ndarray:
    """Concatenate the ``NNNNNN.npy`` chunks of one table, in order."""
    files = sorted(p for p in directory.glob("[0-9]*.npy"))
    if not files:
        return np.empty(0, TAG_DTYPE)
    parts = [np.load(p, allow_pickle=False) for p in files]
    return np.concatenate(parts)


def read_events(path: Path) -> tuple[list[dict[str, Any]], int]:
    events: list[dict[str, Any]] = []
    torn = 0
    if not path.is_file():
        return events, torn
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            if i >= len(lines) - 2:      # the last line, cut by a kill: expected, dropped
                torn += 1
                continue
            raise ConfigError(f"event log line {i + 1} is not JSON", file=str(path), line=i + 1,
                              expected="one JSON object per line") from None
    return events, torn


def load_run(root: str | Path) -> RunData:
    """Read every part of a run record (see the module docstring for partial records)."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError("run directory not found", file=str(root), expected="a runs/<time>-<name> directory")
    config_path = root / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError("not a run record (no config.yaml)", file=str(root),
                          expected="a directory written by qnode testbed --out")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    summary_path = root / SUMMARY_FILE
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else None
    events, torn = read_events(root / EVENTS_FILE)
    data = RunData(root, config, summary, events, torn_lines=torn)
    arrays_dir = root / ARRAYS_DIR
    if arrays_dir.is_dir():
        for p in sorted(arrays_dir.iterdir()):
            if p.is_dir():
                data.arrays[p.name] = read_chunks(p)
            elif p.suffix == ".npy" and not p.name.startswith("."):
                data.arrays[p.stem] = np.load(p, allow_pickle=False)
    tags_dir = root / TAGS_DIR
    if tags_dir.is_dir():
        for p in sorted(tags_dir.iterdir()):
            if p.is_dir():
                data.tags[p.name] = read_chunks(p)
    nodes_dir = root / NODES_DIR
    if nodes_dir.is_dir():
        for p in sorted(nodes_dir.iterdir()):
            if (p / CONFIG_FILE).is_file():
                data.nodes[p.name] = load_run(p)
    return data


def export_missing_ptu(data: RunData) -> list[Path]:
    """Write the PTU export of every tagger whose run ended before the export was written (node
    records of a processes-mode run included: their processes never export)."""
    from timing.ptu import write_ptu_t2

    written = [p for node in data.nodes.values() for p in export_missing_ptu(node)]
    for name, rows in data.tags.items():
        path = data.root / TAGS_DIR / f"{name}.ptu"
        if path.exists() or rows.size == 0:
            continue
        order = np.argsort(rows["timestamp_ps"], kind="stable")
        write_ptu_t2(path, rows["channel"][order], rows["timestamp_ps"][order],
                     comment=f"qnode-fw run {data.root.name}, tagger {name} (exported after the run)")
        written.append(path)
    return written
