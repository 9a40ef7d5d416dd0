"""Watching a processes-mode run (``qnode testbed --processes``) as a person and as Prometheus
does: each ``qnode run`` process serves its metrics on BASE + i (scraped over HTTP while the
chain runs), the live view's status table is built from the status lines the node processes
print, the herald links' clock sync is in every end node's status, and ``qnode report`` reads the
run directory with its node records (summary printed, plots written).

Oracle for the clock sync: every process reads one testbed clock (the World server's epoch on
this host's CLOCK_MONOTONIC), so the true offset between an end and its station is exactly 0;
two-way time transfer puts each exchange within its one-way delay of the truth, so the fitted
offset is within the mean one-way delay plus the fit's uncertainty of 0."""

from __future__ import annotations

import io
import json
import socket
import urllib.request
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from rich.console import Console

from qnode_fw.cli.main import main
from qnode_fw.config import load_testbed
from qnode_fw.experiments.live import LiveView, node_process_rows
from qnode_fw.testbed.processes import ProcessesTestbed, metrics_node_args

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[2]
TESTBED = ROOT / "configs" / "testbeds" / "chain-3node-processes.yaml"
EXPERIMENT = ROOT / "configs" / "experiments" / "chain3-swap-processes.yaml"
ENDS = {"A": ["A-B"], "B": ["A-B", "B-C"], "C": ["B-C"]}
STATIONS = {"bsa-AB": "A-B", "bsa-BC": "B-C"}
PNG = b"\x89PNG\r\n\x1a\n"


def free_port_run(n: int) -> int:
    """The first of ``n`` consecutive free loopback ports."""
    for base in range(31000, 60000, 97):
        socks = []
        try:
            for k in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + k))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port run")


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {name: float(value) for name, value in
            (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))}


@pytest.mark.slow
def test_metrics_per_process_the_live_table_clock_sync_and_the_report_of_a_processes_run(tmp_path):
    loaded = load_testbed(TESTBED)
    addresses = loaded.config.addresses
    base = free_port_run(len(addresses))
    ports = {a: base + i for i, a in enumerate(addresses)}
    assert metrics_node_args(addresses, base) == {a: ["--metrics-port", str(p)] for a, p in ports.items()}
    tb = ProcessesTestbed(loaded, out_dir=tmp_path, experiment=EXPERIMENT,
                          node_args=metrics_node_args(addresses, base))
    scraped: dict[str, dict[str, float]] = {}
    tables: list[list] = []

    def on_tick(elapsed: float) -> None:
        tables.append(node_process_rows(tb.node_statuses(), tb.process_states()))
        if elapsed > 3.0 and not scraped:
            scraped.update({a: scrape(p) for a, p in ports.items()})

    try:
        tb.start()
        tb.run_for(4.5, on_tick=on_tick)
    finally:
        result = tb.stop()
    assert result.ok, result.failures
    assert scraped, "the run ended before the metrics were scraped"

    # -- metrics: each process its own, on its own port --------------------------------------------
    for a, m in scraped.items():
        peers = [p for p in addresses if p != a]
        assert all(m[f'qnode_control_peer_up{{node="{a}",peer="{p}"}}'] == 1 for p in peers), a
        assert not any(f'node="{p}"' in k for k in m for p in peers if k.startswith("qnode_control"))
        assert m["qnode_loop_events_total"] > 0 and m["qnode_sim_time_seconds"] > 0
    figures = {a: o.status["experiment"]["links"] for a, o in result.nodes.items()}
    for a, links in ENDS.items():
        for link in links:
            key = f'{{link="{link}",node="{a}"}}'
            assert 0 < scraped[a][f"qnode_link_attempts_total{key}"] <= figures[a][link]["attempts"]
            station = next(s for s, lk in STATIONS.items() if lk == link)
            sync = f'{{link="{link}",node="{a}",station="{station}"}}'
            assert scraped[a][f"qnode_clock_sync_exchanges_total{sync}"] > 0
            assert f"qnode_clock_sync_offset_seconds{sync}" in scraped[a]
    for s, link in STATIONS.items():
        key = f'{{link="{link}",node="{s}"}}'
        assert 0 < scraped[s][f"qnode_link_heralds_total{key}"] <= figures[s][link]["heralds"]
    assert scraped["A"]['qnode_qnic_qubits_total{node="A",qnic="0"}'] == 4

    # -- the live table, from the node processes' status lines ------------------------------------
    last = {r.node: r for r in tables[-1]}
    assert list(last) == addresses and all(r.state == "running" for r in last.values())
    assert all(f"peers {len(addresses) - 1}/{len(addresses) - 1}" in r.figures for r in last.values())
    for a, links in ENDS.items():
        assert all(f"sync {link} " in last[a].figures for link in links), last[a].figures
        assert "halves" in last[a].figures
    assert all(f"sync {link}: " in last[s].figures and "answered" in last[s].figures
               for s, link in STATIONS.items())
    out = io.StringIO()
    view = LiveView("chain", console=Console(file=out, force_terminal=True, width=200))
    with view:
        view.update(0.5, 2.0, tables[-1])
    rendered = out.getvalue()
    assert all(a in rendered for a in addresses) and "50.0%" in rendered

    # -- clock sync in each end's final status: true offset 0 -------------------------------------
    for a, links in ENDS.items():
        sync = result.nodes[a].status["clock_sync"]["links"]
        for link in links:
            st = sync[link]
            assert st["exchanges"] > 50 and st["faults"] == [], st
            assert abs(st["offset_us"]) <= st["delay_us"] + st["uncertainty_us"], st
    assert all(result.nodes[s].status["clock_sync"]["answered"][link] > 50 for s, link in STATIONS.items())

    # -- qnode report on the run directory -----------------------------------------------------------
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["report", str(result.run_dir), "--json"]) == 0
    report = json.loads(buf.getvalue())
    assert sorted(Path(p).name for p in report["plots"]) == ["fidelity_rate.png", "link_pairs.png",
                                                             "timeline.png"]
    for p in report["plots"]:
        assert Path(p).read_bytes()[:8] == PNG and Path(p).stat().st_size > 10_000
    assert sorted(Path(p).name for p in report["ptu_exported"]) == ["bsa-AB.tagger.ptu", "bsa-BC.tagger.ptu"]
    assert report["summary"]["pairs_delivered"] == result.summary["pairs_delivered"] > 0
    assert set(report["nodes"]) == set(addresses)
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["report", str(result.run_dir)]) == 0
    text = buf.getvalue()
    assert "rate" in text and "(wall clock)" in text and "(simulated)" not in text
    assert "clock sync A-B to bsa-AB: offset" in text and "node bsa-BC" in text
