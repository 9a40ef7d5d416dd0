"""``qnode testbed --processes``: the 3-node memory repeater chain with one OS process per node
(A, B, C and the BSA stations bsa-AB and bsa-BC: ``qnode run``, the lab's deployment path) plus
the World server, over ZeroMQ on loopback, on the wall clock.

Oracle for the physics across processes: on each link the BSA heralds a Ψ± in an attempt both
ends emitted in with probability ``½·η_a·η_b``, ``η = collection · 10^(−0.2·L/10) · e`` for the
fibre ``L`` (half the link) from each end to its station (dark counts, 100 Hz in a 5 ns window,
add < 1e-6 per attempt); the heralds of both links are compared with the sum of the binomial
expectations. Only photons that two *processes* emitted at the same slot time and that reached
the World before the station's read can give that rate.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qnode_fw.config import load_testbed
from qnode_fw.errors import ConfigError
from qnode_fw.records import load_run
from qnode_fw.testbed.node_experiment import read_halves
from qnode_fw.testbed.processes import ProcessesTestbed

pytestmark = pytest.mark.processes

ROOT = Path(__file__).resolve().parents[2]
TESTBED = ROOT / "configs" / "testbeds" / "chain-3node-processes.yaml"
EXPERIMENT = ROOT / "configs" / "experiments" / "chain3-swap-processes.yaml"
NODES = ["A", "bsa-AB", "B", "bsa-BC", "C"]


def herald_probability(physics: dict, link_km: float) -> float:
    eta = (physics["collection_efficiency"] * 10 ** (-physics["attenuation_db_per_km"] * link_km / 2 / 10)
           * physics["detector"]["efficiency"])
    return 0.5 * eta * eta


@pytest.mark.slow
def test_the_chain_delivers_pairs_with_a_process_per_node_and_the_link_physics_of_the_closed_form(tmp_path):
    run = subprocess.run([sys.executable, "-m", "qnode_fw.cli.main", "testbed", str(TESTBED),
                          "--processes", "--experiment", str(EXPERIMENT), "--duration", "5",
                          "--out", str(tmp_path), "--json"],
                         capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    from qnode_fw.experiments import SUMMARY_FIELDS

    assert list(summary) == list(SUMMARY_FIELDS)
    assert summary["experiment"] == "chain3-swap-processes"
    assert summary["pairs_delivered"] >= 10 and summary["wrong_pairs"] == 0
    assert summary["leaked_qubits"] == 0
    assert summary["chsh_s"] is None and 4.5 <= summary["sim_time_s"] <= 7
    record = load_run(summary["run_dir"])
    started = {e["node"]: e["pid"] for e in record.events_of("process.started")}
    assert sorted(started) == sorted(NODES + ["world"])
    assert len(set(started.values())) == 6 and not set(started.values()) & {0, 1}
    details = record.summary["details"]
    assert details["pairs_delivered"] == summary["pairs_delivered"]
    physics = record.config["experiment"]["params"]["physics"]
    figures = details["nodes"]
    # Both links together (one seed's stream per link: a single link's few hundred attempts
    # are one fixed sample of it, the sum is the better test of the rate).
    heralds = expected = variance = 0.0
    for a, b, station, km in (("A", "B", "bsa-AB", 2.0), ("B", "C", "bsa-BC", 3.0)):
        link = f"{a}-{b}"
        # attempts in which both ends emitted, as the World paired their photons
        n = record.summary["world"]["memory_links"][link]["joint_attempts"]
        p = herald_probability(physics, km)
        assert figures[a]["links"][link]["attempts"] >= n <= figures[b]["links"][link]["attempts"]
        assert n > 100
        heralds += figures[station]["links"][link]["heralds"]
        expected += n * p
        variance += n * p * (1 - p)
    assert abs(heralds - expected) <= 3 * math.sqrt(variance), (heralds, expected, math.sqrt(variance))
    # Every node ended by the runner's SIGTERM, none by a failure.
    assert all(v["shutdown"] == "SIGTERM" and v["returncode"] == 0
               for v in record.summary["nodes"].values())
    assert record.summary["world"]["horizon_timeouts"] == 0


@pytest.mark.slow
def test_killing_a_node_leaves_readable_records_and_the_others_stop_naming_it(tmp_path):
    tb = ProcessesTestbed(load_testbed(TESTBED), out_dir=tmp_path, experiment=EXPERIMENT)
    try:
        tb.start()
        tb.run_for(3.0)
        assert len(tb.alive()) == 5
        tb.kill("B")
        killed = time.monotonic()
    finally:
        result = tb.stop()
    stopped_within = time.monotonic() - killed
    assert "node B was killed by SIGKILL" in result.failures, result.failures
    for address in ("A", "bsa-AB", "bsa-BC", "C"):
        outcome = result.nodes[address]
        assert outcome.returncode == 1, outcome.log_tail
        assert outcome.shutdown.startswith("peer B down: no heartbeat for "), outcome.shutdown
        assert f"node {address} stopped: peer B down" in " ".join(result.failures)
        assert outcome.status["peers"]["B"]["up"] is False
    assert stopped_within < 30
    # The runner's record, the killed node's and a survivor's all read back.
    run = load_run(result.run_dir)
    assert run.summary["status"] == "failed"
    assert [e["signal"] for e in run.events_of("process.signalled")] == ["SIGKILL"]
    ended = {e["node"]: e for e in run.events_of("process.ended")}
    assert ended["B"]["signal"] == "SIGKILL"
    b = load_run(result.run_dir / "nodes" / "B")
    assert b.summary["status"] == "running"            # it never got to write another
    assert b.events_of("role.started") and not b.events_of("role.finished")
    a = load_run(result.run_dir / "nodes" / "A")
    assert a.summary["status"] == "stopped" and a.summary["shutdown"].startswith("peer B down")
    assert len(read_halves(result.run_dir, "A")) == a.summary["halves"] >= 1
    assert result.summary["pairs_delivered"] >= 1 and result.summary["wrong_pairs"] == 0


def test_a_kind_that_needs_one_clock_is_refused_before_any_process_starts(tmp_path):
    with pytest.raises(ConfigError, match="runs on the virtual testbed only") as refused:
        ProcessesTestbed(load_testbed(TESTBED), out_dir=tmp_path,
                         experiment=ROOT / "configs" / "experiments" / "spdc-chsh.yaml")
    assert refused.value.field == "kind" and refused.value.file.endswith("spdc-chsh.yaml")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_plain_testbed_with_curvezmq_keys_runs_with_a_world_server_and_prints_the_json_status(tmp_path):
    """Nodes, heartbeats and status only; the testbed has keys, so the control links, the World
    connection (the server's keypair is written beside the nodes') and its ZAP allowlist are
    CurveZMQ."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lab_node_testbed", ROOT / "tests" / "runtime" /
                                                  "test_lab_node.py")
    lab_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lab_tests)          # the two-node CurveZMQ testbed of the lab tests
    QNODE = lab_tests.QNODE
    testbed = lab_tests.write_testbed(tmp_path)
    subprocess.run(QNODE + ["keys", "generate", str(tmp_path / "keys"), "--testbed", str(testbed)],
                   check=True, capture_output=True, timeout=60)
    run = subprocess.run(QNODE + ["testbed", str(testbed), "--processes", "--duration", "1",
                                  "--out", str(tmp_path / "runs"), "--json"],
                         capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    status = json.loads(run.stdout.strip().splitlines()[-1])
    assert status["ok"] and status["mode"] == "processes" and status["failures"] == []
    assert set(status["nodes"]) == {"A", "B", "bsa"}
    assert all(p["up"] or p["reason"] == "peer stopped"
               for st in status["nodes"].values() for p in st["peers"].values())
    assert (tmp_path / "keys" / "world.key_secret").exists()
    world_log = (Path(status["run_dir"]) / "logs" / "world.stderr").read_text()
    assert "Traceback" not in world_log
    record = load_run(status["run_dir"])
    world = record.summary["world"]
    assert world["curve"] and world["clients"] == 3 and world["refused"] == 0


def _netem_available() -> bool:
    probe = "qnode-netem-probe"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return False
    try:
        return subprocess.run(["tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                               "1us"], capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="--netns creates network namespaces: root only")
def test_netns_puts_each_node_in_its_own_namespace_and_removes_them_after(tmp_path):
    """With the kernel's netem the fibre delays are on each node's interface (A: 9.794 us to B,
    4.897 us to bsa-AB); a kernel without it is named in the error, and the namespaces still run
    without delays."""
    netem = _netem_available()
    tb = ProcessesTestbed(load_testbed(ROOT / "configs" / "testbeds" / "chain-3node-sim.yaml"),
                          out_dir=tmp_path, netns=True, netns_delays=netem)
    try:
        tb.start()
        for address, proc in tb.nodes.items():
            ns = subprocess.run(["ip", "netns", "identify", str(proc.pid)], capture_output=True,
                                text=True).stdout.strip()
            assert ns == tb.netns.nodes[address].namespace
        assert len({n.ip for n in tb.netns.nodes.values()}) == 5
        if netem:
            qdiscs = tb.netns.qdiscs("A")
            assert "delay 9.8us" in qdiscs and "delay 4.9us" in qdiscs, qdiscs
        tb.run_for(1.0)
        namespaces = [n.namespace for n in tb.netns.nodes.values()]
    finally:
        result = tb.stop()
    assert result.ok, result.failures
    assert all(p["up"] or p["reason"] == "peer stopped"
               for st in result.statuses().values() for p in st["peers"].values())
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in left for ns in namespaces)
    if not netem:
        run = subprocess.run([sys.executable, "-m", "qnode_fw.cli.main", "testbed",
                              str(ROOT / "configs" / "testbeds" / "chain-3node-sim.yaml"), "--netns",
                              "--out", str(tmp_path / "cli")], capture_output=True, text=True,
                             timeout=60, cwd=ROOT)
        assert run.returncode == 1 and "sch_netem" in run.stderr
