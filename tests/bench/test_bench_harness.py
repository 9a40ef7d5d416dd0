"""The benchmark harness: typed figures, discovery, child processes, text and JSON reports.

Speeds are never asserted here (they are measured in bench/); these tests check shapes, keys and
the harness's behaviour on failing, hanging and old-style benchmark modules.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest

from qnode_fw.benchmarks import Figure, Reference, Target
from qnode_fw.benchmarks.figure import FIGURE_KEYS, as_figure
from qnode_fw.benchmarks.harness import discover, find_bench_dir, select
from qnode_fw.cli.main import main
from qnode_fw.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
DOC_KEYS = {"schema", "quick", "profiled", "started_utc", "wall_s", "machine", "benches"}
MACHINE_KEYS = {"nproc", "cpu_count", "cpu_model", "mem_total_gb", "python", "implementation",
                "platform", "load_avg_1m_at_start"}
BENCH_KEYS = ["bench", "module", "status", "wall_s", "error", "figures"]


# -- Figure ---------------------------------------------------------------------------------------
def test_ratio_is_value_over_same_run_baseline_and_references_get_their_own_ratio():
    f = Figure("x", 30.0, "us", "raw", 10.0, "n", (Reference("fibre_1km", 5.0, "src"),),
               Target("<=", 100.0))
    rec = f.to_json()
    assert list(rec) == list(FIGURE_KEYS)
    assert rec["ratio"] == 3.0
    assert rec["baseline"] == {"name": "raw", "value": 10.0}
    assert rec["references"] == [{"name": "fibre_1km", "value": 5.0, "ratio": 6.0, "source": "src"}]
    assert rec["target"] == {"relation": "<=", "value": 100.0, "met": True}
    assert Figure.from_json(rec) == f


def test_target_missed_both_directions():
    assert Figure("lat", 120.0, "us", target=Target("<=", 100.0)).target_met is False
    assert Figure("tput", 80.0, "Mtags/s", target=Target(">=", 90.0)).target_met is False
    assert Figure("tput", 95.0, "Mtags/s", target=Target(">=", 90.0)).target_met is True
    with pytest.raises(ValueError):
        Target("<", 1.0)  # type: ignore[arg-type]


def test_undefined_numbers_become_null_not_nan_in_json():
    rec = Figure("p99", float("nan"), "us", "base", 0.0).to_json()
    text = json.dumps(rec, allow_nan=False)  # would raise on NaN
    assert json.loads(text)["value"] is None and rec["ratio"] is None
    back = Figure.from_json(rec)
    assert math.isnan(back.value) and back.baseline_value == 0.0


def test_baseline_name_and_value_go_together():
    with pytest.raises(ValueError):
        Figure("x", 1.0, "s", baseline_name="raw")


def test_legacy_dict_is_converted_and_bad_dicts_are_refused():
    legacy = {"name": "a", "value": 2.0, "unit": "1/s", "baseline_name": "b", "baseline_value": 4.0,
              "ratio": 0.5, "note": "old shape"}
    f = as_figure(legacy, origin="bench_old.py")
    assert (f.name, f.value, f.baseline_value, f.ratio, f.note) == ("a", 2.0, 4.0, 0.5, "old shape")
    with pytest.raises(ValueError, match="bench_old.py"):
        as_figure({**legacy, "speed": 3}, origin="bench_old.py")
    with pytest.raises(TypeError, match="bench_old.py"):
        as_figure(("a", 1.0), origin="bench_old.py")  # type: ignore[arg-type]


# -- discovery --------------------------------------------------------------------------------------
def test_discovers_every_benchmark_in_the_checkout():
    names = set(discover(find_bench_dir()))
    assert {"tags", "herald", "ruleset", "control", "drivers", "sim", "testbed", "timers"} <= names
    assert "testbed_links" not in names  # helper modules are not benchmarks


def test_unknown_name_and_missing_folder_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'"):
        select(discover(find_bench_dir()), ["nope"])
    with pytest.raises(ConfigError, match="no benchmark modules"):
        find_bench_dir(tmp_path)
    assert main(["bench", "--bench-dir", str(tmp_path), "--list"]) == 2


def test_names_with_prefix_or_suffix_select_the_same_module():
    available = discover(find_bench_dir())
    assert list(select(available, ["bench_tags.py", "herald"])) == ["tags", "herald"]


# -- running ------------------------------------------------------------------------------------------
def _write(folder: Path, name: str, body: str) -> None:
    (folder / f"bench_{name}.py").write_text(textwrap.dedent(body))


@pytest.fixture
def toy_benches(tmp_path):
    _write(tmp_path, "good", """
        from qnode_fw.benchmarks import Figure, Reference, Target
        from toy_helper import VALUE

        def run(quick=False):
            return [Figure("good_rate", VALUE, "1/s", "floor_rate", 4.0, f"quick={quick}",
                           (Reference("instrument", 2.0),), Target(">=", 10.0))]
        """)
    (tmp_path / "toy_helper.py").write_text("VALUE = 8.0\n")
    _write(tmp_path, "legacy", """
        def run(quick=False):
            return [{"name": "old", "value": 3.0, "unit": "s", "baseline_name": "b",
                     "baseline_value": 6.0, "ratio": 0.5, "note": ""}]
        """)
    _write(tmp_path, "broken", """
        def run(quick=False):
            raise RuntimeError("instrument on fire")
        """)
    _write(tmp_path, "hangs", """
        import time

        def run(quick=False):
            time.sleep(60)
        """)
    return tmp_path


def test_json_document_has_stable_keys_and_failures_do_not_lose_other_figures(toy_benches, capsys):
    code = main(["bench", "--bench-dir", str(toy_benches), "--quick", "--json", "--timeout", "3",
                 "good", "legacy", "broken", "hangs"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # a benchmark failed
    assert set(doc) == DOC_KEYS and doc["schema"] == "qnode-bench/1" and doc["quick"] is True
    assert set(doc["machine"]) == MACHINE_KEYS
    runs = {r["bench"]: r for r in doc["benches"]}
    assert [r["bench"] for r in doc["benches"]] == ["good", "legacy", "broken", "hangs"]
    for r in doc["benches"]:
        assert list(r) == BENCH_KEYS
        for f in r["figures"]:
            assert list(f) == list(FIGURE_KEYS)
    good = runs["good"]["figures"][0]
    assert (good["value"], good["ratio"], good["note"]) == (8.0, 2.0, "quick=True")
    assert good["references"][0]["ratio"] == 4.0 and good["target"]["met"] is False
    assert runs["legacy"]["figures"][0]["ratio"] == 0.5
    assert runs["broken"]["status"] == "failed" and "instrument on fire" in runs["broken"]["error"]
    assert runs["hangs"]["status"] == "timeout" and runs["hangs"]["figures"] == []


def test_text_report_shows_baseline_ratio_references_and_missed_target(toy_benches, capsys,
                                                                       tmp_path):
    md = tmp_path / "figures.md"
    assert main(["bench", "--bench-dir", str(toy_benches), "--markdown", str(md), "good"]) == 0
    out = capsys.readouterr().out
    assert "good_rate: 8 1/s  | baseline floor_rate = 4  | ratio 2" in out
    assert "instrument 2 -> x4" in out and "target >= 10: MISSED" in out
    assert "targets missed: good/good_rate" in out
    assert "| good_rate | 8 1/s | floor_rate 4 | 2 | instrument 2 (x4) | >= 10: **missed** |" \
        in md.read_text()


def test_profile_writes_a_pyinstrument_report(toy_benches, tmp_path, capsys):
    prof = tmp_path / "prof"
    assert main(["bench", "--bench-dir", str(toy_benches), "--profile", str(prof), "--json",
                 "good"]) == 0
    assert json.loads(capsys.readouterr().out)["profiled"] is True
    assert "Recorded:" in (prof / "good.txt").read_text()


@pytest.mark.slow
def test_quick_run_of_real_benchmarks_gives_their_figures(capsys, tmp_path):
    out = tmp_path / "bench.json"
    code = main(["bench", "ruleset", "testbed", "--quick", "--json", "--out", str(out)])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc
    assert json.loads(out.read_text()) == doc
    names = {r["bench"]: [f["name"] for f in r["figures"]] for r in doc["benches"]}
    assert names["ruleset"] == ["swapper_events_per_s", "end_node_events_per_s",
                                "rule_evaluations_per_s", "swap_reaction_p50", "swap_reaction_p99",
                                "correction_reaction_p50", "correction_reaction_p99"]
    assert names["testbed"] == [f"testbed_chain{n}_{k}" for n in (2, 4, 8)
                                for k in ("sim_speed", "events_per_s", "peak_rss")] + \
        ["testbed_cost_growth_exponent"]
    for r in doc["benches"]:
        for f in r["figures"]:
            assert f["baseline"] is not None and f["value"] is not None, f
