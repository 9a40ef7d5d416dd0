"""Fuzzing the herald-frame decoder and the receive path behind it: whatever bytes arrive, the
only failure is a ProtocolError naming the peer; a receiving endpoint never raises, counts what
it dropped, and keeps its state bounded (one 1024-bit window per peer)."""

from __future__ import annotations

import hashlib
import struct
import zlib

from hypothesis import given
from hypothesis import strategies as st

from fuzz_inputs import fuzz
from qnode_fw.clock import VirtualClock
from qnode_fw.errors import ProtocolError
from qnode_fw.loop import EventLoop
from timing.frames import CHECK_SIZE, FRAME_SIZE, Frame, FrameCodec, SequenceWindow
from timing.herald_link import InProcessHeraldLink

KEY = bytes(range(32))
u8, u32, u64 = st.integers(0, 255), st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
headers = st.tuples(u8, u8, u8, u8, u32, u64, u64, i64, i64).map(
    lambda t: struct.pack("<BBBBIQQqq", *t))


def sealed(header: bytes, mac: bool) -> bytes:
    """``header`` with a correct check, so decoding gets past integrity to the field checks."""
    if mac:
        return header + hashlib.blake2b(header, key=KEY, digest_size=CHECK_SIZE).digest()
    return header + struct.pack("<I", zlib.crc32(header)) + bytes(CHECK_SIZE - 4)


def decode_or_protocol_error(codec: FrameCodec, data: bytes) -> Frame | None:
    try:
        frame = codec.decode(data, peer="fuzz")
    except ProtocolError as exc:
        assert exc.peer == "fuzz" and exc.msg_type
        return None
    assert isinstance(frame, Frame) and frame.seq > 0
    return frame


@fuzz(150)
@given(data=st.binary(max_size=200), mac=st.booleans())
def test_arbitrary_bytes_decode_or_raise_protocol_error(data, mac):
    decode_or_protocol_error(FrameCodec(KEY if mac else None), data)


@fuzz(150)
@given(header=headers, mac=st.booleans(), flip=st.none() | st.integers(0, FRAME_SIZE * 8 - 1))
def test_well_sealed_frames_with_any_field_values(header, mac, flip):
    data = bytearray(sealed(header, mac))
    if flip is not None:
        data[flip // 8] ^= 1 << (flip % 8)
    frame = decode_or_protocol_error(FrameCodec(KEY if mac else None), bytes(data))
    if flip is not None:
        # CRC32 catches every single-bit error, the zero padding after it is checked too, and
        # the MAC catches everything: no corrupted frame gets through.
        assert frame is None, f"frame with bit {flip} flipped was accepted"


@fuzz(60)
@given(frames=st.lists(st.tuples(st.sampled_from(["bsa", "A", "evil"]),
                                 st.binary(max_size=80) | headers.map(lambda h: sealed(h, False))),
                       max_size=40))
def test_endpoint_receive_path_never_raises_and_stays_bounded(frames):
    loop = EventLoop(VirtualClock())
    ep = InProcessHeraldLink(loop, "A-B").endpoint("B")
    for peer, data in frames:
        ep.deliver(peer, data)
    s = ep.stats
    assert s.received + s.malformed + s.wrong_link + s.duplicates + s.too_old == len(frames)
    for window in ep._windows.values():
        assert window._bits < (1 << window.size)


@fuzz(100)
@given(seqs=st.lists(st.integers(1, 2**64 - 1) | st.integers(1, 3000), max_size=200))
def test_sequence_window_any_order_of_any_numbers(seqs):
    win = SequenceWindow(64)
    accepted = set()
    for s in seqs:
        verdict = win.check(s)
        if verdict.name in ("NEW", "REORDERED"):
            assert s not in accepted   # nothing is ever accepted twice
            accepted.add(s)
        assert 0 <= win._bits < (1 << 64) and win.lost >= 0
