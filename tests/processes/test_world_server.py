"""The World server and the node-side RemoteWorld over real ZeroMQ sockets on loopback.

Oracle for the physics: a memory link "at both end points" with lossless collection, 1 km of
0.2 dB/km fibre per side, detectors of efficiency ``e`` and no dark counts. Both photons reach the
beam splitter with probability ``t²`` (``t = 10^(-0.02)``) and then interfere, being projected on
the four Bell states uniformly; only Ψ± light two different detectors, each detected with ``e``.
So an attempt lights two different detectors with probability ``½ t² e²`` and, when it does,
the memories hold the Werner state of the configured fidelity around the Ψ the pattern names
(docs/physics.md, "BSA station and memory links"). That only holds if both emissions, made by
two different node sides, reach the World stamped with the same attempt time, and if the
station's reads see photons still in flight: the properties under test.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import zmq

from drivers.conformance import CHECKS, LIMITS, QNIC_CHECKS
from drivers.qnic import Gate
from drivers.registry import DriverContext, InstrumentSpec, open_instrument
from qnode_fw.bell import BellState
from qnode_fw.control import CurveIdentity, NodeAuthenticator
from qnode_fw.errors import InstrumentError, ProtocolError, QubitRoleError
from qnode_fw.units import MS, NS, US
from sim_backend.memory_link import LinkEnd, MemoryLink
from sim_backend.physics.detector import DetectorParams
from sim_backend.physics.fibre import Fibre
from sim_backend.physics.tagger import TaggerParams
from sim_backend.remote import RemoteWorld
from sim_backend.remote.protocol import (Message, MsgType, PROTOCOL_VERSION, decode, encode_error,
                                         decode_error)
from sim_backend.remote.proxies import (RemoteOpticalSwitch, RemotePairSource, RemoteQNIC,
                                        RemoteTimeTagger)
from sim_backend.world_server import ServerSettings

from .world_harness import RunningLoops, ServerThread, node

pytestmark = pytest.mark.processes

EFFICIENCY = 0.9
LINK_FIDELITY = 0.9
FIBRE = Fibre(1.0)
PERIOD = 20 * US
ATTEMPTS = 240
TAGGER = "bsa/tagger"
PSI = {frozenset({2, 3}): BellState.PSI_PLUS, frozenset({4, 5}): BellState.PSI_PLUS,
       frozenset({2, 5}): BellState.PSI_MINUS, frozenset({3, 4}): BellState.PSI_MINUS}


def memory_link(world) -> None:
    world.add_tagger(TAGGER, TaggerParams(jitter_rms_ps=0.0))
    world.add_memory_link(MemoryLink(
        "A-B", (LinkEnd("A", 0, FIBRE, 1.0), LinkEnd("B", 0, FIBRE, 1.0)), TAGGER,
        detectors=(DetectorParams(EFFICIENCY, 0.0, 20 * NS, 0.0),) * 4,
        link_fidelity=LINK_FIDELITY))


def open_on(side, kind: str, name: str, limits=None, **options):
    ctx = DriverContext(clock=side.loop.clock, loop=side.loop, world=side.world)
    return open_instrument(InstrumentSpec(f"{side.name}/{name}", kind, "sim", "sim", limits or {},
                                          options), ctx)


def qnic_on(side, qubits: int):
    memory = {"communication_t1_ps": math.inf, "communication_t2_ps": math.inf}
    return open_on(side, "qnic", "qnic0", node=side.name, num_qubits=qubits, memory=memory)


def awg_on(side):
    """A simulated AWG (local to the node) whose marker 1 starts each emission."""
    awg = open_on(side, "awg", "awg")
    markers = np.zeros(8, np.uint8)
    markers[2:4] = 1           # the marker edge comes 2 samples (2 ns) after the trigger
    awg.upload_waveform(1, "attempt", np.zeros(8), 1e9, markers=markers)
    awg.select_waveform(1, "attempt")
    awg.configure_burst(1, 1, "BUS")
    awg.set_output(1, True)
    awg.run()
    return awg


#: Server and nodes share one interpreter here: a busy machine may keep a node's loop from
#: answering for a while, which must only slow the reads down, never pass the node over.
PATIENT = ServerSettings(horizon_timeout_s=20.0, client_timeout_s=30.0)


def test_emissions_from_two_nodes_meet_at_the_bsa_at_the_rate_and_state_of_the_closed_form():
    ctx = zmq.Context()
    with ServerThread(memory_link, context=ctx, settings=PATIENT) as srv:
        a, b, bsa = (node(srv.endpoint, n, ctx) for n in ("A", "B", "bsa"))
        qnics = {s.name: qnic_on(s, ATTEMPTS) for s in (a, b)}
        assert isinstance(qnics["A"], RemoteQNIC) and qnics["A"].num_qubits == ATTEMPTS
        tagger = open_on(bsa, "time_tagger", "tagger")
        assert isinstance(tagger, RemoteTimeTagger)
        t0 = a.loop.now_ps() + 300 * MS
        for side in (a, b):
            awg = awg_on(side)
            # The emission hardware behind the AWG marker: qubit k emits in attempt k.
            side.world.marker_listeners.append(
                lambda _awg, _ch, _mk, t, q=qnics[side.name]: q.emit((t - t0) // PERIOD, (t - t0) // PERIOD))
            for k in range(ATTEMPTS):
                side.world.loop.call_at(t0 + k * PERIOD, awg.trigger)
        end = t0 + ATTEMPTS * PERIOD
        nodes = RunningLoops((a, b))
        tagger.start_stream([1, 2, 3, 4, 5])
        batches = []
        while bsa.loop.now_ps() < end:           # reads while the attempts run ...
            batches.append(tagger.read_stream())
            time.sleep(0.002)
        while bsa.loop.now_ps() < end + 20 * MS:
            time.sleep(0.002)
        batches.append(tagger.read_stream())       # ... and one after the last photon landed
        nodes.stop()
        stats = bsa.world.stats()
        # Which detectors clicked in each attempt (arrival = emission + 2 ns marker + fibre).
        channels = np.concatenate([x.channels for x in batches])
        stamps = np.concatenate([x.timestamps_ps for x in batches])
        clicked: dict[int, set[int]] = {}
        for ch, t in zip(channels.tolist(), stamps.tolist()):
            if ch != 1:
                clicked.setdefault((t - t0 - 2 * NS - FIBRE.delay_ps + PERIOD // 2) // PERIOD, set()).add(ch)
        heralds = {k: PSI[frozenset(c)] for k, c in clicked.items() if frozenset(c) in PSI}
        fidelities = [a.world.registry.bell_fidelity(("A", 0, k), ("B", 0, k), state)
                      for k, state in heralds.items()]
        for s in (a, b, bsa):
            s.close()
    ctx.term()
    assert stats["memory_links"]["A-B"]["attempts"] == ATTEMPTS
    assert stats["horizon_timeouts"] == 0 and stats["errors"] == 0
    p = 0.5 * FIBRE.transmission ** 2 * EFFICIENCY ** 2
    sigma = math.sqrt(ATTEMPTS * p * (1 - p))
    assert abs(len(heralds) - ATTEMPTS * p) <= 3 * sigma, (len(heralds), ATTEMPTS * p, sigma)
    assert fidelities == pytest.approx([LINK_FIDELITY] * len(heralds), abs=1e-9)


def test_a_read_waits_for_a_photon_still_on_its_way_from_a_node():
    """The station reads at T while node A's emission at t < T is not yet sent (A's loop is
    late): the read must contain its clicks; without the horizon it would miss them."""
    ctx = zmq.Context()
    with ServerThread(memory_link, context=ctx, settings=PATIENT) as srv:
        bsa = node(srv.endpoint, "bsa", ctx)
        tagger = open_on(bsa, "time_tagger", "tagger")
        tagger.start_stream([1, 2, 3, 4, 5])         # before A and B join: nobody to wait for
        a, b = node(srv.endpoint, "A", ctx), node(srv.endpoint, "B", ctx)
        qa, qb = qnic_on(a, 1), qnic_on(b, 1)
        for side in (a, b):                           # one turn: the World now waits for them
            side.loop.run_until(side.loop.now_ps())
        t1 = a.loop.now_ps() + 20 * MS
        for side, q in ((a, qa), (b, qb)):
            side.world.loop.call_at(t1, q.emit, 0, 7)
        while bsa.loop.now_ps() < t1 + 10 * MS:     # the station's time passes the photons'
            time.sleep(0.005)
        nodes = RunningLoops((a, b), start_delay_s=0.3)
        t_read = time.monotonic()
        batch = tagger.read_stream()
        waited = time.monotonic() - t_read
        nodes.stop()
        stats = bsa.world.stats()
        for s in (a, b, bsa):
            s.close()
    ctx.term()
    assert waited > 0.2 and stats["horizon_waits"] >= 1 and stats["horizon_timeouts"] == 0
    sync = batch.timestamps_ps[batch.channels == 1]
    assert sync.tolist() == [t1], (str(stats), t1, waited)  # the attempt's sync tag, at the emission
    assert stats["memory_links"]["A-B"]["attempts"] == 1




@pytest.fixture(scope="module")
def remote_qnic():
    """A noiseless simulated QNIC in a World server, opened through the driver registry by a
    node whose DriverContext holds the RemoteWorld."""
    ctx = zmq.Context()
    with ServerThread(context=ctx) as srv:
        a = node(srv.endpoint, "A", ctx)
        ideal = {k: math.inf for k in ("communication_t1_ps", "communication_t2_ps",
                                       "storage_t1_ps", "storage_t2_ps")}
        ideal.update(single_qubit_gate_error=0.0, two_qubit_gate_error=0.0, measurement_error=0.0,
                     move_error=0.0)
        yield open_on(a, "qnic", "qnic0", node="A", num_qubits=2, communication_qubits=[0],
                      memory=ideal)
        a.close()
    ctx.term()


@pytest.mark.parametrize("check", QNIC_CHECKS, ids=[c.__name__.removeprefix("check_") for c in QNIC_CHECKS])
def test_the_remote_qnic_passes_the_qnic_conformance_checks_unchanged(remote_qnic, check):
    check(remote_qnic)


def test_errors_come_back_typed_with_resource_and_command():
    ctx = zmq.Context()
    with ServerThread(memory_link, context=ctx) as srv:
        a = node(srv.endpoint, "A", ctx)
        q = open_on(a, "qnic", "qnic0", node="A", num_qubits=3, communication_qubits=[0])
        with pytest.raises(QubitRoleError, match="storage qubit"):
            q.emit(2, 1)                              # checked locally: a cast has no reply
        with pytest.raises(InstrumentError) as bad_gate:
            q.gate(Gate.CNOT, 1, 1)                   # a cast too: checked as the SimQNIC does
        assert bad_gate.value.resource == "sim://A/qnic0" and bad_gate.value.command == "CNOT 1 1"
        with pytest.raises(QubitRoleError, match="not a storage qubit"):
            q.move(1, 0)
        with pytest.raises(InstrumentError, match="out of range") as bad_measure:
            q.measure(5)                              # a call: refused by the SimQNIC in the server
        assert bad_measure.value.command == "measure"
        assert q.measure(0) in (0, 1) and q.duration_ps("CNOT") > 0 and q.role(1).value == "storage"
        with pytest.raises(ProtocolError, match="does not belong to node A") as foreign:
            open_instrument(InstrumentSpec("B/qnic0", "qnic", "sim", "sim", {}, {"node": "B"}),
                            DriverContext(world=a.world))
        assert foreign.value.peer == srv.endpoint
        with pytest.raises(ProtocolError, match="not a call of a qnic"):
            a.world.client.call(q._handle, "emit", [0, 1], ts=0, what="qnic.emit")
        with pytest.raises(ProtocolError, match="no instrument with handle 99"):
            a.world.client.call(99, "measure", [0], ts=0, what="qnic.measure")
        a.close()
    ctx.term()


def test_a_client_speaking_another_version_is_refused_naming_itself():
    ctx = zmq.Context()
    with ServerThread(context=ctx) as srv:
        raw = ctx.socket(zmq.DEALER)
        raw.routing_id = b"A#1"
        raw.connect(srv.endpoint)
        raw.send_multipart([b'{"v":99,"t":"hello","id":1,"ts":0,"h":0,"b":{"node":"A"}}'])
        assert raw.poll(5000)
        reply = decode(raw.recv_multipart(), "server")
        raw.send_multipart([b"not json"])
        assert raw.poll(5000)
        garbage = decode(raw.recv_multipart(), "server")
        raw.send_multipart(Message(MsgType.HELLO, 2, 0, 0, {"node": "B"}).frames())
        assert raw.poll(5000)
        impostor = decode(raw.recv_multipart(), "server")
        raw.close(0)
        refused = srv.server.stats.refused
    ctx.term()
    assert reply.type is MsgType.ERROR
    err = decode_error(reply.body, "server", "hello")
    assert isinstance(err, ProtocolError) and "version 99" in str(err) and str(PROTOCOL_VERSION) in str(err)
    assert reply.body["peer"] == "A#1" and reply.body["msg_type"] == "hello"
    assert garbage.type is MsgType.ERROR and "not JSON" in garbage.body["message"]
    assert impostor.type is MsgType.ERROR and "belongs to 'A'" in impostor.body["message"]
    assert refused == 3


def test_protocol_round_trip_of_arrays_tag_batches_and_int_keyed_maps():
    from drivers.time_tagger import TagBatch

    batch = TagBatch(np.array([1, 2], np.int32), np.array([5, 9], np.int64), True, 3, {})
    msg = Message(MsgType.RESULT, 7, 11, 13, {"value": {"batch": batch, "rates": {2: 1.5},
                                                         "wave": np.linspace(0, 1, 5)}})
    back = decode(msg.frames(), "peer")
    value = back.body["value"]
    assert (back.id, back.ts, back.h) == (7, 11, 13)
    assert value["batch"].channels.tolist() == [1, 2] and value["batch"].timestamps_ps.dtype == np.int64
    assert value["batch"].overflow and value["batch"].missed_events == 3
    assert value["rates"] == {2: 1.5} and value["wave"].tolist() == pytest.approx([0, .25, .5, .75, 1])
    frames = msg.frames()
    frames[0] = frames[0].replace(b'"<i4"', b'"|O"')
    with pytest.raises(ProtocolError, match="dtype"):
        decode(frames, "peer")
    err = decode_error(encode_error(QubitRoleError("no", resource="sim://A/qnic0", command="emit 1 2")),
                       "peer", "qnic.emit")
    assert isinstance(err, QubitRoleError) and err.command == "emit 1 2"


def test_curvezmq_admits_testbed_nodes_only_and_knows_who_they_are():
    ctx = zmq.Context()
    server_id, a_id, b_id, stranger = (CurveIdentity.generate() for _ in range(4))
    auth = NodeAuthenticator(ctx, {"A": a_id.public, "B": b_id.public}, domains=("world",))
    auth.start()
    try:
        with ServerThread(context=ctx, curve=(server_id.public, server_id.secret)) as srv:
            keys = dict(server_key=server_id.public)
            a = node(srv.endpoint, "A", ctx, public_key=a_id.public, secret_key=a_id.secret, **keys)
            assert a.world.stats()["nodes"] == ["A"]
            with pytest.raises(ProtocolError, match="belongs to 'B'"):
                RemoteWorld.connect(srv.endpoint, "A", context=ctx, public_key=b_id.public,
                                    secret_key=b_id.secret, **keys)
            with pytest.raises(ProtocolError, match="no reply"):
                RemoteWorld.connect(srv.endpoint, "A", context=ctx, public_key=stranger.public,
                                    secret_key=stranger.secret, timeout_s=1.0, **keys)
            a.close()
        assert [d for d, _ in auth.denied] == ["world"]
    finally:
        auth.stop()
        ctx.term()


def test_a_node_that_stops_answering_is_passed_over_then_left_out_until_it_speaks_again():
    ctx = zmq.Context()
    settings = ServerSettings(horizon_timeout_s=0.2, client_timeout_s=0.5)
    with ServerThread(memory_link, context=ctx, settings=settings) as srv:
        a, bsa = node(srv.endpoint, "A", ctx), node(srv.endpoint, "bsa", ctx)
        qa = qnic_on(a, 1)
        a.loop.run_until(a.loop.now_ps())             # A's loop turned once, then stops turning
        tagger = open_on(bsa, "time_tagger", "tagger")
        t_start = time.monotonic()
        tagger.start_stream([1, 2])                   # A's loop never runs: passed over
        first = time.monotonic() - t_start
        time.sleep(0.6)
        tagger.read_stream()                          # A silent for > 0.5 s: left out
        stale = bsa.world.stats()
        t_start = time.monotonic()
        tagger.read_stream()                          # nobody to wait for now
        unhindered = time.monotonic() - t_start
        qa.init(0)                                    # A speaks: it counts again
        back = bsa.world.stats()
        a.close()
        bsa.close()
    ctx.term()
    assert 0.2 <= first < 2.0 and unhindered < 0.2
    assert stale["horizon_timeouts"] >= 1 and stale["stale_clients"] == ["A"]
    assert stale["nodes"] == ["bsa"] and back["nodes"] == ["A", "bsa"]


@pytest.fixture(scope="module")
def remote_instruments():
    """A simulated tagger, optical switch and pair source in a World server, opened through the
    driver registry by the node that owns them."""
    ctx = zmq.Context()
    with ServerThread(context=ctx) as srv:
        a = node(srv.endpoint, "A", ctx)
        # With the conformance suite's safety limits, which travel with the open request.
        yield {"time_tagger": open_on(a, "time_tagger", "tagger", LIMITS["time_tagger"]),
               "optical_switch": open_on(a, "optical_switch", "switch", LIMITS["optical_switch"]),
               "pair_source": open_on(a, "pair_source", "source", LIMITS["pair_source"])}
        a.close()
    ctx.term()


@pytest.mark.parametrize("kind", ["time_tagger", "optical_switch", "pair_source"])
def test_the_remote_instruments_pass_their_kinds_conformance_checks_unchanged(remote_instruments, kind):
    """The same checks as every real driver and every in-process simulated instrument; for the
    tagger they include coincidences, which the proxy forwards to the World's tagger."""
    instrument = remote_instruments[kind]
    assert isinstance(instrument, (RemoteTimeTagger, RemoteOpticalSwitch, RemotePairSource))
    CHECKS[kind](instrument)


def test_bad_coincidence_groups_are_refused_by_the_proxy_with_the_taggers_error(remote_instruments):
    """A group naming a channel the tagger lacks is refused before anything is sent, with the
    same error (resource and command named) the World's tagger would give."""
    tagger = remote_instruments["time_tagger"]
    with pytest.raises(InstrumentError, match="channel 99 does not exist") as err:
        tagger.coincidence_rates_hz([(1, 99)], 1000, 10 * MS)
    assert err.value.resource == tagger.resource and err.value.command.startswith("Coincidences(")
