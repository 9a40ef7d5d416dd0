"""Writing an experiment YAML for a test and running it on the virtual testbed."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from qnode_fw.experiments import RunOptions, RunResult, run_experiment

CONFIGS = Path(__file__).parent / "configs"
REPO = Path(__file__).resolve().parents[2]


def write_experiment(directory: Path, name: str, kind: str, testbed: Path, duration_s: float,
                     params: dict, seed: int = 1) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "kind": kind, "testbed": str(testbed), "seed": seed,
                                    "duration_s": duration_s, "params": params}, sort_keys=False))
    return path


def run(path: Path, out: Path | None = None, **options) -> RunResult:
    return run_experiment(path, options=RunOptions(out_dir=out, **options))


def within_binomial(successes: int, trials: int, p: float, sigmas: float = 3.0) -> bool:
    return abs(successes - trials * p) <= sigmas * math.sqrt(trials * p * (1 - p))


def transmission(km: float, db_per_km: float = 0.2) -> float:
    return 10 ** (-db_per_km * km / 10)
