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
   --stop-on-peer-down``), each naming the dead node in its shutdown reason - unless the
   experiment says ``on_peer_failure: continue``, when they name it and run on;
4. the World server stops last and reports its counters.

With an experiment (``--experiment EXP.yaml``) every node process runs its part of it
(:mod:`.node_experiment`; the World server builds the physics those parts use) and writes its own
record under ``nodes/<address>/``; once all have stopped the runner joins them into the run's
summary, with the same fields as the virtual testbed's (``sim_time_s`` is then wall time: the
processes run on the wall clock).

Faults (``--fault`` and the experiment's ``faults:``): every node process gets the ``--fault``
string and applies its own share of the plan (its control link, herald endpoints, instruments);
the runner checks the plan before any process starts and joins the nodes' fault counts into the
summary's ``faults``. Node crashes (the plan's ``nodes:``) are the runner's: :meth:`ProcessesTestbed.crash`
SIGKILLs the node's process at ``crash_at_s`` (from when every node has started) and
:meth:`~ProcessesTestbed.restart` starts it again with the same command line after
``restart_after_s``; the new process records under ``nodes/<address>.restartN``, the World
server re-initialises its QNIC at its hello, and a planned crash is not a failure of the run.
They need ``on_peer_failure: continue`` (checked before any process starts).

Everything lands in a run directory: the runner's own record (``events.jsonl``: processes started
and ended, ``summary.json``), each node's record under ``nodes/`` and each process's output under
``logs/``.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.testbed import LoadedTestbed
from ..errors import ConfigError, QnodeError
from ..logs import event
from ..records import RunRecord
from .lab import STATUS_PREFIX

log = logging.getLogger(__name__)

#: Name of the World server's CURVE keypair in the testbed's keys_dir (must not be a node).
WORLD_KEY_NAME = "world"


@dataclass(frozen=True)
class ProcessSettings:
    start_timeout_s: float = 90.0       # World ready and every node started (imports, JIT caches)
    stop_timeout_s: float = 20.0        # from SIGTERM (or a peer's death) to every node gone
    status_every_s: float = 0.25        # node status lines: the first one says "started"
    #: Heartbeats (100 ms) a peer may miss before it is down (3 s): a node's loop waits while a BSA
    #: read waits for the World's horizon, and six processes share this machine's CPUs.
    missed_heartbeats: int = 30
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
    #: With an experiment: the run's summary (the virtual testbed's fields) and its details.
    summary: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)

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
        self._status_at = 0                 # bytes of stdout already scanned for status lines
        self._status: dict[str, Any] | None = None
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

    def latest_status(self) -> dict[str, Any] | None:
        """The last ``status {...}`` line a ``qnode run --json`` process printed (read on from
        where the previous call stopped)."""
        if not self.stdout_path.exists():
            return self._status
        with open(self.stdout_path, "rb") as f:
            f.seek(self._status_at)
            chunk = f.read()
        complete = chunk.rfind(b"\n") + 1          # a line still being written waits
        self._status_at += complete
        for line in reversed(chunk[:complete].decode(errors="replace").splitlines()):
            if line.startswith(STATUS_PREFIX):
                try:
                    self._status = json.loads(line[len(STATUS_PREFIX):])
                except ValueError:
                    continue
                break
        return self._status

    def close(self) -> None:
        for f in (self._stdout, self._stderr):
            if f is not None:
                f.close()


class ProcessesTestbed:
    """Run a testbed with one OS process per node and a World server (module docstring)."""

    def __init__(self, testbed: LoadedTestbed, *, out_dir: str | Path, seed: int | None = None,
                 settings: ProcessSettings = ProcessSettings(),
                 node_args: dict[str, list[str]] | None = None,
                 experiment: str | Path | None = None, netns: bool = False,
                 netns_delays: bool = True, fault: str | None = None) -> None:
        self.testbed = testbed
        self.config = testbed.config
        self.settings = settings
        self.node_args = node_args or {}
        self.files = {a: self._node_file(a) for a in self.config.addresses}
        self.experiment = None
        self.experiment_path = None
        if experiment is not None:
            self.experiment_path = Path(experiment).resolve()
            self.experiment = _load_experiment(self.experiment_path)
        self.fault = fault
        self.fault_plan = None
        if fault is not None or (self.experiment is not None and self.experiment.config.faults):
            self.fault_plan = _check_fault_plan(self.experiment, fault, self.config.addresses)
        exp_seed = self.experiment.config.seed if self.experiment is not None else None
        self.seed = int(seed) if seed is not None else (exp_seed if exp_seed is not None else self.config.seed)
        name = self.experiment.config.name if self.experiment is not None else f"{self.config.name}-processes"
        self.record = RunRecord.create(out_dir, name)
        self.testbed_file = Path(self.testbed.document.file).resolve()
        self.bind_host = "127.0.0.1"
        self.netns = None
        if netns:
            from .netns import NetnsTestbed

            self.netns = NetnsTestbed(testbed, self.record.root, with_delays=netns_delays)
        self.logs = self.record.root / "logs"
        self.logs.mkdir()
        self.world: _Process | None = None
        self.world_endpoint: str | None = None
        self.nodes: dict[str, _Process] = {}
        #: The command line each node process was started with (a restart uses it again).
        self.argv: dict[str, list[str]] = {}
        #: Processes that a planned crash killed, oldest first (``self.nodes`` holds the latest).
        self.crashed: list[tuple[str, _Process]] = []
        #: The crashes and restarts the runner injected: {t_ps (testbed time), kind, target, detail}.
        self.injected: list[dict[str, Any]] = []
        self._due: list[tuple[float, str, str]] = []     # (monotonic s, "crash"/"restart", node)
        self.testbed_offset_ps: int | None = None
        self._t0 = time.monotonic_ns()
        self.run_started_ns: int | None = None
        self.stopped_ns: int | None = None
        self._result: ProcessesResult | None = None
        config: dict[str, Any] = {"run": {"mode": "processes", "seed": self.seed},
                                  "testbed": self.config.model_dump(mode="json")}
        if self.experiment is not None:
            exp = self.experiment.config.model_dump(mode="json")
            exp["params"] = self.experiment.params.model_dump(mode="json")
            config["experiment"] = exp
            exp["faults"] = (self.fault_plan.model_dump(mode="json")
                             if self.fault_plan is not None else None)
        self.record.write_config(config)
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
                                   "seed": self.seed, "run_dir": str(self.record.root), **fields})

    def _experiment_args(self) -> list[str]:
        if self.experiment_path is None:
            return []
        return ["--experiment", str(self.experiment_path)]

    def _fault_args(self) -> list[str]:
        return ["--fault", self.fault] if self.fault else []

    def start(self) -> None:
        """Start the World server and every node; return once every node has started."""
        self._ensure_world_keys()
        if self.netns is not None:
            self.netns.setup()
            self.testbed_file = self.netns.derived_testbed()
            self.bind_host = self.netns.world_ip
            self._event("netns.ready", bridge=self.netns.bridge, delayed=self.netns.with_delays,
                        nodes={a: {"namespace": n.namespace, "ip": n.ip} for a, n in self.netns.nodes.items()},
                        delays_us={f"{x}->{y}": d / 1e6 for (x, y), d in sorted(self.netns.delays.items())})
        self._start_world()
        for address in self.config.addresses:
            argv = [self.settings.python, "-m", "qnode_fw.cli.main", "--log-level",
                    self.settings.log_level, "run", str(self.files[address]),
                    "--testbed", str(self.testbed_file),
                    "--world", str(self.world_endpoint), "--seed", str(self.seed), "--json",
                    "--stop-on-peer-down", "--status-every", str(self.settings.status_every_s),
                    "--missed-heartbeats", str(self.settings.missed_heartbeats),
                    *self._experiment_args(),
                    *(["--out", str(self.record.root)] if self.experiment is not None else []),
                    *self._fault_args(), *self.node_args.get(address, [])]
            if self.netns is not None:
                argv = self.netns.wrap(address, argv)
            self.argv[address] = argv
            self.nodes[address] = _Process(address, argv, self.logs)
            self._event("process.started", node=address, pid=self.nodes[address].pid)
        self._wait_started()
        self.run_started_ns = time.monotonic_ns()
        self._event("testbed.running", nodes=len(self.nodes))
        self._schedule_crashes()

    def _start_world(self) -> None:
        argv = [self.settings.python, "-m", "sim_backend.world_server",
                str(self.testbed_file), "--bind", f"tcp://{self.bind_host}:0",
                "--seed", str(self.seed), "--log-level", self.settings.log_level,
                *self._experiment_args()]
        self.world = _Process("world", argv, self.logs, stdout_pipe=True)
        line = self._read_line(self.world, self.settings.start_timeout_s)
        try:
            ready = json.loads(line)
            self.world_endpoint = str(ready["endpoint"])
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise QnodeError(f"the World server did not start: {line.strip() or self.world.stderr_tail()}") from None
        # The nodes' records are stamped in testbed time (the World's epoch on CLOCK_MONOTONIC),
        # this record from the runner's start: the offset puts both on one axis (qnode report).
        epoch_ns = ready.get("epoch_ns")
        offset = None if epoch_ns is None else (self._t0 - int(epoch_ns)) * 1000
        self.testbed_offset_ps = offset
        self._event("process.started", node="world", pid=self.world.pid, endpoint=self.world_endpoint,
                    testbed_offset_ps=offset)

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

    @property
    def down(self) -> set[str]:
        """Nodes a planned crash has killed and that are not (yet) started again: their latest
        process is one the runner killed."""
        return {a for a, p in self.crashed if self.nodes[a] is p}

    def ended_unplanned(self) -> list[str]:
        """Nodes whose process ended by itself or by a kill the fault plan did not make."""
        return [a for a, p in self.nodes.items() if a not in self.down and p.poll() is not None]

    # -- planned crashes (the fault plan's nodes:) ---------------------------------------------------
    def _schedule_crashes(self) -> None:
        """Crash times count from the experiment's start: here, when every node process has
        started (``testbed.running``), about when each node's part starts."""
        if self.fault_plan is None or self.run_started_ns is None:
            return
        start = self.run_started_ns / 1e9
        for crash in self.fault_plan.nodes:
            self._due.append((start + crash.crash_at_s, "crash", crash.node))
            if crash.restart_after_s is not None:
                self._due.append((start + crash.crash_at_s + crash.restart_after_s, "restart",
                                  crash.node))
        self._due.sort()

    def fire_due_faults(self) -> None:
        """Kill or start again the node processes whose planned time has come."""
        while self._due and self._due[0][0] <= time.monotonic():
            _, kind, address = self._due.pop(0)
            if kind == "crash":
                self.crash(address)
            else:
                self.restart(address)

    def _injected(self, kind: str, address: str, detail: str) -> None:
        t_runner_ps = (time.monotonic_ns() - self._t0) * 1000
        t_ps = t_runner_ps + (self.testbed_offset_ps or 0)
        self.injected.append({"t_ps": t_ps, "kind": kind, "target": address, "detail": detail})
        self._event("fault.injected", node=address, kind=kind, target=address, detail=detail,
                    testbed_t_ps=t_ps)

    def crash(self, address: str) -> None:
        """A planned crash: SIGKILL the node's process (no goodbye, nothing flushed after its
        last status tick) and count it as down, not failed."""
        proc = self.nodes[address]
        if address in self.down or proc.poll() is not None:
            return
        proc.signal(signal.SIGKILL)
        proc.wait(5.0)
        self._injected("crash", address, f"process {proc.pid} killed (SIGKILL)")
        self.crashed.append((address, proc))
        self._event("process.ended", node=address, returncode=proc.poll(), signal="SIGKILL",
                    planned=True)

    def restart(self, address: str) -> None:
        """Start ``address`` again with its first command line: a new process, empty state, a
        new control boot id; the World server re-initialises its quantum memory at its hello and
        it writes its record under ``nodes/<address>.restartN``."""
        if address not in self.down:
            return
        n = sum(1 for a, _ in self.crashed if a == address)
        proc = _Process(f"{address}.restart{n}", self.argv[address], self.logs)
        self.nodes[address] = proc
        self._injected("restart", address, f"process {proc.pid} started with empty state")
        self._event("process.started", node=address, pid=proc.pid, restart=n)

    def kill(self, address: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to one node's process (a test's crash); a SIGKILL is waited for, so the
        node counts as dead from here on (its peers then stop by themselves)."""
        self.nodes[address].signal(sig)
        self._event("process.signalled", node=address, signal=signal.Signals(sig).name)
        if sig == signal.SIGKILL:
            self.nodes[address].wait(5.0)

    def run_for(self, duration_s: float, on_tick: Callable[[float], None] | None = None) -> None:
        """Let the testbed run; return early when a node process ends on its own.
        ``on_tick(elapsed_s)`` is called every quarter second (the live view)."""
        start = time.monotonic()
        end, next_tick = start + duration_s, start
        while time.monotonic() < end:
            self.fire_due_faults()
            if self.ended_unplanned():
                return
            if on_tick is not None and time.monotonic() >= next_tick:
                on_tick(time.monotonic() - start)
                next_tick += 0.25
            time.sleep(0.05)

    def node_statuses(self) -> dict[str, dict[str, Any] | None]:
        """Each node's latest status line (None before its first)."""
        return {a: p.latest_status() for a, p in self.nodes.items()}

    def process_states(self) -> dict[str, str]:
        """Each node process in words: running, exited N, killed by SIGNAL."""
        states = {}
        for address, proc in self.nodes.items():
            code = proc.poll()
            states[address] = ("running" if code is None else
                               f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}")
        return states

    def stop(self) -> ProcessesResult:
        """Stop every node (SIGTERM at once), then the World server; collect what they said.
        A second call returns the first one's result."""
        if self._result is not None:
            return self._result
        if self.run_started_ns is not None and self.stopped_ns is None:
            self.stopped_ns = time.monotonic_ns()
        self._due.clear()                    # crashes planned past the end do not happen
        # A node that died takes its peers down by itself (under on_peer_failure: stop): give
        # them the time to notice.
        stops_on_peer = self.experiment is None or self.experiment.config.on_peer_failure == "stop"
        if self.nodes and self.ended_unplanned() and stops_on_peer:
            deadline = time.monotonic() + self.settings.stop_timeout_s
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        for address in self.alive():
            self.nodes[address].signal(signal.SIGTERM)
        self._event("testbed.stopping", alive=self.alive())
        deadline = time.monotonic() + self.settings.stop_timeout_s
        for address, proc in self.nodes.items():
            if proc.wait(deadline - time.monotonic()) is None:
                proc.signal(signal.SIGKILL)
                proc.wait(5.0)
                self._event("process.hung", node=address)
        result = self._collect()
        try:
            self._stop_world(result)
            if self.experiment is not None:
                self._merge(result)
        except Exception as exc:     # the record must still say how the run ended
            result.failures.append(f"runner: {type(exc).__name__}: {exc}")
            log.exception("processes runner failed while collecting")
        self._event("testbed.stopped", ok=result.ok, failures=result.failures)
        fields: dict[str, Any] = {
            "ok": result.ok, "failures": result.failures, "run_time_s": result.run_time_s,
            "wall_time_s": result.wall_time_s, "world": result.world,
            "nodes": {a: {"returncode": o.returncode, "shutdown": o.shutdown, "signal": o.signal}
                      for a, o in result.nodes.items()}}
        fields.update(result.summary or {})
        if result.details:
            fields["details"] = result.details
        try:
            self._summary("failed" if result.failures else "completed", **fields)
            self.record.close(export_ptu=False)
        finally:
            for proc in [*self.nodes.values(), *(p for _, p in self.crashed)]:
                proc.close()
            if self.netns is not None:
                self.netns.teardown()
        self._result = result
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

    def _merge(self, result: ProcessesResult) -> None:
        """Join the nodes' records into the run's summary (the virtual testbed's fields)."""
        from .node_experiment import merge_repeater_chain, read_halves

        params = self.experiment.params
        figures = {a: (o.status or {}).get("experiment") or {} for a, o in result.nodes.items()}
        halves = {a: read_halves(self.record.root, a) for a in (params.initiator, params.responder)}
        merged = merge_repeater_chain(halves, params, figures)
        # Pairs per second of generation: from the connection's establishment to the stop, both
        # on the initiator's (testbed) clock.
        init = figures.get(params.initiator, {})
        run_s = result.run_time_s
        gen_s = run_s
        if init.get("established_ps") is not None and init.get("stopped_ps") is not None:
            gen_s = max((init["stopped_ps"] - init["established_ps"]) / 1e12, 1e-9)
        pairs = merged["pairs_delivered"]
        leaked = sum(int(f.get("leaked_qubits") or 0) for f in figures.values())
        events = sum(int((o.status or {}).get("events") or 0) for o in result.nodes.values())
        result.summary = {
            "experiment": self.experiment.config.name, "pairs_delivered": pairs,
            "rate_hz": pairs / gen_s if gen_s > 0 else None,
            "fidelity": merged.get("fidelity"), "fidelity_stderr": merged.get("fidelity_stderr"),
            "chsh_s": None, "chsh_s_stderr": None, "wrong_pairs": merged["wrong_pairs"],
            "leaked_qubits": leaked, "sim_time_s": run_s, "wall_time_s": result.wall_time_s,
            "events": events + int(result.world.get("events") or 0),
            "run_dir": str(self.record.root)}
        faults = _merge_faults(figures, self.injected)
        if faults is not None and self.fault_plan is not None:
            # The runner's plan, with the node crashes the node processes leave to it.
            faults["plan"] = self.fault_plan.model_dump(mode="json", exclude_defaults=True)
        if faults is not None:
            result.summary["faults"] = faults
        failed = [f for fig in figures.values() for f in fig.get("instrument_failures") or []]
        result.summary["instrument_failures"] = failed
        result.details = {**merged, "generation_time_s": gen_s,
                          "nodes": {a: {k: v for k, v in f.items() if k != "connection_events"}
                                    for a, f in figures.items()},
                          "connection_events": figures.get(params.initiator, {}).get("connection_events")}

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
            if address in self.down:
                continue                     # its planned crash ended it (logged then)
            self._event("process.ended", node=address, returncode=outcome.returncode,
                        signal=outcome.signal, shutdown=outcome.shutdown)
            failure = outcome.failure()
            if failure is not None:
                result.failures.append(failure)
        return result


def run_processes_command(args: Any) -> int:
    """``qnode testbed TESTBED.yaml --processes [--experiment EXP.yaml] [--seed] [--duration]
    [--out] [--json]``: the run, its summary printed (``--json``: exactly the virtual testbed's
    summary object), exit 0 when every node ended well (and, with an experiment, no wrong pair
    and no leaked qubit)."""
    from ..config import load_testbed
    from .render import status_lines, topology_lines

    loaded = load_testbed(args.testbed)
    base_port = getattr(args, "metrics_port", None)
    node_args = metrics_node_args(loaded.config.addresses, base_port) if base_port is not None else None
    tb = ProcessesTestbed(loaded, out_dir=args.out, seed=args.seed, experiment=args.experiment,
                          netns=getattr(args, "netns", False), fault=getattr(args, "fault", None),
                          node_args=node_args)
    duration = args.duration
    if duration is None:
        duration = tb.experiment.config.duration_s if tb.experiment is not None else 1.0
    if not args.json:
        print("\n".join(topology_lines(loaded.config)), flush=True)
        print(f"starting the World server and {len(loaded.config.nodes)} node processes ...", flush=True)
        if node_args:
            print("metrics: " + ", ".join(f"{a} on 127.0.0.1:{v[1]}" for a, v in node_args.items()),
                  flush=True)
    try:
        tb.start()
    except BaseException:
        tb.stop()
        raise
    if sys.stdout.isatty() and not args.json:
        from ..experiments.live import LiveView, node_process_rows

        title = tb.experiment.config.name if tb.experiment is not None else loaded.config.name
        began = time.monotonic()
        with LiveView(f"{title}: {len(tb.nodes)} node processes") as live:
            tb.run_for(duration, on_tick=lambda elapsed: live.update(
                elapsed / duration, elapsed, node_process_rows(tb.node_statuses(), tb.process_states())))
            elapsed = time.monotonic() - began      # the last picture: where the run ended
            live.update(elapsed / duration, elapsed, node_process_rows(tb.node_statuses(),
                                                                       tb.process_states()))
    else:
        tb.run_for(duration)
    result = tb.stop()
    if tb.experiment is not None:
        from ..experiments import SUMMARY_FIELDS

        summary = result.summary or {}
        clean = result.ok and not summary.get("wrong_pairs") and not summary.get("leaked_qubits")
        if args.json:
            print(json.dumps({k: summary.get(k) for k in SUMMARY_FIELDS}))
        else:
            from ..experiments.summary_text import summary_lines

            print("\n".join(summary_lines({**summary, "kind": tb.experiment.config.kind,
                                           "mode": "processes", "details": result.details})))
            if summary.get("faults"):
                from ..cli.cmd_testbed import fault_lines

                print("\n".join(fault_lines({**summary["faults"],
                                              "instrument_failures": summary.get("instrument_failures", [])})))
            for failure in result.failures:
                print(f"  {failure}")
        return 0 if clean else 1
    statuses = result.statuses()
    ok = result.ok and all(p["up"] or p["reason"] == "peer stopped"
                           for st in statuses.values() for p in st["peers"].values())
    if args.json:
        print(json.dumps({"testbed": loaded.config.name, "seed": tb.seed, "ok": ok, "mode": "processes",
                          "sim_time_s": result.run_time_s, "wall_time_s": round(result.wall_time_s, 3),
                          "events": sum(int(s.get("events") or 0) for s in statuses.values())
                          + int(result.world.get("events") or 0),
                          "run_dir": str(result.run_dir), "failures": result.failures,
                          "nodes": statuses}))
    else:
        print(f"after {result.run_time_s:.1f} s on the wall clock ({result.wall_time_s:.1f} s with "
              f"start-up), run record {result.run_dir}:")
        for address, st in statuses.items():
            up = sum(1 for p in st["peers"].values() if p["up"] or p["reason"] == "peer stopped")
            print(f"  {address:<10} {st['role']:<5} {up}/{len(st['peers'])} peers, stopped: {st.get('shutdown')}")
        for failure in result.failures:
            print(f"  {failure}")
        print("every node ran and stopped cleanly" if ok else "some nodes failed")
    return 0 if ok else 1


def metrics_node_args(addresses: list[str], base_port: int) -> dict[str, list[str]]:
    """``qnode testbed --processes --metrics-port BASE``: the i-th node of the testbed serves its
    metrics on BASE + i (``qnode run --metrics-port``)."""
    return {a: ["--metrics-port", str(base_port + i)] for i, a in enumerate(addresses)}


def _check_fault_plan(experiment: Any, fault: str | None, addresses: list[str]):
    """The run's plan, checked before any process starts (each node applies its own share)."""
    from ..faults.runners import check_plan_for_runner, run_fault_plan

    if experiment is None:
        raise ConfigError("faults are injected into an experiment run", field="--fault",
                          expected="--experiment EXP.yaml with --fault")
    plan = run_fault_plan(experiment.config.faults, fault)
    if plan is None:
        return None
    check_plan_for_runner(plan, str(experiment.document.file), addresses, processes=True)
    if plan.nodes and experiment.config.on_peer_failure != "continue":
        # A planned crash under "stop" would end every survivor at the crash: say so now.
        doc = experiment.document
        where = ("on_peer_failure",) if "on_peer_failure" in doc.data else ("faults", "nodes")
        origin = doc.origin(where)
        raise ConfigError("a node crash in processes mode needs the survivors to run on "
                          f"(on_peer_failure is {experiment.config.on_peer_failure!r})",
                          file=origin.file, line=origin.line, field="on_peer_failure",
                          expected="on_peer_failure: continue with faults.nodes")
    return plan


def _merge_faults(figures: dict[str, dict], injected: list[dict[str, Any]] | None = None
                  ) -> dict[str, Any] | None:
    """The nodes' fault counts summed per plane, their events tagged with the node; with the
    crashes and restarts the runner injected (``node: runner``) and each node's view of its
    peers dying and coming back (``peer-down`` / ``peer-back``, ``node`` the one that saw it),
    counted per kind in ``counts``."""
    per_node = {a: f["faults"] for a, f in figures.items() if f.get("faults")}
    peer_events = [{"t_ps": e["t_ps"], "kind": e["kind"], "target": e["peer"], "detail": e["detail"],
                    "node": a, "boot": e.get("boot")}
                   for a, f in figures.items() for e in f.get("peer_events") or []]
    injected = [{**e, "node": "runner"} for e in injected or []]
    if not per_node and not peer_events and not injected:
        return None
    plan = next(iter(per_node.values())).get("plan") if per_node else None
    out: dict[str, Any] = {"plan": plan}
    for plane in ("control", "herald"):
        total: dict[str, int] = {}
        for f in per_node.values():
            for key, value in (f.get(plane) or {}).items():
                total[key] = total.get(key, 0) + int(value)
        out[plane] = total
    out["events"] = sorted([*({**e, "node": a} for a, f in per_node.items() for e in f.get("events", [])),
                            *injected, *peer_events], key=lambda e: e["t_ps"])
    # Each end's clock sync reports its own (each entry names its node already).
    out["clock_faults"] = sorted((c for f in per_node.values() for c in f.get("clock_faults", [])),
                                 key=lambda c: c["t_ps"])
    counts: dict[str, int] = {}
    for e in out["events"]:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    out["counts"] = counts
    out["nodes"] = {a: {k: v for k, v in f.items() if k != "plan"} for a, f in per_node.items()}
    return out


def _load_experiment(path: Path):
    import qnode_fw.experiments  # noqa: F401  (registers the experiment kinds)

    from ..config.experiment import load_experiment

    loaded = load_experiment(path)
    if loaded.config.kind != "repeater_chain":
        raise ConfigError(f"experiment kind {loaded.config.kind!r} runs on the virtual testbed only; "
                          f"across node processes: repeater_chain", file=str(path), field="kind",
                          expected="repeater_chain (or run without --processes)")
    return loaded


__all__ = ["NodeOutcome", "ProcessSettings", "ProcessesResult", "ProcessesTestbed",
           "run_processes_command"]
