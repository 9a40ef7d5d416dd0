"""Every node of a testbed in its own OS process, on the wall clock (``qnode testbed --processes``).

This is the lab's deployment path run on one machine: each node is ``qnode run NODE.yaml
--testbed TESTBED.yaml`` (a :class:`~qnode_fw.testbed.lab.LabNode`) talking to its peers over
ZeroMQ on loopback, with CurveZMQ when the testbed has keys. What a lab has and one machine has
not is the physics between the nodes: that is one more process, the World server
(:mod:`sim_backend.world_server`), which every node's simulated instruments reach with
``--world``.

A run, in order:

1. the World server starts and prints its endpoint;
2. every node process starts; the run begins when each has started its components (its first
   status line);
3. after ``duration_s`` every node gets SIGTERM at once and stops its components in reverse order;
   a node that crashes or is killed first makes its peers stop on their own (``qnode run
   --stop-on-peer-down``), each naming the dead node in its shutdown reason;
4. the World server stops last and reports its counters.

Everything lands in a run directory: the runner's own record (``events.jsonl``: processes started
and ended, ``summary.json``) and each process's output under ``logs/``.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.testbed import LoadedTestbed
from ..errors import ConfigError, QnodeError
from ..logs import event
from ..records import RunRecord

log = logging.getLogger(__name__)

#: Name of the World server's CURVE keypair in the testbed's keys_dir (must not be a node).
WORLD_KEY_NAME = "world"


@dataclass(frozen=True)
class ProcessSettings:
    start_timeout_s: float = 90.0       # World ready and every node started (imports, JIT caches)
    stop_timeout_s: float = 20.0        # from SIGTERM (or a peer's death) to every node gone
    status_every_s: float = 0.25        # node status lines: the first one says "started"
    log_level: str = "WARNING"
    python: str = sys.executable


@dataclass
class NodeOutcome:
    """How one node process ended."""

    address: str
    returncode: int | None
    status: dict[str, Any] | None       # the node's final status (``qnode run --json``)
    log_tail: str = ""

    @property
    def signal(self) -> str | None:
        if self.returncode is not None and self.returncode < 0:
            return signal.Signals(-self.returncode).name
        return None

    @property
    def shutdown(self) -> str | None:
        return None if self.status is None else self.status.get("shutdown")

    def failure(self) -> str | None:
        """Why this node did not end well, in words (None when it did)."""
        if self.signal is not None:
            return f"node {self.address} was killed by {self.signal}"
        if self.returncode == 0:
            return None
        if self.shutdown:
            return f"node {self.address} stopped: {self.shutdown}"
        return f"node {self.address} exited with status {self.returncode}: {self.log_tail or 'no output'}"


@dataclass
class ProcessesResult:
    testbed: str
    seed: int
    run_dir: Path
    run_time_s: float                   # from every node started to the stop
    wall_time_s: float                  # the whole run, process start-up included
    nodes: dict[str, NodeOutcome] = field(default_factory=dict)
    world: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def statuses(self) -> dict[str, dict[str, Any]]:
        return {a: o.status for a, o in self.nodes.items() if o.status is not None}


class _Process:
    """One child process with its output in files (a pipe nobody reads would block it)."""

    def __init__(self, name: str, argv: list[str], logs: Path, *, stdout_pipe: bool = False) -> None:
        self.name = name
        self.argv = argv
        self.stdout_path = logs / f"{name}.stdout"
        self.stderr_path = logs / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self._stdout = None if stdout_pipe else open(self.stdout_path, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE if stdout_pipe else self._stdout,
                                      stderr=self._stderr, stdin=subprocess.DEVNULL, env=env)
        self.started_ns = time.monotonic_ns()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        return self.popen.poll()

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    def wait(self, timeout_s: float) -> int | None:
        try:
            return self.popen.wait(timeout=max(0.0, timeout_s))
        except subprocess.TimeoutExpired:
            return None

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr_tail(self, lines: int = 5) -> str:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def close(self) -> None:
        for f in (self._stdout, self._stderr):
            if f is not None:
                f.close()


class ProcessesTestbed:
    """Run a testbed with one OS process per node and a World server (module docstring)."""

    def __init__(self, testbed: LoadedTestbed, *, out_dir: str | Path, seed: int | None = None,
                 settings: ProcessSettings = ProcessSettings(),
                 node_args: dict[str, list[str]] | None = None) -> None:
        self.testbed = testbed
        self.config = testbed.config
        self.seed = self.config.seed if seed is None else int(seed)
        self.settings = settings
        self.node_args = node_args or {}
        self.files = {a: self._node_file(a) for a in self.config.addresses}
        self.record = RunRecord.create(out_dir, f"{self.config.name}-processes")
        self.logs = self.record.root / "logs"
        self.logs.mkdir()
        self.world: _Process | None = None
        self.world_endpoint: str | None = None
        self.nodes: dict[str, _Process] = {}
        self._t0 = time.monotonic_ns()
        self.run_started_ns: int | None = None
        self.stopped_ns: int | None = None
        self.record.write_config({"testbed": self.config.model_dump(mode="json"), "seed": self.seed,
                                  "mode": "processes"})
        self._summary("running")

    # -- set-up ------------------------------------------------------------------------------------
    def _node_file(self, address: str) -> Path:
        doc = self.testbed.node_documents[address]
        path = Path(doc.file).resolve()
        if path == Path(self.testbed.document.file).resolve():
            raise ConfigError(f"node {address} is written inline; processes mode starts "
                              f"`qnode run NODE.yaml` per node and needs one file per node",
                              file=self.testbed.document.file, field="nodes",
                              expected="nodes: [{file: NODE.yaml}, ...]")
        return path

    def _ensure_world_keys(self) -> None:
        """With CurveZMQ the World server needs a keypair beside the nodes' (written once)."""
        if self.config.keys_dir is None:
            return
        if WORLD_KEY_NAME in self.config.addresses:
            raise ConfigError(f"a node is named {WORLD_KEY_NAME!r}, the name of the World server's "
                              f"key", file=self.testbed.document.file, field="nodes",
                              expected="another node address")
        from ..control.auth import write_node_keys

        keys_dir = self.testbed.resolve(self.config.keys_dir)
        if not (keys_dir / f"{WORLD_KEY_NAME}.key_secret").exists():
            write_node_keys(keys_dir, WORLD_KEY_NAME)
            event(log, logging.INFO, "processes.world-keys", keys_dir=str(keys_dir))

    def _event(self, name: str, **fields: Any) -> None:
        self.record.event((time.monotonic_ns() - self._t0) * 1000, name, **fields)
        self.record.flush()

    def _summary(self, status: str, **fields: Any) -> None:
        self.record.write_summary({"status": status, "mode": "processes", "testbed": self.config.name,
                                   "seed": self.seed, **fields})

    def start(self) -> None:
        """Start the World server and every node; return once every node has started."""
        self._ensure_world_keys()
        self._start_world()
        for address in self.config.addresses:
            argv = [self.settings.python, "-m", "qnode_fw.cli.main", "--log-level",
                    self.settings.log_level, "run", str(self.files[address]),
                    "--testbed", str(Path(self.testbed.document.file).resolve()),
                    "--world", str(self.world_endpoint), "--seed", str(self.seed), "--json",
                    "--stop-on-peer-down", "--status-every", str(self.settings.status_every_s),
                    *self.node_args.get(address, [])]
            self.nodes[address] = _Process(address, argv, self.logs)
            self._event("process.started", node=address, pid=self.nodes[address].pid)
        self._wait_started()
        self.run_started_ns = time.monotonic_ns()
        self._event("testbed.running", nodes=len(self.nodes))

    def _start_world(self) -> None:
        argv = [self.settings.python, "-m", "sim_backend.world_server",
                str(Path(self.testbed.document.file).resolve()), "--bind", "tcp://127.0.0.1:0",
                "--seed", str(self.seed), "--log-level", self.settings.log_level]
        self.world = _Process("world", argv, self.logs, stdout_pipe=True)
        line = self._read_line(self.world, self.settings.start_timeout_s)
        try:
            ready = json.loads(line)
            self.world_endpoint = str(ready["endpoint"])
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise QnodeError(f"the World server did not start: {line.strip() or self.world.stderr_tail()}") from None
        self._event("process.started", node="world", pid=self.world.pid, endpoint=self.world_endpoint)

    @staticmethod
    def _read_line(proc: _Process, timeout_s: float) -> str:
        stream = proc.popen.stdout
        assert stream is not None
        sel = selectors.DefaultSelector()
        sel.register(stream, selectors.EVENT_READ)
        try:
            if not sel.select(timeout_s):
                return ""
            return stream.readline().decode(errors="replace")
        finally:
            sel.close()

    def _wait_started(self) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        waiting = set(self.nodes)
        while waiting:
            for address in sorted(waiting):
                proc = self.nodes[address]
                if " components" in proc.stdout_text():     # the status table's header line
                    waiting.discard(address)
                    self._event("node.started", node=address)
                elif proc.poll() is not None:
                    self.stop()
                    raise QnodeError(f"node {address} ended before it started: {proc.stderr_tail()}")
            if waiting and time.monotonic() > deadline:
                self.stop()
                raise QnodeError(f"nodes {', '.join(sorted(waiting))} did not start within "
                                 f"{self.settings.start_timeout_s:g} s")
            time.sleep(0.05)

    # -- running -----------------------------------------------------------------------------------
    def alive(self) -> list[str]:
        return [a for a, p in self.nodes.items() if p.poll() is None]

    def kill(self, address: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one node's process (a test's crash)."""
        self.nodes[address].signal(sig)
        self._event("process.signalled", node=address, signal=signal.Signals(sig).name)

    def run_for(self, duration_s: float) -> None:
        """Let the testbed run; return early when a node process ends on its own."""
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            if len(self.alive()) < len(self.nodes):
                return
            time.sleep(0.05)

    def stop(self) -> ProcessesResult:
        """Stop every node (SIGTERM at once), then the World server; collect what they said."""
        if self.run_started_ns is not None and self.stopped_ns is None:
            self.stopped_ns = time.monotonic_ns()
        # A node that died takes its peers down by itself: give them the time to notice.
        if self.nodes and len(self.alive()) < len(self.nodes):
            deadline = time.monotonic() + self.settings.stop_timeout_s
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        for address in self.alive():
            self.nodes[address].signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.stop_timeout_s
        for address, proc in self.nodes.items():
            if proc.wait(deadline - time.monotonic()) is None:
                proc.signal(signal.SIGKILL)
                proc.wait(5.0)
                self._event("process.hung", node=address)
        result = self._collect()
        self._stop_world(result)
        self._event("testbed.stopped", ok=result.ok, failures=result.failures)
        self._summary("failed" if result.failures else "completed", ok=result.ok,
                      failures=result.failures, run_time_s=result.run_time_s,
                      wall_time_s=result.wall_time_s,
                      nodes={a: {"returncode": o.returncode, "shutdown": o.shutdown,
                                 "signal": o.signal} for a, o in result.nodes.items()},
                      world=result.world)
        self.record.close(export_ptu=False)
        for proc in self.nodes.values():
            proc.close()
        return result

    def _stop_world(self, result: ProcessesResult) -> None:
        if self.world is None:
            return
        self.world.signal(signal.SIGTERM)
        if self.world.wait(self.settings.stop_timeout_s) is None:
            self.world.signal(signal.SIGKILL)
            self.world.wait(5.0)
        stream = self.world.popen.stdout
        lines = stream.read().decode(errors="replace").splitlines() if stream is not None else []
        for line in reversed(lines):
            try:
                result.world = json.loads(line)
                break
            except ValueError:
                continue
        if stream is not None:
            stream.close()
        self.world.close()
        self._event("process.ended", node="world", returncode=self.world.poll())

    def _collect(self) -> ProcessesResult:
        now = time.monotonic_ns()
        run_ns = (self.stopped_ns or now) - (self.run_started_ns or now)
        result = ProcessesResult(self.config.name, self.seed, self.record.root, run_ns / 1e9,
                                 (now - self._t0) / 1e9)
        for address, proc in self.nodes.items():
            status = None
            for line in reversed(proc.stdout_text().splitlines()):
                if line.startswith("{"):
                    try:
                        status = json.loads(line)
                    except ValueError:
                        status = None
                    break
            outcome = NodeOutcome(address, proc.poll(), status, proc.stderr_tail(1))
            result.nodes[address] = outcome
            self._event("process.ended", node=address, returncode=outcome.returncode,
                        signal=outcome.signal, shutdown=outcome.shutdown)
            failure = outcome.failure()
            if failure is not None:
                result.failures.append(failure)
        return result


__all__ = ["NodeOutcome", "ProcessSettings", "ProcessesResult", "ProcessesTestbed"]
