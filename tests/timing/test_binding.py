"""Binding heralds to qubits: whatever the herald link loses, duplicates or reorders (and whatever
a forger sends), no pair is ever bound to the wrong qubit or partner, no qubit or attempt is bound
twice, and every emitted qubit ends bound or released."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qnode_fw.addresses import PairName, QubitAddress
from qnode_fw.bell import BellState
from qnode_fw.clock import VirtualClock
from qnode_fw.loop import EventLoop
from timing.binding import PairBinder
from timing.frames import Frame, FrameCodec, FrameType, Outcome, link_id_for
from timing.herald_link import InProcessHeraldLink

LINK = "A-B"
EXPIRY = 1_000_000


class End:
    def __init__(self, loop, link, node, partner, qnic):
        self.ready, self.released = [], []
        self.endpoint = link.endpoint(node)
        self.binder = PairBinder(node, LINK, link_id_for(LINK), partner, "bsa", loop.clock,
                                 on_pair_ready=self.ready.append, release=self.released.append,
                                 expiry_ps=EXPIRY, fidelity_estimate=0.9)
        self.binder.attach(self.endpoint)
        self.qnic = qnic

    def qubit(self, attempt):
        return QubitAddress(self.qnic, attempt)


outcomes = st.sampled_from([Outcome.PSI_PLUS, Outcome.PSI_MINUS, Outcome.FAILURE,
                            Outcome.PHI_PLUS, Outcome.SUCCESS])


@settings(max_examples=150, deadline=None)
@given(
    n_attempts=st.integers(1, 12),
    heralds=st.lists(st.tuples(st.integers(0, 11), outcomes), max_size=12, unique_by=lambda h: h[0]),
    deliveries=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["A", "B"]),
                                  st.integers(0, EXPIRY // 3)), max_size=40),
    forgeries=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["A", "B"]),
                                 st.sampled_from(["B", "A", "evil"]), st.booleans()), max_size=6),
)
def test_lost_duplicated_reordered_heralds_never_bind_wrongly(n_attempts, heralds, deliveries,
                                                              forgeries):
    loop = EventLoop(VirtualClock())
    link = InProcessHeraldLink(loop, LINK)
    codec = FrameCodec()
    a = End(loop, link, "A", "B", 0)
    b = End(loop, link, "B", "A", 1)
    ends = {"A": a, "B": b}
    for k in range(n_attempts):
        a.binder.record_emission(k, a.qubit(k))
        b.binder.record_emission(k, b.qubit(k))
    heralds = [(k, o) for k, o in heralds if k < n_attempts]
    # What the station sent to each end: frame i of each end is heralds[i] with sequence i+1.
    sent = {end: [codec.encode(Frame(FrameType.HERALD, link_id_for(LINK), i + 1, k, 10_000 + 7 * k, o))
                  for i, (k, o) in enumerate(heralds)] for end in ends}
    truth = {k: o for k, o in heralds}
    for idx, end, dt in deliveries:
        loop.run_until(loop.now_ps() + dt)
        if idx < len(heralds):
            ends[end].endpoint.deliver("bsa", sent[end][idx])
    for attempt, end, sender, wrong_link in forgeries:
        # Frames from anyone but the station, or for another link, bind nothing.
        lid = link_id_for("C-D") if wrong_link else link_id_for(LINK)
        ends[end].endpoint.deliver(sender, codec.encode(
            Frame(FrameType.HERALD, lid, 10_000 + attempt, attempt, 999, Outcome.PSI_PLUS)))
    loop.run_until(loop.now_ps() + EXPIRY)
    for e in ends.values():
        e.binder.expire()

    names = {}
    for node, e in ends.items():
        partner = "B" if node == "A" else "A"
        attempts = [r.attempt_id for r in e.ready]
        assert len(attempts) == len(set(attempts))
        for r in e.ready:
            assert r.attempt_id in truth and truth[r.attempt_id] is not Outcome.FAILURE
            assert r.qubit == e.qubit(r.attempt_id)
            assert r.partner == partner and r.link == LINK
            assert r.name == PairName("bsa", 10_000 + 7 * r.attempt_id)
            expected_state = truth[r.attempt_id].bell_state or BellState.PHI_PLUS
            assert r.bell_state is expected_state
            names.setdefault(r.name, set()).add((node, r.attempt_id))
        bound = {r.qubit for r in e.ready}
        released = set(e.released)
        # Nothing held forever: every emitted qubit is bound or released, never both.
        assert bound.isdisjoint(released)
        assert bound | released == {e.qubit(k) for k in range(n_attempts)}
        assert e.binder.pending == {}
    # Both ends that bound a name bound it for the same attempt.
    for name, holders in names.items():
        assert len({k for _, k in holders}) == 1


def test_pair_record_carries_the_correction_on_one_end_only():
    loop = EventLoop(VirtualClock())
    link = InProcessHeraldLink(loop, LINK)
    link.set_delay("bsa", "A", 5)
    link.set_delay("bsa", "B", 7)
    a = End(loop, link, "A", "B", 0)
    b = End(loop, link, "B", "A", 1)
    station = link.endpoint("bsa")
    a.binder.record_emission(3, QubitAddress(0, 2), t_ps=0)
    b.binder.record_emission(3, QubitAddress(1, 5), t_ps=0)
    loop.call_at(100, station.send, "A", FrameType.HERALD, 3, 90, Outcome.PSI_MINUS)
    loop.call_at(100, station.send, "B", FrameType.HERALD, 3, 90, Outcome.PSI_MINUS)
    loop.run_until_idle()
    (ra,), (rb,) = a.ready, b.ready
    assert (ra.qubit, rb.qubit, ra.name, rb.name) == (QubitAddress(0, 2), QubitAddress(1, 5),
                                                      PairName("bsa", 90), PairName("bsa", 90))
    rec_a, rec_b = a.binder.pairs[ra.name], b.binder.pairs[rb.name]
    assert (rec_a.correction, rec_b.correction) == ("Y", "I")  # A sorts first and corrects
    assert (rec_a.heralded_ps, rec_b.heralded_ps) == (105, 107)
    assert ra.fidelity_estimate == 0.9 and ra.created_ps == 0


def test_a_qubit_cannot_wait_for_two_attempts():
    loop = EventLoop(VirtualClock())
    a = End(loop, InProcessHeraldLink(loop, LINK), "A", "B", 0)
    a.binder.record_emission(1, QubitAddress(0, 0))
    with pytest.raises(ValueError, match="still waiting for attempt 1"):
        a.binder.record_emission(2, QubitAddress(0, 0))
    with pytest.raises(ValueError, match="already has qubit"):
        a.binder.record_emission(1, QubitAddress(0, 1))
    loop.run_until(EXPIRY)
    a.binder.record_emission(2, QubitAddress(0, 0))  # attempt 1 expired and released it
    assert a.released == [QubitAddress(0, 0)]
