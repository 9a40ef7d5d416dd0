"""Herald frames: exact layout, round trips, strict rejection of malformed frames, and the
sequence window's verdicts and loss count."""

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qnode_fw.bell import BellState
from qnode_fw.errors import ProtocolError
from timing.frames import (FRAME_SIZE, FRAME_VERSION, Frame, FrameCodec, FrameType, Outcome,
                           SequenceWindow, Verdict, link_id_for)

KEY = bytes(range(32))

frames = st.builds(
    Frame,
    type=st.just(FrameType.HERALD),
    link_id=st.integers(0, 2**32 - 1),
    seq=st.integers(1, 2**64 - 1),
    attempt_id=st.integers(0, 2**64 - 1),
    timestamp_ps=st.integers(-(2**63), 2**63 - 1),
    outcome=st.sampled_from(list(Outcome)),
    aux_ps=st.integers(-(2**63), 2**63 - 1),
    version=st.just(FRAME_VERSION),
)


@given(frames, st.booleans())
def test_round_trip(frame, keyed):
    codec = FrameCodec(KEY if keyed else None)
    data = codec.encode(frame)
    assert len(data) == FRAME_SIZE
    assert codec.decode(data) == frame


def test_exact_layout_with_crc():
    f = Frame(FrameType.HERALD, 0x11223344, 7, 9, 123456789, Outcome.PSI_MINUS)
    data = FrameCodec().encode(f)
    header = struct.pack("<BBBBIQQqq", 1, 1, 4, 0, 0x11223344, 7, 9, 123456789, 0)
    assert data == header + struct.pack("<I", zlib.crc32(header)) + bytes(12)


def test_outcome_maps_bell_states():
    for state in BellState:
        assert Outcome.from_bell(state).bell_state is state
    assert Outcome.FAILURE.bell_state is None and Outcome.SUCCESS.bell_state is None


def test_link_id_is_crc_of_name():
    assert link_id_for("A-B") == zlib.crc32(b"A-B")


GOOD = Frame(FrameType.HERALD, link_id_for("A-B"), 5, 42, 1000, Outcome.PSI_PLUS)


def _recrc(header: bytes) -> bytes:
    return header + struct.pack("<I", zlib.crc32(header)) + bytes(12)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[:-1], "55 bytes, expected 56"),
    (lambda d: d + b"\0", "57 bytes"),
    (lambda d: _recrc(b"\x02" + d[1:40]), "unsupported frame version 2"),
    (lambda d: _recrc(d[:1] + b"\x09" + d[2:40]), "unknown frame type 9"),
    (lambda d: _recrc(d[:2] + b"\x07" + d[3:40]), "unknown outcome code 7"),
    (lambda d: _recrc(d[:3] + b"\x04" + d[4:40]), "unknown flag bits 0x04"),
    (lambda d: _recrc(d[:8] + bytes(8) + d[16:40]), "sequence number 0 is reserved"),
    (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "CRC32 check failed"),
    (lambda d: d[:50] + b"\x01" + d[51:], "CRC32 check failed"),
    (lambda d: _recrc(d[:1] + b"\x02" + d[2:40]), "outcome PSI_PLUS on a non-herald frame"),
    (lambda d: _recrc(d[:3] + b"\x01" + d[4:40]), "frame carries a MAC but no herald key"),
])
def test_malformed_frames_are_rejected(mutate, message):
    data = mutate(FrameCodec().encode(GOOD))
    with pytest.raises(ProtocolError, match=message) as exc:
        FrameCodec().decode(data, peer="bsa")
    assert exc.value.peer == "bsa"


def test_every_single_bit_flip_is_caught():
    codec = FrameCodec()
    data = bytearray(codec.encode(GOOD))
    for i in range(len(data) * 8):
        bad = bytearray(data)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(ProtocolError):
            codec.decode(bytes(bad))


def test_mac_rejects_tampering_wrong_key_and_downgrade():
    keyed = FrameCodec(KEY)
    data = keyed.encode(GOOD)
    tampered = data[:30] + bytes([data[30] ^ 0x80]) + data[31:]
    with pytest.raises(ProtocolError, match="MAC check failed"):
        keyed.decode(tampered)
    with pytest.raises(ProtocolError, match="MAC check failed"):
        FrameCodec(bytes(32)).decode(data)
    with pytest.raises(ProtocolError, match="requires a keyed MAC"):
        keyed.decode(FrameCodec().encode(GOOD))


def test_short_mac_key_refused():
    with pytest.raises(ValueError):
        FrameCodec(b"short")


def test_window_verdicts_and_loss():
    w = SequenceWindow(size=8)
    verdicts = [w.check(s) for s in [1, 2, 5, 3, 3, 20, 19, 4, 21]]
    assert verdicts == [Verdict.NEW, Verdict.NEW, Verdict.NEW, Verdict.REORDERED,
                        Verdict.DUPLICATE, Verdict.NEW, Verdict.REORDERED, Verdict.TOO_OLD,
                        Verdict.NEW]
    # 4 and 6..12 left the window unseen when 20 arrived, 13 when 21 did; 14..18 are still in it.
    assert w.lost == 9
    assert (w.duplicates, w.reordered, w.too_old) == (1, 2, 1)


@given(st.lists(st.integers(1, 300), max_size=200), st.integers(1, 64))
def test_window_accepts_each_sequence_at_most_once(seqs, size):
    w = SequenceWindow(size)
    accepted = [s for s in seqs if w.check(s) in (Verdict.NEW, Verdict.REORDERED)]
    assert len(accepted) == len(set(accepted))
    # Every first arrival that is within the window of the highest seen so far is accepted.
    seen, highest = set(), 0
    expected = []
    for s in seqs:
        if s not in seen and s > highest - size:
            expected.append(s)
            seen.add(s)
        highest = max(highest, s)
    assert accepted == expected
