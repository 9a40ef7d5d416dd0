"""The whole timing layer in one virtual-time run: two end nodes' schedules emit from free
communication qubits, the BSA station's tag stream (synthetic photonics with a known success
probability and dark counts) goes through detection, heralds travel the in-process herald link
with 1 km fibre delays, and both ends raise PairReady for the same pairs on the right qubits."""

import numpy as np

from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.clock import VirtualClock
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import NS, US, fibre_delay_ps
from drivers.time_tagger import TagBatch
from timing.binding import PairBinder
from timing.detection import DetectorConfig, HeraldDetector, detect_heralds_reference
from timing.frames import link_id_for
from timing.herald_link import InProcessHeraldLink
from timing.schedule import AttemptSchedule, CallbackTrigger, DemandCounter, ScheduleConfig
from timing.station import HeraldStation

PERIOD = 10 * US
P_SUCCESS = 0.1
N_QUBITS = 32


def test_heralded_pairs_reach_both_ends_at_the_expected_rate():
    loop = EventLoop(VirtualClock())
    rng = RandomStreams(5).get("test/bsa-photonics")
    fibre = fibre_delay_ps(1.0)
    link = InProcessHeraldLink(loop, "A-B")
    for end in ("A", "B"):
        link.set_delay("bsa", end, fibre)
    sched_cfg = ScheduleConfig(start_ps=0, period_ps=PERIOD, window_ps=2 * NS)
    emitted = {"A": set(), "B": set()}
    ends = {}
    for node, partner, qnic in (("A", "B", 0), ("B", "A", 1)):
        free = [QubitAddress(qnic, i) for i in range(N_QUBITS)]
        ready = []
        binder = PairBinder(node, "A-B", link_id_for("A-B"), partner, "bsa", loop.clock,
                            on_pair_ready=ready.append, release=free.append,
                            expiry_ps=3 * fibre + 200 * US, loop=loop)
        binder.attach(link.endpoint(node))
        demand = DemandCounter()

        def emit(k, t, node=node, free=free, binder=binder):
            binder.record_emission(k, free.pop(0), t)
            emitted[node].add(k)

        sched = AttemptSchedule(loop, "A-B", sched_cfg, CallbackTrigger(emit), demand,
                                gate=lambda k, free=free: bool(free))
        ends[node] = (binder, ready, free, demand, sched)

    detector = HeraldDetector(DetectorConfig(window_start_ps=200, window_ps=1_000,
                                             attempt_period_ps=PERIOD, attempt_start_ps=fibre))
    station = HeraldStation(link.endpoint("bsa"), detector, ["A", "B"], loop.clock)
    recorded_ch, recorded_ts, truth = [], [], {}
    patterns = [((2, 3), "PSI_PLUS"), ((4, 5), "PSI_PLUS"), ((2, 5), "PSI_MINUS"), ((3, 4), "PSI_MINUS")]
    state = {"next": 0}

    def tagger_read():
        """Every 100 us the station's tagger delivers the tags of attempts that have arrived."""
        now = loop.now_ps()
        ch, ts = [], []
        while sched_cfg.attempt_time(state["next"]) + fibre + 2 * NS <= now:
            k = state["next"]
            state["next"] += 1
            sync = sched_cfg.attempt_time(k) + fibre  # photons and marker meet at the BSA
            ch.append(1)
            ts.append(sync)
            if k in emitted["A"] and k in emitted["B"] and rng.random() < P_SUCCESS:
                (c1, c2), name = patterns[rng.integers(4)]
                t1, t2 = sync + 500 + rng.integers(0, 50, 2)
                ch += [c1, c2]
                ts += [t1, t2]
                truth[k] = (name, max(t1, t2))
            if rng.random() < 0.02:  # a dark count somewhere in the period
                ch.append(int(rng.integers(2, 6)))
                ts.append(sync + int(rng.integers(1, PERIOD)))
        if ch:
            order = np.argsort(ts, kind="stable")
            batch = TagBatch(np.array(ch, np.int32)[order], np.array(ts, np.int64)[order])
            recorded_ch.append(batch.channels)
            recorded_ts.append(batch.timestamps_ps)
            station.ingest(batch, complete_until_ps=now)
        loop.call_later(100 * US, tagger_read)

    def consume():
        """The RuleSet executor's stand-in: take each pair and free its qubit."""
        for binder, ready, free, _, _ in ends.values():
            while ready:
                free.append(ready.pop().qubit)
        loop.call_later(20 * US, consume)

    bound = {"A": [], "B": []}
    for node in ("A", "B"):
        binder, ready, *_ = ends[node]
        binder.on_pair_ready = lambda r, node=node, ready=ready: (bound[node].append(r), ready.append(r))
    for _, _, _, demand, _ in ends.values():
        demand.add()
    loop.call_later(100 * US, tagger_read)
    loop.call_later(20 * US, consume)
    loop.run_until(200_000 * US)  # 0.2 s: 20 000 attempt slots

    # Exactly the heralded attempts are bound, at both ends, with the same name and state.
    ch, ts = np.concatenate(recorded_ch), np.concatenate(recorded_ts)
    reference, _ = detect_heralds_reference(ch, ts, detector.config)
    ref = {h.attempt_id: h for h in reference}
    got = {node: {r.attempt_id: r for r in bound[node]} for node in bound}
    delivered = set(got["A"])
    assert delivered == set(got["B"])
    # The last heralds may still be in flight at the end of the run.
    assert set(ref) - delivered <= {k for k in ref if ref[k].sync_ps > 200_000 * US - 300 * US}
    for k in delivered:
        ra, rb = got["A"][k], got["B"][k]
        assert ra.name == rb.name == PairName("bsa", ref[k].time_ps)
        assert ra.bell_state == rb.bell_state == ref[k].outcome.bell_state
        assert ra.qubit.qnic == 0 and rb.qubit.qnic == 1
    # Heralds are the true successes except where a dark count spoiled or faked one.
    both = emitted["A"] & emitted["B"]
    n = len(both)
    assert n > 15_000
    assert abs(len(delivered) - P_SUCCESS * n) < 4 * np.sqrt(n * P_SUCCESS * (1 - P_SUCCESS))
    matched = sum(1 for k in delivered if k in truth and truth[k][1] == ref[k].time_ps)
    assert matched >= len(delivered) - 5
