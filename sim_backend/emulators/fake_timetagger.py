"""A stand-in for Swabian Instruments' ``TimeTagger`` Python module, copying the parts of its API
the driver uses, so the real driver code runs in CI (the vendor's virtual tagger needs a licence).

Names and call shapes follow the vendor's module: ``createTimeTagger(serial)``,
``freeTimeTagger``, ``scanTimeTagger``; tagger methods ``setTriggerLevel``, ``setInputDelay``,
``setDeadtime``, ``setTestSignal``, ``getChannelList``, ``getSerial``, ``getModel``;
measurements ``TimeTagStream(tagger, n_max_events, channels)`` and ``Countrate(tagger, channels)``
with ``start``, ``startFor``, ``stop``, ``clear``, ``isRunning``, ``waitUntilFinished``,
``getData``; the virtual-channel measurement ``Coincidences(tagger, coincidenceGroups,
coincidenceWindow)`` whose ``getChannels()`` other measurements can count. A stream's ``getData()`` returns a buffer with ``getTimestamps()``,
``getChannels()``, ``getEventTypes()``, ``getMissedEvents()``, ``hasOverflows`` and ``size``.

Time is virtual: tags enter through :meth:`TimeTagger._inject_tags`, time moves with
``_advance_ps`` or ``waitUntilFinished`` (which runs a ``startFor`` to its end at once), and the
built-in test signal ticks every ``TEST_SIGNAL_PERIOD_PS``. Every vendor call is appended to
:data:`CALLS` so tests can assert the exact call sequence. Faults for error-path tests (not vendor
API): ``_stall`` (measurements never finish, so ``waitUntilFinished`` times out), ``_garble``
(the next ``getData`` returns arrays of the wrong length).

``Coincidences`` semantics as assumed here (unverified against the vendor's documentation): a tag
on a group's channel fires the group's virtual channel, at the tag's time, when every other
channel of the group has had a tag no more than ``coincidenceWindow`` ps before it.
"""

from __future__ import annotations

import weakref
from enum import IntEnum

import numpy as np

CHANNEL_UNUSED = -134217728
FIRST_VIRTUAL_CHANNEL = 0x10000  # virtual channels get numbers no input has
TEST_SIGNAL_PERIOD_PS = 1_250_000  # 800 kHz, the order of the vendor's built-in test signal
CALLS: list[tuple] = []
_TAGGERS: dict[str, "TimeTagger"] = {}
AVAILABLE_SERIALS = ["1910000FAKE"]


class TagType(IntEnum):
    TimeTag = 0
    Error = 1
    OverflowBegin = 2
    OverflowEnd = 3
    MissedEvents = 4


class ChannelEdge(IntEnum):
    All = 0
    Rising = 1
    Falling = 2


def _log(*call) -> None:
    CALLS.append(call)


def scanTimeTagger() -> list[str]:  # noqa: N802 (vendor spelling)
    return list(AVAILABLE_SERIALS)


def createTimeTagger(serial: str = "", resolution=None) -> "TimeTagger":  # noqa: N802
    _log("createTimeTagger", serial)
    chosen = serial or AVAILABLE_SERIALS[0]
    if chosen not in AVAILABLE_SERIALS:
        raise RuntimeError(f"No Time Tagger with serial {serial} found")
    if chosen in _TAGGERS:
        raise RuntimeError(f"Time Tagger {chosen} is already in use")
    tagger = TimeTagger(chosen)
    _TAGGERS[chosen] = tagger
    return tagger


def freeTimeTagger(tagger: "TimeTagger") -> bool:  # noqa: N802
    _log("freeTimeTagger", tagger.getSerial())
    return _TAGGERS.pop(tagger.getSerial(), None) is not None


class TimeTagger:
    def __init__(self, serial: str, channels: int = 8) -> None:
        self._serial = serial
        self._channels = channels
        self._trigger = {c: 0.5 for c in range(1, channels + 1)}
        self._delay = {c: 0 for c in range(1, channels + 1)}
        self._deadtime = {c: 2000 for c in range(1, channels + 1)}
        self._test_signal: set[int] = set()
        self._measurements: list["_Measurement"] = []
        self._now = 0
        self._last_tag = {c: -(1 << 62) for c in range(1, channels + 1)}
        # held weakly: as with the vendor's module, dropping the measurement object ends it
        self._virtual_refs: list[weakref.ref] = []
        self._next_virtual = FIRST_VIRTUAL_CHANNEL
        self._stall = False
        self._garble = False

    # -- vendor API ----------------------------------------------------------------------------
    def getSerial(self) -> str:  # noqa: N802
        return self._serial

    def getModel(self) -> str:  # noqa: N802
        return "Time Tagger Ultra"

    def getChannelList(self, type=ChannelEdge.Rising) -> list[int]:  # noqa: N802, A002
        rising = list(range(1, self._channels + 1))
        if type == ChannelEdge.Rising:
            return rising
        falling = [-c for c in rising]
        return falling if type == ChannelEdge.Falling else rising + falling

    @property
    def _virtual(self) -> list["Coincidences"]:
        alive = [v for ref in self._virtual_refs if (v := ref()) is not None]
        self._virtual_refs = [weakref.ref(v) for v in alive]
        return alive

    def _check(self, channel: int) -> None:
        if channel not in self._trigger and not any(channel in v.getChannels() for v in self._virtual):
            raise ValueError(f"Invalid channel number {channel}")

    def setTriggerLevel(self, channel: int, voltage: float) -> None:  # noqa: N802
        _log("setTriggerLevel", channel, voltage)
        self._check(channel)
        if not -2.5 <= voltage <= 2.5:
            raise ValueError(f"Trigger level {voltage} V out of range [-2.5, 2.5]")
        self._trigger[channel] = float(voltage)

    def getTriggerLevel(self, channel: int) -> float:  # noqa: N802
        self._check(channel)
        return self._trigger[channel]

    def setInputDelay(self, channel: int, delay: int) -> None:  # noqa: N802
        _log("setInputDelay", channel, delay)
        self._check(channel)
        self._delay[channel] = int(delay)

    def getInputDelay(self, channel: int) -> int:  # noqa: N802
        return self._delay[channel]

    def setDeadtime(self, channel: int, deadtime: int) -> int:  # noqa: N802
        _log("setDeadtime", channel, deadtime)
        self._check(channel)
        self._deadtime[channel] = int(deadtime)
        return int(deadtime)

    def getDeadtime(self, channel: int) -> int:  # noqa: N802
        return self._deadtime[channel]

    def setTestSignal(self, channels, state: bool) -> None:  # noqa: N802
        _log("setTestSignal", channels, state)
        for c in ([channels] if isinstance(channels, int) else channels):
            self._check(c)
            (self._test_signal.add if state else self._test_signal.discard)(c)

    def sync(self) -> None:
        _log("sync")

    # -- emulator controls (not vendor API) -----------------------------------------------------
    def _inject_tags(self, channels, timestamps_ps, missed_events: int = 0) -> None:
        """Raw input edges (before input delay and dead time); advances time to the last one."""
        chans = np.asarray(channels, np.int32)
        times = np.asarray(timestamps_ps, np.int64)
        self._deliver(chans, times, missed_events)
        if times.size:
            self._now = max(self._now, int(times.max()) + 1)

    def _advance_ps(self, duration_ps: int) -> None:
        end = self._now + int(duration_ps)
        if self._test_signal:
            first = -(-self._now // TEST_SIGNAL_PERIOD_PS) * TEST_SIGNAL_PERIOD_PS
            ticks = np.arange(first, end, TEST_SIGNAL_PERIOD_PS, dtype=np.int64)
            chans = sorted(self._test_signal)
            times = np.repeat(ticks, len(chans))
            self._deliver(np.tile(np.asarray(chans, np.int32), ticks.size), times, 0)
        self._now = end
        for m in self._measurements:
            m._time_advanced(end)

    def _deliver(self, chans: np.ndarray, times: np.ndarray, missed: int) -> None:
        keep = np.ones(times.size, bool)
        order = np.argsort(times, kind="stable")
        for i in order:  # dead time is per channel, on raw edges
            c = int(chans[i])
            if times[i] - self._last_tag[c] < self._deadtime[c]:
                keep[i] = False
            else:
                self._last_tag[c] = int(times[i])
        delays = np.array([self._delay[int(c)] for c in chans], np.int64) if chans.size else np.empty(0, np.int64)
        out_t = (times + delays)[keep]
        out_c = chans[keep]
        order = np.argsort(out_t, kind="stable")
        out_c, out_t = out_c[order], out_t[order]
        for virtual in self._virtual:  # virtual channels join the stream the measurements see
            vc, vt = virtual._generate(out_c, out_t)
            if vt.size:
                out_c = np.concatenate([out_c, vc])
                out_t = np.concatenate([out_t, vt])
                order = np.argsort(out_t, kind="stable")
                out_c, out_t = out_c[order], out_t[order]
        for m in self._measurements:
            m._feed(out_c, out_t, missed)


class _Measurement:
    def __init__(self, tagger: TimeTagger, channels) -> None:
        self._tagger = tagger
        self._channels = [int(c) for c in channels]
        for c in self._channels:
            tagger._check(c)
        self._running = False
        self._stop_at: int | None = None
        self._start_t = tagger._now
        tagger._measurements.append(self)
        self._running = True  # vendor measurements start on construction

    def start(self) -> None:
        _log(type(self).__name__ + ".start")
        self._running, self._stop_at, self._start_t = True, None, self._tagger._now

    def startFor(self, capture_duration: int, clear: bool = True) -> None:  # noqa: N802
        _log(type(self).__name__ + ".startFor", capture_duration, clear)
        if clear:
            self.clear()
        self._running, self._start_t = True, self._tagger._now
        self._stop_at = self._tagger._now + int(capture_duration)

    def stop(self) -> None:
        _log(type(self).__name__ + ".stop")
        self._running = False

    def clear(self) -> None:
        _log(type(self).__name__ + ".clear")
        self._reset()

    def isRunning(self) -> bool:  # noqa: N802
        return self._running

    def waitUntilFinished(self, timeout: int = -1) -> bool:  # noqa: N802
        """``timeout`` in ms (-1: wait for ever); False if still running when it expired."""
        _log(type(self).__name__ + ".waitUntilFinished", timeout)
        if self._tagger._stall:
            if timeout < 0:
                raise RuntimeError("a stalled fake tagger would wait for ever")
            return False
        if self._stop_at is not None and self._running:
            self._tagger._advance_ps(self._stop_at - self._tagger._now)
        return not self._running

    def _time_advanced(self, now: int) -> None:
        if self._stop_at is not None and now >= self._stop_at:
            self._running = False

    def _feed(self, chans: np.ndarray, times: np.ndarray, missed: int) -> None:
        if not self._running:
            return
        sel = np.isin(chans, self._channels)
        if self._stop_at is not None:
            sel &= times < self._stop_at
        self._accept(chans[sel], times[sel], missed)


class TimeTagStreamBuffer:
    def __init__(self, chans, times, types, missed, overflow: bool) -> None:
        self._c, self._t, self._y, self._m = chans, times, types, missed
        self.hasOverflows = overflow
        self.size = int(times.size)

    def getTimestamps(self) -> np.ndarray:  # noqa: N802
        return self._t

    def getChannels(self) -> np.ndarray:  # noqa: N802
        return self._c

    def getEventTypes(self) -> np.ndarray:  # noqa: N802
        return self._y

    def getMissedEvents(self) -> np.ndarray:  # noqa: N802
        return self._m


class TimeTagStream(_Measurement):
    def __init__(self, tagger: TimeTagger, n_max_events: int, channels) -> None:
        _log("TimeTagStream", int(n_max_events), list(channels))
        self._n_max = int(n_max_events)
        self._reset()
        super().__init__(tagger, channels)

    def _reset(self) -> None:
        self._c, self._t, self._y, self._m = [], [], [], []
        self._count = 0
        self._overflow = False

    def _accept(self, chans, times, missed) -> None:
        if missed:
            # The vendor reports lost tags as an OverflowBegin/MissedEvents/OverflowEnd group.
            t0 = int(times[0]) if times.size else self._tagger._now
            self._c.append(np.zeros(3, np.int32))
            self._t.append(np.full(3, t0, np.int64))
            self._y.append(np.array([TagType.OverflowBegin, TagType.MissedEvents, TagType.OverflowEnd], np.uint8))
            self._m.append(np.array([0, missed, 0], np.int32))
            self._overflow = True
        room = self._n_max - self._count
        if times.size > room:  # the buffer is full: further tags are lost
            self._overflow = True
            chans, times = chans[:room], times[:room]
        self._c.append(chans.astype(np.int32))
        self._t.append(times.astype(np.int64))
        self._y.append(np.zeros(times.size, np.uint8))
        self._m.append(np.zeros(times.size, np.int32))
        self._count += times.size

    def getData(self) -> TimeTagStreamBuffer:  # noqa: N802
        _log("TimeTagStream.getData")
        cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.empty(0, dt)  # noqa: E731
        chans = cat(self._c, np.int32)
        if self._tagger._garble:
            self._tagger._garble = False
            chans = chans[:-1] if chans.size else np.zeros(1, np.int32)
        buf = TimeTagStreamBuffer(chans, cat(self._t, np.int64), cat(self._y, np.uint8),
                                  cat(self._m, np.int32), self._overflow)
        self._reset()
        return buf


class Countrate(_Measurement):
    def __init__(self, tagger: TimeTagger, channels) -> None:
        _log("Countrate", list(channels))
        self._counts = np.zeros(len(list(channels)), np.int64)
        super().__init__(tagger, channels)

    def _reset(self) -> None:
        if hasattr(self, "_channels"):
            self._counts = np.zeros(len(self._channels), np.int64)
            self._start_t = self._tagger._now

    def _accept(self, chans, times, missed) -> None:
        for i, c in enumerate(self._channels):
            self._counts[i] += int(np.count_nonzero(chans == c))

    def getCountsTotal(self) -> np.ndarray:  # noqa: N802
        return self._counts.copy()

    def getData(self) -> np.ndarray:  # noqa: N802
        _log("Countrate.getData")
        end = self._stop_at if self._stop_at is not None and not self._running else self._tagger._now
        span_ps = max(end - self._start_t, 1)
        rates = self._counts / (span_ps * 1e-12)
        if self._tagger._garble:
            self._tagger._garble = False
            return rates[:-1]
        return rates


class Coincidences:
    """Virtual channels, one per group, that fire on each coincidence of the group."""

    def __init__(self, tagger: TimeTagger, coincidenceGroups, coincidenceWindow: int = 1000,  # noqa: N803
                 timestamp=None) -> None:
        groups = [[int(c) for c in g] for g in coincidenceGroups]
        _log("Coincidences", groups, int(coincidenceWindow))
        for g in groups:
            if len(g) < 2:
                raise ValueError("A coincidence group needs at least two channels")
            for c in g:
                tagger._check(c)
        self._tagger = tagger
        self._groups = groups
        self._window = int(coincidenceWindow)
        self._channels = list(range(tagger._next_virtual, tagger._next_virtual + len(groups)))
        tagger._next_virtual += len(groups)
        self._last: dict[int, int] = {}
        tagger._virtual_refs.append(weakref.ref(self))

    def getChannels(self) -> list[int]:  # noqa: N802
        return list(self._channels)

    def _generate(self, chans: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out_c: list[int] = []
        out_t: list[int] = []
        for c, t in zip(chans.tolist(), times.tolist()):
            for vc, group in zip(self._channels, self._groups):
                if c in group and all(o == c or (o in self._last and t - self._last[o] <= self._window)
                                      for o in group):
                    out_c.append(vc)
                    out_t.append(t)
            self._last[c] = t
        return np.asarray(out_c, np.int32), np.asarray(out_t, np.int64)
