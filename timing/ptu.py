"""PicoQuant PTU files in T2 mode: a streaming reader and a writer for the project's own export.

PTU is the common lab exchange format for time-tag data. A file is an 8-byte magic ``PQTTTR\\0\\0``,
an 8-byte version string, a list of tags (32-byte name, int32 index, uint32 type, 8-byte value;
strings, arrays and blobs carry their byte length in the value and the bytes after it), ended by
the tag ``Header_End``, then the records.

T2 records (MultiHarp, HydraHarp V2, TimeHarp 260) are little-endian uint32:
bit 31 ``special``, bits 30-25 ``channel``, bits 24-0 ``timetag`` in units of
``MeasDesc_GlobalResolution``. A non-special record is a detection on input ``channel + 1``.
Special records: channel 0x3F is an overflow whose timetag counts how many 2**25 wraps happened
(0 in old files meaning one wrap), channel 0 is the sync input, channels 1-15 are marker bit masks.
HydraHarp V1 files wrap at 33 552 000 and every overflow record is exactly one wrap.

Times come out as int64 picoseconds: the global resolution must be a whole number of picoseconds
(1 ps for HydraHarp, 5 ps for MultiHarp 160, 80 ps for MultiHarp 150 T2), which keeps the
conversion exact.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping

import numpy as np

from qnode_fw.errors import ConfigError

MAGIC = b"PQTTTR\0\0"
HEADER_END = "Header_End"
TAG_NAME_BYTES = 32
TAG_STRUCT = struct.Struct("<32siI8s")

WRAP_V2 = 1 << 25  # 33 554 432
WRAP_HYDRAHARP_V1 = 33_552_000
TIMETAG_MASK = WRAP_V2 - 1
OVERFLOW_CHANNEL = 0x3F
SYNC_CHANNEL = 0  # the sync input is reported as channel 0, detector inputs as 1..64
MAX_INPUT_CHANNEL = 64


class TagType(IntEnum):
    EMPTY8 = 0xFFFF0008
    BOOL8 = 0x00000008
    INT8 = 0x10000008
    BITSET64 = 0x11000008
    COLOR8 = 0x12000008
    FLOAT8 = 0x20000008
    DATETIME = 0x21000008
    FLOAT8_ARRAY = 0x2001FFFF
    ANSI_STRING = 0x4001FFFF
    WIDE_STRING = 0x4002FFFF
    BINARY_BLOB = 0xFFFFFFFF


class RecordType(IntEnum):
    HYDRAHARP_V1_T2 = 0x00010204
    HYDRAHARP_V2_T2 = 0x01010204
    TIMEHARP260N_T2 = 0x00010205
    TIMEHARP260P_T2 = 0x00010206
    MULTIHARP_T2 = 0x00010207


#: Record types sharing the V2 layout (multi-wrap overflow records).
V2_LAYOUT = frozenset({RecordType.HYDRAHARP_V2_T2, RecordType.TIMEHARP260N_T2,
                       RecordType.TIMEHARP260P_T2, RecordType.MULTIHARP_T2})


@dataclass(frozen=True, slots=True)
class PtuHeader:
    path: str
    version: str
    tags: Mapping[str, object]
    data_offset: int  # byte offset of the first record

    def _tag(self, name: str) -> object:
        if name not in self.tags:
            raise ConfigError("tag missing from the PTU header", file=self.path, field=name)
        return self.tags[name]

    @property
    def record_type(self) -> RecordType:
        value = int(self._tag("TTResultFormat_TTTRRecType"))
        try:
            return RecordType(value)
        except ValueError:
            raise ConfigError(f"record type 0x{value:08X} is not a supported T2 layout",
                              file=self.path, field="TTResultFormat_TTTRRecType",
                              expected=", ".join(f"0x{t.value:08X} ({t.name})" for t in RecordType)) from None

    @property
    def num_records(self) -> int:
        return int(self._tag("TTResult_NumberOfRecords"))

    @property
    def resolution_ps(self) -> int:
        seconds = float(self._tag("MeasDesc_GlobalResolution"))
        ps = round(seconds * 1e12)
        if ps <= 0 or abs(seconds * 1e12 - ps) > 1e-6 * ps:
            raise ConfigError(f"global resolution {seconds!r} s is not a whole number of picoseconds",
                              file=self.path, field="MeasDesc_GlobalResolution")
        return int(ps)


@dataclass(slots=True)
class T2Events:
    """Decoded events of one chunk: detections (sync = channel 0) and markers, times in ps."""

    channels: np.ndarray  # int32
    timestamps_ps: np.ndarray  # int64
    marker_masks: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint8))
    marker_timestamps_ps: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    overflow_records: int = 0

    def __len__(self) -> int:
        return int(self.timestamps_ps.shape[0])


def _read_exact(stream: BinaryIO, n: int, path: str, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise ConfigError(f"file ends inside the header while reading {what}", file=path)
    return data


def read_header(stream: BinaryIO, path: str = "<ptu>") -> PtuHeader:
    """Parse the header from ``stream``'s current position (the start of the file)."""
    magic = _read_exact(stream, 8, path, "the magic")
    if magic != MAGIC:
        raise ConfigError(f"not a PTU file: magic {magic!r}", file=path, expected=repr(MAGIC))
    version = _read_exact(stream, 8, path, "the version").rstrip(b"\0").decode("ascii", "replace")
    tags: dict[str, object] = {}
    while True:
        raw = _read_exact(stream, TAG_STRUCT.size, path, "a tag")
        ident, index, type_code, value = TAG_STRUCT.unpack(raw)
        name = ident.split(b"\0", 1)[0].decode("ascii", "replace")
        key = f"{name}({index})" if index > -1 else name
        try:
            kind = TagType(type_code)
        except ValueError:
            raise ConfigError(f"unknown tag type 0x{type_code:08X}", file=path, field=key) from None
        tags[key] = _tag_value(kind, value, stream, path, key)
        if name == HEADER_END:
            break
    return PtuHeader(path=path, version=version, tags=tags, data_offset=stream.tell())


def _tag_value(kind: TagType, value: bytes, stream: BinaryIO, path: str, key: str) -> object:
    if kind is TagType.EMPTY8:
        return None
    if kind is TagType.BOOL8:
        return struct.unpack("<q", value)[0] != 0
    if kind in (TagType.INT8, TagType.BITSET64, TagType.COLOR8):
        return struct.unpack("<q", value)[0]
    if kind in (TagType.FLOAT8, TagType.DATETIME):
        return struct.unpack("<d", value)[0]
    length = struct.unpack("<q", value)[0]
    if length < 0:
        raise ConfigError(f"negative length {length}", file=path, field=key)
    payload = _read_exact(stream, length, path, key)
    if kind is TagType.ANSI_STRING:
        return payload.split(b"\0", 1)[0].decode("latin-1")
    if kind is TagType.WIDE_STRING:
        return payload.decode("utf-16-le", "replace").split("\0", 1)[0]
    if kind is TagType.FLOAT8_ARRAY:
        return np.frombuffer(payload, "<f8").copy()
    return payload


class T2Decoder:
    """Turns uint32 T2 records into events; keeps the overflow count across chunks."""

    def __init__(self, record_type: RecordType, resolution_ps: int) -> None:
        self.record_type = record_type
        self.resolution_ps = int(resolution_ps)
        self.overflow_ticks = 0  # accumulated wrap offset, in resolution ticks

    def decode(self, records: np.ndarray) -> T2Events:
        r = np.asarray(records, dtype=np.uint32)
        special = (r >> 31).astype(bool)
        channel = ((r >> 25) & 0x3F).astype(np.int32)
        timetag = (r & TIMETAG_MASK).astype(np.int64)
        is_overflow = special & (channel == OVERFLOW_CHANNEL)
        if self.record_type is RecordType.HYDRAHARP_V1_T2:
            step = np.where(is_overflow, WRAP_HYDRAHARP_V1, 0)
        else:
            # V2: the timetag counts wraps; 0 is an old-style single wrap.
            step = np.where(is_overflow, np.maximum(timetag, 1) * WRAP_V2, 0)
        offset = self.overflow_ticks + np.cumsum(step, dtype=np.int64)
        if r.size:
            self.overflow_ticks = int(offset[-1])
        ticks = offset + timetag
        is_photon = ~special
        is_sync = special & (channel == 0)
        is_marker = special & (channel >= 1) & (channel <= 15)
        event = is_photon | is_sync
        channels = np.where(is_photon, channel + 1, SYNC_CHANNEL)[event].astype(np.int32)
        times = ticks[event] * self.resolution_ps
        if times.size > 1 and np.any(np.diff(times) < 0):
            order = np.argsort(times, kind="stable")
            channels, times = channels[order], times[order]
        return T2Events(
            channels=channels,
            timestamps_ps=times.astype(np.int64),
            marker_masks=channel[is_marker].astype(np.uint8),
            marker_timestamps_ps=(ticks[is_marker] * self.resolution_ps).astype(np.int64),
            overflow_records=int(np.count_nonzero(is_overflow)),
        )


class PtuT2Reader:
    """Reads a T2 PTU file chunk by chunk so that files larger than memory can be replayed."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            with open(self.path, "rb") as stream:
                self.header = read_header(stream, self.path)
        except OSError as exc:
            raise ConfigError(f"cannot read PTU file: {exc.strerror}", file=self.path) from None
        self.record_type = self.header.record_type
        self.resolution_ps = self.header.resolution_ps
        available = (Path(self.path).stat().st_size - self.header.data_offset) // 4
        self.num_records = self.header.num_records
        if available < self.num_records:
            raise ConfigError(f"header announces {self.num_records} records but the file holds "
                              f"{available}", file=self.path, field="TTResult_NumberOfRecords")

    def iter_chunks(self, records_per_chunk: int = 1 << 20) -> Iterator[T2Events]:
        decoder = T2Decoder(self.record_type, self.resolution_ps)
        with open(self.path, "rb") as stream:
            stream.seek(self.header.data_offset)
            remaining = self.num_records
            while remaining > 0:
                n = min(records_per_chunk, remaining)
                records = np.fromfile(stream, dtype="<u4", count=n)
                remaining -= n
                yield decoder.decode(records)

    def read_all(self) -> T2Events:
        parts = list(self.iter_chunks())
        if not parts:
            return T2Events(np.empty(0, np.int32), np.empty(0, np.int64))
        return T2Events(
            channels=np.concatenate([p.channels for p in parts]),
            timestamps_ps=np.concatenate([p.timestamps_ps for p in parts]),
            marker_masks=np.concatenate([p.marker_masks for p in parts]),
            marker_timestamps_ps=np.concatenate([p.marker_timestamps_ps for p in parts]),
            overflow_records=sum(p.overflow_records for p in parts),
        )


# ----------------------------------------------------------------------------------------- writer

def _encode_tag(name: str, type_: TagType, value: object, index: int = -1) -> bytes:
    ident = name.encode("ascii")
    if len(ident) >= TAG_NAME_BYTES:
        raise ValueError(f"tag name {name!r} longer than {TAG_NAME_BYTES - 1} bytes")
    payload = b""
    if type_ is TagType.EMPTY8:
        raw = bytes(8)
    elif type_ in (TagType.INT8, TagType.BOOL8):
        raw = struct.pack("<q", int(value))
    elif type_ is TagType.FLOAT8:
        raw = struct.pack("<d", float(value))
    elif type_ is TagType.ANSI_STRING:
        text = str(value).encode("latin-1") + b"\0"
        payload = text + bytes(-len(text) % 8)  # PicoQuant pads strings to 8 bytes
        raw = struct.pack("<q", len(payload))
    else:
        raise ValueError(f"the writer does not emit tag type {type_.name}")
    return TAG_STRUCT.pack(ident, index, type_.value, raw) + payload


def encode_t2_records(channels: np.ndarray, timestamps_ps: np.ndarray, resolution_ps: int = 1,
                      marker_masks: np.ndarray | None = None,
                      marker_timestamps_ps: np.ndarray | None = None) -> np.ndarray:
    """V2-layout T2 records (uint32) for detections on ``channels`` (0 = sync, 1..64) and markers."""
    channels = np.asarray(channels, dtype=np.int64)
    times = np.asarray(timestamps_ps, dtype=np.int64)
    masks = np.asarray(marker_masks if marker_masks is not None else [], dtype=np.int64)
    mtimes = np.asarray(marker_timestamps_ps if marker_timestamps_ps is not None else [], dtype=np.int64)
    if channels.shape != times.shape or masks.shape != mtimes.shape:
        raise ValueError("channels/timestamps (and marker masks/times) must have equal lengths")
    if np.any((channels < 0) | (channels > MAX_INPUT_CHANNEL)):
        raise ValueError(f"channels must be 0 (sync) or 1..{MAX_INPUT_CHANNEL}")
    if np.any((masks < 1) | (masks > 15)):
        raise ValueError("marker masks must be 1..15")
    all_times = np.concatenate([times, mtimes])
    if np.any(all_times < 0) or np.any(all_times % resolution_ps):
        raise ValueError(f"timestamps must be non-negative multiples of {resolution_ps} ps")
    # Per-event (special, channel field); sort everything by time, detections first on ties.
    special = np.concatenate([(channels == SYNC_CHANNEL).astype(np.int64), np.ones(masks.size, np.int64)])
    field_ch = np.concatenate([np.where(channels == SYNC_CHANNEL, 0, channels - 1), masks])
    ticks = all_times // resolution_ps
    order = np.argsort(ticks, kind="stable")
    special, field_ch, ticks = special[order], field_ch[order], ticks[order]

    wraps = ticks >> 25
    delta = np.diff(np.concatenate([[0], wraps]))
    n_ofl = -(-delta // TIMETAG_MASK)  # overflow records needed before each event
    event_pos = np.arange(ticks.size) + np.cumsum(n_ofl)
    total = ticks.size + int(n_ofl.sum())
    out = np.empty(total, dtype=np.uint32)
    out[event_pos] = ((special << 31) | (field_ch << 25) | (ticks & TIMETAG_MASK)).astype(np.uint32)
    if n_ofl.sum():
        k = np.repeat(n_ofl, n_ofl)
        d = np.repeat(delta, n_ofl)
        starts = np.repeat(np.cumsum(n_ofl) - n_ofl, n_ofl)
        within = np.arange(k.size) - starts
        counts = np.where(within < k - 1, TIMETAG_MASK, d - (k - 1) * TIMETAG_MASK)
        slots = np.ones(total, bool)
        slots[event_pos] = False
        out[slots] = ((1 << 31) | (OVERFLOW_CHANNEL << 25) | counts).astype(np.uint32)
    return out


def write_ptu_t2(path: str | Path, channels: np.ndarray, timestamps_ps: np.ndarray, *,
                 resolution_ps: int = 1, record_type: RecordType = RecordType.MULTIHARP_T2,
                 marker_masks: np.ndarray | None = None,
                 marker_timestamps_ps: np.ndarray | None = None,
                 comment: str = "qnode-fw export") -> int:
    """Write a T2 PTU file readable by PicoQuant's software; returns the number of records."""
    if record_type not in V2_LAYOUT:
        raise ValueError(f"the writer emits V2-layout record types only, not {record_type.name}")
    records = encode_t2_records(channels, timestamps_ps, resolution_ps, marker_masks, marker_timestamps_ps)
    header = [
        MAGIC, b"1.0.00\0\0",
        _encode_tag("File_Comment", TagType.ANSI_STRING, comment),
        _encode_tag("CreatorSW_Name", TagType.ANSI_STRING, "qnode-fw"),
        _encode_tag("Measurement_Mode", TagType.INT8, 2),  # 2 = T2
        _encode_tag("TTResultFormat_TTTRRecType", TagType.INT8, int(record_type)),
        _encode_tag("TTResultFormat_BitsPerRecord", TagType.INT8, 32),
        _encode_tag("TTResult_NumberOfRecords", TagType.INT8, records.size),
        _encode_tag("MeasDesc_GlobalResolution", TagType.FLOAT8, resolution_ps * 1e-12),
        _encode_tag("MeasDesc_Resolution", TagType.FLOAT8, resolution_ps * 1e-12),
        _encode_tag(HEADER_END, TagType.EMPTY8, None),
    ]
    with open(path, "wb") as stream:
        stream.write(b"".join(header))
        stream.write(records.astype("<u4").tobytes())
    return int(records.size)
