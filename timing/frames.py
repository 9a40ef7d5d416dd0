"""Herald-link frames: small, fixed-size, binary, integrity-checked.

Layout (little-endian, 56 bytes)::

    0  u8   version            (FRAME_VERSION)
    1  u8   type               (FrameType)
    2  u8   outcome            (Outcome)
    3  u8   flags              (bit 0: integrity field is a keyed MAC, else CRC32)
    4  u32  link id            (link_id_for(name): CRC32 of the link name)
    8  u64  sequence number    (per sender, per link; starts at 1)
    16 u64  attempt id         (attempt k of the link's schedule; exchange id for clock sync)
    24 i64  timestamp ps       (herald time on the station clock; t1/t3 for clock sync)
    32 i64  aux ps             (clock sync: t2; otherwise 0)
    40 16B  integrity          (CRC32 in the first 4 bytes and 12 zero bytes, or a 16-byte
                                BLAKE2b keyed MAC over bytes 0..39)

A fixed size keeps the decoder trivial and lets a receiver reject anything else by length alone.
The keyed MAC protects against forged heralds on links where CurveZMQ is not in use (or in
addition to it); a CRC only catches corruption. A decoder that holds a key refuses CRC frames so a
forger cannot downgrade the check.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from enum import IntEnum
from typing import NamedTuple

from qnode_fw.bell import BellState
from qnode_fw.errors import ProtocolError

FRAME_VERSION = 1
_HEADER = struct.Struct("<BBBBIQQqq")
HEADER_SIZE = _HEADER.size  # 40
CHECK_SIZE = 16
FRAME_SIZE = HEADER_SIZE + CHECK_SIZE  # 56
FLAG_MAC = 0x01
_CRC_PAD = bytes(CHECK_SIZE - 4)
_CRC = struct.Struct("<I")
_U64_MAX = (1 << 64) - 1


class FrameType(IntEnum):
    HERALD = 1        # station -> end node: outcome of one attempt
    SYNC_REQUEST = 2  # node -> station: two-way time transfer, carries t1
    SYNC_REPLY = 3    # station -> node: carries t2 (aux) and t3 (timestamp)


class Outcome(IntEnum):
    """What an attempt produced. Bell states for BSA heralds; SUCCESS for heralds that carry no
    Bell-state information (mid-point-source absorption, at-source transducer herald)."""

    FAILURE = 0
    PHI_PLUS = 1
    PHI_MINUS = 2
    PSI_PLUS = 3
    PSI_MINUS = 4
    SUCCESS = 5

    @property
    def bell_state(self) -> BellState | None:
        return _BELL.get(self)

    @classmethod
    def from_bell(cls, state: BellState) -> "Outcome":
        return cls[BellState(state).name]


_BELL = {
    Outcome.PHI_PLUS: BellState.PHI_PLUS,
    Outcome.PHI_MINUS: BellState.PHI_MINUS,
    Outcome.PSI_PLUS: BellState.PSI_PLUS,
    Outcome.PSI_MINUS: BellState.PSI_MINUS,
}


# Code -> member tables: an enum's constructor costs about a microsecond, a dict lookup a
# twentieth of that, and the herald path converts on every frame it sends and receives.
_FRAME_TYPES = {int(t): t for t in FrameType}
_TYPE_NAMES = {int(t): t.name.lower() for t in FrameType}
_OUTCOMES = {int(o): o for o in Outcome}


def frame_type_of(code: int) -> FrameType:
    """The FrameType of ``code`` (a FrameType or its int); ValueError if there is none."""
    member = _FRAME_TYPES.get(code)
    return member if member is not None else FrameType(code)


def outcome_of(code: int) -> Outcome:
    """The Outcome of ``code`` (an Outcome or its int); ValueError if there is none."""
    member = _OUTCOMES.get(code)
    return member if member is not None else Outcome(code)


def link_id_for(link_name: str) -> int:
    """The 32-bit id a link's frames carry: CRC32 of its name, so both ends derive it alone."""
    return zlib.crc32(link_name.encode())


class Frame(NamedTuple):
    """One frame, immutable. A named tuple rather than a frozen dataclass: it is built for every
    frame sent and received, and a frozen dataclass pays a ``setattr`` call per field."""

    type: FrameType
    link_id: int
    seq: int
    attempt_id: int
    timestamp_ps: int
    outcome: Outcome = Outcome.FAILURE
    aux_ps: int = 0
    version: int = FRAME_VERSION


class FrameCodec:
    """Encodes and strictly decodes frames; with ``mac_key`` frames carry a keyed MAC.

    ``peer`` names the other side in error messages.
    """

    def __init__(self, mac_key: bytes | None = None) -> None:
        if mac_key is not None and not 16 <= len(mac_key) <= 64:
            raise ValueError("herald MAC key must be 16..64 bytes")
        self.mac_key = mac_key

    def _mac(self, header: bytes) -> bytes:
        return hashlib.blake2b(header, key=self.mac_key, digest_size=CHECK_SIZE).digest()

    def encode(self, frame: Frame) -> bytes:
        if not 0 < frame.seq <= _U64_MAX or not 0 <= frame.attempt_id <= _U64_MAX:
            raise ValueError(f"sequence {frame.seq} or attempt id {frame.attempt_id} out of range")
        flags = FLAG_MAC if self.mac_key is not None else 0
        # IntEnum members pack as their ints
        header = _HEADER.pack(frame.version, frame.type, frame.outcome, flags, frame.link_id,
                              frame.seq, frame.attempt_id, frame.timestamp_ps, frame.aux_ps)
        if self.mac_key is not None:
            return header + self._mac(header)
        return header + _CRC.pack(zlib.crc32(header)) + _CRC_PAD

    def decode(self, data: bytes, *, peer: str | None = None) -> Frame:
        if len(data) != FRAME_SIZE:
            raise ProtocolError(f"herald frame is {len(data)} bytes, expected {FRAME_SIZE}",
                                peer=peer, msg_type="herald-frame")
        version, ftype, outcome, flags, link_id, seq, attempt, ts, aux = _HEADER.unpack_from(data)
        name = _TYPE_NAMES.get(ftype) or f"type-{ftype}"
        if version != FRAME_VERSION:
            raise ProtocolError(f"unsupported frame version {version} (this node speaks "
                                f"{FRAME_VERSION})", peer=peer, msg_type=name)
        if flags & ~FLAG_MAC:
            raise ProtocolError(f"unknown flag bits 0x{flags:02x}", peer=peer, msg_type=name)
        if self.mac_key is not None:
            if not flags & FLAG_MAC:
                raise ProtocolError("frame has a CRC but this link requires a keyed MAC",
                                    peer=peer, msg_type=name)
            if not hmac.compare_digest(data[HEADER_SIZE:], self._mac(data[:HEADER_SIZE])):
                raise ProtocolError("MAC check failed (wrong key or tampered frame)",
                                    peer=peer, msg_type=name)
        else:
            if flags & FLAG_MAC:
                raise ProtocolError("frame carries a MAC but no herald key is configured",
                                    peer=peer, msg_type=name)
            if (_CRC.unpack_from(data, HEADER_SIZE)[0] != zlib.crc32(data[:HEADER_SIZE])
                    or data[HEADER_SIZE + 4:] != _CRC_PAD):
                raise ProtocolError("CRC32 check failed (corrupted frame)", peer=peer,
                                    msg_type=name)
        ftype_value = _FRAME_TYPES.get(ftype)
        if ftype_value is None:
            raise ProtocolError(f"unknown frame type {ftype}", peer=peer, msg_type=name)
        outcome_value = _OUTCOMES.get(outcome)
        if outcome_value is None:
            raise ProtocolError(f"unknown outcome code {outcome}", peer=peer, msg_type=name)
        if seq == 0:
            raise ProtocolError("sequence number 0 is reserved", peer=peer, msg_type=name)
        if ftype_value is not FrameType.HERALD and outcome_value is not Outcome.FAILURE:
            raise ProtocolError(f"outcome {outcome_value.name} on a non-herald frame",
                                peer=peer, msg_type=name)
        return Frame(ftype_value, link_id, seq, attempt, ts, outcome_value, aux, version)


class Verdict(IntEnum):
    NEW = 0         # first time seen, in order
    REORDERED = 1   # first time seen, but older than the newest seen (accepted)
    DUPLICATE = 2   # seen before: drop
    TOO_OLD = 3     # older than the window can vouch for: drop (may be a replay)


class SequenceWindow:
    """Anti-replay receive window over one sender's sequence numbers (as IPsec's, RFC 4303).

    Remembers the highest sequence seen and a bitmap of the ``size`` sequences below it.
    ``lost`` counts sequence numbers skipped over and never filled in by a late frame before
    they left the window.
    """

    def __init__(self, size: int = 1024) -> None:
        if size < 1:
            raise ValueError("window size must be positive")
        self.size = size
        self.highest = 0
        self._mask = (1 << size) - 1
        # Bit i set: sequence (highest - i) seen. Sequences <= 0 do not exist, so they start
        # out "seen" and never count as lost.
        self._bits = self._mask
        self.duplicates = 0
        self.reordered = 0
        self.too_old = 0
        self.lost = 0

    def check(self, seq: int) -> Verdict:
        if seq > self.highest:
            shift = seq - self.highest
            if shift >= self.size:
                # Everything in the window and the gap beyond it leaves unseen-or-seen.
                self.lost += self.size - self._bits.bit_count() + (shift - self.size)
                self._bits = 1
            else:
                leaving = self._bits >> (self.size - shift)
                self.lost += shift - leaving.bit_count()
                self._bits = ((self._bits << shift) | 1) & self._mask
            self.highest = seq
            return Verdict.NEW
        back = self.highest - seq
        if back >= self.size:
            self.too_old += 1
            return Verdict.TOO_OLD
        if self._bits >> back & 1:
            self.duplicates += 1
            return Verdict.DUPLICATE
        self._bits |= 1 << back
        self.reordered += 1
        return Verdict.REORDERED
