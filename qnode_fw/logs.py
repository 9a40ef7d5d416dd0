"""Structured logging: one line per event, ``key=value`` fields after a short event name.

Use ``log.info("herald", extra=fields(link="A-B", attempt=17))`` or the :func:`event` helper.
Run records keep the machine-readable event log separately (JSON lines); this is for people.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

_FIELDS = "qnode_fields"


def fields(**kv: Any) -> dict:
    return {_FIELDS: kv}


def event(logger: logging.Logger, level: int, name: str, **kv: Any) -> None:
    logger.log(level, name, extra=fields(**kv))


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        kv = getattr(record, _FIELDS, None)
        if kv:
            base += " " + " ".join(f"{k}={v}" for k, v in kv.items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted. A handler that kept the
    stream of the moment it was configured writes to a closed file once that stream is replaced
    and closed (pytest's capture after a CLI test): every record then prints a logging error with
    a whole stack, which slowed wall-clock loops in later tests enough to miss heartbeats."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(level: str | int = "WARNING") -> None:
    root = logging.getLogger()
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.WARNING)
    root.setLevel(level)
    if not any(getattr(h, "_qnode", False) for h in root.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(KeyValueFormatter())
        handler._qnode = True  # type: ignore[attr-defined]
        root.addHandler(handler)
