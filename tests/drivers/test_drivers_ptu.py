"""PTU T2 decoding against a separately written, record-by-record encoder (not timing.ptu's writer).

The encoder here follows PicoQuant's documented layout with ``struct`` one record at a time, so a
shared misunderstanding between reader and writer in timing/ptu.py cannot hide.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from qnode_fw.errors import ConfigError
from timing.ptu import PtuT2Reader, RecordType, write_ptu_t2

WRAP = 2 ** 25


def _tag(name: str, typ: int, raw: bytes, payload: bytes = b"", idx: int = -1) -> bytes:
    return name.encode().ljust(32, b"\0") + struct.pack("<iI", idx, typ) + raw + payload


def independent_ptu(records: list[int], record_type: int, resolution_s: float, *,
                    lie_about_count: int | None = None) -> bytes:
    text = b"independent test writer\0"
    text += b"\0" * (-len(text) % 8)
    header = b"PQTTTR\0\0" + b"1.0.00\0\0"
    header += _tag("CreatorSW_Name", 0x4001FFFF, struct.pack("<q", len(text)), text)
    header += _tag("HW_InpChan", 0x10000008, struct.pack("<q", 3), idx=0)
    header += _tag("TTResultFormat_TTTRRecType", 0x10000008, struct.pack("<q", record_type))
    n = len(records) if lie_about_count is None else lie_about_count
    header += _tag("TTResult_NumberOfRecords", 0x10000008, struct.pack("<q", n))
    header += _tag("MeasDesc_GlobalResolution", 0x20000008, struct.pack("<d", resolution_s))
    header += _tag("Header_End", 0xFFFF0008, bytes(8))
    return header + b"".join(struct.pack("<I", r) for r in records)


def photon(input_channel: int, timetag: int) -> int:
    return ((input_channel - 1) << 25) | timetag  # special bit 0, channel field is input - 1


def special(channel: int, timetag: int) -> int:
    return (1 << 31) | (channel << 25) | timetag


def overflow(count: int) -> int:
    return special(0x3F, count)


def test_multiharp_t2_across_several_wraps(tmp_path):
    res_ps = 5
    records = [
        photon(1, 100), special(0, 7),                 # input 1, then an earlier sync (re-sorted)
        overflow(1), photon(2, 0),                     # after one wrap, at the wrap itself
        overflow(3), photon(3, WRAP - 1),              # three wraps at once, last tick before next
        special(2, 40),                                # marker mask 2
        overflow(0), photon(1, 12345),                 # old-style single wrap (timetag 0)
        overflow(2), overflow(1), photon(4, 1), photon(64, 2),
    ]
    path = tmp_path / "mh.ptu"
    path.write_bytes(independent_ptu(records, 0x00010207, 5e-12))
    reader = PtuT2Reader(path)
    assert reader.record_type is RecordType.MULTIHARP_T2
    assert reader.resolution_ps == res_ps
    assert reader.header.tags["HW_InpChan(0)"] == 3
    assert reader.header.tags["CreatorSW_Name"] == "independent test writer"
    ev = reader.read_all()
    expected_ticks = [7, 100, WRAP, 4 * WRAP + WRAP - 1, 5 * WRAP + 12345, 8 * WRAP + 1, 8 * WRAP + 2]
    assert ev.channels.tolist() == [0, 1, 2, 3, 1, 4, 64]
    assert ev.timestamps_ps.tolist() == [t * res_ps for t in expected_ticks]
    assert ev.timestamps_ps.dtype == np.int64
    assert ev.marker_masks.tolist() == [2]
    assert ev.marker_timestamps_ps.tolist() == [(4 * WRAP + 40) * res_ps]
    assert ev.overflow_records == 5


def test_hydraharp_v2_chunks_carry_overflow_between_chunks(tmp_path):
    rng = np.random.default_rng(7)
    gaps = rng.integers(1, 3 * WRAP, size=400)  # many events cross one or more wraps
    ticks = np.cumsum(gaps)
    chans = rng.integers(1, 5, size=ticks.size)
    records, wraps_done = [], 0
    for t, c in zip(ticks.tolist(), chans.tolist()):
        w = t // WRAP
        if w > wraps_done:
            records.append(overflow(w - wraps_done))
            wraps_done = w
        records.append(photon(c, t % WRAP))
    path = tmp_path / "hh.ptu"
    path.write_bytes(independent_ptu(records, 0x01010204, 1e-12))
    reader = PtuT2Reader(path)
    chunks = list(reader.iter_chunks(records_per_chunk=37))
    got_t = np.concatenate([c.timestamps_ps for c in chunks])
    got_c = np.concatenate([c.channels for c in chunks])
    assert got_t.tolist() == ticks.tolist()
    assert got_c.tolist() == chans.tolist()
    assert ticks[-1] > 100 * WRAP  # really several hundred wraps


def test_hydraharp_v1_single_wrap_overflows(tmp_path):
    records = [photon(1, 10), overflow(1), photon(2, 10), overflow(0), photon(1, 5)]
    path = tmp_path / "hh1.ptu"
    path.write_bytes(independent_ptu(records, 0x00010204, 1e-12))
    ev = PtuT2Reader(path).read_all()
    assert ev.timestamps_ps.tolist() == [10, 33_552_000 + 10, 2 * 33_552_000 + 5]


def decode_independently(data: bytes) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Bit-level decode of a V2 T2 file, used to check timing.ptu's writer."""
    assert data[:8] == b"PQTTTR\0\0"
    pos, tags = 16, {}
    while True:
        name = data[pos:pos + 32].split(b"\0")[0].decode()
        typ = struct.unpack_from("<I", data, pos + 36)[0]
        value = data[pos + 40:pos + 48]
        pos += 48
        if typ in (0x4001FFFF,):
            pos += struct.unpack("<q", value)[0]
        tags[name] = value
        if name == "Header_End":
            break
    res = round(struct.unpack("<d", tags["MeasDesc_GlobalResolution"])[0] * 1e12)
    n = struct.unpack("<q", tags["TTResult_NumberOfRecords"])[0]
    chans, times, markers, ofl = [], [], [], 0
    for i in range(n):
        (r,) = struct.unpack_from("<I", data, pos + 4 * i)
        sp, ch, tt = r >> 31, (r >> 25) & 63, r & (WRAP - 1)
        if sp and ch == 63:
            ofl += WRAP * (tt or 1)
        elif sp and ch == 0:
            chans.append(0); times.append((ofl + tt) * res)
        elif sp:
            markers.append((ch, (ofl + tt) * res))
        else:
            chans.append(ch + 1); times.append((ofl + tt) * res)
    return chans, times, markers


def test_project_writer_checked_by_independent_decoder(tmp_path):
    chans = np.array([1, 2, 0, 3, 1, 2])
    res = 4
    times = np.array([0, 4, WRAP * 4, WRAP * 4 * 7 + 8, (WRAP - 1) * 4 * 1000, (WRAP - 1) * 4 * 1000 + 4],
                     dtype=np.int64)
    path = tmp_path / "own.ptu"
    n = write_ptu_t2(path, chans, times, resolution_ps=res, marker_masks=np.array([5]),
                     marker_timestamps_ps=np.array([WRAP * 4 * 3]))
    got_c, got_t, got_m = decode_independently(path.read_bytes())
    assert got_c == chans.tolist()
    assert got_t == times.tolist()
    assert got_m == [(5, WRAP * 4 * 3)]
    # round trip through the project's reader as well
    ev = PtuT2Reader(path).read_all()
    assert ev.timestamps_ps.tolist() == times.tolist()
    assert n == len(chans) + 1 + ev.overflow_records


def test_huge_gap_needs_several_overflow_records(tmp_path):
    t = np.array([0, ((WRAP - 1) * 2 + 5) * WRAP + 3], dtype=np.int64)  # more wraps than one record holds
    path = tmp_path / "gap.ptu"
    write_ptu_t2(path, np.array([1, 1]), t)
    assert decode_independently(path.read_bytes())[1] == t.tolist()
    assert PtuT2Reader(path).read_all().overflow_records == 3


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b"XXTTTR\0\0" + b[8:], None),
    (lambda b: b.replace(struct.pack("<q", 0x00010207), struct.pack("<q", 0x00010303), 1),
     "TTResultFormat_TTTRRecType"),
])
def test_bad_files_raise_config_error(tmp_path, mutate, field):
    path = tmp_path / "bad.ptu"
    path.write_bytes(mutate(independent_ptu([photon(1, 1)], 0x00010207, 1e-12)))
    with pytest.raises(ConfigError) as info:
        PtuT2Reader(path)
    assert str(path) in str(info.value)
    assert info.value.field == field


def test_truncated_file_names_the_count_field(tmp_path):
    path = tmp_path / "short.ptu"
    path.write_bytes(independent_ptu([photon(1, 1)], 0x00010207, 1e-12, lie_about_count=10))
    with pytest.raises(ConfigError) as info:
        PtuT2Reader(path)
    assert info.value.field == "TTResult_NumberOfRecords"
