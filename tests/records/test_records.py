"""Run records: what is written reads back exactly, the PTU export decodes to the same tags, and
a writer killed with SIGKILL leaves a record readable up to its last flush."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from qnode_fw.records import RunRecord, export_missing_ptu, load_run
from timing.ptu import PtuT2Reader


def test_round_trip_of_every_part(tmp_path):
    rec = RunRecord.create(tmp_path, "unit-test")
    rec.write_config({"experiment": {"name": "unit-test", "seed": 3}, "nodes": [{"address": "A"}]})
    for i in range(5):
        rec.event(i * 1000, "pair.delivered", node="A", name=["bsa", i], fidelity=np.float64(0.9))
    rows = np.zeros(3, [("t_ps", "<i8"), ("value", "<f8")])
    rows["t_ps"] = [1, 2, 3]
    rows["value"] = [0.5, 0.25, 0.125]
    rec.append_rows("pairs", rows[:2])
    rec.append_rows("pairs", rows[2:])
    rec.write_array("scan", np.arange(4.0))
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(0, 10**9, 1000))
    ch = rng.integers(1, 5, 1000).astype(np.int32)
    rec.tags("bsa-AB/tagger", ch[:400], ts[:400])
    rec.tags("bsa-AB/tagger", ch[400:], ts[400:])
    rec.write_summary({"experiment": "unit-test", "status": "complete"})
    rec.close()

    data = load_run(rec.root)
    assert rec.root.name.endswith("-unit-test")
    assert data.config["nodes"] == [{"address": "A"}]
    assert [e["t_ps"] for e in data.events] == [0, 1000, 2000, 3000, 4000]
    assert data.events[2] == {"t_ps": 2000, "event": "pair.delivered", "node": "A",
                              "name": ["bsa", 2], "fidelity": 0.9}
    assert data.torn_lines == 0
    np.testing.assert_array_equal(data.arrays["pairs"], rows)
    np.testing.assert_array_equal(data.arrays["scan"], np.arange(4.0))
    tags = data.tags["bsa-AB.tagger"]
    np.testing.assert_array_equal(tags["channel"], ch)
    np.testing.assert_array_equal(tags["timestamp_ps"], ts)
    assert data.summary == {"experiment": "unit-test", "status": "complete"}
    # The PTU export holds the same tags (PicoQuant's T2 layout, channel field = channel - 1).
    events = PtuT2Reader(rec.root / "tags" / "bsa-AB.tagger.ptu").read_all()
    np.testing.assert_array_equal(events.timestamps_ps, ts)
    np.testing.assert_array_equal(events.channels, ch)


def test_two_runs_in_the_same_second_get_distinct_directories(tmp_path):
    import datetime as dt

    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    a = RunRecord.create(tmp_path, "x", when)
    b = RunRecord.create(tmp_path, "x", when)
    assert a.root.name == "20260102T030405Z-x"
    assert b.root.name == "20260102T030405Z-x-2"


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from qnode_fw.records import RunRecord
    rec = RunRecord.create(sys.argv[1], "killed")
    rec.write_config({"experiment": {"name": "killed"}})
    n = 0
    while True:
        for _ in range(50):
            rec.event(n, "tick", node="A", payload="x" * 40)
            n += 1
        rec.tags("A/tagger", np.full(10, 1, np.int32), np.arange(n * 10, n * 10 + 10))
        rec.write_summary({"status": "running", "events": n})
        rec.flush()
        print(rec.root, n, flush=True)
""")


def test_sigkill_leaves_a_record_readable_up_to_the_last_flush(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        seen = []
        deadline = time.monotonic() + 30
        while len(seen) < 20 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line:
                seen.append(line.split())
        assert len(seen) == 20, "the writer did not report its flushes"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    root, flushed = Path(seen[-1][0]), int(seen[-1][1])
    data = load_run(root)
    # Everything up to the last reported flush is there (more may have been written after it).
    assert len(data.events) >= flushed
    assert [e["t_ps"] for e in data.events] == list(range(len(data.events)))
    assert data.torn_lines <= 1
    assert data.summary["status"] == "running" and data.summary["events"] >= flushed
    assert data.tags["A.tagger"].size >= flushed // 50 * 10
    assert json.loads((root / "summary.json").read_text())["status"] == "running"
    # The PTU export the writer never reached is made from the chunks.
    (ptu,) = export_missing_ptu(data)
    assert len(PtuT2Reader(ptu).read_all()) == data.tags["A.tagger"].size


def test_a_directory_without_config_is_refused_with_its_path(tmp_path):
    from qnode_fw.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_run(tmp_path)
    assert str(tmp_path) in str(exc.value) and "config.yaml" in str(exc.value)
