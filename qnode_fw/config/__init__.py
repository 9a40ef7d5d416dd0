"""Typed, validated configuration: node, testbed and experiment YAML files.

- :mod:`.source` loads YAML keeping the file and line of every value, with ``include:``.
- :mod:`.validate` turns pydantic errors into :class:`~qnode_fw.errors.ConfigError` with file,
  line, field path and what was expected.
- :mod:`.node`, :mod:`.testbed`, :mod:`.experiment` are the models; :mod:`.checks` the checks
  that span fields and files.
- :func:`load_any` validates any of the three by looking at what the file holds.
"""

from __future__ import annotations

from pathlib import Path

from .experiment import ExperimentConfig, LoadedExperiment, load_experiment
from .node import (CalibrationConfig, CalibrationFile, ControlConfig, InstrumentConfig, InstrumentKind, LinkConfig, LinkScheme,
                   NodeConfig, QnicConfig, QnicKind, Role)
from .validate import parse_model
from .source import Document, load_document, parse_yaml
from .testbed import LoadedTestbed, TestbedConfig, load_node, load_testbed

__all__ = [
    "CalibrationConfig", "CalibrationFile", "ControlConfig", "Document", "ExperimentConfig", "InstrumentConfig", "InstrumentKind",
    "LinkConfig", "LinkScheme", "LoadedExperiment", "LoadedTestbed", "NodeConfig", "QnicConfig",
    "QnicKind", "Role", "TestbedConfig", "detect_kind", "load_any", "load_document",
    "load_experiment", "load_node", "load_testbed", "parse_yaml",
]


def detect_kind(doc: Document) -> str:
    """``testbed``, ``experiment``, ``node``, ``bench`` or ``calibration``, from the keys a file
    holds."""
    data = doc.data if isinstance(doc.data, dict) else {}
    if "nodes" in data:
        return "testbed"
    if "bench" in data and "wiring" in data:
        return "bench"
    if "kind" in data and "name" in data and "role" not in data:
        return "experiment"
    if "address" in data or "role" in data:
        return "node"
    return "calibration"


def load_any(path: str | Path) -> tuple[str, object]:
    """Validate a file of any kind; returns the kind and the loaded object."""
    kind = detect_kind(load_document(path))
    if kind == "testbed":
        return kind, load_testbed(path)
    if kind == "experiment":
        return kind, load_experiment(path)
    if kind == "node":
        return kind, load_node(path)[0]
    if kind == "bench":
        from ..hil.bench import load_bench     # the HIL layer is only needed for bench files

        return kind, load_bench(path)
    doc = load_document(path)
    return kind, parse_model(CalibrationFile, doc)
