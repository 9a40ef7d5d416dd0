"""Communication and storage qubits (RFC 9340 §5.4.3): only communication qubits emit or absorb,
a move never lands on one, links refuse the wrong photon operation for their scheme, and an
attempt is made only with a communication qubit that is free (not waiting for a herald, not
holding a pair, not busy with a move)."""

from __future__ import annotations

import math

import pytest

from drivers.qnic import QNIC, Basis, Gate, QubitRole
from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.addresses import QubitAddress
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import InstrumentError, QubitRoleError
from qnode_fw.loop import EventLoop
from qnode_fw.rng import RandomStreams
from qnode_fw.units import US
from sim_backend.link_schemes import SimLinkPhysics, build_sim_link
from sim_backend.world import World
from timing.comm_qubits import CommQubitPool
from timing.herald_link import InProcessHeraldLink
from timing.link_end import LinkEndRuntime
from timing.schedule import DemandCounter
from timing.schemes import LinkEndParams, LinkScheme, LinkSchemeParams

IDEAL = {"communication_t1_ps": math.inf, "communication_t2_ps": math.inf,
         "storage_t1_ps": math.inf, "storage_t2_ps": math.inf}


def make_testbed():
    clock = VirtualClock()
    loop = EventLoop(clock)
    streams = RandomStreams(4)
    world = World(clock, streams, loop)
    return loop, world, DriverContext(clock=clock, streams=streams, world=world, loop=loop)


def qnic(ctx, node, n=2, comm=(0,)):
    return open_instrument(InstrumentSpec(f"q{node}", "qnic", "sim", "sim", options={
        "node": node, "num_qubits": n, "communication_qubits": list(comm), "memory": IDEAL}), ctx)


def params(scheme, station, period=10 * US):
    return LinkSchemeParams("A-B", scheme, station, (LinkEndParams("A"), LinkEndParams("B")),
                            period_ps=period, start_ps=10 * US)


class EmitterOnlyQNIC(QNIC):
    """A QNIC model without a transducer: it keeps the interface's refusing absorb()."""

    model = "emitter-only"

    def __init__(self):
        super().__init__("e", "lab://emitter")

    def identify(self): return "emitter-only"
    @property
    def qnic_address(self): return 0
    @property
    def num_qubits(self): return 1
    def role(self, index): return QubitRole.COMMUNICATION
    def init(self, index): pass
    def gate(self, gate: Gate, *indices): pass
    def measure(self, index, basis: Basis = Basis.Z): return 0
    def emit(self, index, attempt_id): pass
    def move(self, source, destination): pass
    def duration_ps(self, operation): return 0


def test_only_communication_qubits_emit_or_absorb_and_moves_go_to_storage():
    loop, world, ctx = make_testbed()
    q = qnic(ctx, "A", n=3, comm=(0,))
    for op in (q.emit, q.absorb):
        with pytest.raises(QubitRoleError, match="storage qubit and cannot") as err:
            op(2, 7)
        assert isinstance(err.value, InstrumentError) and err.value.resource == "sim://A/qnic0"
    with pytest.raises(QubitRoleError, match="not a storage qubit"):
        q.move(1, 0)
    with pytest.raises(InstrumentError, match="emitter-only QNIC has no absorbing transducer") as err:
        EmitterOnlyQNIC().absorb(0, 3)
    assert err.value.command == "absorb 0 3"


@pytest.mark.parametrize("scheme, station, wrong", [
    (LinkScheme.BOTH_ENDPOINTS, "bsa", ("A", "absorb")),
    (LinkScheme.MIDPOINT_SOURCE, "epps", ("A", "emit")),
    (LinkScheme.AT_SOURCE, "B", ("B", "emit")),
    (LinkScheme.AT_SOURCE, "B", ("A", "absorb")),
])
def test_a_link_refuses_the_photon_operation_its_scheme_does_not_have(scheme, station, wrong):
    loop, world, ctx = make_testbed()
    qs = {n: qnic(ctx, n) for n in ("A", "B")}
    tagger = open_instrument(InstrumentSpec("tt", "time_tagger", "sim", "sim"), ctx)
    heralding = {LinkScheme.BOTH_ENDPOINTS: ["bsa"], LinkScheme.MIDPOINT_SOURCE: ["A", "B"],
                 LinkScheme.AT_SOURCE: ["B"]}[scheme]
    build_sim_link(world, params(scheme, station), SimLinkPhysics(),
                   taggers={n: tagger.name for n in heralding})
    node, op = wrong
    with pytest.raises(QubitRoleError, match=f"cannot {op}|none absorbs"):
        getattr(qs[node], op)(0, 1)


def test_a_pool_needs_communication_qubits_and_a_link_may_only_list_them():
    loop, world, ctx = make_testbed()
    storage_only = qnic(ctx, "A", n=2, comm=())
    with pytest.raises(QubitRoleError, match="no communication qubit"):
        CommQubitPool(storage_only, loop.clock)
    q = qnic(ctx, "B", n=2, comm=(0,))
    pool = CommQubitPool(q, loop.clock)
    endpoint = InProcessHeraldLink(loop, "A-B").endpoint("B")
    with pytest.raises(QubitRoleError, match="lists qubit 1, which is not a communication qubit"):
        LinkEndRuntime(loop, params(LinkScheme.BOTH_ENDPOINTS, "bsa"), 1, q, pool, endpoint,
                       on_pair_ready=lambda r: None, qubits=(1,))


def test_attempts_wait_for_a_free_communication_qubit():
    loop, world, ctx = make_testbed()
    q = qnic(ctx, "A", n=2, comm=(0,))
    held: set[QubitAddress] = set()
    busy = {"until": 0}
    pool = CommQubitPool(q, loop.clock, held=lambda: set(held),
                         free_at_ps=lambda a: busy["until"])
    p = params(LinkScheme.BOTH_ENDPOINTS, "bsa")
    end = LinkEndRuntime(loop, p, 0, q, pool, InProcessHeraldLink(loop, "A-B").endpoint("A"),
                         on_pair_ready=lambda r: None, expiry_ps=50 * US)
    demand = DemandCounter()
    schedule = end.start_schedule(demand)
    demand.add()
    held.add(QubitAddress(0, 0))  # a pair sits on the only communication qubit
    loop.run_until(60 * US)
    assert schedule.fired == 0 and schedule.vetoed == 6  # slots at 10, 20, ... 60 us
    assert not [op for op in q.operation_log if op[1] == "emit"]
    held.clear()
    busy["until"] = 83 * US  # now a move out of it runs until 83 us
    loop.run_until(95 * US)
    emits = [op for op in q.operation_log if op[1] == "emit"]
    assert [op[0] for op in emits] == [90 * US]  # the first slot after the move, and only one:
    assert pool.pending == {0}  # the qubit now waits for attempt 8's herald
    assert schedule.vetoed == 8
