"""A processes-mode fault run as a user starts it: ``qnode testbed --processes --experiment ...
--json`` in a subprocess (a World server and one ``qnode run`` per node on loopback, the fixed
ports of configs/: take the ``processes_lock`` fixture). Returns the printed summary after
checking the run exited 0 with no wrong pair and no leaked qubit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TESTBED = ROOT / "configs/testbeds/chain-3node-processes.yaml"
EXPERIMENT = ROOT / "configs/experiments/chain3-swap-processes.yaml"


def experiment_with(tmp_path: Path, **fields) -> Path:
    """The processes chain experiment with ``fields`` set (``faults=``, a policy, ...)."""
    doc = yaml.safe_load(EXPERIMENT.read_text())
    doc["testbed"] = str(TESTBED)
    doc.update(fields)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_processes_testbed(tmp_path: Path, experiment: Path, duration_s: float, *extra: str,
                          timeout_s: float = 300) -> dict:
    run = subprocess.run([sys.executable, "-m", "qnode_fw.cli.main", "testbed", str(TESTBED),
                          "--processes", "--experiment", str(experiment),
                          "--duration", f"{duration_s:g}", *extra, "--out", str(tmp_path), "--json"],
                         capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["wrong_pairs"] == 0 and summary["leaked_qubits"] == 0
    return summary
