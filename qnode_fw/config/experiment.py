"""The experiment YAML: what to run on a testbed, for how long, and with which parameters.

::

    name: chain3-swap
    kind: repeater_chain              # one of the registered experiment kinds
    testbed: ../testbeds/chain-3node-sim.yaml
    seed: 11
    duration_s: 0.5                   # simulated seconds on the virtual clock, wall seconds otherwise
    params: {...}                     # validated by the kind's own parameter model
    faults: {control: {drop: 0.05}}   # optional fault plan (qnode_fw.faults; docs/faults.md)
    on_instrument_failure: stop       # stop | continue: what an instrument that fails does to the run
    on_peer_failure: stop             # stop | continue: what a node process that dies does to the run

Each experiment kind registers a pydantic model for its ``params`` with
:func:`register_experiment_kind`; the kinds live in :mod:`qnode_fw.experiments`, imported on first
use so validating a node file does not import the experiments.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..errors import ConfigErrors
from .faults import FaultPlan
from .node import NAME_PATTERN, Strict
from .source import Document, load_document
from .validate import parse_model

_KINDS: dict[str, type[BaseModel]] = {}
_KINDS_MODULE = "qnode_fw.experiments"


def register_experiment_kind(kind: str, params_model: type[BaseModel]) -> None:
    _KINDS[kind] = params_model


def experiment_kinds() -> dict[str, type[BaseModel]]:
    try:
        importlib.import_module(_KINDS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != _KINDS_MODULE:
            raise
    return dict(_KINDS)


class ExperimentConfig(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    kind: str
    description: str = ""
    testbed: str | None = None
    seed: int | None = None
    duration_s: float = Field(1.0, gt=0)
    params: dict[str, Any] = {}
    #: Faults to inject into the run (``qnode testbed --fault`` overrides its message faults).
    faults: FaultPlan | None = None
    #: An instrument error that escapes the node software (a dead instrument): ``stop`` ends the
    #: run there (drained, closed, recorded, naming the instrument), ``continue`` names it in the
    #: record and runs on without the part that called it.
    on_instrument_failure: Literal["stop", "continue"] = "stop"
    #: A peer node that dies (processes mode: stops heartbeating, or comes back under a new boot
    #: id): ``stop`` ends every survivor naming it, ``continue`` closes the connections through it,
    #: runs on and sets them up again once it is back (docs/faults.md). Node crashes in a
    #: processes-mode fault plan need ``continue``.
    on_peer_failure: Literal["stop", "continue"] = "stop"


@dataclass(frozen=True)
class LoadedExperiment:
    config: ExperimentConfig
    params: BaseModel
    document: Document
    base_dir: Path

    def testbed_path(self) -> Path | None:
        return (self.base_dir / self.config.testbed).resolve() if self.config.testbed else None


def load_experiment(path: str | Path) -> LoadedExperiment:
    path = Path(path)
    doc = load_document(path)
    config = parse_model(ExperimentConfig, doc)
    kinds = experiment_kinds()
    if config.kind not in kinds:
        raise ConfigErrors([doc.error(("kind",), f"unknown experiment kind {config.kind!r}",
                                      expected="one of " + (", ".join(sorted(kinds)) or
                                                            "the registered kinds"))])
    if "params" in doc.data:
        params_doc = doc.sub(("params",))
        prefix = ("params",)
    else:
        params_doc, prefix = Document({}, doc.file, {(): doc.origin(())}), ()
    try:
        params = parse_model(kinds[config.kind], params_doc)
    except ConfigErrors as exc:
        for e in exc.errors:            # the field path is relative to params:
            if prefix:
                e.field = "params" + ("." + e.field if e.field and not e.field.startswith("[")
                                      else (e.field or ""))
        raise ConfigErrors(exc.errors) from None
    if config.testbed is not None and not (path.parent / config.testbed).is_file():
        raise ConfigErrors([doc.error(("testbed",), f"testbed file {config.testbed} not found "
                                      f"(looked in {path.parent / config.testbed})",
                                      expected="a path relative to the experiment file")])
    return LoadedExperiment(config, params, doc, path.parent)
