"""What every experiment kind provides, and the summary every run ends with.

An experiment kind is a subclass of :class:`Experiment` registered with :func:`experiment_kind`:
its parameter model validates the ``params:`` of the experiment YAML (file, line and field on
every error), and the runner (:mod:`.runner`) drives it:

1. the testbed's nodes are started on the virtual clock and their control links come up;
2. :meth:`Experiment.setup` wires what the experiment needs (simulated optics, link stacks,
   applications) and issues its requests;
3. the runner advances simulated time in slices of :attr:`Experiment.slice_ps`; between slices it
   flushes the run record, refreshes the live view and the metrics, and stops early once
   :meth:`Experiment.done` says so;
4. :meth:`Experiment.finish` closes what the experiment opened and returns its :class:`Results`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from ..config.experiment import LoadedExperiment, register_experiment_kind
from ..records import RunRecord


class Params(BaseModel):
    """Base of every kind's parameter model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Summary:
    """The one summary object of a run (``qnode testbed --json`` prints exactly these fields).

    Quantities an experiment does not measure are None (JSON null). ``rate_hz`` is per simulated
    second; ``events`` counts the discrete events the testbed's loop processed.
    """

    experiment: str
    pairs_delivered: int | None
    rate_hz: float | None
    fidelity: float | None
    fidelity_stderr: float | None
    chsh_s: float | None
    chsh_s_stderr: float | None
    wrong_pairs: int | None
    leaked_qubits: int | None
    sim_time_s: float
    wall_time_s: float
    events: int
    run_dir: str | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


SUMMARY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Summary))


@dataclass
class Results:
    """What :meth:`Experiment.finish` measured. ``details`` goes to summary.json beside the
    summary fields (per-link figures, the expected values the physics predicts, and so on)."""

    pairs_delivered: int | None = None
    rate_hz: float | None = None
    fidelity: float | None = None
    fidelity_stderr: float | None = None
    chsh_s: float | None = None
    chsh_s_stderr: float | None = None
    wrong_pairs: int | None = None
    leaked_qubits: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusRow:
    """One row of the live status table."""

    node: str
    role: str
    state: str
    figures: str


@dataclass
class RunContext:
    """What an experiment gets from the runner."""

    testbed: Any                     # qnode_fw.testbed.virtual.VirtualTestbed
    experiment: LoadedExperiment
    params: Any                      # the kind's Params instance
    seed: int
    duration_ps: int
    record: RunRecord | None = None

    @property
    def loop(self):
        return self.testbed.loop

    @property
    def world(self):
        return self.testbed.world

    def now_ps(self) -> int:
        return self.testbed.loop.now_ps()

    def log(self, event: str, node: str | None = None, **fields: Any) -> None:
        """Append an event to the run record (no-op without one)."""
        if self.record is not None:
            self.record.event(self.now_ps(), event, node, **fields)


class Experiment(ABC):
    """Base of every experiment kind (see the module docstring)."""

    kind: ClassVar[str]
    params_model: ClassVar[type[Params]]
    #: Simulated time per runner slice (records flushed, live view and metrics refreshed).
    slice_ps: int = 1_000_000_000
    #: True: the run lasts exactly the duration; False: until :meth:`done` (own schedule).
    ends_at_duration: ClassVar[bool] = False

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.params = ctx.params

    @abstractmethod
    def setup(self) -> None:
        """Wire the experiment onto the started testbed and issue its requests."""

    def done(self) -> bool:
        """True once the experiment has what it came for (the runner then stops early)."""
        return False

    @abstractmethod
    def progress(self) -> tuple[float, list[StatusRow]]:
        """Fraction done (0..1, beyond what simulated time says) and the live status rows."""

    @abstractmethod
    def finish(self) -> Results:
        """Close everything the experiment opened and compute its results."""

    def metrics(self) -> dict[str, Any]:
        """Figures for the Prometheus exporter (see :mod:`qnode_fw.metrics`)."""
        return {}


_EXPERIMENTS: dict[str, type[Experiment]] = {}


def experiment_kind(cls: type[Experiment]) -> type[Experiment]:
    """Class decorator: register an experiment kind and its parameter model."""
    _EXPERIMENTS[cls.kind] = cls
    register_experiment_kind(cls.kind, cls.params_model)
    return cls


def experiment_class(kind: str) -> type[Experiment]:
    return _EXPERIMENTS[kind]


def experiment_kinds() -> dict[str, type[Experiment]]:
    return dict(_EXPERIMENTS)


ProgressCallback = Callable[[float, float, list[StatusRow]], None]
