"""`qnode tags`: exact counts, coincidences and histogram from .npz and PTU T2 files, JSON
output, the plot file, and errors that name the file and field."""

import json

import numpy as np
import pytest

from qnode_fw.cli.main import main
from timing.ptu import write_ptu_t2
from timing.tagfile import save_npz

# ch1 at 0, 10 ns, 20 ns; ch2 1.2 ns after each, plus one stray ch2 tag and a ch3 tag.
CH = np.array([1, 2, 1, 2, 2, 1, 2, 3], np.int32)
TS = np.array([0, 1_200, 10_000, 11_200, 15_000, 20_000, 21_200, 30_000], np.int64)


def run_json(capsys, *argv):
    assert main(["tags", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("fmt", ["npz", "ptu"])
def test_counts_coincidences_and_histogram(tmp_path, capsys, fmt):
    path = tmp_path / f"run.{fmt}"
    if fmt == "npz":
        save_npz(path, CH, TS)
    else:
        write_ptu_t2(path, CH, TS, resolution_ps=1)
    out = run_json(capsys, str(path), "--pair", "1,2", "--pair", "1,3", "--window-ps", "200",
                   "--delay-ps", "1200", "--binwidth-ps", "500", "--bins", "8")
    assert out["tags"] == 8 and out["first_ps"] == 0 and out["last_ps"] == 30_000
    assert out["counts"] == {"1": 3, "2": 4, "3": 1}
    assert [c["count"] for c in out["coincidences"]] == [3, 0]
    corr = out["correlation"]
    # Differences t2 - t1 within [-2000, 2000): the three 1200 ps pairs only.
    assert corr["counts"] == [0, 0, 0, 0, 0, 0, 3, 0]
    assert corr["bin_centres_ps"][6] == 1250


def test_text_output_and_plot(tmp_path, capsys):
    path = tmp_path / "run.npz"
    save_npz(path, CH, TS)
    png = tmp_path / "out.png"
    assert main(["tags", str(path), "--pair", "1,2", "--delay-ps", "1200", "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "channel   2: 4" in text and "coincidences 1,2 window 1000 ps delay 1200 ps: 3" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_files_name_the_file_and_field(tmp_path, capsys):
    assert main(["tags", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    save_npz(bad, CH, TS[::-1])
    assert main(["tags", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and "timestamps_ps[1]" in err
    np.savez(tmp_path / "nochan.npz", timestamps_ps=TS)
    assert main(["tags", str(tmp_path / "nochan.npz")]) == 2
    assert "'channels' missing" in capsys.readouterr().err
