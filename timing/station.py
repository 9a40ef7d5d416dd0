"""The heralding station's service: tag batches in, herald frames out to both end nodes.

A BSA station runs one :class:`HeraldStation` per link: it feeds its time tagger's batches to a
:class:`~timing.detection.HeraldDetector` and sends every herald to both end nodes on the link's
herald endpoint, stamped with the herald time (the last click of the window) on the station
clock. It also answers the end nodes' clock-sync requests on the same endpoint, so the attempt
schedule and herald timestamps share the station's time base.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.time_tagger import TagBatch
from qnode_fw.addresses import NodeAddress
from qnode_fw.clock import Clock

from .clock_sync import ClockSyncResponder
from .detection import HeraldArrays, HeraldDetector
from .frames import FrameType, Outcome, outcome_of
from .herald_link import HeraldEndpoint


class HeraldStation:
    def __init__(self, endpoint: HeraldEndpoint, detector: HeraldDetector,
                 ends: Sequence[NodeAddress], clock: Clock, *, send_failures: bool = False) -> None:
        self.endpoint = endpoint
        self.detector = detector
        self.ends = tuple(ends)
        self.send_failures = send_failures
        self.heralds_sent = 0
        self.sync = ClockSyncResponder(endpoint, clock)

    def ingest(self, batch: TagBatch, complete_until_ps: int | None = None) -> HeraldArrays:
        heralds = self.detector.push(batch, complete_until_ps)
        self.announce(heralds)
        return heralds

    def flush(self) -> HeraldArrays:
        heralds = self.detector.flush()
        self.announce(heralds)
        return heralds

    def announce(self, heralds: HeraldArrays) -> None:
        if not len(heralds):
            return
        # Straight from the arrays: a Herald object per herald costs more than its frame.
        for attempt, t_ps, code in zip(heralds.attempt_id.tolist(), heralds.time_ps.tolist(),
                                       heralds.outcome.tolist()):
            if code == Outcome.FAILURE and not self.send_failures:
                continue
            outcome = outcome_of(code)
            for end in self.ends:
                self.endpoint.send(end, FrameType.HERALD, attempt, t_ps, outcome)
            self.heralds_sent += 1
