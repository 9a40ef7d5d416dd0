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


def configure_logging(level: str | int = "WARNING") -> None:
    root = logging.getLogger()
    if isinstance(level, str):
        level = getattr(logging, level.upper(), logging.WARNING)
    root.setLevel(level)
    if not any(getattr(h, "_qnode", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(KeyValueFormatter())
        handler._qnode = True  # type: ignore[attr-defined]
        root.addHandler(handler)
