"""Find the benchmark modules, run each in its own child process, and collect their figures.

The modules live in the source checkout's ``bench/`` folder, which is not an installed package:
benchmarks measure the installed code, they are not part of it. The harness (this package) is
installed with qnode-fw and finds ``bench/`` in this order: an explicit directory (``qnode bench
--bench-dir``), ``$QNODE_BENCH_DIR``, the checkout the qnode_fw package is imported from (the
editable install ``make`` does), then ``./bench``. Modules are loaded by file path, so
``bench/`` needs no ``__init__.py``; the child puts ``bench/`` on ``sys.path`` so a benchmark can
import a helper module beside it.

Why a child process per benchmark: a benchmark may pin itself to one core (tags), measure the
peak memory of its process (testbed) or leave compiled kernels and sockets behind; a fresh
interpreter gives each the same starting point, and a crash or hang in one does not lose the
others' figures.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qnode_fw.errors import ConfigError

from .figure import Figure

SCHEMA = "qnode-bench/1"
MODULE_PREFIX = "bench_"
DEFAULT_TIMEOUT_S = 300.0


def find_bench_dir(explicit: str | Path | None = None) -> Path:
    """The folder holding ``bench_*.py``; ConfigError naming every place looked at if none."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(Path(explicit))
    elif os.environ.get("QNODE_BENCH_DIR"):
        candidates.append(Path(os.environ["QNODE_BENCH_DIR"]))
    else:
        import qnode_fw

        candidates.append(Path(qnode_fw.__file__).resolve().parent.parent / "bench")
        candidates.append(Path.cwd() / "bench")
    for c in candidates:
        if c.is_dir() and any(c.glob(f"{MODULE_PREFIX}*.py")):
            return c.resolve()
    raise ConfigError("no benchmark modules found", file=", ".join(str(c) for c in candidates),
                      expected="a bench/ folder with bench_*.py: run from a source checkout, "
                               "or pass --bench-dir / set QNODE_BENCH_DIR")


def discover(bench_dir: Path) -> dict[str, Path]:
    """Benchmark name (``tags`` for ``bench_tags.py``) -> module path, sorted by name."""
    return {p.stem[len(MODULE_PREFIX):]: p for p in sorted(bench_dir.glob(f"{MODULE_PREFIX}*.py"))}


def select(available: dict[str, Path], names: list[str]) -> dict[str, Path]:
    """The named benchmarks (``tags`` or ``bench_tags``) in the order given; all when none named."""
    if not names:
        return dict(available)
    chosen: dict[str, Path] = {}
    for raw in names:
        name = raw[len(MODULE_PREFIX):] if raw.startswith(MODULE_PREFIX) else raw
        name = name.removesuffix(".py")
        if name not in available:
            raise ConfigError(f"unknown benchmark {raw!r}", field="NAME",
                              expected="one of " + ", ".join(available))
        chosen[name] = available[name]
    return chosen


def machine_info() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    cpu_model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total_gb = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_gb": mem_total_gb,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


@dataclass
class BenchRun:
    """One benchmark's outcome: its figures, or why there are none."""

    name: str
    module: Path
    status: str                 # "ok", "failed" or "timeout"
    wall_s: float
    figures: list[Figure] = field(default_factory=list)
    error: str | None = None

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        module = self.module
        if relative_to is not None:
            try:
                module = module.relative_to(relative_to)
            except ValueError:
                pass
        return {"bench": self.name, "module": str(module), "status": self.status,
                "wall_s": round(self.wall_s, 2), "error": self.error,
                "figures": [f.to_json() for f in self.figures]}


def run_bench(name: str, module: Path, *, quick: bool, timeout_s: float = DEFAULT_TIMEOUT_S,
              profile_dir: Path | None = None) -> BenchRun:
    """Run one benchmark module's ``run(quick)`` in a fresh interpreter and collect its figures."""
    with tempfile.TemporaryDirectory(prefix=f"qnode-bench-{name}-") as tmp:
        out = Path(tmp) / "figures.json"
        cmd = [sys.executable, "-m", "qnode_fw.benchmarks.child", "--module", str(module),
               "--out", str(out)]
        if quick:
            cmd.append("--quick")
        if profile_dir is not None:
            cmd += ["--profile", str(Path(profile_dir) / f"{name}.txt")]
        t0 = time.perf_counter()
        # Own session, so a timeout ends the benchmark and any process it started, nothing else.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return BenchRun(name, module, "timeout", time.perf_counter() - t0,
                            error=f"no result within {timeout_s:g} s")
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            text = (stderr or stdout or "").strip()
            # The traceback says why; log lines before or after it do not.
            if "Traceback (most recent call last)" in text:
                text = text[text.rindex("Traceback (most recent call last)"):]
                text = "\n".join(line for line in text.splitlines()
                                  if line.startswith((" ", "Traceback")) or ":" in line)
            tail = "\n".join(text.splitlines()[-15:])
            return BenchRun(name, module, "failed", wall,
                            error=f"exit code {proc.returncode}: {tail}")
        records = json.loads(out.read_text())
    return BenchRun(name, module, "ok", wall, [Figure.from_json(r) for r in records])


def run_all(selected: dict[str, Path], *, quick: bool, timeout_s: float = DEFAULT_TIMEOUT_S,
            profile_dir: Path | None = None, on_done=None) -> dict[str, Any]:
    """Run the selected benchmarks one after another; returns the JSON document of the run.

    ``on_done(BenchRun)`` is called after each, so a caller can show progress.
    """
    started = datetime.now(timezone.utc)
    machine = machine_info()
    t0 = time.perf_counter()
    runs = []
    for name, module in selected.items():
        r = run_bench(name, module, quick=quick, timeout_s=timeout_s, profile_dir=profile_dir)
        runs.append(r)
        if on_done is not None:
            on_done(r)
    root = next(iter(selected.values())).parent.parent if selected else None
    return {
        "schema": SCHEMA,
        "quick": quick,
        "profiled": profile_dir is not None,
        "started_utc": started.isoformat(timespec="seconds"),
        "wall_s": round(time.perf_counter() - t0, 2),
        "machine": machine,
        "benches": [r.to_json(relative_to=root) for r in runs],
    }
