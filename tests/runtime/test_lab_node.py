"""``qnode run`` as on two lab PCs: real OS processes, real ZeroMQ sockets with CurveZMQ keys from
``qnode keys generate``, heartbeats both ways, and a graceful stop on SIGTERM that stops the
node's components in reverse order and exits 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.processes

QNODE = [sys.executable, "-m", "qnode_fw.cli.main"]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def write_testbed(tmp: Path) -> Path:
    pa, pb, ps = free_ports(3)
    (tmp / "A.yaml").write_text(textwrap.dedent(f"""\
        address: A
        role: COMP
        control: {{endpoint: "tcp://127.0.0.1:{pa}", key_file: keys/A.key_secret}}
        qnics: [{{address: 0, qubits: 2}}]
        instruments: [{{name: awg, kind: awg, model: sim}}]
        links: [{{neighbour: B, fibre_km: 1, station: bsa}}]
        """))
    (tmp / "B.yaml").write_text(textwrap.dedent(f"""\
        address: B
        role: COMP
        control: {{endpoint: "tcp://127.0.0.1:{pb}", key_file: keys/B.key_secret}}
        qnics: [{{address: 0, qubits: 2}}]
        links: [{{neighbour: A, fibre_km: 1, station: bsa}}]
        """))
    (tmp / "bsa.yaml").write_text(textwrap.dedent(f"""\
        address: bsa
        role: BSA
        control: {{endpoint: "tcp://127.0.0.1:{ps}", key_file: keys/bsa.key_secret}}
        """))
    (tmp / "testbed.yaml").write_text("name: two\nkeys_dir: keys\n"
                                      "nodes: [{file: A.yaml}, {file: B.yaml}, {file: bsa.yaml}]\n")
    return tmp / "testbed.yaml"


def test_two_nodes_join_over_curvezmq_and_stop_gracefully_on_sigterm(tmp_path):
    testbed = write_testbed(tmp_path)
    gen = subprocess.run(QNODE + ["keys", "generate", str(tmp_path / "keys"), "--testbed", str(testbed)],
                         capture_output=True, text=True, timeout=60)
    assert gen.returncode == 0, gen.stderr
    assert subprocess.run(QNODE + ["validate", str(testbed)], capture_output=True,
                          timeout=60).returncode == 0
    procs = {n: subprocess.Popen(QNODE + ["--log-level", "DEBUG", "run", str(tmp_path / f"{n}.yaml"),
                                          "--testbed", str(testbed), "--json",
                                          "--status-every", "0.2"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in ("A", "B")}
    lines: dict[str, list[str]] = {n: [] for n in procs}
    errs: dict[str, list[str]] = {n: [] for n in procs}
    readers = [threading.Thread(target=lambda f, out: out.extend(iter(f.readline, "")),
                                args=(stream, store), daemon=True)
               for n, p in procs.items()
               for stream, store in ((p.stdout, lines[n]), (p.stderr, errs[n]))]
    for r in readers:
        r.start()

    def sees_other(n: str) -> bool:
        # status lines: "  A  COMP  1/2 ..." once the other node (not the idle station) is up
        return any(line.split()[:1] == [n] and "1/2" in line.split() for line in list(lines[n]))

    try:
        # Wait (however slow start-up is on a loaded machine) until both have heard each other.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(sees_other(n) for n in procs):
            assert all(p.poll() is None for p in procs.values()), errs
            time.sleep(0.1)
        assert all(sees_other(n) for n in procs), lines
        # A first: it reports B up; then B, which heard A's goodbye.
        for n in ("A", "B"):
            if n == "B":
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and not any("peer A down: peer stopped" in l
                                                              for l in list(lines["B"])):
                    time.sleep(0.05)
            procs[n].send_signal(signal.SIGTERM)
            procs[n].wait(timeout=60)
        for r in readers:
            r.join(timeout=10)
        outs = {n: ("".join(lines[n]), "".join(errs[n])) for n in procs}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    for n, (out, err) in outs.items():
        assert procs[n].returncode == 0, err
        status = json.loads(out.strip().splitlines()[-1])
        if n == "A":
            assert status["peers"]["B"] == {"up": True, "reason": "heard from"}, status
        else:
            assert status["peers"]["A"] == {"up": False, "reason": "peer stopped"}, status
        assert not status["peers"]["bsa"]["up"]           # never started: reported as down
        assert status["shutdown"] == "SIGTERM"
        stopped = [line.split("component=")[1].split()[0] for line in err.splitlines()
                   if "component.stopped" in line]
        started = [line.split("component=")[1].split()[0] for line in err.splitlines()
                   if "component.started" in line]
        assert started == ["instruments", "qnics", "control", "rulesets"]
        assert stopped == list(reversed(started))


def test_a_node_not_in_the_testbed_is_a_config_error(tmp_path):
    testbed = write_testbed(tmp_path)
    subprocess.run(QNODE + ["keys", "generate", str(tmp_path / "keys"), "--testbed", str(testbed)],
                   check=True, capture_output=True, timeout=60)
    (tmp_path / "Z.yaml").write_text((tmp_path / "A.yaml").read_text().replace("address: A", "address: Z"))
    run = subprocess.run(QNODE + ["run", str(tmp_path / "Z.yaml"), "--testbed", str(testbed)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "node 'Z' is not part of testbed two" in run.stderr


def test_a_control_endpoint_in_use_is_a_config_error_not_a_hang(tmp_path):
    testbed = write_testbed(tmp_path)
    subprocess.run(QNODE + ["keys", "generate", str(tmp_path / "keys"), "--testbed", str(testbed)],
                   check=True, capture_output=True, timeout=60)
    port = (tmp_path / "A.yaml").read_text().split("tcp://127.0.0.1:")[1].split('"')[0]
    holder = socket.socket()
    holder.bind(("127.0.0.1", int(port)))
    holder.listen()
    try:
        run = subprocess.run(QNODE + ["run", str(tmp_path / "A.yaml"), "--testbed", str(testbed)],
                             capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert run.returncode == 2, run.stderr
    assert f"node A cannot bind its control endpoint tcp://127.0.0.1:{port}" in run.stderr
