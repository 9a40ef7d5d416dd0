"""A heralding detector read on the attempt grid: tag batches in, one outcome per attempt out.

The BSA station of a ``both_endpoints`` link and the transducer of every receiving end
(``at_source``, ``midpoint_source``) read a time tagger whose sync channel marks each attempt and
whose detector channels carry the herald clicks. :class:`TaggerHeralder` reads the tagger at
``slot + read_offset`` (after the attempt's window has closed), decodes heralds with the streaming
:class:`~timing.detection.HeraldDetector`, and reports every attempt exactly once: its herald
(Bell state, or SUCCESS for a transducer), or FAILURE once its window closed without one.

Two ways to know which attempts exist: a station reads every slot and learns attempts from their
sync tags (``every_slot=True``); a transducer reads only the slots it armed (:meth:`expect`), and
an armed attempt without a herald is a failure even if its sync tag was lost.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from drivers.time_tagger import TimeTagger
from qnode_fw.loop import EventLoop

from .detection import HeraldDetector
from .frames import Outcome
from .recovery import InstrumentRetry
from .schemes import LinkSchemeParams

#: on_outcome(attempt_id, outcome, herald time (last click; the sync time for a failure))
OutcomeHandler = Callable[[int, Outcome, int], None]


class TaggerHeralder:
    def __init__(self, loop: EventLoop, tagger: TimeTagger, params: LinkSchemeParams,
                 index: int | None, on_outcome: OutcomeHandler, *, every_slot: bool,
                 success_as: Outcome | None = None) -> None:
        self.loop = loop
        self.tagger = tagger
        self.params = params
        self.config = params.detector_config(index)
        self.detector = HeraldDetector(self.config)
        self.read_offset_ps = params.read_offset_ps(index)
        self.on_outcome = on_outcome
        self.every_slot = every_slot
        self.success_as = success_as
        self._sync_channel = self.config.channels.sync
        self._expected: set[int] = set()
        self._reads: set[int] = set()
        self._open: dict[int, int] = {}  # attempt -> sync time, seen but not yet reported
        self._done: set[int] = set()  # reported recently: a late sync tag must not report again
        self._window_end = self.config.window_start_ps + self.config.window_ps
        self.reported = {o: 0 for o in Outcome}
        #: the tagger's health: an outage is reported once, reads retry with backoff until it
        #: answers again (timing.recovery)
        side = params.station if index is None else params.nodes[index]
        self.retry = InstrumentRetry(loop, f"tagger of link {params.name} at {side}")
        self._timer = None
        self._running = False

    def start(self) -> None:
        """Start reading (``every_slot``): the tagger stream must already be running."""
        self._running = True
        if self.every_slot:
            now = self.loop.now_ps()
            k = max(0, -(-(now - self.params.start_ps - self.read_offset_ps) // self.params.period_ps))
            self._arm_every_slot(k)

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm_every_slot(self, k: int) -> None:
        t = self.params.slot_time_ps(k) + self.read_offset_ps
        self._timer = self.loop.call_at(t, self._tick, k)

    def _tick(self, k: int) -> None:
        self._timer = None
        if not self._running:
            return
        try:
            self.read()
        finally:
            if self.retry.down:
                # while the tagger is out, the next read after the backoff, on the slot grid
                t = self.loop.now_ps() + self.retry.delay_ps - self.params.start_ps - self.read_offset_ps
                self._arm_every_slot(max(k + 1, -(-t // self.params.period_ps)))
            else:
                self._arm_every_slot(k + 1)

    def expect(self, attempt_id: int) -> None:
        """This node armed attempt ``attempt_id``: read the tagger once its window has closed."""
        self._expected.add(attempt_id)
        if attempt_id not in self._reads:
            self._reads.add(attempt_id)
            self.loop.call_at(self.params.slot_time_ps(attempt_id) + self.read_offset_ps,
                              self._read_for, attempt_id)

    def _read_for(self, attempt_id: int) -> None:
        self._reads.discard(attempt_id)
        self.read()

    def read(self) -> None:
        """Read the tagger and report what it decided. The first error of a tagger outage is
        raised (for the failure policy); later ones, until a read works, return quietly."""
        now = self.loop.now_ps()
        batch = self.retry.call(self.tagger.read_stream)
        if batch is None:
            return
        heralds = self.detector.push(batch, complete_until_ps=now - 1)
        sync = batch.timestamps_ps[batch.channels == self._sync_channel]
        if sync.size:
            ids = self._attempt_of(sync)
            for k, t in zip(ids.tolist(), sync.tolist()):
                if k not in self._done:
                    self._open.setdefault(k, t)
        for h in heralds:
            if h.attempt_id not in self._open and h.attempt_id not in self._expected:
                continue  # reported already, or an attempt this node never armed
            self._open.pop(h.attempt_id, None)
            self._expected.discard(h.attempt_id)
            outcome = self.success_as if self.success_as is not None else h.outcome
            self._report(h.attempt_id, outcome, h.time_ps)
        # windows that closed without a herald
        for k, t in list(self._open.items()):
            if t + self._window_end < now:
                del self._open[k]
                self._expected.discard(k)
                self._report(k, Outcome.FAILURE, t)
        if not self.every_slot:
            horizon = now - self.read_offset_ps
            for k in [k for k in self._expected if self.params.slot_time_ps(k) <= horizon]:
                self._expected.discard(k)  # armed, but not even its sync tag came
                self._report(k, Outcome.FAILURE, self.params.slot_time_ps(k))
        oldest = (now - self.params.start_ps) // self.params.period_ps - 64
        self._done = {k for k in self._done if k >= oldest}

    def _attempt_of(self, sync_ps: np.ndarray) -> np.ndarray:
        cfg = self.config
        p = cfg.attempt_period_ps
        return (sync_ps + cfg.delays_ps.get(self._sync_channel, 0) - cfg.attempt_start_ps + p // 2) // p

    def _report(self, attempt_id: int, outcome: Outcome, t_ps: int) -> None:
        self._done.add(attempt_id)
        self.reported[outcome] += 1
        self.on_outcome(attempt_id, outcome, int(t_ps))
