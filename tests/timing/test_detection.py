"""Herald detection on synthetic tag streams whose heralds are known exactly by construction,
and SPDC coincidence/correlation counting against closed forms and the numpy reference."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.time_tagger import TagBatch
from qnode_fw.errors import ConfigError
from timing import kernels as K
from timing.detection import (ChannelMap, DetectorConfig, Herald, HeraldArrays, HeraldDetector,
                              Protocol, correlation_histogram, count_coincidences,
                              detect_heralds_reference)
from timing.frames import Outcome

P = 10_000  # attempt period, ps
CFG = DetectorConfig(window_start_ps=100, window_ps=1_000, attempt_period_ps=P)
PLUS, MINUS = Outcome.PSI_PLUS, Outcome.PSI_MINUS


def stream(events):
    """(channel, time) pairs -> sorted arrays."""
    events = sorted(events, key=lambda e: e[1])
    return (np.array([c for c, _ in events], np.int32), np.array([t for _, t in events], np.int64))


def run(cfg, ch, ts, splits=()):
    det = HeraldDetector(cfg)
    parts = []
    bounds = [0, *splits, len(ts)]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        parts.append(det.push_arrays(ch[lo:hi], ts[lo:hi]))
    parts.append(det.flush())
    return HeraldArrays.concat(parts).to_list(), det.stats


def H(k, t, o):
    return Herald(k, k * P, t, o)


# Attempt k: sync at k*P. Windows are [k*P+100, k*P+1100).
KNOWN = [
    (1, 0), (2, 200), (3, 300),                     # 0: {2,3} -> psi+
    (1, P), (2, P + 200), (5, P + 900),             # 1: {2,5} -> psi-
    (1, 2 * P), (4, 2 * P + 150), (5, 2 * P + 160),  # 2: {4,5} -> psi+
    (1, 3 * P), (3, 3 * P + 400), (4, 3 * P + 401),  # 3: {3,4} -> psi-
    (1, 4 * P), (2, 4 * P + 500),                   # 4: one click: failure
    (1, 5 * P), (2, 5 * P + 200), (4, 5 * P + 300),  # 5: {2,4}: both H, ambiguous
    (1, 6 * P), (2, 6 * P + 200), (3, 6 * P + 300), (4, 6 * P + 310),  # 6: 3 clicks: ambiguous
    (1, 7 * P), (2, 7 * P + 200), (2, 7 * P + 300), (3, 7 * P + 350),  # 7: ch2 twice: ambiguous
    (1, 8 * P), (4, 8 * P + 5000), (5, 8 * P + 6000),  # 8: dark counts outside the window
    (1, 9 * P),                                     # 9: empty
    (3, 9 * P + 7000),                              # dark count between windows
]
KNOWN_HERALDS = [H(0, 300, PLUS), H(1, P + 900, MINUS), H(2, 2 * P + 160, PLUS),
                 H(3, 3 * P + 401, MINUS)]


def test_known_stream_in_one_batch():
    heralds, stats = run(CFG, *stream(KNOWN))
    assert heralds == KNOWN_HERALDS
    assert (stats.windows, stats.heralds, stats.failed, stats.ambiguous, stats.empty) == (10, 4, 1, 3, 2)
    assert stats.out_of_window == 3


def test_warm_up_leaves_the_detector_as_it_was():
    det = HeraldDetector(CFG)
    ch, ts = stream(KNOWN)
    det.push_arrays(ch[:5], ts[:5])  # mid-stream: a window is open
    before = det.stats
    det.warm_up()
    assert det.stats == before
    rest = det.push_arrays(ch[5:], ts[5:])
    heralds = HeraldArrays.concat([rest, det.flush()]).to_list()
    assert heralds == KNOWN_HERALDS[1:]


def test_reference_agrees_on_known_stream():
    ref, stats = detect_heralds_reference(*stream(KNOWN), CFG)
    assert ref.to_list() == KNOWN_HERALDS
    assert (stats.failed, stats.ambiguous, stats.empty, stats.out_of_window) == (1, 3, 2, 3)


@pytest.mark.parametrize("split", range(1, len(KNOWN)))
def test_batches_splitting_a_window_give_the_same_heralds(split):
    ch, ts = stream(KNOWN)
    assert run(CFG, ch, ts, splits=(split,))[0] == KNOWN_HERALDS


def test_window_edges_are_half_open():
    events = [(1, 0), (2, 100), (3, 1099),          # both on the inner edges: psi+
              (1, P), (2, P + 99), (3, P + 1099),   # first click one ps early: single click
              (1, 2 * P), (2, 2 * P + 100), (3, 2 * P + 1100)]  # second one ps late
    heralds, stats = run(CFG, *stream(events))
    assert heralds == [H(0, 1099, PLUS)]
    assert (stats.failed, stats.out_of_window) == (2, 2)


def test_dead_time_suppresses_afterpulse_and_persists_across_batches():
    cfg = DetectorConfig(window_start_ps=100, window_ps=1_000, attempt_period_ps=P,
                         dead_time_ps={2: 20_000, 3: 20_000})
    # Attempt 0: ch2 + ch3 -> psi+. Attempt 1: ch2 fires 10 ns after attempt 0's ch2 click,
    # inside its dead time, so it must be dropped, leaving ch5 alone (failure). Attempt 3:
    # ch2 again, 30 ns later: live again, {2,5} -> psi-.
    events = [(1, 0), (2, 200), (3, 300),
              (1, P), (2, P + 200), (5, P + 300),
              (1, 3 * P), (2, 3 * P + 200), (5, 3 * P + 300)]
    ch, ts = stream(events)
    for split in range(1, len(events)):
        heralds, stats = run(cfg, ch, ts, splits=(split,))
        assert heralds == [H(0, 300, PLUS), H(3, 3 * P + 300, MINUS)]
        assert stats.dead_time_dropped == 1 and stats.failed == 1
    ref, rstats = detect_heralds_reference(ch, ts, cfg)
    assert ref.to_list() == heralds and rstats.dead_time_dropped == 1


def test_out_of_order_batches_across_channels_are_merged():
    cfg = DetectorConfig(window_start_ps=100, window_ps=1_000, attempt_period_ps=P,
                         reorder_slack_ps=10 * P)  # the disorder below spans 9 periods
    ch, ts = stream(KNOWN)
    det = HeraldDetector(cfg)
    # The sync channel arrives first for the whole stream, then detectors a, then detectors b,
    # as if three tagger units delivered independently.
    out = []
    for group in ([1], [2, 3], [4, 5]):
        sel = np.isin(ch, group)
        out.append(det.push_arrays(ch[sel], ts[sel]))
    out.append(det.flush())
    assert HeraldArrays.concat(out).to_list() == KNOWN_HERALDS
    assert det.stats.late_tags == 0


def test_tags_later_than_the_slack_are_counted_and_dropped():
    cfg = DetectorConfig(window_start_ps=100, window_ps=1_000, attempt_period_ps=P,
                         reorder_slack_ps=500)
    det = HeraldDetector(cfg)
    det.push_arrays(np.array([1, 2, 1]), np.array([0, 200, P]))
    det.push_arrays(np.array([1]), np.array([5 * P]))
    # ch3 for attempt 0 arrives after the watermark (5P - 500) passed its window: too late.
    late = det.push_arrays(np.array([3]), np.array([300]))
    assert len(late) == 0 and len(det.flush()) == 0
    assert det.stats.late_tags == 1 and det.stats.failed == 1


def test_overflow_batch_invalidates_the_windows_it_overlaps():
    ch, ts = stream(KNOWN)
    det = HeraldDetector(CFG)
    # Attempts 0 and 1 arrive in a clean batch; attempts 2 and 3 in a batch whose tagger buffer
    # overflowed: clicks may be missing anywhere after the previous batch's last tag (P+900,
    # inside attempt 1's window) up to this batch's last (3P+401, inside attempt 3's), so none of
    # attempts 1..3 may be announced: a lost third click would have made them ambiguous.
    cut = int(np.searchsorted(ts, 2 * P))
    cut2 = int(np.searchsorted(ts, 4 * P))
    out = [det.push(TagBatch(ch[:cut], ts[:cut])),
           det.push(TagBatch(ch[cut:cut2], ts[cut:cut2], overflow=True)),
           det.push(TagBatch(ch[cut2:], ts[cut2:])), det.flush()]
    heralds = HeraldArrays.concat(out).to_list()
    assert heralds == KNOWN_HERALDS[:1]
    assert det.stats.overflow_rejected == 3 and det.stats.heralds == 1


def test_wraparound_is_unwrapped_before_detection():
    wrap = 2**25  # PTU T2 time-tag field at 1 ps resolution
    base = wrap - 2 * P  # attempts 0 and 1 before the wrap, 2 and 3 after it
    ch, ts = stream(KNOWN)
    raw = (ts + base) % wrap
    cfg = DetectorConfig(window_start_ps=100, window_ps=1_000, attempt_period_ps=P,
                         attempt_start_ps=base, wrap_ps=wrap)
    det = HeraldDetector(cfg)
    out = [det.push_arrays(ch[:7], raw[:7]), det.push_arrays(ch[7:], raw[7:]), det.flush()]
    heralds = HeraldArrays.concat(out).to_list()
    assert [h.attempt_id for h in heralds] == [0, 1, 2, 3]
    assert [h.time_ps - base for h in heralds] == [h.time_ps for h in KNOWN_HERALDS]


def test_unwrap_tolerates_a_late_tag_from_before_the_wrap():
    state = np.zeros(2, np.int64)
    out = K.unwrap_kernel(np.array([90, 95, 3, 98, 10], np.int64), 100, state)
    assert out.tolist() == [90, 95, 103, 98, 110]


def test_attempt_ids_survive_a_lost_sync_tag():
    events = [e for e in KNOWN if e != (1, P)]  # attempt 1's sync tag lost
    heralds, _ = run(CFG, *stream(events))
    assert heralds == [KNOWN_HERALDS[0], KNOWN_HERALDS[2], KNOWN_HERALDS[3]]


def test_channel_delays_are_compensated():
    cfg = DetectorConfig(window_start_ps=100, window_ps=1_000, attempt_period_ps=P,
                         delays_ps={4: 2_000, 5: 2_000})
    # Detector b's cable is 2 ns shorter: its raw tags come 2 ns early, even before the sync.
    events = [(1, 0), (4, 150 - 2_000), (5, 160 - 2_000)]
    heralds, _ = run(cfg, *stream(events))
    assert heralds == [H(0, 160, PLUS)]


def test_single_click_protocol():
    cfg = DetectorConfig(window_start_ps=100, window_ps=1_000, attempt_period_ps=P,
                         protocol=Protocol.SINGLE_CLICK)
    events = [(1, 0), (2, 500), (1, P), (5, P + 500), (1, 2 * P), (2, 2 * P + 200),
              (4, 2 * P + 300), (1, 3 * P), (4, 3 * P + 5_000)]
    heralds, stats = run(cfg, *stream(events))
    assert heralds == [H(0, 500, PLUS), H(1, P + 500, MINUS)]
    assert stats.ambiguous == 1 and stats.empty == 1 and stats.out_of_window == 1


def test_bad_configuration_names_the_field():
    with pytest.raises(ConfigError, match="window_start_ps"):
        DetectorConfig(window_start_ps=0, window_ps=10)
    with pytest.raises(ConfigError, match="window_ps"):
        DetectorConfig(window_start_ps=100, window_ps=P, attempt_period_ps=P)
    with pytest.raises(ConfigError, match="channels"):
        DetectorConfig(window_start_ps=1, window_ps=10, channels=ChannelMap(sync=2))


def random_stream(rng, n_att):
    sync = np.arange(n_att, dtype=np.int64) * P + rng.integers(-3, 4, n_att)
    n_det = rng.poisson(2.0, n_att)
    det_t = np.repeat(sync, n_det) + rng.integers(0, P - 10, n_det.sum())
    det_c = rng.integers(2, 6, n_det.sum())
    ch = np.concatenate([np.ones(n_att, np.int32), det_c.astype(np.int32), np.full(5, 7, np.int32)])
    ts = np.concatenate([sync, det_t, rng.integers(0, n_att * P, 5)])
    order = np.argsort(ts, kind="stable")
    return ch[order], ts[order]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_splits=st.integers(0, 12),
       dead=st.sampled_from([0, 300, 3_000]))
def test_streaming_kernel_equals_numpy_reference(seed, n_splits, dead):
    rng = np.random.default_rng(seed)
    ch, ts = random_stream(rng, 60)
    cfg = DetectorConfig(window_start_ps=100, window_ps=3_000, attempt_period_ps=P,
                         dead_time_ps={c: dead for c in (2, 3, 4, 5)})
    splits = sorted(rng.integers(0, len(ts), n_splits).tolist())
    heralds, stats = run(cfg, ch, ts, splits)
    ref, rstats = detect_heralds_reference(ch, ts, cfg)
    assert heralds == ref.to_list()
    assert (stats.failed, stats.ambiguous, stats.empty, stats.out_of_window,
            stats.dead_time_dropped) == (rstats.failed, rstats.ambiguous, rstats.empty,
                                         rstats.out_of_window, rstats.dead_time_dropped)


# -- SPDC coincidences and correlation ----------------------------------------------------------


def test_coincidences_exact():
    # ch1 at 0, 1000, 2000; ch2 at 0+d for d in {-60, 50, 51, 400}: with delay 0, window 100
    # (|dt| <= 50) only the 50 ps pair counts; with delay 400 only the 400 ps pair.
    ch = np.array([1, 2, 1, 2, 1, 2, 2])
    ts = np.array([0, -60 + 0, 1000, 1050, 2000, 2051, 2400])
    order = np.argsort(ts, kind="stable")
    ch, ts = ch[order], ts[order]
    assert count_coincidences(ch, ts, 1, 2, window_ps=100) == 1
    assert count_coincidences(ch, ts, 1, 2, window_ps=102) == 2
    assert count_coincidences(ch, ts, 1, 2, window_ps=100, delay_ps=400) == 1
    assert count_coincidences(ch, ts, 1, 2, window_ps=100, delay_ps=-60) == 1


def test_coincidences_of_a_pair_source_match_closed_form_accidentals():
    rng = np.random.default_rng(7)
    T = 200 * 10**9  # 0.2 s
    pairs = np.sort(rng.integers(0, T, 20_000))
    a = np.sort(np.concatenate([pairs, rng.integers(0, T, 80_000)]))
    b = np.sort(np.concatenate([pairs + 3_000, rng.integers(0, T, 80_000)]))
    ch = np.concatenate([np.full(a.size, 1), np.full(b.size, 2)]).astype(np.int32)
    ts = np.concatenate([a, b])
    order = np.argsort(ts, kind="stable")
    ch, ts = ch[order], ts[order]
    w = 1_000
    true_pairs = count_coincidences(ch, ts, 1, 2, window_ps=w, delay_ps=3_000)
    accidental = count_coincidences(ch, ts, 1, 2, window_ps=w, delay_ps=-50_000)
    assert true_pairs == K.coincidences_reference(a, b, 2_500, 3_500)
    expected_acc = a.size * b.size * (w + 1) / T  # rate_a * rate_b * window * T
    assert abs(accidental - expected_acc) < 4 * np.sqrt(expected_acc)
    assert abs(true_pairs - 20_000 - expected_acc) < 4 * np.sqrt(expected_acc) + 1


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), binwidth=st.integers(1, 500), n_bins=st.integers(1, 64))
def test_correlation_equals_reference(seed, binwidth, n_bins):
    rng = np.random.default_rng(seed)
    a = np.sort(rng.integers(0, 50_000, 200))
    b = np.sort(rng.integers(0, 50_000, 200))
    ch = np.concatenate([np.full(a.size, 3), np.full(b.size, 4)]).astype(np.int32)
    ts = np.concatenate([a, b])
    order = np.argsort(ts, kind="stable")
    centres, hist = correlation_histogram(ch[order], ts[order], 3, 4, binwidth_ps=binwidth,
                                          n_bins=n_bins)
    lo = -(n_bins * binwidth) // 2
    assert hist.tolist() == K.correlation_reference(a, b, lo, binwidth, n_bins).tolist()
    assert centres[0] == lo + binwidth / 2


def test_correlation_peak_at_the_pair_delay():
    ts = np.array([0, 1_230, 10_000, 11_230, 20_000, 21_230])
    ch = np.array([1, 2, 1, 2, 1, 2])
    centres, hist = correlation_histogram(ch, ts, 1, 2, binwidth_ps=100, n_bins=40)
    assert hist.sum() == 3 and centres[hist.argmax()] == 1_250
