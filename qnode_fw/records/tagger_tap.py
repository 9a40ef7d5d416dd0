"""A time tagger whose every read also goes to the run record (and, optionally, to an observer).

The link layer reads a station's tagger itself (:class:`~timing.link_end.BsaStationRuntime`);
wrapping the tagger is how the tags it read reach the record without the timing layer knowing
about records. Used by the virtual testbed's memory links and by a node process's links.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RecordingTagger:
    """``tagger`` with :meth:`read_stream` also writing each non-empty batch to ``record`` under
    ``name`` (when a record is given) and passing it to ``observer``; other calls pass through."""

    def __init__(self, tagger: Any, name: str, record: Any,
                 observer: Callable[[Any], None] | None = None) -> None:
        self._tagger = tagger
        self._name = name
        self._record = record
        self._observer = observer

    def read_stream(self):
        batch = self._tagger.read_stream()
        if len(batch):
            if self._record is not None:
                self._record.tags(self._name, batch.channels, batch.timestamps_ps)
            if self._observer is not None:
                self._observer(batch)
        return batch

    def __getattr__(self, item):
        return getattr(self._tagger, item)


__all__ = ["RecordingTagger"]
