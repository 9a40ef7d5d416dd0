"""The command line around experiments: ``qnode testbed --experiment --json`` prints exactly the
summary fields, ``qnode report`` writes readable plots, a run killed with SIGKILL leaves a record
that reads back and reports, and ``--metrics-port`` serves the Prometheus metrics (scraped over
HTTP while the server runs)."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from exp_helpers import REPO, write_experiment
from qnode_fw.cli.main import main
from qnode_fw.experiments import SUMMARY_FIELDS, RunOptions, run_experiment
from qnode_fw.metrics import TestbedMetrics
from qnode_fw.records import load_run

CHAIN_TB = REPO / "configs/testbeds/chain-3node-sim.yaml"
CHAIN_EXP = REPO / "configs/experiments/chain3-swap.yaml"
PNG = b"\x89PNG\r\n\x1a\n"


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_json_summary_has_exactly_the_issue_fields_and_report_draws_the_plots(tmp_path):
    code, out = cli("testbed", str(CHAIN_TB), "--experiment", str(CHAIN_EXP), "--duration", "0.004",
                    "--seed", "3", "--out", str(tmp_path), "--json")
    assert code == 0
    summary = json.loads(out)
    assert list(summary) == list(SUMMARY_FIELDS) == [
        "experiment", "pairs_delivered", "rate_hz", "fidelity", "fidelity_stderr", "chsh_s",
        "chsh_s_stderr", "wrong_pairs", "leaked_qubits", "sim_time_s", "wall_time_s", "events", "run_dir"]
    assert summary["experiment"] == "chain3-swap" and summary["chsh_s"] is None
    assert summary["pairs_delivered"] > 0 and summary["wrong_pairs"] == 0 and summary["leaked_qubits"] == 0
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["status"] == "complete" and saved["seed"] == 3
    assert all(saved[k] == summary[k] for k in SUMMARY_FIELDS if k != "wall_time_s")
    config = load_run(run_dir).config
    assert config["run"]["seed"] == 3 and config["experiment"]["kind"] == "repeater_chain"
    assert [n["address"] for n in config["testbed"]["nodes"]] == ["A", "bsa-AB", "B", "bsa-BC", "C"]
    assert (run_dir / "tags" / "bsa-AB.tagger.ptu").is_file()
    code, out = cli("report", str(run_dir), "--json")
    assert code == 0
    report = json.loads(out)
    names = sorted(Path(p).name for p in report["plots"])
    assert names == ["fidelity_rate.png", "timeline.png"]
    for p in report["plots"]:
        assert Path(p).read_bytes()[:8] == PNG and Path(p).stat().st_size > 10_000


def test_an_unknown_experiment_kind_is_a_config_error_naming_file_line_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"name: bad\nkind: teleportation\ntestbed: {CHAIN_TB}\n")
    assert main(["testbed", str(CHAIN_TB), "--experiment", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:2: kind: unknown experiment kind 'teleportation'" in err
    assert "link_calibration, repeater_chain, spdc_distribution" in err


@pytest.mark.slow
def test_a_run_killed_with_sigkill_leaves_a_readable_record(tmp_path):
    spdc = REPO / "configs/experiments/spdc-chsh.yaml"
    tb = REPO / "configs/testbeds/epps-2meas-sim.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "qnode_fw.cli.main", "testbed", str(tb),
                             "--experiment", str(spdc), "--duration", "30", "--out", str(tmp_path),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        run_dir = None
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            dirs = list(tmp_path.glob("*-spdc-chsh"))
            if not dirs:
                continue
            run_dir = dirs[0]
            try:
                summary = json.loads((run_dir / "summary.json").read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            chunks = list((run_dir / "tags").glob("*/0000*.npy"))
            if summary.get("status") == "running" and summary.get("progress", 0) > 0.05 and len(chunks) >= 2:
                break
        assert proc.poll() is None, proc.stderr.read().decode()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    data = load_run(run_dir)
    assert data.summary["status"] == "running" and data.summary["progress"] > 0.05
    assert data.events_of("spdc.setting") and data.torn_lines <= 1
    assert sum(t.size for t in data.tags.values()) > 1000
    code, out = cli("report", str(run_dir), "--json")
    assert code == 0
    report = json.loads(out)
    assert len(report["ptu_exported"]) == 2          # both MEAS nodes' taggers, from the chunks
    assert any(Path(p).name == "timeline.png" for p in report["plots"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_metrics_are_served_over_http_while_the_run_goes(tmp_path):
    port = _free_port()
    metrics = TestbedMetrics(port)
    scraped: list[dict[str, float]] = []

    def on_slice(testbed, experiment):
        metrics.update(testbed, experiment)
        scraped.append(scrape(port))

    try:
        exp = write_experiment(tmp_path, "chain-metrics", "repeater_chain", CHAIN_TB, 0.004,
                               {"physics": {"collection_efficiency": 0.5}}, seed=2)
        result = run_experiment(exp, options=RunOptions(on_slice=on_slice))
    finally:
        metrics.close()
    assert len(scraped) >= 3
    last = scraped[-1]
    links = result.experiment.links.links
    for link, run_ in links.items():
        a, b = run_.params.nodes
        for node in (a, b):
            assert last[f'qnode_link_attempts_total{{link="{link}",node="{node}"}}'] == len(run_.ends[node].attempts) > 0
            assert last[f'qnode_link_pairs_total{{link="{link}",node="{node}"}}'] == run_.pairs_ready[node]
            assert f'qnode_link_attempt_rate_hz{{link="{link}",node="{node}"}}' in last
        assert last[f'qnode_link_heralds_total{{link="{link}",node="{run_.station}"}}'] == run_.heralds() > 0
        assert 0 < last[f'qnode_link_success_probability{{link="{link}"}}'] < 1
        assert last[f'qnode_herald_latency_seconds_count{{link="{link}"}}'] == len(run_.herald_latency_ps)
    assert last['qnode_qnic_qubits_total{node="B",qnic="0"}'] == 8
    assert last['qnode_instrument_up{instrument="tagger",kind="time_tagger",node="bsa-AB"}'] == 1
    assert last['qnode_control_peer_up{node="A",peer="C"}'] == 1
    assert any(k.startswith('qnode_ruleset_stage_pairs{node="B"') for k in scraped[1])
    assert last['qnode_ruleset_events_total{counter="pair_ready",node="A"}'] > 0
    assert 0.5 < last['qnode_fidelity_estimate{node="A"}'] <= 1
    assert last["qnode_sim_time_seconds"] > 0 and last["qnode_loop_events_total"] > 0
