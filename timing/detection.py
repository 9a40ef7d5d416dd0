"""Herald detection on time-tag streams, and SPDC coincidence and correlation analysis.

A BSA station's tagger sees one sync tag per attempt (the AWG marker) and the detector clicks.
Each attempt's window is ``[sync + window_start_ps, sync + window_start_ps + window_ps)`` after
per-channel delay compensation (``delays_ps``, added to each channel as a tagger's input delay
is). Clicks outside every window are dark counts or stray light and are dropped; a window is a
herald only if each detector in it clicked exactly once and the set of detectors is one of the
protocol's patterns:

* two-photon BSA (``Protocol.TWO_PHOTON``): with the default map, ψ+ = {2,3} or {4,5}
  (H and V at the same beam-splitter output), ψ− = {2,5} or {3,4} (H and V at different
  outputs). One click is a failure (lost photon or dark count); any other pattern is ambiguous
  (a dark count on top of photons, or a φ pattern linear optics cannot resolve) and is rejected.
* single click (``Protocol.SINGLE_CLICK``): exactly one click; detector a (2 or 3) gives ψ+,
  detector b (4 or 5) ψ− (the phase flip of the other beam-splitter output).

:class:`HeraldDetector` is streaming: batches may split a window; batches may arrive out of order
across channels up to ``reorder_slack_ps`` (pending tags are merged by time and a window is closed
only when no earlier tag can still arrive); detector dead time is enforced across batches; a batch
flagged ``overflow`` (tags lost inside it) invalidates every window it overlaps, since a lost
click can turn an ambiguous window into a false herald; timestamps that wrap (``wrap_ps``) are
unwrapped first. Attempt ids come from the sync time and the schedule (``attempt_start_ps``,
``attempt_period_ps``) when given, so a lost sync tag never shifts later ids; otherwise they
count sync tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from drivers.time_tagger import TagBatch
from qnode_fw.errors import ConfigError

from . import kernels as K
from .frames import Outcome

_INT64_MAX = int(np.iinfo(np.int64).max)
_INT64_MIN = int(np.iinfo(np.int64).min)


class Protocol(str, Enum):
    TWO_PHOTON = "two_photon"
    SINGLE_CLICK = "single_click"


@dataclass(frozen=True, slots=True)
class ChannelMap:
    """Tagger channels of a BSA: the sync marker and the detectors, default
    a_H=2, a_V=3, b_H=4, b_V=5 (a and b are the two beam-splitter outputs)."""

    sync: int = 1
    a_h: int = 2
    a_v: int = 3
    b_h: int = 4
    b_v: int = 5

    @property
    def detectors(self) -> tuple[int, int, int, int]:
        return (self.a_h, self.a_v, self.b_h, self.b_v)

    def patterns(self, protocol: Protocol) -> dict[frozenset[int], Outcome]:
        if Protocol(protocol) is Protocol.TWO_PHOTON:
            return {
                frozenset((self.a_h, self.a_v)): Outcome.PSI_PLUS,
                frozenset((self.b_h, self.b_v)): Outcome.PSI_PLUS,
                frozenset((self.a_h, self.b_v)): Outcome.PSI_MINUS,
                frozenset((self.a_v, self.b_h)): Outcome.PSI_MINUS,
            }
        return {
            frozenset((self.a_h,)): Outcome.PSI_PLUS,
            frozenset((self.a_v,)): Outcome.PSI_PLUS,
            frozenset((self.b_h,)): Outcome.PSI_MINUS,
            frozenset((self.b_v,)): Outcome.PSI_MINUS,
        }


DEFAULT_BSA_CHANNELS = ChannelMap()


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    window_start_ps: int
    window_ps: int
    protocol: Protocol = Protocol.TWO_PHOTON
    channels: ChannelMap = DEFAULT_BSA_CHANNELS
    delays_ps: dict[int, int] = field(default_factory=dict)
    dead_time_ps: dict[int, int] = field(default_factory=dict)
    reorder_slack_ps: int = 0
    attempt_start_ps: int | None = None
    attempt_period_ps: int | None = None
    wrap_ps: int | None = None

    def __post_init__(self) -> None:
        if self.window_start_ps <= 0:
            raise ConfigError("detection window must start after its sync tag; shift it with "
                              f"the sync channel's delay (got {self.window_start_ps} ps)",
                              field="window_start_ps", expected="> 0")
        if self.window_ps <= 0:
            raise ConfigError(f"window must be positive, got {self.window_ps} ps",
                              field="window_ps")
        if self.reorder_slack_ps < 0:
            raise ConfigError("reorder slack cannot be negative", field="reorder_slack_ps")
        if self.attempt_period_ps is not None and (
                self.attempt_period_ps < self.window_start_ps + self.window_ps):
            raise ConfigError(f"window ends {self.window_start_ps + self.window_ps} ps after "
                              f"its sync, past the next attempt ({self.attempt_period_ps} ps)",
                              field="window_ps")
        used = [self.channels.sync, *self.channels.detectors]
        if len(set(used)) != len(used) or min(used) < 0:
            raise ConfigError(f"channel map {used} must name distinct non-negative channels",
                              field="channels")
        if self.wrap_ps is not None and self.wrap_ps <= 0:
            raise ConfigError("wrap period must be positive", field="wrap_ps")


@dataclass(frozen=True, slots=True)
class Herald:
    attempt_id: int
    sync_ps: int   # sync tag time (after delay compensation)
    time_ps: int   # last click of the window: the herald's timestamp
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class HeraldArrays:
    """Heralds of one batch as parallel arrays (cheap at any herald rate); iterate for
    :class:`Herald` objects."""

    attempt_id: np.ndarray
    sync_ps: np.ndarray
    time_ps: np.ndarray
    outcome: np.ndarray  # Outcome codes

    def __len__(self) -> int:
        return int(self.attempt_id.shape[0])

    def __iter__(self):
        for a, s, t, o in zip(self.attempt_id.tolist(), self.sync_ps.tolist(),
                              self.time_ps.tolist(), self.outcome.tolist()):
            yield Herald(a, s, t, Outcome(o))

    def to_list(self) -> list[Herald]:
        return list(self)

    @classmethod
    def concat(cls, parts: list["HeraldArrays"]) -> "HeraldArrays":
        if not parts:
            return _EMPTY
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("attempt_id", "sync_ps", "time_ps", "outcome")))


_EMPTY = HeraldArrays(*(np.empty(0, np.int64) for _ in range(4)))


@dataclass(slots=True)
class DetectionStats:
    windows: int = 0
    empty: int = 0
    failed: int = 0
    ambiguous: int = 0
    heralds: int = 0
    out_of_window: int = 0
    dead_time_dropped: int = 0
    sync_tags: int = 0
    late_tags: int = 0
    overflow_rejected: int = 0


def _tables(cfg: DetectorConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cmap = cfg.channels
    nch = max(cmap.sync, *cmap.detectors, *cfg.delays_ps, *cfg.dead_time_ps, 0) + 1
    role = np.full(nch, K.ROLE_IGNORE, np.int64)
    role[cmap.sync] = K.ROLE_SYNC
    bit = {ch: i for i, ch in enumerate(cmap.detectors)}
    for ch, i in bit.items():
        role[ch] = i
    lut = np.zeros(1 << len(bit), np.int64)
    for chans, outcome in cmap.patterns(cfg.protocol).items():
        lut[sum(1 << bit[c] for c in chans)] = int(outcome)
    delays = np.zeros(nch, np.int64)
    for ch, d in cfg.delays_ps.items():
        delays[ch] = d
    dead = np.zeros(nch, np.int64)
    for ch, d in cfg.dead_time_ps.items():
        dead[ch] = d
    return role, lut, delays, dead


class HeraldDetector:
    """Streaming herald detection; feed :class:`TagBatch` objects, get :class:`Herald` lists."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self._role, self._lut, self._delays, self._dead = _tables(config)
        self._has_delays = bool(self._delays.any())
        self._min_delay = int(self._delays.min())
        self._max_delay = int(self._delays.max())
        self._last = np.full(self._role.shape[0], np.iinfo(np.int64).min // 2, np.int64)
        self._state = K.new_state()
        self._counters = np.zeros(K.COUNTERS_SIZE, np.int64)
        self._wrap_state = np.zeros(2, np.int64)
        self._pend_ch = np.empty(0, np.int32)
        self._pend_ts = np.empty(0, np.int64)
        self._max_seen = _INT64_MIN
        self._raw_last = None  # last raw (unwrapped) timestamp seen: start of the next overflow span
        self._processed_until = _INT64_MIN
        self._overflow_spans: list[tuple[int, int]] = []
        self._late = 0
        self._overflow_rejected = 0
        # Kernel outputs, one row each (sync, herald time, outcome, attempt id), reused across
        # batches; a batch's heralds leave as one copy of the used columns.
        self._out = np.empty((4, 0), np.int64)
        self._out_rows = tuple(self._out)

    @property
    def stats(self) -> DetectionStats:
        c = self._counters
        return DetectionStats(int(c[K.C_WINDOWS]), int(c[K.C_EMPTY]), int(c[K.C_FAILED]),
                              int(c[K.C_AMBIGUOUS]), int(c[K.C_HERALDS]) - self._overflow_rejected,
                              int(c[K.C_OUT_OF_WINDOW]), int(c[K.C_DEAD]), int(c[K.C_SYNC]),
                              self._late, self._overflow_rejected)

    def warm_up(self) -> None:
        """Load the compiled kernels now (numba's cache load or first compile takes tenths of a
        second), so the first herald of a run does not wait for them. Leaves this detector's
        state untouched."""
        cfg = self.config
        scratch = HeraldDetector(cfg)
        sync = cfg.channels.sync
        first = cfg.channels.detectors[0]
        scratch.push_arrays(np.array([sync, first], np.int32),
                            np.array([0, cfg.window_start_ps], np.int64),
                            complete_until_ps=cfg.window_start_ps + cfg.window_ps)
        scratch.flush()

    def push(self, batch: TagBatch, complete_until_ps: int | None = None) -> HeraldArrays:
        return self.push_arrays(batch.channels, batch.timestamps_ps, overflow=batch.overflow,
                                complete_until_ps=complete_until_ps)

    def push_arrays(self, channels: np.ndarray, timestamps: np.ndarray, *, overflow: bool = False,
                    complete_until_ps: int | None = None) -> HeraldArrays:
        """Ingest one batch. ``complete_until_ps`` (raw tagger time) promises that no tag at or
        before it is still to come, which closes windows without waiting for later tags."""
        # A batch of one attempt is the herald-latency case: every numpy call on it costs about
        # as much as the compiled kernel, so the common path (sorted, no delays, nothing pending)
        # makes as few as possible.
        ch = np.asarray(channels, np.int32)
        ts = np.asarray(timestamps, np.int64)
        if ch.shape != ts.shape:
            raise ValueError(f"{ch.shape[0]} channels for {ts.shape[0]} timestamps")
        n = ts.shape[0]
        ordered = True
        if n:
            if self.config.wrap_ps is not None:
                ts = K.unwrap_kernel(ts, self.config.wrap_ps, self._wrap_state)
            raw_hi, ordered = K.max_and_sorted(ts)
            raw_hi = int(raw_hi)
            if overflow:
                lo = self._raw_last if self._raw_last is not None else int(ts.min())
                self._overflow_spans.append((lo + self._min_delay, raw_hi + self._max_delay))
            self._raw_last = raw_hi if self._raw_last is None else max(self._raw_last, raw_hi)
            if self._has_delays:
                ts = ts + np.take(self._delays, ch, mode="clip")
                ordered = K.is_sorted(ts)
        if self._pend_ts.shape[0]:
            ch = np.concatenate((self._pend_ch, ch))
            ts = np.concatenate((self._pend_ts, ts))
            ordered = K.is_sorted(ts)
            n = ts.shape[0]
        if n:
            if not ordered:
                order = np.argsort(ts, kind="stable")
                ch = ch[order]
                ts = ts[order]
            if ts[0] < self._processed_until:
                keep = ts >= self._processed_until
                self._late += int(n - keep.sum())
                ch = ch[keep]
                ts = ts[keep]
            if ts.shape[0]:
                last = int(ts[-1])
                if last > self._max_seen:
                    self._max_seen = last
        if self._max_seen == _INT64_MIN:
            watermark = self._max_seen  # nothing seen yet
        else:
            watermark = self._max_seen - self.config.reorder_slack_ps
        if complete_until_ps is not None:
            watermark = max(watermark, complete_until_ps + self._min_delay)
        return self._process(ch, ts, watermark)

    def flush(self) -> HeraldArrays:
        """End of stream: process every pending tag and close the open window."""
        return self._process(self._pend_ch, self._pend_ts, _INT64_MAX)

    def _process(self, ch: np.ndarray, ts: np.ndarray, watermark: int) -> HeraldArrays:
        if watermark > self._processed_until:
            self._processed_until = watermark
        need = ts.shape[0] // 2 + 2
        if self._out.shape[1] < need:
            self._out = np.empty((4, max(need, 1024)), np.int64)
            self._out_rows = tuple(self._out)
        o_sync, o_time, o_outcome, o_id = self._out_rows
        cfg = self.config
        n, cut = K.herald_batch(ch, ts, watermark, self._role, self._dead, self._last, self._lut,
                                cfg.window_start_ps, cfg.window_ps, self._state, self._counters,
                                o_sync, o_time, o_outcome, o_id, cfg.attempt_start_ps or 0,
                                cfg.attempt_period_ps or 0)
        self._pend_ch, self._pend_ts = ch[cut:], ts[cut:]
        if n == 0:
            if self._overflow_spans:
                self._prune_spans(watermark)
            return _EMPTY
        # o_id holds attempt ids with a schedule, sync-tag ordinals without one
        sync, time, outcome, ids = self._out[:, :n].copy()
        out = HeraldArrays(ids, sync, time, outcome)
        if self._overflow_spans:
            w_lo = out.sync_ps + cfg.window_start_ps
            w_hi = w_lo + cfg.window_ps
            bad = np.zeros(n, bool)
            for s_lo, s_hi in self._overflow_spans:
                bad |= (w_lo <= s_hi) & (s_lo <= w_hi)
            self._prune_spans(watermark)
            if bad.any():
                self._overflow_rejected += int(bad.sum())
                keep = ~bad
                out = HeraldArrays(out.attempt_id[keep], out.sync_ps[keep], out.time_ps[keep],
                                   out.outcome[keep])
        return out

    def _prune_spans(self, watermark: int) -> None:
        # A span can still invalidate the open window (it starts before the watermark).
        horizon = watermark - self.config.window_start_ps - self.config.window_ps - self._max_delay
        if self._state[K.S_OPEN]:
            horizon = min(horizon, int(self._state[K.S_SYNC]))
        self._overflow_spans = [s for s in self._overflow_spans if s[1] >= horizon]


def detect_heralds_reference(channels: np.ndarray, timestamps: np.ndarray,
                             config: DetectorConfig) -> tuple[HeraldArrays, DetectionStats]:
    """Plain-numpy herald detection over a whole, sorted, unwrapped stream without overflow.

    The ground truth the streaming kernel is tested against. Dead time is applied with a Python
    loop (it depends on the last *kept* tag, which no vectorised form captures exactly).
    """
    role, lut, delays, dead = _tables(config)
    ch = np.asarray(channels, np.int64)
    ts = np.asarray(timestamps, np.int64)
    known = (ch >= 0) & (ch < role.shape[0])
    known[known] &= role[ch[known]] != K.ROLE_IGNORE
    ch, ts = ch[known], ts[known]
    ts = ts + delays[ch]
    if ts.size and (np.diff(ts) < 0).any():
        order = np.argsort(ts, kind="stable")
        ch, ts = ch[order], ts[order]
    keep = np.ones(ts.size, bool)
    dropped = 0
    for c in np.flatnonzero(dead > 0):
        last = None
        for i in np.flatnonzero(ch == c):
            if last is not None and ts[i] - last < dead[c]:
                keep[i] = False
                dropped += 1
            else:
                last = ts[i]
    ch, ts = ch[keep], ts[keep]
    is_sync = role[ch] == K.ROLE_SYNC
    sync = ts[is_sync]
    det_t = ts[~is_sync]
    det_bit = role[ch[~is_sync]]
    k = np.searchsorted(sync, det_t, "right") - 1
    rel = det_t - sync[np.maximum(k, 0)]
    inwin = (k >= 0) & (rel >= config.window_start_ps) & (rel < config.window_start_ps + config.window_ps)
    stats = DetectionStats(windows=int(sync.size), sync_tags=int(sync.size),
                           out_of_window=int((~inwin).sum()), dead_time_dropped=dropped)
    k, det_t, det_bit = k[inwin], det_t[inwin], det_bit[inwin]
    heralds = _EMPTY
    stats.empty = int(sync.size)
    if k.size:
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        ends = np.r_[starts[1:], k.size] - 1
        masks = np.bitwise_or.reduceat(1 << det_bit, starts)
        clicks = ends - starts + 1
        popc = np.zeros_like(masks)
        for b in range(4):
            popc += (masks >> b) & 1
        ok = (clicks == popc) & (lut[masks] != K.OUTCOME_NONE)
        stats.heralds = int(ok.sum())
        stats.failed = int(((clicks == 1) & ~ok).sum())
        stats.ambiguous = int(((clicks >= 2) & ~ok).sum())
        stats.empty = int(sync.size - starts.size)
        win = k[starts[ok]]
        s_ok = sync[win]
        if config.attempt_period_ps is not None:
            attempt = (s_ok - (config.attempt_start_ps or 0) + config.attempt_period_ps // 2) \
                // config.attempt_period_ps
        else:
            attempt = win.astype(np.int64)
        heralds = HeraldArrays(attempt, s_ok, det_t[ends[ok]], lut[masks[ok]])
    return heralds, stats


# -- SPDC analysis -----------------------------------------------------------------------------


def count_coincidences(channels: np.ndarray, timestamps: np.ndarray, ch_a: int, ch_b: int, *,
                       window_ps: int, delay_ps: int = 0) -> int:
    """Pairs (a on ``ch_a``, b on ``ch_b``) with ``|t_b - t_a - delay_ps| <= window_ps // 2``
    (as a Swabian ``Coincidences`` group of two with ``delay_ps`` as input delay on ch_a)."""
    if window_ps < 0:
        raise ValueError("coincidence window cannot be negative")
    half = window_ps // 2
    return int(K.coincidences_merged(np.asarray(channels, np.int32),
                                     np.asarray(timestamps, np.int64), ch_a, ch_b,
                                     delay_ps - half, delay_ps + half))


def correlation_histogram(channels: np.ndarray, timestamps: np.ndarray, ch_a: int, ch_b: int, *,
                          binwidth_ps: int, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of ``t_b - t_a`` as Swabian ``Correlation(ch_a, ch_b, binwidth, n_bins)``: bins
    centred on zero delay. Returns (bin centres in ps, counts)."""
    if binwidth_ps <= 0 or n_bins <= 0:
        raise ValueError("binwidth and n_bins must be positive")
    ch = np.asarray(channels, np.int32)
    ts = np.asarray(timestamps, np.int64)
    a, b = K.split_two_channels(ch, ts, ch_a, ch_b)
    lo = -(n_bins * binwidth_ps) // 2
    hist = K.correlation_sorted(a, b, lo, binwidth_ps, n_bins)
    centres = lo + binwidth_ps * np.arange(n_bins) + binwidth_ps / 2
    return centres, hist
