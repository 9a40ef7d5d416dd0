"""The message-fault shim and the fault plan that configures it.

Rates are checked against their binomial expectation (3 sigma), holds against their exact
values; through the shim, reliable control links still deliver everything once and in order,
and herald frames lost, duplicated, reordered or delayed past the binder's expiry never bind a
pair wrongly and never leave a qubit held."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qnode_fw.addresses import QubitAddress
from qnode_fw.clock import VirtualClock
from qnode_fw.control import Impairments, InProcessNetwork, LinkSettings
from qnode_fw.errors import ConfigError
from qnode_fw.faults import (FaultPlan, FaultTargets, MessageFaults, apply_fault_plan,
                             parse_fault_plan_yaml, parse_fault_string)
from qnode_fw.faults.messages import MessageFaultInjector
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import MS, US
from timing.binding import PairBinder
from timing.frames import FrameType, Outcome, link_id_for
from timing.herald_link import InProcessHeraldLink


def within_3_sigma(count: int, n: int, p: float) -> bool:
    return abs(count - n * p) <= 3 * math.sqrt(n * p * (1 - p)) + 1


def test_fault_rates_and_holds():
    inj = MessageFaultInjector(MessageFaults(drop=0.1, dup=0.05, reorder=0.2, reorder_us=40,
                                             delay=0.3, delay_us=7), np.random.default_rng(9))
    n = 20_000
    fates = [inj.fate() for _ in range(n)]
    s = inj.stats
    assert s.messages == n and s.dropped == sum(1 for f in fates if not f)
    assert within_3_sigma(s.dropped, n, 0.1)
    kept = n - s.dropped
    assert within_3_sigma(s.duplicated, kept, 0.05)
    copies = kept + s.duplicated
    assert within_3_sigma(s.delayed, copies, 0.3) and within_3_sigma(s.reordered, copies, 0.2)
    holds = [h for f in fates for h in f]
    # A copy is held by 7 us (delayed), by (0, 40] us (reordered), by both, or not at all.
    assert all(0 <= h <= 47 * US for h in holds) and max(holds) > 40 * US
    assert holds.count(0) > 0 and holds.count(7 * US) > 0


def test_delay_us_alone_delays_every_message_by_exactly_that():
    inj = MessageFaultInjector(parse_fault_string("control.delay_us=250").control,
                               np.random.default_rng(1))
    assert {tuple(inj.fate()) for _ in range(100)} == {(250 * US,)}


@pytest.mark.parametrize(("text", "where"), [
    ("drop=1.5", "--fault drop"), ("herald.delay=0.2", "--fault herald.delay"),
    ("dorp=0.1", "--fault dorp"), ("control.reorder_us=-3", "--fault control.reorder_us"),
    ("drop=inf", "--fault drop"), ("seed=1.5", "--fault seed"), ("=3", "--fault =3"),
])
def test_bad_fault_strings_name_the_key(text, where):
    with pytest.raises(ConfigError) as info:
        parse_fault_string(text)
    assert info.value.field == where


def test_yaml_plan_errors_name_file_line_and_field():
    text = "seed: 3\nfaults:\n  control: {drop: 0.1}\n  instruments:\n    - {instrument: t, fault: melt}\n"
    with pytest.raises(ConfigError) as info:
        parse_fault_plan_yaml(text, "exp.yaml")
    err = info.value.errors[0]
    assert (err.file, err.line, err.field) == ("exp.yaml", 5, "faults.instruments[0].fault")


def test_command_line_overrides_yaml_message_faults_and_keeps_the_rest():
    base = parse_fault_plan_yaml("control: {drop: 0.1, dup: 0.2}\nclocks: [{node: A, jump_us: 9}]")
    plan = base.with_overrides(parse_fault_string("drop=0.05,seed=4"))
    assert (plan.control.drop, plan.control.dup, plan.herald.drop, plan.seed) == (0.05, 0.2, 0.05, 4)
    assert plan.clocks == base.clocks and not plan.empty and FaultPlan().empty


def test_reliable_control_links_deliver_everything_once_in_order_through_the_shim():
    loop = EventLoop(VirtualClock())
    net = InProcessNetwork(loop, np.random.default_rng(5), Impairments(delay_ps=20 * US))
    settings_ = LinkSettings(heartbeat_ps=5 * MS, retransmit_ps=2 * MS, max_retransmits=20)
    a, b = net.link("A", ["B"], settings_), net.link("B", ["A"], settings_)
    got = []
    b.on_message = lambda p, t, pl: got.append(pl["i"])
    applied = apply_fault_plan(parse_fault_string("drop=0.2,dup=0.1,reorder=0.3,reorder_us=3000,"
                                                  "delay=0.1,delay_us=1500"),
                               FaultTargets(loop, RandomStreams(2), control_links={"A": a, "B": b}))
    a.start(); b.start()
    for i in range(300):
        loop.call_at(i * 100 * US, a.send, "B", "x", {"i": i})
    loop.run_until(500 * MS)
    assert got == list(range(300)) and a.unacked("B") == 0
    s = applied.message_stats("control")
    assert s.dropped and s.duplicated and s.reordered and s.delayed and s.sent_late
    applied.remove()
    assert "_transmit" not in vars(a) and "_transmit" not in vars(b)


LINK, EXPIRY = "A-B", 2 * MS


@settings(max_examples=40, deadline=None)
@given(drop=st.floats(0, 0.5), dup=st.floats(0, 0.5), reorder=st.floats(0, 0.5),
       delay=st.floats(0, 0.5), delay_us=st.sampled_from([1.0, 500.0, 5000.0]),
       outcomes=st.lists(st.sampled_from(list(Outcome)), min_size=1, max_size=30),
       seed=st.integers(0, 2**31))
def test_herald_faults_never_bind_wrongly_or_hold_a_qubit(drop, dup, reorder, delay, delay_us,
                                                          outcomes, seed):
    loop = EventLoop(VirtualClock())
    link = InProcessHeraldLink(loop, LINK)
    for end in ("A", "B"):
        link.set_delay("bsa", end, 10 * US)
    station = link.endpoint("bsa")
    ends = {}
    for node, partner in (("A", "B"), ("B", "A")):
        ready, released = [], []
        binder = PairBinder(node, LINK, link_id_for(LINK), partner, "bsa", loop.clock,
                            on_pair_ready=ready.append, release=released.append,
                            expiry_ps=EXPIRY, loop=loop)
        binder.attach(link.endpoint(node))
        ends[node] = (binder, ready, released)
    plan = FaultPlan(herald=MessageFaults(drop=drop, dup=dup, reorder=reorder, reorder_us=3000,
                                          delay=delay, delay_us=delay_us))
    apply_fault_plan(plan, FaultTargets(loop, RandomStreams(seed), herald_endpoints=[station]))
    for k, outcome in enumerate(outcomes):
        t = k * 100 * US
        for node, (binder, *_) in ends.items():
            loop.call_at(t, binder.record_emission, k, QubitAddress(0, k))
        for node in ("A", "B"):
            loop.call_at(t + 50 * US, station.send, node, FrameType.HERALD, k, t, outcome)
    loop.run_until(len(outcomes) * 100 * US + 20 * MS)
    for node, (binder, ready, released) in ends.items():
        bound = {r.qubit for r in ready}
        assert binder.pending == {} and bound.isdisjoint(released)
        assert bound | set(released) == {QubitAddress(0, k) for k in range(len(outcomes))}
        for r in ready:
            assert outcomes[r.attempt_id] not in (Outcome.FAILURE,)
            assert r.qubit == QubitAddress(0, r.attempt_id) and r.name.timestamp_ps == r.attempt_id * 100 * US


def test_the_same_shim_works_on_zeromq_links_and_herald_endpoints():
    """Processes mode: real ZeroMQ sockets on loopback, wall clock; the plan's control faults
    are recovered by the link, herald faults are counted by the receiver's window."""
    import zmq

    from qnode_fw.clock import WallClock
    from qnode_fw.control import ZmqControlLink
    from timing.herald_link import ZmqHeraldEndpoint

    ctx = zmq.Context()
    loop = EventLoop(WallClock())
    settings_ = LinkSettings(heartbeat_ps=20 * MS, missed_heartbeats=20, retransmit_ps=5 * MS,
                             max_retransmits=50)
    a = ZmqControlLink("A", loop, bind="tcp://127.0.0.1:0", peers={"B": None}, context=ctx,
                       settings=settings_)
    a.start()
    b = ZmqControlLink("B", loop, bind="tcp://127.0.0.1:0", peers={"A": a.address},
                       context=ctx, settings=settings_)
    b.start()
    station = ZmqHeraldEndpoint("bsa", "A-B", bind="tcp://127.0.0.1:0", context=ctx)
    end = ZmqHeraldEndpoint("A", "A-B", connect={"bsa": station.address}, context=ctx)
    station.attach(loop)
    end.attach(loop)
    got, frames = [], []
    a.on_message = lambda p, t, pl: got.append(pl["i"])
    end.subscribe(FrameType.HERALD, lambda p, f: frames.append(f.attempt_id))
    applied = apply_fault_plan(parse_fault_string("drop=0.3,dup=0.2,reorder=0.3,reorder_us=2000"),
                               FaultTargets(loop, RandomStreams(8), control_links={"A": a, "B": b},
                                            herald_endpoints=[station]))
    try:
        end.send("bsa", FrameType.SYNC_REQUEST, 0, 0)      # the station learns the route to A
        deadline = loop.now_ps() + 3000 * MS
        while loop.now_ps() < deadline and not station.window("A").highest:
            loop.run_until(loop.now_ps() + 5 * MS)
        for i in range(40):
            b.send("A", "x", {"i": i})
            station.send("A", FrameType.HERALD, i, i)
        while loop.now_ps() < deadline and len(got) < 40:
            loop.run_until(loop.now_ps() + 5 * MS)
        loop.run_until(loop.now_ps() + 20 * MS)         # late copies land
        assert got == list(range(40))
        herald = applied.message_stats("herald")
        assert herald.messages == 40 and herald.dropped and herald.duplicated and herald.reordered
        # Each herald that was not dropped arrives exactly once; every extra copy is a counted
        # duplicate at the receiving end.
        assert sorted(frames) == sorted(set(frames)) and len(frames) == 40 - herald.dropped
        assert end.stats.duplicates == herald.duplicated
    finally:
        for x in (a, b):
            x.stop()
        for ep in (end, station):
            ep.close()
        loop.close()
        ctx.term()
